"""torch's composites and small ops against torch.autograd: softmax methods, softmin, normalize,
cosine_similarity, glu, feature dropout (1d/2d/3d), pixel_(un)shuffle, unfold/fold, outer, cross,
diff and the cat aliases: values, dtypes, saved tensors (bytes by storage), first- and second-order
gradients, the shape backend, node names and torch's errors."""
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def same(fn):
    """A case whose torch and engine code read the same (methods on both tensor types)."""
    return fn, fn


def functional(name, *args, **kwargs):
    """torch.nn.functional.<name> and the engine's, with the same arguments."""
    return (lambda *xs: getattr(TF, name)(*xs, *args, **kwargs), lambda *xs: getattr(F, name)(*xs, *args, **kwargs))


def both(name, *args, **kwargs):
    """torch.<name>(...) and gx.<name>(...) with the same arguments."""
    return (lambda *xs: getattr(torch, name)(*xs, *args, **kwargs), lambda *xs: getattr(gx, name)(*xs, *args, **kwargs))


def seeded(fn):
    """Random composites draw with torch's generator on the torch backend: seed it before each run."""
    def run(*xs):
        torch.manual_seed(0)
        return fn(*xs)
    return run


def dropout(name, make_input=lambda x: x, **kwargs):
    return (seeded(lambda x: getattr(TF, name)(make_input(x), **kwargs)),
            seeded(lambda x: getattr(F, name)(make_input(x), **kwargs)))


def channels_last(x):
    """The same values laid out channels-last (an NHWC-contiguous copy seen as NCHW)."""
    return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def lib(x):
    return torch if isinstance(x, torch.Tensor) else gx


# (torch_fn, gx_fn, args, check_kwargs).  0-dim inputs are x[0] of a [1] leaf.
CASES = {
    # softmax / log_softmax methods and torch functions delegate to the functional ones
    "softmax_method": (*same(lambda x: x.softmax(1)), [Arg((3, 4))], {}),
    "softmax_method_negative_dim": (*same(lambda x: x.softmax(-1)), [Arg((2, 3, 4), transposed=True)], {}),
    "log_softmax_method": (*same(lambda x: x.log_softmax(0)), [Arg((3, 4))], {}),
    "softmax_method_dtype": (*same(lambda x: x.softmax(1, dtype=lib(x).float64)), [Arg((3, 4), dtype=torch.float32)],
                             {}),
    "torch_softmax": (*both("softmax", 0), [Arg((3, 4))], {}),
    "torch_log_softmax_dtype": (*same(lambda x: lib(x).log_softmax(x, -1, dtype=lib(x).float64)),
                                [Arg((3, 4), dtype=torch.float32)], {}),
    # softmin: softmax(-x) (NegBackward0 + SoftmaxBackward0 saving its result)
    "softmin": (*functional("softmin", 1), [Arg((3, 4))], {}),
    "softmin_dim0_transposed": (*functional("softmin", dim=0), [Arg((3, 4), transposed=True)], {}),
    "softmin_dtype": (*same(lambda x: (TF if lib(x) is torch else F).softmin(x, -1, dtype=lib(x).float64)),
                      [Arg((3, 4), dtype=torch.float32)], {}),
    # normalize: norm + clamp_min + expand_as + div
    "normalize_default": (*functional("normalize"), [Arg((3, 4))], {}),
    "normalize_p1_dim0": (*functional("normalize", p=1.0, dim=0), [Arg((3, 4))], {}),
    "normalize_transposed_3d": (*functional("normalize", dim=-1), [Arg((2, 3, 4), transposed=True)], {}),
    "normalize_eps_active": (*functional("normalize", eps=10.0), [Arg((3, 4))], {}),
    "normalize_1d": (*functional("normalize", dim=0), [Arg((5,))], {}),
    # cosine_similarity: each input divided by its cloned, clamped norm, then multiplied and summed
    "cosine_similarity": (*functional("cosine_similarity"), [Arg((3, 4)), Arg((3, 4))], {}),
    "cosine_similarity_broadcast": (*functional("cosine_similarity"), [Arg((3, 4)), Arg((4,))], {}),
    "cosine_similarity_last_dim": (*functional("cosine_similarity", dim=-1), [Arg((2, 3, 4)), Arg((2, 1, 4))], {}),
    "cosine_similarity_transposed": (*functional("cosine_similarity", dim=0), [Arg((4, 3), transposed=True),
                                                                               Arg((4, 3))], {}),
    "cosine_similarity_one_frozen": (*functional("cosine_similarity"), [Arg((3, 4)), Arg((3, 4), requires_grad=False)],
                                     {}),
    "cosine_similarity_eps_active": (*functional("cosine_similarity", eps=100.0), [Arg((3, 4)), Arg((3, 4))], {}),
    "torch_cosine_similarity": (*both("cosine_similarity", dim=0), [Arg((3, 2)), Arg((3, 2))], {}),
    # glu: GluBackward0 saves self; its backward kernel glu_backward is differentiable again
    "glu_default": (*functional("glu"), [Arg((3, 4))], {}),
    "glu_dim0_transposed": (*functional("glu", 0), [Arg((4, 5), transposed=True)], {}),
    "glu_3d_middle": (*functional("glu", dim=1), [Arg((2, 6, 3))], {}),
    # feature dropout: an [N, C, 1, ...] mask (new_empty + bernoulli_ + div_) multiplied in
    "dropout2d_4d": (*dropout("dropout2d", p=0.4), [Arg((2, 3, 4, 4))], {}),
    "dropout2d_3d_input": (*dropout("dropout2d", p=0.5), [Arg((2, 3, 4))], {}),
    "dropout2d_inplace": (*dropout("dropout2d", lambda x: x * 1, p=0.5, inplace=True), [Arg((2, 3, 2, 2))], {}),
    "dropout2d_eval": (*dropout("dropout2d", p=0.5, training=False), [Arg((2, 3, 2, 2))], {}),
    "dropout2d_p_one": (*dropout("dropout2d", p=1.0), [Arg((2, 3, 2, 2))], {}),
    "dropout2d_transposed": (*dropout("dropout2d", p=0.3), [Arg((2, 3, 4, 5), transposed=True)], {}),
    "dropout1d_batched": (*dropout("dropout1d", p=0.5), [Arg((4, 3, 5))], {}),
    "dropout1d_unbatched": (*dropout("dropout1d", p=0.5), [Arg((6, 5))], {}),
    "dropout3d_batched": (*dropout("dropout3d", p=0.5), [Arg((2, 3, 2, 2, 2))], {}),
    "dropout3d_unbatched": (*dropout("dropout3d", p=0.25), [Arg((4, 2, 2, 2))], {}),
    # pixel shuffle: no saved tensors, each backward is the other op
    "pixel_shuffle": (*functional("pixel_shuffle", 2), [Arg((2, 8, 2, 3))], {}),
    "pixel_shuffle_3d": (*functional("pixel_shuffle", 3), [Arg((9, 2, 2))], {}),
    "pixel_shuffle_5d": (*functional("pixel_shuffle", 2), [Arg((2, 1, 4, 2, 3))], {}),
    "pixel_shuffle_transposed": (*functional("pixel_shuffle", 2), [Arg((1, 4, 3, 2), transposed=True)], {}),
    "pixel_shuffle_channels_last": (*same(lambda x: lib(x).pixel_shuffle(channels_last(x), 2)),
                                    [Arg((2, 8, 3, 2))], {}),
    "pixel_unshuffle": (*functional("pixel_unshuffle", 2), [Arg((2, 2, 4, 6))], {}),
    "pixel_unshuffle_3d": (*functional("pixel_unshuffle", 3), [Arg((1, 3, 6))], {}),
    "pixel_unshuffle_channels_last": (*same(lambda x: lib(x).pixel_unshuffle(channels_last(x), 2)),
                                      [Arg((1, 3, 4, 2))], {}),
    # unfold / fold: im2col / col2im, each the other's backward
    "unfold": (*functional("unfold", 2), [Arg((2, 3, 4, 5))], {}),
    "unfold_stride_padding_dilation": (*functional("unfold", (2, 3), dilation=(2, 1), padding=1, stride=(2, 1)),
                                       [Arg((1, 2, 6, 5))], {}),
    "unfold_unbatched": (*functional("unfold", 3, padding=1), [Arg((2, 4, 4))], {}),
    "unfold_transposed": (*functional("unfold", 2, stride=2), [Arg((2, 2, 4, 6), transposed=True)], {}),
    "fold": (*functional("fold", (3, 4), 2), [Arg((2, 8, 6))], {}),
    "fold_stride_padding": (*functional("fold", (5, 4), (3, 2), padding=1, stride=2), [Arg((1, 12, 9))], {}),
    "fold_unbatched": (*functional("fold", 4, 2, stride=2), [Arg((12, 4))], {}),
    "fold_transposed": (*functional("fold", (3, 3), 2), [Arg((4, 4), transposed=True)], {}),
    # outer: x.reshape(n, 1) * y (MulBackward0 saves both, guarded)
    "outer": (*both("outer"), [Arg((3,)), Arg((4,))], {}),
    "outer_method_strided": (lambda x, y: x[::2].outer(y), lambda x, y: x[::2].outer(y), [Arg((6,)), Arg((2,))], {}),
    "outer_one_frozen": (*both("outer"), [Arg((3,), requires_grad=False), Arg((4,))], {}),
    # cross: LinalgCrossBackward0 saves each operand for the other's gradient
    "linalg_cross_broadcast": (lambda x, y: torch.linalg.cross(x, y), lambda x, y: gx.linalg.cross(x, y),
                               [Arg((2, 3)), Arg((1, 3))], {}),
    "linalg_cross_dim0": (lambda x, y: torch.linalg.cross(x, y, dim=0), lambda x, y: gx.linalg.cross(x, y, dim=0),
                          [Arg((3, 4), transposed=True), Arg((3, 4))], {}),
    "cross_dim": (*both("cross", dim=1), [Arg((2, 3, 4)), Arg((2, 3, 4))], {}),
    "cross_method_one_frozen": (*same(lambda x, y: x.cross(y, dim=-1)), [Arg((4, 3)), Arg((4, 3), requires_grad=False)],
                                {}),
    # diff: narrowed slices subtracted n times (SliceBackward0, SubBackward0, CatBackward0)
    "diff": (*both("diff"), [Arg((3, 5))], {}),
    "diff_n2_dim0": (*both("diff", 2, 0), [Arg((5, 3))], {}),
    "diff_n_beyond_size": (*both("diff", 4), [Arg((2, 3))], {}),
    "diff_n0_copies": (*both("diff", 0), [Arg((3, 4))], {}),
    "diff_prepend_append": (lambda x, p, a: torch.diff(x, dim=1, prepend=p, append=a),
                            lambda x, p, a: gx.diff(x, dim=1, prepend=p, append=a),
                            [Arg((3, 4)), Arg((3, 2)), Arg((3, 1))], {}),
    "diff_append_method": (*same(lambda x, a: x.diff(2, 0, append=a)), [Arg((3, 4), transposed=True), Arg((2, 4))],
                           {}),
    "diff_bool": (*same(lambda x: (x > 2).diff()), [Arg((3, 5), dtype=torch.int64)], {}),
    "diff_integers": (*both("diff"), [Arg((3, 5), dtype=torch.int64)], {}),
    # meshgrid: views of each input expanded to the grid (ViewBackward0, ExpandBackward0)
    "meshgrid_ij": (lambda x, y: torch.meshgrid(x, y, indexing="ij"), lambda x, y: gx.meshgrid(x, y, indexing="ij"),
                    [Arg((3,)), Arg((4,))], {}),
    "meshgrid_xy_three": (lambda x, y, z: torch.meshgrid([x, y, z], indexing="xy"),
                          lambda x, y, z: gx.meshgrid([x, y, z], indexing="xy"), [Arg((3,)), Arg((4,)), Arg((2,))], {}),
    "meshgrid_one_frozen_sum": (lambda x, y: sum(g * 1.0 for g in torch.meshgrid(x, y, indexing="ij")),
                                lambda x, y: sum(g * 1.0 for g in gx.meshgrid(x, y, indexing="ij")),
                                [Arg((2,)), Arg((5,), requires_grad=False)], {}),
    # cat aliases
    "concat": (lambda x, y: torch.concat([x, y], dim=1), lambda x, y: gx.concat([x, y], dim=1),
               [Arg((3, 2)), Arg((3, 4))], {}),
    "concatenate_axis": (lambda x, y: torch.concatenate([x, y], axis=0), lambda x, y: gx.concatenate([x, y], axis=0),
                         [Arg((2, 3)), Arg((1, 3))], {}),
    # cat skips 1-D empty inputs whatever the others' shapes (a cache that starts as `tensor([])`)
    "cat_skips_legacy_empty": (lambda e, x: torch.cat([e, x], dim=-2), lambda e, x: gx.cat([e, x], dim=-2),
                               [Arg((0,)), Arg((2, 3, 4))], {}),
    "cat_skips_legacy_empty_between": (lambda x, e, y: torch.cat([x, e, y], 1), lambda x, e, y: gx.cat([x, e, y], 1),
                                       [Arg((2, 3)), Arg((0,), requires_grad=False), Arg((2, 1))], {}),
}


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    """Some cases call torch's deprecated forms on purpose (dropout2d on 3-D input); both sides warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_composite_matches_torch(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


@pytest.mark.parametrize("name", ["glu_default", "pixel_shuffle", "unfold", "fold", "normalize_default",
                                  "cosine_similarity", "linalg_cross_broadcast", "dropout2d_4d"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_first_order(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **{**check, "second_order": False})


def test_feature_dropout_zeroes_whole_channels_with_the_right_scale():
    with gx.backend("numpy"):
        x = gx.ones(8, 16, 3, 3, dtype=gx.float64, requires_grad=True)
        y = F.dropout2d(x, p=0.25)
        y.sum().backward()
    per_channel = y.detach().numpy().reshape(8, 16, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 1 / 0.75).all(-1)).all()
    assert 0 < (per_channel[..., 0] == 0).sum() < 8 * 16
    assert (x.grad.numpy() == y.detach().numpy()).all()       # d(sum(x * noise)) / dx = noise


NODE_NAMES = {
    "softmin": (lambda m, x: m.softmin(x, 1), "SoftmaxBackward0"),
    "normalize": (lambda m, x: m.normalize(x), "DivBackward0"),
    "cosine_similarity": (lambda m, x: m.cosine_similarity(x, x * 2), "SumBackward1"),
    "glu": (lambda m, x: m.glu(x), "GluBackward0"),
    "pixel_shuffle": (lambda m, x: m.pixel_shuffle(x.reshape(1, 4, 1, 3), 2), "PixelShuffleBackward0"),
    "pixel_unshuffle": (lambda m, x: m.pixel_unshuffle(x.reshape(1, 1, 2, 6), 2), "PixelUnshuffleBackward0"),
    "unfold": (lambda m, x: m.unfold(x.reshape(1, 1, 3, 4), 2), "Im2ColBackward0"),
    "fold": (lambda m, x: m.fold(x.reshape(1, 4, 3), (2, 4), 2), "Col2ImBackward0"),
    "dropout2d": (lambda m, x: m.dropout2d(x.reshape(1, 3, 2, 2)), "MulBackward0"),
    # squeeze(0) is torch's squeeze.dim: SqueezeBackward1
    "dropout1d_unbatched": (lambda m, x: m.dropout1d(x), "SqueezeBackward1"),
}


@pytest.mark.parametrize("name", sorted(NODE_NAMES))
def test_functional_node_names_match_torch(name):
    fn, expected = NODE_NAMES[name]
    xt = torch.randn(3, 4, requires_grad=True)
    assert type(fn(TF, xt).grad_fn).__name__ == expected
    assert fn(F, gx.from_torch(xt)).grad_fn.name() == expected


def test_torch_namespace_node_names_match_torch():
    xt, yt = torch.randn(3, requires_grad=True), torch.randn(3, 3, requires_grad=True)
    for fn in (lambda m, x, y: m.outer(x, x), lambda m, x, y: m.cross(y, y, dim=0),
               lambda m, x, y: m.diff(y), lambda m, x, y: m.diff(y, 0), lambda m, x, y: m.concat([y, y])):
        expected = type(fn(torch, xt, yt).grad_fn).__name__
        assert fn(gx, gx.from_torch(xt), gx.from_torch(yt)).grad_fn.name() == expected


def test_cross_without_dim_uses_the_first_dim_of_size_3_and_warns():
    xt, yt = torch.randn(4, 3, 3, dtype=torch.float64), torch.randn(4, 3, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="Using torch.cross without specifying the dim arg is deprecated"):
        ours = gx.cross(gx.from_torch(xt), gx.from_torch(yt))
    assert torch.equal(ours.data_, torch.linalg.cross(xt, yt, dim=1))


def test_softmin_without_dim_follows_torchs_legacy_choice():
    xt = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        ours = F.softmin(gx.from_torch(xt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.allclose(ours.data_, TF.softmin(xt), rtol=1e-12)


def test_shape_backend_keeps_symbolic_batch():
    with gx.backend("shape"):
        b = gx.SymInt(4, "B")
        images = gx.empty(b, 8, 6, 6, requires_grad=True)
        cols = F.unfold(images, 3, padding=1)
        shuffled = F.pixel_shuffle(images, 2)
        sim = F.cosine_similarity(gx.empty(b, 16), gx.empty(b, 16))
    assert str(cols.shape[0]) == "B" and tuple(int(s) for s in cols.shape[1:]) == (72, 36)
    assert str(shuffled.shape[0]) == "B" and tuple(int(s) for s in shuffled.shape[1:]) == (2, 12, 12)
    assert str(sim.shape[0]) == "B"


def _error(fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
    except Exception as e:  # noqa: BLE001 - the error itself is what is compared
        return type(e).__name__, str(e)
    return None


ERRORS = {
    "glu_odd_dim": lambda m, n, x: n.glu(x[:, :3]),
    "glu_scalar": lambda m, n, x: n.glu(x[0, 0]),
    "glu_dim_out_of_range": lambda m, n, x: n.glu(x, 2),
    "outer_2d_self": lambda m, n, x: m.outer(x, x[0]),
    "outer_2d_vec2": lambda m, n, x: m.outer(x[0], x),
    "linalg_cross_length": lambda m, n, x: m.linalg.cross(x, x),
    "linalg_cross_ndim": lambda m, n, x: m.linalg.cross(x[:, :3], x[0, :3]),
    "cross_no_dim_of_size_3": lambda m, n, x: m.cross(x[:2], x[:2]),
    "diff_0dim": lambda m, n, x: m.diff(x[0, 0]),
    "diff_negative_order": lambda m, n, x: m.diff(x, -1),
    "diff_prepend_ndim": lambda m, n, x: m.diff(x, prepend=x[0]),
    "diff_prepend_shape": lambda m, n, x: m.diff(x, dim=0, prepend=x[:, :2]),
    "pixel_shuffle_2d": lambda m, n, x: n.pixel_shuffle(x, 2),
    "pixel_shuffle_channels": lambda m, n, x: n.pixel_shuffle(x.reshape(1, 3, 2, 2), 2),
    "pixel_unshuffle_height": lambda m, n, x: n.pixel_unshuffle(x.reshape(1, 1, 3, 4), 2),
    "pixel_unshuffle_width": lambda m, n, x: n.pixel_unshuffle(x.reshape(1, 1, 4, 3), 2),
    "unfold_kernel_too_large": lambda m, n, x: n.unfold(x.reshape(1, 1, 3, 4), 4),
    "fold_columns_not_divisible": lambda m, n, x: n.fold(x.reshape(1, 3, 4), (3, 3), 2),
    "fold_block_count": lambda m, n, x: n.fold(x.reshape(1, 4, 3), (3, 3), 2),
    "cosine_similarity_shapes": lambda m, n, x: n.cosine_similarity(x, x[:, :3]),
    "cosine_similarity_integers": lambda m, n, x: n.cosine_similarity((x > 0).long(), (x > 0).long()),
    "normalize_dim_out_of_range": lambda m, n, x: n.normalize(x[0], dim=1),
    "dropout2d_p": lambda m, n, x: n.dropout2d(x, 1.5),
    "dropout1d_4d_input": lambda m, n, x: n.dropout1d(x.reshape(1, 1, 3, 4)),
    "feature_dropout_1d_input": lambda m, n, x: n.dropout2d(x[0]),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    xt = torch.randn(3, 4, dtype=torch.float64)
    expected = _error(lambda: ERRORS[name](torch, TF, xt))
    assert expected is not None
    assert _error(lambda: ERRORS[name](gx, F, gx.from_torch(xt))) == expected
