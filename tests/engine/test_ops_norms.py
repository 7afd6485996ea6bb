"""batch_norm (train/eval, with and without running stats), group_norm, instance_norm and rms_norm against
torch.autograd: values, saved tensors, first and second order, shape backend, running-stat updates."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def _stats(c, dtype):
    """Running stats made fresh on every call: the torch and the engine run each update their own copy."""
    gen = torch.Generator().manual_seed(1)
    where = torch.get_default_device()          # made on the GPU when a CUDA run sets it
    return torch.randn(c, dtype=torch.float64, generator=gen, device="cpu").to(where, dtype), \
        (torch.rand(c, dtype=torch.float64, generator=gen, device="cpu") + 0.5).to(where, dtype)


def _gx(*tensors):
    return [gx.from_torch(t) if t is not None else None for t in tensors]


def batch_norm_case(shape, training, with_stats=True, affine=True, momentum=0.1):
    c = shape[1]

    def torch_fn(x, *wb):
        stats = _stats(c, x.dtype) if with_stats else (None, None)
        return TF.batch_norm(x, *stats, *(wb or (None, None)), training=training, momentum=momentum)

    def gx_fn(x, *wb):
        dtype = gx.backends.torch_dtype(x.dtype) if x.data_ is not None else None
        if with_stats:
            stats = _gx(*_stats(c, dtype)) if dtype is not None else [gx.empty(c, dtype=x.dtype) for _ in range(2)]
        else:
            stats = (None, None)
        return F.batch_norm(x, *stats, *(wb or (None, None)), training=training, momentum=momentum)

    args = [Arg(shape)] + ([Arg((c,)), Arg((c,))] if affine else [])
    return torch_fn, gx_fn, args, {}


def group_norm_case(shape, groups, affine=True, **check):
    c = shape[1]
    if affine:
        return (lambda x, w, b: TF.group_norm(x, groups, w, b), lambda x, w, b: F.group_norm(x, groups, w, b),
                [Arg(shape), Arg((c,)), Arg((c,))], check)
    return (lambda x: TF.group_norm(x, groups), lambda x: F.group_norm(x, groups), [Arg(shape)], check)


def instance_norm_case(shape, affine=False, **kw):
    c = shape[1]
    if affine:
        return (lambda x, w, b: TF.instance_norm(x, weight=w, bias=b, **kw),
                lambda x, w, b: F.instance_norm(x, weight=w, bias=b, **kw), [Arg(shape), Arg((c,)), Arg((c,))], {})
    return (lambda x: TF.instance_norm(x, **kw), lambda x: F.instance_norm(x, **kw), [Arg(shape)], {})


def rms_norm_case(shape, normalized, weight=True, eps=None):
    if weight:
        return (lambda x, w: TF.rms_norm(x, normalized, w, eps), lambda x, w: F.rms_norm(x, normalized, w, eps),
                [Arg(shape), Arg(normalized)], {})
    return (lambda x: TF.rms_norm(x, normalized, eps=eps), lambda x: F.rms_norm(x, normalized, eps=eps),
            [Arg(shape)], {})


CASES = {
    "batch_norm_train_2d": batch_norm_case((2, 3, 4, 4), training=True),
    "batch_norm_train_1d_input": batch_norm_case((5, 3), training=True),
    "batch_norm_train_3d_input": batch_norm_case((4, 3, 6), training=True),
    "batch_norm_train_volumetric": batch_norm_case((2, 2, 3, 2, 3), training=True),
    "batch_norm_train_no_running_stats": batch_norm_case((2, 3, 4, 4), training=True, with_stats=False),
    "batch_norm_train_no_affine": batch_norm_case((3, 3, 5), training=True, affine=False),
    "batch_norm_train_momentum": batch_norm_case((2, 3, 4), training=True, momentum=0.5),
    "batch_norm_eval": batch_norm_case((2, 3, 4, 4), training=False),
    "batch_norm_eval_1d": batch_norm_case((4, 3), training=False),
    "batch_norm_eval_no_affine": batch_norm_case((2, 3, 5), training=False, affine=False),
    "batch_norm_noncontiguous": (lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True),
                                 lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                                 [Arg((2, 3, 4, 5), transposed=True), Arg((3,)), Arg((3,))], {}),
    "group_norm": group_norm_case((2, 6, 4, 4), 3),
    "group_norm_one_group": group_norm_case((2, 4, 5), 1),
    "group_norm_per_channel_no_affine": group_norm_case((3, 4, 2, 3), 4, affine=False),
    "group_norm_2d_input": group_norm_case((4, 6), 2),
    "group_norm_noncontiguous": (lambda x, w, b: TF.group_norm(x, 2, w, b), lambda x, w, b: F.group_norm(x, 2, w, b),
                                 [Arg((2, 4, 3, 5), transposed=True), Arg((4,)), Arg((4,))], {}),
    "instance_norm": instance_norm_case((2, 3, 4, 4)),
    "instance_norm_1d": instance_norm_case((2, 3, 7)),
    "instance_norm_affine": instance_norm_case((2, 3, 5), affine=True),
    "instance_norm_noncontiguous": (lambda x: TF.instance_norm(x), lambda x: F.instance_norm(x),
                                    [Arg((2, 3, 4, 5), transposed=True)], {}),
    "rms_norm": rms_norm_case((2, 3, 8), (8,)),
    "rms_norm_two_dims_eps": rms_norm_case((2, 3, 4), (3, 4), eps=1e-3),
    "rms_norm_no_weight": rms_norm_case((4, 6), (6,), weight=False),
    "rms_norm_noncontiguous": (lambda x, w: TF.rms_norm(x, (2,), w), lambda x, w: F.rms_norm(x, (2,), w),
                               [Arg((3, 4, 2), transposed=True), Arg((2,))], {}),
}

DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_norms_vs_torch(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **kwargs)


LOW_PRECISION = ["batch_norm_train_2d", "batch_norm_eval", "group_norm", "instance_norm", "rms_norm",
                 "rms_norm_no_weight"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_norms_low_precision(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, second_order=False, **kwargs)


def test_half_batch_norm_with_float_running_stats_keeps_float_statistics():
    """CPU batch norm of a half input with float32 running stats saves float32 save_mean/save_invstd."""
    def torch_fn(x):
        return TF.batch_norm(x, *_stats(3, torch.float32), training=True)

    def gx_fn(x):
        stats = _gx(*_stats(3, torch.float32)) if x.data_ is not None else [gx.empty(3) for _ in range(2)]
        return F.batch_norm(x, *stats, training=True)

    check_op(torch_fn, gx_fn, [Arg((2, 3, 4))], dtype=torch.bfloat16, second_order=False)


@pytest.mark.parametrize("momentum", [0.1, 1.0])
def test_batch_norm_updates_running_stats_like_torch(momentum):
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    mean_t, var_t = _stats(3, torch.float64)
    mean_g, var_g = _gx(mean_t, var_t)
    version = mean_g._version
    TF.batch_norm(x, mean_t, var_t, training=True, momentum=momentum)
    F.batch_norm(gx.from_torch(x), mean_g, var_g, training=True, momentum=momentum)
    assert torch.allclose(mean_g.data_, mean_t) and torch.allclose(var_g.data_, var_t)
    assert mean_g._version == version + 1


def test_instance_norm_averages_running_stats_back():
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    mean_t, var_t = _stats(3, torch.float64)
    mean_g, var_g = _gx(mean_t, var_t)
    out_t = TF.instance_norm(x, mean_t, var_t, use_input_stats=True, momentum=0.3)
    out_g = F.instance_norm(gx.from_torch(x), mean_g, var_g, use_input_stats=True, momentum=0.3)
    assert torch.allclose(out_g.data_, out_t)
    assert torch.allclose(mean_g.data_, mean_t) and torch.allclose(var_g.data_, var_t)
    out_t = TF.instance_norm(x, mean_t, var_t, use_input_stats=False)
    out_g = F.instance_norm(gx.from_torch(x), mean_g, var_g, use_input_stats=False)
    assert torch.allclose(out_g.data_, out_t)


def test_group_norm_first_order_uses_the_backward_kernel():
    """Without create_graph torch runs native_group_norm_backward; with it, a differentiable composite."""
    with gx.backend("torch"):
        x = gx.randn(2, 4, 3, requires_grad=True)
        w = gx.randn(4, requires_grad=True)
    y = F.group_norm(x, 2, w)
    (g,) = gx.autograd.grad(y.sum(), [x], retain_graph=True)
    assert g.grad_fn is None
    (g2,) = gx.autograd.grad(y.sum(), [x], create_graph=True)
    assert g2.requires_grad


ERRORS = {
    "group_norm_groups": (lambda: F.group_norm(gx.randn(2, 3, 8, 8), 2), RuntimeError,
                          r"Expected number of channels in input to be divisible by num_groups, but got input of "
                          r"shape \[2, 3, 8, 8\] and num_groups=2"),
    "instance_norm_one_spatial": (lambda: F.instance_norm(gx.randn(2, 3, 1)), ValueError,
                                  r"Expected more than 1 spatial element when training, got input size "
                                  r"torch.Size\(\[2, 3, 1\]\)"),
    "batch_norm_channels": (lambda: F.batch_norm(gx.randn(2, 3, 8, 8), gx.zeros(4), gx.ones(4)), RuntimeError,
                            "running_mean should contain 3 elements not 4"),
    "batch_norm_one_value": (lambda: F.batch_norm(gx.randn(1, 3), None, None, training=True), ValueError,
                             r"Expected more than 1 value per channel when training, got input size "
                             r"torch.Size\(\[1, 3\]\)"),
    "rms_norm_shape": (lambda: F.rms_norm(gx.randn(2, 3, 8, 8), (7,)), RuntimeError,
                       r"Given normalized_shape=\[7\], expected input with shape \[\*7\], but got input of "
                       r"size\[2, 3, 8, 8\]"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_norm_errors_match_torch(name):
    fn, kind, message = ERRORS[name]
    with gx.backend("torch"), pytest.raises(kind, match=message):
        fn()
