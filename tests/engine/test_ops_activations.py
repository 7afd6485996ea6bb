"""Activation functions and modules against torch.autograd: values, saved tensors (input vs result,
clones for in-place forms), first- and second-order gradients through torch's backward kernels, the
shape backend, node names and torch's errors."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine import nn as gnn  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def _functional(name, *params, **kw):
    return (lambda x: getattr(TF, name)(x, *params, **kw), lambda x: getattr(F, name)(x, *params, **kw))


def _inplace(name, *params, **kw):
    """The in-place form on a non-leaf (x * 1), so autograd accepts it."""
    return (lambda x: getattr(TF, name)(x * 1, *params, inplace=True, **kw),
            lambda x: getattr(F, name)(x * 1, *params, inplace=True, **kw))


SHAPES = {"": [Arg((3, 5))], "_noncontiguous": [Arg((4, 3), transposed=True)], "_4d": [Arg((2, 3, 2, 2))],
          "_0d": [Arg((1,))]}

# (name, params, keyword params, second order possible in torch)
ACTIVATIONS = [
    ("sigmoid", (), {}, True), ("tanh", (), {}, True), ("silu", (), {}, True), ("mish", (), {}, True),
    ("softplus", (), {}, True), ("softplus", (2.0, 1.0), {}, True), ("leaky_relu", (), {}, True),
    ("leaky_relu", (0.2,), {}, True), ("elu", (), {}, True), ("elu", (0.5,), {}, True), ("selu", (), {}, True),
    ("celu", (), {}, True), ("celu", (2.0,), {}, True), ("hardswish", (), {}, True),
    ("hardsigmoid", (), {}, False), ("hardtanh", (), {}, True), ("hardtanh", (-0.5, 0.7), {}, True),
    ("relu6", (), {}, True), ("softsign", (), {}, True), ("logsigmoid", (), {}, True),
]

CASES = {}
for _name, _params, _kw, _second in ACTIVATIONS:
    _tag = _name + "".join(f"_{p}" for p in _params)
    _t, _g = _functional(_name, *_params, **_kw)
    for _suffix, _args in SHAPES.items():
        if _suffix == "_0d":       # Arg cannot make 0-dim tensors: a 0-dim view of a 1-element leaf
            _t0, _g0 = (lambda x, f=_t: f(x.reshape(()))), (lambda x, f=_g: f(x.reshape(())))
            CASES[_tag + _suffix] = (_t0, _g0, _args, {"second_order": _second})
        else:
            CASES[_tag + _suffix] = (_t, _g, _args, {"second_order": _second})
    if _name not in ("sigmoid", "tanh", "softsign", "logsigmoid", "softplus"):
        _ti, _gi = _inplace(_name, *_params, **_kw)
        # in-place leaky_relu / elu / celu / selu differentiate through the result once more, like torch
        CASES[_tag + "_inplace"] = (_ti, _gi, [Arg((3, 5))], {"second_order": _second})

CASES.update({
    "sigmoid_method_inplace": (lambda x: (x * 1).sigmoid_(), lambda x: (x * 1).sigmoid_(), [Arg((3, 5))], {}),
    "tanh_method_inplace": (lambda x: (x * 1).tanh_(), lambda x: (x * 1).tanh_(), [Arg((3, 5))], {}),
    "sigmoid_method": (lambda x: x.sigmoid(), lambda x: x.sigmoid(), [Arg((3, 5))], {}),
    "tanh_torch": (torch.tanh, gx.tanh, [Arg((3, 5))], {}),
    "sigmoid_int_input": (torch.sigmoid, gx.sigmoid, [Arg((3, 5), dtype=torch.int64, requires_grad=False)], {}),
    "tanh_int_input": (torch.tanh, gx.tanh, [Arg((3, 5), dtype=torch.int64, requires_grad=False)], {}),
    "softplus_threshold_hit": (lambda x: TF.softplus(x * 30, beta=1.0, threshold=20.0),
                               lambda x: F.softplus(x * 30, beta=1.0, threshold=20.0), [Arg((3, 5))], {}),
    "prelu_shared": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w), [Arg((3, 5)), Arg((1,))], {}),
    "prelu_per_channel": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w), [Arg((2, 4, 3)), Arg((4,))],
                          {}),
    "prelu_per_channel_4d": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w),
                             [Arg((2, 3, 2, 2), transposed=True), Arg((3,))], {}),
    "prelu_1d_input": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w), [Arg((5,)), Arg((1,))], {}),
    "prelu_frozen_weight": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w),
                            [Arg((3, 4)), Arg((4,), requires_grad=False)], {}),
    "prelu_frozen_input": (lambda x, w: TF.prelu(x, w), lambda x, w: F.prelu(x, w),
                           [Arg((3, 4), requires_grad=False), Arg((4,))], {}),
    "chain_silu_sigmoid_tanh": (lambda x: torch.tanh(TF.silu(x)) * torch.sigmoid(x),
                                lambda x: gx.tanh(F.silu(x)) * gx.sigmoid(x), [Arg((4, 6))], {}),
})

LOW_PRECISION = {torch.float16, torch.bfloat16}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_matches_torch(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    if dtype in LOW_PRECISION:
        check = {**check, "second_order": False}
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


# -- modules ---------------------------------------------------------------------

MODULES = {
    "Sigmoid": ((), {}), "Tanh": ((), {}), "SiLU": ((), {}), "Mish": ((), {}), "Softplus": ((), {"beta": 2.0}),
    "LeakyReLU": ((0.1,), {}), "ELU": ((), {"alpha": 0.5}), "SELU": ((), {}), "CELU": ((1.5,), {}),
    "Hardswish": ((), {}), "Hardsigmoid": ((), {}), "Hardtanh": ((-2.0, 2.0), {}), "ReLU6": ((), {}),
    "Softsign": ((), {}), "LogSigmoid": ((), {}), "ELU_inplace": ((), {"inplace": True}),
    "LeakyReLU_inplace": ((), {"inplace": True}), "SiLU_inplace": ((), {"inplace": True}),
    "Softmax": ((1,), {}), "LogSoftmax": ((), {"dim": 0}), "Softmin": ((-1,), {}),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_matches_functional_torch(name):
    args, kwargs = MODULES[name]
    cls_name = name.split("_")[0]
    torch_module = getattr(torch.nn, cls_name)(*args, **kwargs)
    gx_module = getattr(gnn, cls_name)(*args, **kwargs)
    check_op(lambda x: torch_module(x * 1), lambda x: gx_module(x * 1), [Arg((3, 5))],
             second_order=cls_name != "Hardsigmoid")      # torch has no derivative of hardsigmoid_backward


def test_upsample_module_matches_torch():
    for kwargs in ({"scale_factor": 2}, {"size": (6, 4), "mode": "bilinear", "align_corners": False}):
        check_op(lambda x, k=kwargs: torch.nn.Upsample(**k)(x * 1), lambda x, k=kwargs: gnn.Upsample(**k)(x * 1),
                 [Arg((2, 3, 3, 2))])


def test_prelu_module_learns_its_weight():
    torch.manual_seed(0)
    torch_module = torch.nn.PReLU(3, init=0.1, dtype=torch.float64)
    with gx.backend("torch"):
        gx_module = gnn.PReLU(3, init=0.1, dtype=gx.float64)
    assert [n for n, _ in gx_module.named_parameters()] == [n for n, _ in torch_module.named_parameters()]
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    out = torch_module(x)
    (out * out).sum().backward()
    out = gx_module(gx.from_torch(x))
    (out * out).sum().backward()
    assert torch.allclose(gx_module.weight.grad.data_, torch_module.weight.grad, rtol=1e-10)


def test_activation_modules_are_exported():
    from gradxray.engine.nn import activation
    for name in activation.__all__:
        assert getattr(gnn, name) is getattr(activation, name)
        assert hasattr(torch.nn, name)


# -- node names, second-order errors, input checks ------------------------------------------

NODE_NAMES = {
    "sigmoid": lambda m, x: m.sigmoid(x), "silu": lambda m, x: m.silu(x), "silu_": lambda m, x: m.silu(x * 1, True),
    "leaky_relu_": lambda m, x: m.leaky_relu(x * 1, 0.1, True), "elu_": lambda m, x: m.elu(x * 1, inplace=True),
    "selu": lambda m, x: m.selu(x), "selu_": lambda m, x: m.selu(x * 1, True), "celu": lambda m, x: m.celu(x),
    "celu_": lambda m, x: m.celu(x * 1, inplace=True), "relu6": lambda m, x: m.relu6(x),
    "hardtanh_": lambda m, x: m.hardtanh(x * 1, inplace=True), "softsign": lambda m, x: m.softsign(x),
    "logsigmoid": lambda m, x: m.logsigmoid(x), "prelu": lambda m, x: m.prelu(x, x[:1] * 0 + 0.25),
}


@pytest.mark.parametrize("name", sorted(NODE_NAMES))
def test_node_names_match_torch(name):
    xt = torch.randn(4, dtype=torch.float64, requires_grad=True)
    ours = NODE_NAMES[name](F, gx.from_torch(xt)).grad_fn.name()
    assert ours == NODE_NAMES[name](TF, xt).grad_fn.name()


def _error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


def _second_order(lib, functional, x):
    (g,) = lib.autograd.grad(functional(x).sum(), x, create_graph=True)
    assert g.grad_fn.name() == "torch::autograd::NotImplemented"
    g.sum().backward()


def test_hardsigmoid_cannot_be_differentiated_twice():
    xt = torch.randn(4, dtype=torch.float64, requires_grad=True)
    expected = _error(lambda: _second_order(torch, TF.hardsigmoid, xt))
    assert _error(lambda: _second_order(gx, F.hardsigmoid, gx.from_torch(xt))) == expected


def test_silu_backward_kernel_is_used_without_create_graph():
    """Plain backward runs silu_backward (no graph); create_graph switches to the composite."""
    x = gx.from_torch(torch.randn(4, dtype=torch.float64), requires_grad=True)
    (g,) = gx.autograd.grad(F.silu(x).sum(), x)
    assert g.grad_fn is None
    (g,) = gx.autograd.grad(F.silu(x).sum(), x, create_graph=True)
    assert g.grad_fn is not None and g.grad_fn.name() == "MulBackward0"


ERRORS = {
    "hardtanh_min_above_max": lambda m, x: m.hardtanh(x, 2.0, 1.0),
    "prelu_channel_mismatch": lambda m, x: m.prelu(x, x[0, :3] * 1),
    "prelu_mixed_dtypes": lambda m, x: m.prelu(x, x[0].float() if m is TF else x[0].to(gx.float32)),
    "inplace_on_leaf": lambda m, x: m.silu(x, inplace=True),
    "leaky_relu_inplace_negative_slope_backward": lambda m, x: m.leaky_relu(x * 1, -0.1, True).sum().backward(),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    xt = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    expected = _error(lambda: ERRORS[name](TF, xt))
    assert _error(lambda: ERRORS[name](F, gx.from_torch(xt))) == expected


def test_inplace_activation_modifies_a_saved_tensor():
    """sigmoid saves its result; an in-place activation on that result makes backward fail, as in torch."""
    prefix = "one of the variables needed for gradient computation has been modified by an inplace operation"
    xt = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for lib, x in ((TF, xt), (F, gx.from_torch(xt))):
        y = lib.sigmoid(x)
        lib.silu(y, inplace=True)
        with pytest.raises(RuntimeError, match=prefix):
            y.sum().backward()


def test_logsigmoid_buffer_on_the_shape_backend():
    x = gx.empty(gx.SymInt(8, "B"), 3, requires_grad=True)
    y = F.logsigmoid(x)
    assert y.shape[0].expr == "B" and y.dtype is gx.float32
    y.sum().backward()
    assert tuple(x.grad.shape) == (8, 3)
