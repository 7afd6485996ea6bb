"""Elementwise math (exp, log, pow, clamp, comparisons, in-place variants ...) against torch.autograd:
values and dtypes, saved tensors, first- and second-order gradients, the shape backend, and torch's
errors, version counters and node names."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402

P = dict(positive=True)        # inputs in (0.5, 1.5), for log, sqrt, pow with tensor exponents ...
NO_GRAD = dict(requires_grad=False)
INT = dict(dtype=torch.int64)


def _same(fn):
    """One callable used for both libraries (torch's and the engine's Tensor methods agree)."""
    return fn, fn


def _case(fn, args, **check):
    return (*_same(fn), args, check)


def _ops(name):
    """torch.<name> and gx.<name>."""
    return getattr(torch, name), getattr(gx, name)


CASES = {}

# unary float ops: plain, a non-contiguous input, a 0-dim input and an integer input (-> default float)
for _name, _positive in [("exp", False), ("log", True), ("log2", True), ("log1p", True), ("expm1", False),
                         ("sqrt", True),
                         ("rsqrt", True), ("reciprocal", True), ("sin", False), ("cos", False), ("erf", False)]:
    _t, _g = _ops(_name)
    _kind = dict(positive=_positive)
    CASES[_name] = (_t, _g, [Arg((3, 5), **_kind)], {})
    CASES[f"{_name}_noncontiguous"] = (_t, _g, [Arg((4, 3), transposed=True, **_kind)], {})
    # Arg cannot make a 0-dim tensor (see the report): a 0-dim view of a 1-element leaf instead
    CASES[f"{_name}_0d"] = (lambda x, f=_t: f(x.reshape(())), lambda x, f=_g: f(x.reshape(())),
                            [Arg((1,), **_kind)], {})
    CASES[f"{_name}_int_input"] = (_t, _g, [Arg((2, 3), dtype=torch.int64, requires_grad=False)], {})
    CASES[f"{_name}_inplace"] = _case(lambda x, n=_name: getattr(x * 1, n + "_")(), [Arg((3, 4), **_kind)])
    CASES[f"{_name}_inplace_noncontiguous"] = _case(lambda x, n=_name: getattr(x * 1, n + "_")(),
                                                    [Arg((4, 3), transposed=True, **_kind)])

for _name in ["abs", "sign", "sgn", "floor", "ceil", "trunc", "round"]:
    _t, _g = _ops(_name)
    CASES[_name] = (_t, _g, [Arg((3, 5))], {})
    CASES[f"{_name}_noncontiguous"] = (_t, _g, [Arg((4, 3), transposed=True)], {})
    if _name not in ("round",):       # round has no integer kernel on CPU
        CASES[f"{_name}_int_input"] = (_t, _g, [Arg((2, 3), dtype=torch.int64, requires_grad=False)], {})
    if _name != "sgn":
        CASES[f"{_name}_inplace"] = _case(lambda x, n=_name: getattr(x * 1, n + "_")(), [Arg((3, 4))])
CASES["abs_operator"] = _case(lambda x: abs(x), [Arg((3, 4))])
CASES["round_decimals"] = (lambda x: torch.round(x * 10, decimals=2), lambda x: gx.round(x * 10, decimals=2),
                           [Arg((3, 4))], {})

CASES.update({
    # pow: tensor ** scalar, tensor ** tensor, scalar ** tensor, square
    "pow_scalar_2": _case(lambda x: x ** 2, [Arg((3, 4))]),
    "pow_scalar_0": _case(lambda x: x ** 0, [Arg((3, 4))]),
    "pow_scalar_frac": _case(lambda x: x ** 1.5, [Arg((3, 4), **P)]),
    "pow_scalar_negative": _case(lambda x: x.pow(-2), [Arg((4, 3), transposed=True, **P)]),
    "pow_tensor": _case(lambda x, y: torch.pow(x, y) if isinstance(x, torch.Tensor) else gx.pow(x, y),
                        [Arg((3, 4), **P), Arg((3, 4))]),
    "pow_tensor_broadcast": _case(lambda x, y: x ** y, [Arg((2, 3, 4), **P), Arg((4,))]),
    "pow_tensor_exponent_frozen": _case(lambda x, y: x ** y, [Arg((3, 4), **P), Arg((3, 4), **NO_GRAD)]),
    "pow_tensor_base_frozen": _case(lambda x, y: x ** y, [Arg((3, 4), positive=True, requires_grad=False),
                                                          Arg((3, 4))]),
    "pow_tensor_0d_exponent": _case(lambda x, y: x ** y.reshape(()), [Arg((3, 4), **P), Arg((1,))]),
    "rpow": _case(lambda x: 2.5 ** x, [Arg((3, 4))]),
    "rpow_int_tensor": _case(lambda x: 2 ** x, [Arg((3, 4), **INT, **NO_GRAD)]),
    "rpow_float_base_int_tensor": _case(lambda x: 2.5 ** x, [Arg((3, 4), **INT, **NO_GRAD)]),
    "pow_int_tensor_float_exponent": _case(lambda x: x ** 2.5, [Arg((3, 4), **INT, **NO_GRAD)]),
    "pow_int_int": _case(lambda x: x ** 3, [Arg((3, 4), **INT, **NO_GRAD)]),
    "square": _case(lambda x: x.square(), [Arg((3, 4))]),
    "square_int": _case(lambda x: x.square(), [Arg((3, 4), **INT, **NO_GRAD)]),
    "pow_inplace": _case(lambda x: (x * 1).pow_(3), [Arg((3, 4))]),
    "pow_inplace_tensor": _case(lambda x, y: (x * 1).pow_(y), [Arg((3, 4), **P), Arg((4,))]),
    "ipow": _case(lambda x: x.__mul__(1).__ipow__(2), [Arg((3, 4))]),
    "square_inplace": _case(lambda x: (x * 1).square_(), [Arg((3, 4))]),

    # clamp / clip with scalar and tensor bounds
    "clamp": _case(lambda x: x.clamp(-0.5, 0.5), [Arg((3, 5))]),
    "clamp_min_only": _case(lambda x: x.clamp(min=0.1), [Arg((3, 5))]),
    "clamp_max_only": _case(lambda x: x.clamp(max=0.1), [Arg((4, 3), transposed=True)]),
    "clip": _case(lambda x: x.clip(-1, 1), [Arg((3, 5))]),
    "clamp_int_input_float_bound": _case(lambda x: x.clamp(0.5, 3), [Arg((3, 4), **INT, **NO_GRAD)]),
    "clamp_tensor_bounds": _case(lambda x, lo, hi: x.clamp(lo, hi), [Arg((3, 5)), Arg((3, 5)), Arg((5,))]),
    "clamp_tensor_min": _case(lambda x, lo: x.clamp(min=lo), [Arg((3, 5)), Arg((3, 1))]),
    "clamp_tensor_max": _case(lambda x, hi: x.clamp(max=hi), [Arg((3, 5)), Arg((5,))]),
    "clamp_tensor_crossed_bounds": _case(lambda x, lo: x.clamp(lo, lo - 1), [Arg((3, 5)), Arg((3, 5))]),
    "clamp_min": _case(lambda x: x.clamp_min(0.2), [Arg((3, 5))]),
    "clamp_max": _case(lambda x: x.clamp_max(0.2), [Arg((3, 5))]),
    "clamp_min_tensor": _case(lambda x, lo: x.clamp_min(lo), [Arg((3, 5)), Arg((5,))]),
    "clamp_inplace": _case(lambda x: (x * 1).clamp_(-0.5, 0.5), [Arg((3, 5))]),
    "clip_inplace": _case(lambda x: (x * 1).clip_(-0.5, 0.5), [Arg((3, 5))]),
    "clamp_min_inplace": _case(lambda x: (x * 1).clamp_min_(0.1), [Arg((3, 5))]),
    "clamp_max_inplace": _case(lambda x: (x * 1).clamp_max_(0.1), [Arg((3, 5))]),
    "clamp_inplace_tensor": _case(lambda x, lo: (x * 1).clamp_(min=lo), [Arg((3, 5)), Arg((5,))]),

    # minimum / maximum, with ties (the gradient is split in half)
    "minimum": _case(lambda a, b: torch.minimum(a, b) if isinstance(a, torch.Tensor) else gx.minimum(a, b),
                     [Arg((3, 5)), Arg((3, 5))]),
    "maximum_broadcast": _case(lambda a, b: a.maximum(b), [Arg((2, 3, 5)), Arg((3, 1))]),
    "maximum_ties": _case(lambda a: a.maximum(a.clamp(min=0)), [Arg((4, 5))]),
    "minimum_ties": _case(lambda a: a.minimum(a * 1), [Arg((4, 5))]),
    "minimum_one_frozen": _case(lambda a, b: a.minimum(b), [Arg((3, 5)), Arg((3, 5), **NO_GRAD)]),
    "maximum_int_float": _case(lambda a, b: a.maximum(b), [Arg((3, 5), **INT, **NO_GRAD), Arg((3, 5))]),

    # lerp, addcmul, addcdiv
    "lerp_scalar": _case(lambda a, b: a.lerp(b, 0.3), [Arg((3, 5)), Arg((5,))]),
    "lerp_tensor": _case(lambda a, b, w: a.lerp(b, w), [Arg((3, 5)), Arg((3, 5)), Arg((3, 1))]),
    "lerp_tensor_weight_frozen": _case(lambda a, b, w: a.lerp(b, w), [Arg((3, 5)), Arg((3, 5)),
                                                                       Arg((3, 5), **NO_GRAD)]),
    "lerp_tensor_only_weight": _case(lambda a, b, w: a.lerp(b, w), [Arg((3, 5), **NO_GRAD), Arg((3, 5), **NO_GRAD),
                                                                     Arg((3, 5))]),
    "lerp_inplace": _case(lambda a, b: (a * 1).lerp_(b, 0.7), [Arg((3, 5)), Arg((3, 5))]),
    "addcmul": _case(lambda x, a, b: x.addcmul(a, b, value=0.5), [Arg((3, 5)), Arg((3, 5)), Arg((5,))]),
    "addcmul_one_factor": _case(lambda x, a, b: x.addcmul(a, b), [Arg((3, 5)), Arg((3, 5)), Arg((3, 5), **NO_GRAD)]),
    "addcmul_inplace": _case(lambda x, a, b: (x * 1).addcmul_(a, b, value=2), [Arg((3, 5)), Arg((3, 5)),
                                                                                Arg((3, 5))]),
    "addcdiv": _case(lambda x, a, b: x.addcdiv(a, b, value=-2), [Arg((3, 5)), Arg((3, 5)), Arg((5,), **P)]),
    "addcdiv_numerator_only": _case(lambda x, a, b: x.addcdiv(a, b),
                                    [Arg((3, 5)), Arg((3, 5)), Arg((3, 5), positive=True, requires_grad=False)]),
    "addcdiv_inplace": _case(lambda x, a, b: (x * 1).addcdiv_(a, b), [Arg((3, 5)), Arg((3, 5)), Arg((3, 5), **P)]),

    # remainder (%), floor_divide (//: no derivative, so no input requires grad here)
    "remainder_tensor": _case(lambda a, b: a % b, [Arg((3, 5)), Arg((3, 5), **P)]),
    "remainder_scalar": _case(lambda a: a % 0.7, [Arg((3, 5))]),
    "remainder_int": _case(lambda a: a % 3, [Arg((3, 5), **INT, **NO_GRAD)]),
    "rmod": _case(lambda a: 2.5 % a, [Arg((3, 5), positive=True, requires_grad=False)]),
    "rfloordiv": _case(lambda a: 7 // (a + 1), [Arg((3, 5), **INT, **NO_GRAD)]),
    "floordiv": _case(lambda a, b: a // b, [Arg((3, 5), **NO_GRAD), Arg((3, 5), positive=True, requires_grad=False)]),
    "floordiv_scalar_int": _case(lambda a: a // 2, [Arg((3, 5), **INT, **NO_GRAD)]),

    # in-place arithmetic users write
    "sub_inplace": _case(lambda a, b: (a * 1).sub_(b, alpha=2), [Arg((3, 5)), Arg((5,))]),
    "sub_inplace_scalar": _case(lambda a: (a * 1).sub_(1.5), [Arg((3, 5))]),
    "isub": _case(lambda a, b: a.__mul__(1).__isub__(b), [Arg((3, 5)), Arg((3, 5))]),
    "div_inplace": _case(lambda a, b: (a * 1).div_(b), [Arg((3, 5)), Arg((3, 5), **P)]),
    "div_inplace_frozen_divisor": _case(lambda a, b: (a * 1).div_(b), [Arg((3, 5)), Arg((5,), positive=True,
                                                                                      requires_grad=False)]),
    "div_inplace_scalar": _case(lambda a: (a * 1).div_(4.0), [Arg((3, 5))]),
    # torch.divide / true_divide: aliases of div (rounding modes are piecewise constant)
    "divide": (torch.divide, gx.divide, [Arg((3, 5)), Arg((5,), **P)], {}),
    "divide_scalar": (lambda a: torch.divide(a, 3.0), lambda a: gx.divide(a, 3.0), [Arg((3, 5))], {}),
    "divide_floor": (lambda a, b: torch.divide(a, b, rounding_mode="floor"),
                     lambda a, b: gx.divide(a, b, rounding_mode="floor"),
                     [Arg((3, 5), **NO_GRAD), Arg((3, 5), positive=True, requires_grad=False)], {}),
    "true_divide": (torch.true_divide, gx.true_divide, [Arg((3, 5)), Arg((3, 5), **P)], {}),
    "div_rounding_floor": (lambda a, b: torch.div(a, b, rounding_mode="floor"),
                           lambda a, b: gx.div(a, b, rounding_mode="floor"),
                           [Arg((3, 5)), Arg((5,), positive=True)], {}),
    "div_method_rounding_trunc_scalar": _case(lambda a: a.div(0.75, rounding_mode="trunc"), [Arg((3, 5))]),
    "div_rounding_integers": _case(lambda a: a.div(2, rounding_mode="floor"), [Arg((3, 5), **INT, **NO_GRAD)]),
    "divide_method": _case(lambda a, b: a.divide(b), [Arg((3, 5)), Arg((3, 5), **P)]),
    # erfinv on (0.05, 0.95) (its domain is (-1, 1)); in place saves a clone of the original (formula reads self)
    "erfinv": (torch.erfinv, gx.erfinv, [Arg((3, 5), unit=True)], {}),
    "erfinv_method": _case(lambda a: a.erfinv(), [Arg((3, 5), unit=True)]),
    "erfinv_inplace": _case(lambda a: (a * 1).erfinv_() * a, [Arg((3, 5), unit=True)]),
    "itruediv": _case(lambda a, b: a.__mul__(1).__itruediv__(b), [Arg((3, 5)), Arg((1, 5), **P)]),
    "zero_inplace": _case(lambda a: (a * 1).zero_() + a, [Arg((3, 5))]),
    "fill_inplace": _case(lambda a: (a * 1).fill_(2.5) * a, [Arg((3, 5))]),
    "fill_inplace_tensor": _case(lambda a, v: (a * 1).fill_(v.reshape(())) * a, [Arg((3, 5)), Arg((1,))]),

    # comparisons and logical ops: bool results, no gradient
    "eq_operator": _case(lambda a, b: a == b.round(), [Arg((3, 5), **INT, **NO_GRAD), Arg((5,))]),
    "ne_operator": _case(lambda a: a != 2, [Arg((3, 5), **INT, **NO_GRAD)]),
    "lt_operator": _case(lambda a, b: a < b, [Arg((3, 5)), Arg((5,))]),
    "le_scalar": _case(lambda a: a <= 0.1, [Arg((3, 5))]),
    "gt_noncontiguous": _case(lambda a, b: a > b, [Arg((4, 3), transposed=True), Arg((4, 3))]),
    "ge_reflected": _case(lambda a: 0.2 >= a, [Arg((3, 5))]),
    "eq_method": _case(lambda a, b: a.eq(b), [Arg((3, 5)), Arg((3, 5))]),
    "comparison_methods": _case(lambda a, b: (a.ne(b), a.lt(b), a.le(b), a.gt(b), a.ge(b)), [Arg((3, 5)),
                                                                                             Arg((3, 5))]),
    "logical": _case(lambda a, b: (a.logical_not(), a.logical_and(b), a.logical_or(b), a.logical_xor(b)),
                     [Arg((3, 5), **INT, **NO_GRAD), Arg((5,), **INT, **NO_GRAD)]),
    "logical_float": _case(lambda a, b: (a > 0).logical_and(b), [Arg((3, 5)), Arg((3, 5))]),
    # bitwise not / `~`: logical not of bools, bitwise not of integers (same dtype), no gradient
    "invert_bool": _case(lambda a: ~(a > 0), [Arg((3, 5))]),
    "bitwise_not_int": (lambda a: torch.bitwise_not(a), lambda a: gx.bitwise_not(a),
                        [Arg((3, 5), **INT, **NO_GRAD)], {}),
    "bitwise_not_method_uint8": _case(lambda a: (a.abs() * 40).to((torch if isinstance(a, torch.Tensor) else gx)
                                                                 .uint8).bitwise_not(), [Arg((4,))]),
    "isnan_isinf_isfinite": _case(lambda a: ((a.log()).isnan(), a.round().reciprocal().isinf(), a.log().isfinite()),
                                  [Arg((3, 5))]),
})

LOW_PRECISION = {torch.float16, torch.bfloat16}
# torch has no CPU half kernel for these, or their rounding makes half values incomparable
NO_LOW_PRECISION = {"round_decimals", "floordiv", "remainder_tensor", "remainder_scalar", "rmod"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_elementwise_matches_torch(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    if dtype in LOW_PRECISION:
        if name in NO_LOW_PRECISION:
            pytest.skip("not meaningful in half precision on CPU")
        check = {**check, "second_order": False}
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


# -- errors: torch's exception type and message, on data and on the shape backend ------------------

def _raise_message(fn, *args):
    with pytest.raises(Exception) as info:
        fn(*args)
    return type(info.value), str(info.value)


def _tensor(lib, shape, dtype, requires_grad=False):
    if lib is torch:
        return torch.ones(shape, dtype=getattr(torch, dtype), requires_grad=requires_grad)
    with gx.backend("torch"):
        return gx.ones(*shape, dtype=gx.dtypes.from_name(dtype), requires_grad=requires_grad)


def _shape_tensor(shape, dtype, requires_grad=False):
    return gx.empty(*shape, dtype=gx.dtypes.from_name(dtype), requires_grad=requires_grad)


ERRORS = {
    "clamp_without_bounds": (lambda m, x: x.clamp(), [((3,), "float64")]),
    "int_to_negative_power": (lambda m, x: x ** -1, [((3,), "int64")]),
    "inplace_exp_on_int": (lambda m, x: x.exp_(), [((3,), "int64")]),
    "inplace_div_on_int": (lambda m, x: x.div_(2), [((3,), "int64")]),
    "itruediv_on_int": (lambda m, x, y: x.__itruediv__(y), [((3,), "int64"), ((3,), "int64")]),
    "inplace_sub_float_on_int": (lambda m, x: x.sub_(1.5), [((3,), "int64")]),
    "inplace_broadcast_grows_self": (lambda m, x, y: x.sub_(y), [((3,), "float64"), ((2, 3), "float64")]),
    "inplace_clamp_broadcast": (lambda m, x, y: x.clamp_(min=y), [((3,), "float64"), ((2, 3), "float64")]),
    "broadcast_mismatch": (lambda m, x, y: m.maximum(x, y), [((3, 4), "float64"), ((3,), "float64")]),
    "bool_minus_bool": (lambda m, x, y: x.sub_(y), [((3,), "bool"), ((3,), "bool")]),
    "fill_with_1d_tensor": (lambda m, x, y: x.fill_(y), [((3,), "float64"), ((2,), "float64")]),
    "lerp_mixed_dtypes": (lambda m, x, y: x.lerp(y, 0.5), [((3,), "float64"), ((3,), "float32")]),
    "addcdiv_integers": (lambda m, x, y: x.addcdiv(y, y), [((3,), "int64"), ((3,), "int64")]),
    "invert_float": (lambda m, x: ~x, [((3,), "float32")]),
    "bitwise_not_float": (lambda m, x: m.bitwise_not(x), [((3,), "float32")]),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    fn, specs = ERRORS[name]
    expected = _raise_message(fn, torch, *[_tensor(torch, s, d) for s, d in specs])
    assert _raise_message(fn, gx, *[_tensor(gx, s, d) for s, d in specs]) == expected
    assert _raise_message(fn, gx, *[_shape_tensor(s, d) for s, d in specs]) == expected


def test_minimum_needs_a_tensor():
    expected = _raise_message(torch.minimum, torch.ones(3), 2)
    assert _raise_message(gx.minimum, _shape_tensor((3,), "float32"), 2) == expected


def test_inplace_on_leaf_that_requires_grad_raises():
    for method in ["exp_", "sqrt_", "zero_", "clamp_min_", "sub_", "div_", "fill_", "pow_"]:
        extra = {"clamp_min_": (0.0,), "sub_": (1.0,), "div_": (2.0,), "fill_": (1.0,), "pow_": (2,)}.get(method, ())
        expected = _raise_message(lambda x: getattr(x, method)(*extra), _tensor(torch, (3,), "float64", True))
        assert _raise_message(lambda x: getattr(x, method)(*extra), _tensor(gx, (3,), "float64", True)) == expected


@pytest.mark.parametrize("op", ["floordiv", "rfloordiv", "rmod"])
def test_ops_without_derivative_raise_in_backward(op):
    call = {"floordiv": lambda x: x // 2, "rfloordiv": lambda x: 7 // x, "rmod": lambda x: 2 % x}[op]

    def run(lib, x):
        y = call(x)
        assert y.grad_fn.name() == "torch::autograd::NotImplemented"
        y.sum().backward()
    expected = _raise_message(run, torch, _tensor(torch, (3,), "float64", True))
    assert _raise_message(run, gx, _tensor(gx, (3,), "float64", True)) == expected


# -- version counters, node names, the saved-tensor modification check ---------------------------------

INPLACE_CALLS = {
    "exp_": lambda x, y: x.exp_(), "log_": lambda x, y: x.abs_().log_(), "sqrt_": lambda x, y: x.abs_().sqrt_(),
    "sin_": lambda x, y: x.sin_(), "sub_": lambda x, y: x.sub_(y), "div_": lambda x, y: x.div_(y),
    "isub": lambda x, y: x.__isub__(y), "itruediv": lambda x, y: x.__itruediv__(y),
    "clamp_": lambda x, y: x.clamp_(-0.5, 0.5), "clamp_tensor_": lambda x, y: x.clamp_(max=y),
    "clamp_min_": lambda x, y: x.clamp_min_(0.1), "clamp_max_": lambda x, y: x.clamp_max_(0.1),
    "zero_": lambda x, y: x.zero_(), "fill_": lambda x, y: x.fill_(2.0), "fill_tensor": lambda x, y: x.fill_(y[0]),
    "pow_": lambda x, y: x.pow_(2), "pow_tensor_": lambda x, y: x.abs_().pow_(y), "floor_": lambda x, y: x.floor_(),
    "round_": lambda x, y: x.round_(), "lerp_": lambda x, y: x.lerp_(y, 0.5), "addcmul_": lambda x, y: x.addcmul_(y, y),
}


def _inplace_history(lib, call):
    """(version after the op, node name, the input's gradient) for call(x * 1, y)."""
    gen = torch.Generator().manual_seed(0)
    xt = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    yt = (torch.rand(4, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()
    x, y = (xt, yt) if lib is torch else (gx.from_torch(xt), gx.from_torch(yt))
    out = call(x * 1, y)
    version, node = out._version, out.grad_fn.name()
    out.sum().backward()
    grads = [t.grad if lib is torch or t.grad is None else t.grad.data_ for t in (x, y)]
    return version, node, [g if g is None else g.tolist() for g in grads]


@pytest.mark.parametrize("name", sorted(INPLACE_CALLS))
def test_inplace_version_node_and_gradients(name):
    theirs = _inplace_history(torch, INPLACE_CALLS[name])
    ours = _inplace_history(gx, INPLACE_CALLS[name])
    assert ours[:2] == theirs[:2]
    for g_ours, g_theirs in zip(ours[2], theirs[2]):
        assert (g_ours is None) == (g_theirs is None)
        if g_ours is not None:
            assert torch.allclose(torch.tensor(g_ours), torch.tensor(g_theirs), rtol=1e-10, atol=1e-12)


NODE_NAMES = {
    "exp": lambda x: x.exp(), "log1p": lambda x: x.abs().log1p(), "pow_scalar": lambda x: x ** 2,
    "pow_tensor": lambda x: x.abs() ** x, "rpow": lambda x: 2 ** x, "square": lambda x: x.square(),
    "clamp": lambda x: x.clamp(0, 1), "clamp_tensor": lambda x: x.clamp(x * 0),
    "clamp_min": lambda x: x.clamp_min(0.1), "round_decimals": lambda x: x.round(decimals=1),
    "lerp_scalar": lambda x: x.lerp(x * 2, 0.5), "lerp_tensor": lambda x: x.lerp(x * 2, x),
    "remainder": lambda x: x % 2, "remainder_tensor": lambda x: x % x.abs(), "minimum": lambda x: x.minimum(x * 2),
    "abs": lambda x: abs(x), "sgn": lambda x: x.sgn(), "erf": lambda x: x.erf(),
    "erfinv": lambda x: (x * 0.5).erfinv(),
}


@pytest.mark.parametrize("name", sorted(NODE_NAMES))
def test_node_names_match_torch(name):
    xt = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert NODE_NAMES[name](gx.from_torch(xt)).grad_fn.name() == NODE_NAMES[name](xt).grad_fn.name()


def test_comparisons_have_no_history():
    for lib in (torch, gx):
        x = _tensor(lib, (3,), "float64", True)
        for out in (x < 1, x == x, x.isnan(), x.logical_not()):
            assert out.grad_fn is None and not out.requires_grad


def _modified_after_save(lib, x):
    a = x * 1
    b = a.sin()          # saves a
    a.exp_()
    b.sum().backward()


def test_modifying_a_saved_input_raises_at_backward():
    prefix = "one of the variables needed for gradient computation has been modified by an inplace operation"
    xt = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=prefix):
        _modified_after_save(torch, xt)
    with pytest.raises(RuntimeError, match=prefix):
        _modified_after_save(gx, gx.from_torch(xt))


def test_modifying_a_result_saving_op_input_is_allowed():
    """exp saves its result, not its input: changing the input in place afterwards is fine."""
    xt = torch.randn(3, dtype=torch.float64, requires_grad=True)
    grads = []
    for x in (xt, gx.from_torch(xt)):
        a = x * 1
        b = a.exp()
        a.add_(1)
        b.sum().backward()
        grads.append(x.grad if isinstance(x, torch.Tensor) else x.grad.data_)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10)


def test_shape_backend_keeps_symbolic_sizes():
    x = gx.empty(gx.SymInt(4, "B"), 3, dtype=gx.float32)
    y = gx.empty(3, dtype=gx.float32)
    for out in (x.exp(), x ** y, x.clamp(0, 1), gx.maximum(x, y), x < y, x.lerp(y, 0.5), x.addcmul(y, y)):
        assert isinstance(out.shape[0], gx.SymInt) and out.shape[0].expr == "B"
