"""Elementwise math beyond + - * /: exp, log, sqrt, pow, abs, trig, clamp, comparisons, minimum/maximum,
and the in-place variants users write.  One Function class per op; backward written with engine ops.

Each class follows torch's derivatives.yaml entry for its aten kernel: the node name, what is saved
("self" = the input, "result" = the output), and the formula of the backward.  An in-place variant
whose formula reads ``self`` saves a clone of the original input (torch's codegen does the same), one
whose formula reads ``result`` saves the modified tensor itself.
"""
from __future__ import annotations

import math

from .. import autograd
from .. import dtypes as _dt
from ..creation import zeros_like
from ..function import Function
from ..tensor import Tensor
from ._kernel import elementwise_strides, inplace, kernel, strides_like
from .pointwise import Div, InplaceSavingOriginal, Sub, add, div, mul, neg, sub
from .shapes import broadcast_shapes

# torch's ScalarType names, as its casting errors spell them


# -- metadata helpers ------------------------------------------------------

def _shape(x):
    return x.shape if isinstance(x, Tensor) else ()


def _float_dtype(d):
    """Ops that only produce floats (exp, sqrt, sigmoid ...) give integer inputs the default float dtype."""
    return d if d.is_floating_point else _dt.default_float


def _unary_meta(x, dtype=None):
    """Output meta of an elementwise op on one tensor: its shape, laid out in its memory order."""
    strides = strides_like(x.shape, x) if x.is_non_overlapping_and_dense() else None
    return (x.shape, dtype or x.dtype, strides)


def _broadcast_meta(*operands, dtype=None):
    shape = broadcast_shapes(*(_shape(o) for o in operands))
    return shape, dtype or _dt.result_type(*operands), elementwise_strides(shape, operands)


def _can_cast(src, dst) -> bool:
    """torch's canCast: no float -> integral and nothing non-bool -> bool."""
    if src.is_floating_point and not dst.is_floating_point:
        return False
    return not (dst is _dt.bool_ and src is not _dt.bool_)


def _check_inplace(self, out_dtype, *others):
    """An in-place op keeps self's shape and dtype: the broadcast shape and result type must fit."""
    shape = broadcast_shapes(self.shape, *(_shape(o) for o in others))
    if tuple(int(s) for s in shape) != tuple(int(s) for s in self.shape):
        raise RuntimeError(f"output with shape {[int(s) for s in self.shape]} doesn't match the broadcast shape "
                           f"{[int(s) for s in shape]}")
    if not _can_cast(out_dtype, self.dtype):
        raise RuntimeError(f"result type {_dt.scalar_type_name(out_dtype)} can't be cast to the desired output "
                           f"type {_dt.scalar_type_name(self.dtype)}")


def _as_dtype(t, dtype):
    from .misc import to_dtype
    return to_dtype(t, dtype)


# -- where, used by backward formulas ---------------------------------------

class SelectWhere(Function):
    """out = where(condition, a, b) as torch's backward formulas use it (``a``/``b`` tensors or
    scalars).  Saves: condition.  Not registered as ``gx.where``: that op lives with indexing."""

    node_name = "WhereBackward0"
    saves = ("condition",)

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        ctx.scalar_a, ctx.scalar_b = not isinstance(a, Tensor), not isinstance(b, Tensor)
        return kernel("where", _broadcast_meta(condition, a, b, dtype=_dt.result_type(a, b)), condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        ga = _where(condition, grad, 0.0) if ctx.needs_input_grad[1] else None
        gb = _where(condition, 0.0, grad) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def _where(condition, a, b):
    return SelectWhere.apply(condition, a, b)


# -- unary ops ---------------------------------------------------------------

class _Unary(Function):
    """y = op(x, *params) elementwise (the aten kernel ``aten``, scalar ``params`` kept on ``ctx.params``);
    saves ``self`` or ``result`` as ``saves`` says.  ``float_only`` ops give integer inputs the default
    float dtype."""

    aten = ""
    saves = ("self",)
    float_only = True

    @classmethod
    def forward(cls, ctx, x, *params):
        y = kernel(cls.aten, _unary_meta(x, _float_dtype(x.dtype) if cls.float_only else None), x, *params)
        if cls.saves:
            ctx.save_for_backward(y if cls.saves == ("result",) else x)
        ctx.params = params
        return y


class _UnaryInplace(InplaceSavingOriginal):
    """x = op(x) in place (aten ``<op>_``): torch's node of the out-of-place op, saving the modified x
    where the formula reads ``result`` and a clone of the original where it reads ``self``."""

    out_of_place: type = _Unary

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        op = cls.out_of_place
        cls.node_name = op.__name__ + "Backward0" if not hasattr(op, "node_name") else op.node_name
        cls.saves = op.saves
        cls.backward = op.backward

    @classmethod
    def original_needed(cls, needs_input_grad) -> bool:
        return cls.out_of_place.saves == ("self",) and needs_input_grad[0]

    @classmethod
    def forward(cls, ctx, x, *params, original=None):
        op = cls.out_of_place
        _check_inplace(x, _float_dtype(x.dtype) if op.float_only else x.dtype)
        inplace(op.aten + "_", x, *params)
        ctx.mark_dirty(x)
        if op.saves:
            ctx.save_for_backward(x if op.saves == ("result",) else original)
        ctx.params = params
        return x


class Exp(_Unary):
    """y = exp(x).  Saves: result."""

    aten, saves = "exp", ("result",)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return mul(grad, result)


class ExpInplace(_UnaryInplace):
    out_of_place = Exp


class Log(_Unary):
    """y = log(x).  Saves: self."""

    aten = "log"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return div(grad, x)


class LogInplace(_UnaryInplace):
    out_of_place = Log


class Log2(_Unary):
    """y = log2(x).  Saves: self (torch's formula: grad / (self * ln 2))."""

    aten = "log2"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return div(grad, mul(x, 0.6931471805599453))


class Log2Inplace(_UnaryInplace):
    out_of_place = Log2


class Log1p(_Unary):
    """y = log(1 + x).  Saves: self."""

    aten, node_name = "log1p", "Log1PBackward0"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return div(grad, add(x, 1))             # torch's log1p_backward


class Log1pInplace(_UnaryInplace):
    out_of_place = Log1p


class Expm1(_Unary):
    """y = exp(x) - 1.  Saves: result."""

    aten, saves = "expm1", ("result",)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return mul(grad, add(result, 1))


class Expm1Inplace(_UnaryInplace):
    out_of_place = Expm1


class Sqrt(_Unary):
    """y = sqrt(x).  Saves: result."""

    aten, saves = "sqrt", ("result",)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return div(grad, mul(result, 2))


class SqrtInplace(_UnaryInplace):
    out_of_place = Sqrt


class Rsqrt(_Unary):
    """y = 1 / sqrt(x).  Saves: result."""

    aten, saves = "rsqrt", ("result",)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return mul(mul(grad, -0.5), pow(result, 3))


class RsqrtInplace(_UnaryInplace):
    out_of_place = Rsqrt


class Reciprocal(_Unary):
    """y = 1 / x.  Saves: result."""

    aten, saves = "reciprocal", ("result",)

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return mul(neg(grad), mul(result, result))


class ReciprocalInplace(_UnaryInplace):
    out_of_place = Reciprocal


class Sin(_Unary):
    """y = sin(x).  Saves: self."""

    aten = "sin"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return mul(grad, cos(x))


class SinInplace(_UnaryInplace):
    out_of_place = Sin


class Cos(_Unary):
    """y = cos(x).  Saves: self."""

    aten = "cos"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return mul(grad, neg(sin(x)))


class CosInplace(_UnaryInplace):
    out_of_place = Cos


class Erf(_Unary):
    """y = erf(x).  Saves: self."""

    aten = "erf"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return mul(mul(exp(neg(pow(x, 2))), 2.0 / math.sqrt(math.pi)), grad)


class ErfInplace(_UnaryInplace):
    out_of_place = Erf


class Erfinv(_Unary):
    """y = erfinv(x).  Saves: self (the formula recomputes erfinv(self): 0.5 sqrt(pi) exp(erfinv(x)^2))."""

    aten = "erfinv"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return mul(mul(exp(pow(erfinv(x), 2)), 0.5 * math.sqrt(math.pi)), grad)


class ErfinvInplace(_UnaryInplace):
    out_of_place = Erfinv


class Abs(_Unary):
    """y = |x| (keeps integer dtypes).  Saves: self."""

    aten, float_only = "abs", False

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return mul(grad, sgn(x))


class AbsInplace(_UnaryInplace):
    out_of_place = Abs


class Sgn(_Unary):
    """y = sgn(x) (sign for real tensors); its derivative is zero.  Saves: self, result (torch's
    sgn_backward reads both, for the complex case)."""

    aten, float_only, saves = "sgn", False, ("self", "result")

    @classmethod
    def forward(cls, ctx, x):
        y = kernel("sgn", _unary_meta(x), x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return zeros_like(grad)


class _ZeroGradUnary(_Unary):
    """Piecewise-constant ops (sign, floor, ceil, round, trunc): zero gradient, nothing saved."""

    saves, float_only = (), False

    @staticmethod
    def backward(ctx, grad):
        return zeros_like(grad)


class Sign(_ZeroGradUnary):
    """y = sign(x).  Saves: nothing."""

    aten = "sign"


class SignInplace(_UnaryInplace):
    out_of_place = Sign


class Floor(_ZeroGradUnary):
    """y = floor(x).  Saves: nothing."""

    aten = "floor"


class FloorInplace(_UnaryInplace):
    out_of_place = Floor


class Ceil(_ZeroGradUnary):
    """y = ceil(x).  Saves: nothing."""

    aten = "ceil"


class CeilInplace(_UnaryInplace):
    out_of_place = Ceil


class Trunc(_ZeroGradUnary):
    """y = trunc(x).  Saves: nothing."""

    aten = "trunc"


class TruncInplace(_UnaryInplace):
    out_of_place = Trunc


class Round(_ZeroGradUnary):
    """y = round(x) (half to even).  Saves: nothing."""

    aten = "round"


class RoundInplace(_UnaryInplace):
    out_of_place = Round


class RoundDecimals(Function):
    """y = round(x, decimals=d).  Saves: nothing."""

    node_name = "RoundBackward1"

    @staticmethod
    def forward(ctx, x, decimals):
        return kernel("round", _unary_meta(x), x, decimals=decimals)

    @staticmethod
    def backward(ctx, grad):
        return zeros_like(grad), None


# -- pow ---------------------------------------------------------------------

def _check_integer_power(base_dtype, exponent):
    if not base_dtype.is_floating_point and isinstance(exponent, int) and not isinstance(exponent, bool) \
            and exponent < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")


class PowTensorScalar(Function):
    """y = x ** exponent (a Python number).  Saves: self (and the exponent, a scalar)."""

    node_name = "PowBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, exponent):
        _check_integer_power(x.dtype, exponent)
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return kernel("pow", _unary_meta(x, _dt.result_type(x, exponent)), x, exponent)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _pow_backward(grad, x, ctx.exponent), None


def _pow_backward(grad, x, exponent):
    """torch's pow_backward: grad * exponent * x ** (exponent - 1), zeros for exponent 0."""
    if exponent == 0:
        return zeros_like(x)
    return mul(grad, mul(pow(x, exponent - 1), exponent))


class PowTensorScalarInplace(InplaceSavingOriginal):
    """x **= exponent in place.  Saves: a clone of the original x."""

    node_name = "PowBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, exponent, original=None):
        _check_integer_power(x.dtype, exponent)
        _check_inplace(x, _dt.result_type(x, exponent))
        ctx.save_for_backward(original)
        ctx.exponent = exponent
        inplace("pow_", x, exponent)
        ctx.mark_dirty(x)
        return x

    backward = PowTensorScalar.backward


class PowTensorTensor(Function):
    """y = x ** exponent (both tensors).  Saves: self, exponent, result (outputs are saved unguarded)."""

    node_name = "PowBackward1"
    saves = ("self", "exponent", "result")

    @staticmethod
    def forward(ctx, x, exponent):
        y = kernel("pow", _broadcast_meta(x, exponent), x, exponent)
        ctx.save_for_backward(x, exponent, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, exponent, result = ctx.saved_tensors
        return _pow_tensor_grads(ctx, grad, x, exponent, result)


def _pow_tensor_grads(ctx, grad, x, exponent, result):
    grad_base = grad_exponent = None
    if ctx.needs_input_grad[0]:          # torch's pow_backward_self
        grad_base = _where(eq(exponent, 0.0), 0.0, mul(grad, mul(exponent, pow(x, sub(exponent, 1)))))
    if ctx.needs_input_grad[1]:          # torch's pow_backward_exponent
        zero_base = logical_and(eq(x, 0), ge(exponent, 0))
        base = _as_dtype(x, _dt.result_type(x, exponent))
        grad_exponent = mul(grad, _where(zero_base, 0.0, mul(result, log(base))))
    return grad_base, grad_exponent


class PowTensorTensorInplace(InplaceSavingOriginal):
    """x **= exponent (a tensor) in place.  Saves: exponent, a clone of the original x, result (x)."""

    node_name = "PowBackward1"
    saves = ("self", "exponent", "result")

    @staticmethod
    def original_needed(needs_input_grad) -> bool:
        return any(needs_input_grad)

    @staticmethod
    def forward(ctx, x, exponent, original=None):
        _check_inplace(x, _dt.result_type(x, exponent), exponent)
        inplace("pow_", x, exponent)
        ctx.mark_dirty(x)
        ctx.save_for_backward(original, exponent, x)
        return x

    backward = PowTensorTensor.backward


class PowScalarTensor(Function):
    """y = base ** exponent (a Python number to a tensor).  Saves: exponent, result."""

    node_name = "PowBackward2"
    saves = ("exponent", "result")

    @staticmethod
    def forward(ctx, base, exponent):
        y = kernel("pow", _unary_meta(exponent, _dt.result_type(base, exponent)), base, exponent)
        ctx.save_for_backward(exponent, y)
        ctx.base = base
        return y

    @staticmethod
    def backward(ctx, grad):
        exponent, result = ctx.saved_tensors
        base = ctx.base
        log_base = math.log(base) if base > 0 else (-math.inf if base == 0 else math.nan)
        grad_factor = mul(result, log_base)
        if base == 0:          # torch's convention: 0 ** e has gradient 0 where e >= 0
            grad_factor = _where(ge(exponent, 0), 0.0, grad_factor)
        return None, mul(grad, grad_factor)


# -- clamp -------------------------------------------------------------------

def _check_clamp_bounds(min, max):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")


def _clamp_backward(grad, x, min, max):
    """torch's clamp_backward: the gradient passes where min <= x <= max (bounds included)."""
    if min is not None and max is not None:
        return _where(logical_and(ge(x, min), le(x, max)), grad, 0.0)
    if min is not None:
        return _where(ge(x, min), grad, 0.0)
    return _where(le(x, max), grad, 0.0)


class Clamp(Function):
    """y = clamp(x, min, max) with scalar bounds.  Saves: self."""

    node_name = "ClampBackward1"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        _check_clamp_bounds(min, max)
        ctx.save_for_backward(x)
        ctx.bounds = (min, max)
        dtype = _dt.result_type(x, *(b for b in (min, max) if b is not None))
        return kernel("clamp", _unary_meta(x, dtype), x, min, max)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _clamp_backward(grad, x, *ctx.bounds), None, None


class ClampInplace(InplaceSavingOriginal):
    """x.clamp_(min, max) with scalar bounds.  Saves: a clone of the original x."""

    node_name = "ClampBackward1"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, min=None, max=None, original=None):
        _check_clamp_bounds(min, max)
        _check_inplace(x, _dt.result_type(x, *(b for b in (min, max) if b is not None)))
        ctx.save_for_backward(original)
        ctx.bounds = (min, max)
        inplace("clamp_", x, min, max)
        ctx.mark_dirty(x)
        return x

    backward = Clamp.backward


class ClampTensor(Function):
    """y = clamp(x, min, max) with tensor bounds (either may be None).  Saves: min, max, self."""

    node_name = "ClampBackward0"
    saves = ("min", "max", "self")

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        _check_clamp_bounds(min, max)
        bounds = [b for b in (min, max) if b is not None]
        ctx.save_for_backward(min, max, x)
        return kernel("clamp", _broadcast_meta(x, *bounds), x, min, max)

    @staticmethod
    def backward(ctx, grad):
        min, max, x = ctx.saved_tensors
        gx = _clamp_backward(grad, x, min, max) if ctx.needs_input_grad[0] else None
        gmin = gmax = None
        # torch's clamp_backward_min_max: a bound gets the gradient where it is the active one
        if min is not None and max is not None:
            if ctx.needs_input_grad[1]:
                gmin = _where(logical_and(lt(x, min), lt(min, max)), grad, 0.0)
            if ctx.needs_input_grad[2]:
                gmax = _where(logical_or(gt(x, max), lt(max, min)), grad, 0.0)
        elif min is not None and ctx.needs_input_grad[1]:
            gmin = _where(lt(x, min), grad, 0.0)
        elif max is not None and ctx.needs_input_grad[2]:
            gmax = _where(gt(x, max), grad, 0.0)
        return gx, gmin, gmax


class ClampTensorInplace(InplaceSavingOriginal):
    """x.clamp_(min, max) with tensor bounds.  Saves: min, max, a clone of the original x."""

    node_name = "ClampBackward0"
    saves = ("min", "max", "self")

    @staticmethod
    def original_needed(needs_input_grad) -> bool:
        return any(needs_input_grad)

    @staticmethod
    def forward(ctx, x, min=None, max=None, original=None):
        _check_clamp_bounds(min, max)
        bounds = [b for b in (min, max) if b is not None]
        _check_inplace(x, _dt.result_type(x, *bounds), *bounds)
        ctx.save_for_backward(min, max, original)
        inplace("clamp_", x, min, max)
        ctx.mark_dirty(x)
        return x

    backward = ClampTensor.backward


class ClampMin(Function):
    """y = clamp_min(x, min) (a scalar).  Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, x, min):
        ctx.save_for_backward(x)
        ctx.min = min
        return kernel("clamp_min", _unary_meta(x, _dt.result_type(x, min)), x, min)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _where(ge(x, ctx.min), grad, 0.0), None


class ClampMinInplace(InplaceSavingOriginal):
    """x.clamp_min_(min).  Saves: a clone of the original x."""

    node_name = "ClampMinBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, min, original=None):
        _check_inplace(x, _dt.result_type(x, min))
        ctx.save_for_backward(original)
        ctx.min = min
        inplace("clamp_min_", x, min)
        ctx.mark_dirty(x)
        return x

    backward = ClampMin.backward


class ClampMax(Function):
    """y = clamp_max(x, max) (a scalar).  Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, x, max):
        ctx.save_for_backward(x)
        ctx.max = max
        return kernel("clamp_max", _unary_meta(x, _dt.result_type(x, max)), x, max)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _where(le(x, ctx.max), grad, 0.0), None


class ClampMaxInplace(InplaceSavingOriginal):
    """x.clamp_max_(max).  Saves: a clone of the original x."""

    node_name = "ClampMaxBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, max, original=None):
        _check_inplace(x, _dt.result_type(x, max))
        ctx.save_for_backward(original)
        ctx.max = max
        inplace("clamp_max_", x, max)
        ctx.mark_dirty(x)
        return x

    backward = ClampMax.backward


# -- binary ops --------------------------------------------------------------

def _require_tensor(name, other):
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")


class Minimum(Function):
    """y = minimum(a, b).  Saves: self, other (ties split the gradient in half)."""

    saves = ("self", "other")

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernel("minimum", _broadcast_meta(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _min_max_grads(ctx, grad, a, b, gt, lt)


def _min_max_grads(ctx, grad, a, b, loses_a, loses_b):
    """where(a == b, grad / 2, grad), zeroed where the operand is not the one picked."""
    shared = _where(eq(a, b), div(grad, 2), grad)
    ga = _where(loses_a(a, b), 0.0, shared) if ctx.needs_input_grad[0] else None
    gb = _where(loses_b(a, b), 0.0, shared) if ctx.needs_input_grad[1] else None
    return ga, gb


class Maximum(Function):
    """y = maximum(a, b).  Saves: self, other (ties split the gradient in half)."""

    saves = ("self", "other")

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return kernel("maximum", _broadcast_meta(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _min_max_grads(ctx, grad, a, b, lt, gt)


class LerpScalar(Function):
    """y = start + weight * (end - start), weight a Python number.  Saves: nothing (the weight)."""

    node_name = "LerpBackward0"

    @staticmethod
    def forward(ctx, start, end, weight):
        _check_same_dtype("end", start, end)
        ctx.weight = weight
        return kernel("lerp", _broadcast_meta(start, end), start, end, weight)

    @staticmethod
    def backward(ctx, grad):
        w = ctx.weight
        return (mul(grad, 1 - w) if ctx.needs_input_grad[0] else None,
                mul(grad, w) if ctx.needs_input_grad[1] else None, None)


def _check_same_dtype(name, a, b):
    if isinstance(b, Tensor) and b.dtype is not a.dtype:
        raise RuntimeError(f"expected dtype {_dt.scalar_type_name(a.dtype).lower()} for `{name}` but got dtype "
                           f"{_dt.scalar_type_name(b.dtype).lower()}")


class LerpTensor(Function):
    """y = start + weight * (end - start), weight a tensor.  Saves: end and self (only for the weight's
    gradient), weight (read by two formulas, so saved unguarded)."""

    node_name = "LerpBackward1"
    saves = ("end", "self", "weight")

    @staticmethod
    def forward(ctx, start, end, weight):
        _check_same_dtype("end", start, end)
        _check_same_dtype("weight", start, weight)
        need_w = ctx.needs_input_grad[2]
        ctx.save_for_backward(end if need_w else None, start if need_w else None, weight)
        return kernel("lerp", _broadcast_meta(start, end, weight), start, end, weight)

    @staticmethod
    def backward(ctx, grad):
        end, start, weight = ctx.saved_tensors
        grad_start = mul(grad, sub(1, weight)) if ctx.needs_input_grad[0] else None
        grad_end = mul(grad, weight) if ctx.needs_input_grad[1] else None
        grad_weight = mul(grad, sub(end, start)) if ctx.needs_input_grad[2] else None
        return grad_start, grad_end, grad_weight


class LerpScalarInplace(Function):
    """x.lerp_(end, weight) with a scalar weight.  Saves: nothing."""

    node_name = "LerpBackward0"

    @staticmethod
    def forward(ctx, start, end, weight):
        _check_same_dtype("end", start, end)
        _check_inplace(start, start.dtype, end)
        ctx.weight = weight
        inplace("lerp_", start, end, weight)
        ctx.mark_dirty(start)
        return start

    backward = LerpScalar.backward


class Addcmul(Function):
    """y = self + value * t1 * t2.  Saves: tensor1 (for tensor2's gradient), tensor2 (for tensor1's)."""

    saves = ("tensor1", "tensor2")

    @staticmethod
    def forward(ctx, x, t1, t2, value=1):
        ctx.save_for_backward(t1 if ctx.needs_input_grad[2] else None, t2 if ctx.needs_input_grad[1] else None)
        ctx.value = value
        return kernel("addcmul", _broadcast_meta(x, t1, t2), x, t1, t2, value=value)

    @staticmethod
    def backward(ctx, grad):
        t1, t2 = ctx.saved_tensors
        g1 = mul(grad, mul(t2, ctx.value)) if ctx.needs_input_grad[1] else None
        g2 = mul(grad, mul(t1, ctx.value)) if ctx.needs_input_grad[2] else None
        return grad, g1, g2, None


class AddcmulInplace(Function):
    """x.addcmul_(t1, t2, value).  Saves: tensor1, tensor2 (guarded as out of place)."""

    node_name = "AddcmulBackward0"
    saves = ("tensor1", "tensor2")

    @staticmethod
    def forward(ctx, x, t1, t2, value=1):
        _check_inplace(x, _dt.result_type(x, t1, t2), t1, t2)
        ctx.save_for_backward(t1 if ctx.needs_input_grad[2] else None, t2 if ctx.needs_input_grad[1] else None)
        ctx.value = value
        inplace("addcmul_", x, t1, t2, value=value)
        ctx.mark_dirty(x)
        return x

    backward = Addcmul.backward


def _check_addcdiv(t1, t2):
    if not t1.dtype.is_floating_point and not t2.dtype.is_floating_point:
        raise RuntimeError(
            "Integer division with addcdiv is no longer supported, and in a future  release addcdiv will perform "
            "a true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as "
            "(input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + "
            "value * tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter "
            "implementation: (input + value * tensor1 / tensor2), for all dtypes.")


class Addcdiv(Function):
    """y = self + value * t1 / t2.  Saves: tensor2 (read by two formulas, so unguarded), tensor1 (only
    for tensor2's gradient)."""

    saves = ("tensor1", "tensor2")

    @staticmethod
    def forward(ctx, x, t1, t2, value=1):
        _check_addcdiv(t1, t2)
        ctx.save_for_backward(t1 if ctx.needs_input_grad[2] else None, t2)
        ctx.value = value
        return kernel("addcdiv", _broadcast_meta(x, t1, t2), x, t1, t2, value=value)

    @staticmethod
    def backward(ctx, grad):
        t1, t2 = ctx.saved_tensors
        v = ctx.value
        g1 = mul(grad, mul(reciprocal(t2), v)) if ctx.needs_input_grad[1] else None
        g2 = mul(neg(grad), div(mul(t1, v), mul(t2, t2))) if ctx.needs_input_grad[2] else None
        return grad, g1, g2, None


class AddcdivInplace(Function):
    """x.addcdiv_(t1, t2, value).  Saves: tensor1, tensor2 (guarded as out of place)."""

    node_name = "AddcdivBackward0"
    saves = ("tensor1", "tensor2")

    @staticmethod
    def forward(ctx, x, t1, t2, value=1):
        _check_addcdiv(t1, t2)
        _check_inplace(x, _dt.result_type(x, t1, t2), t1, t2)
        ctx.save_for_backward(t1 if ctx.needs_input_grad[2] else None, t2)
        ctx.value = value
        inplace("addcdiv_", x, t1, t2, value=value)
        ctx.mark_dirty(x)
        return x

    backward = Addcdiv.backward


class DivRounding(Function):
    """y = div(a, b, rounding_mode="floor" | "trunc"): piecewise constant, so zero gradients.
    Saves: other (for self), self and other (for other), as torch's formula names them."""

    node_name = "DivBackward2"
    saves = ("other", "self")

    @staticmethod
    def forward(ctx, a, b, rounding_mode):
        if rounding_mode not in ("floor", "trunc"):
            raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                               f"'{rounding_mode}'")
        ctx.save_for_backward(b if isinstance(b, Tensor) else None, a if ctx.needs_input_grad[1] else None)
        return kernel("div", _broadcast_meta(a, b), a, b, rounding_mode=rounding_mode)

    @staticmethod
    def backward(ctx, grad):
        return (zeros_like(grad) if ctx.needs_input_grad[0] else None,
                zeros_like(grad) if ctx.needs_input_grad[1] else None, None)


class Remainder(Function):
    """y = a - floor(a / b) * b (Python's %).  Saves: other, self (only for other's gradient)."""

    node_name = "RemainderBackward1"
    saves = ("other", "self")

    @staticmethod
    def forward(ctx, a, b):
        need_b = ctx.needs_input_grad[1]
        ctx.save_for_backward(b if need_b else None, a if need_b else None)
        return kernel("remainder", _broadcast_meta(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        other, x = ctx.saved_tensors
        gb = mul(neg(grad), DivRounding.apply(x, other, "floor")) if ctx.needs_input_grad[1] else None
        return grad, gb


class RemainderScalar(Function):
    """y = x % s for a Python number s.  Saves: nothing."""

    node_name = "RemainderBackward0"

    @staticmethod
    def forward(ctx, x, s):
        return kernel("remainder", _unary_meta(x, _dt.result_type(x, s)), x, s)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class RemainderScalarTensor(Function):
    """y = s % x for a Python number s.  torch has no derivative for it: backward through it raises."""

    node_name = "torch::autograd::NotImplemented"

    @staticmethod
    def forward(ctx, s, x):
        return kernel("remainder", _unary_meta(x, _dt.result_type(s, x)), s, x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("derivative for aten::remainder is not implemented")


class FloorDivide(Function):
    """y = a // b.  torch has no derivative for it: backward through it raises."""

    node_name = "torch::autograd::NotImplemented"

    @staticmethod
    def forward(ctx, a, b):
        return kernel("floor_divide", _broadcast_meta(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("derivative for aten::floor_divide is not implemented")


class SubInplace(Function):
    """a -= alpha * b.  Saves: nothing."""

    node_name = "SubBackward0"

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        _check_sub(a, b)
        _check_inplace(a, _dt.result_type(a, b), b)
        ctx.alpha = alpha
        inplace("sub_", a, b, alpha=alpha)
        ctx.mark_dirty(a)
        return a

    backward = Sub.backward


def _check_sub(a, b):
    if a.dtype is _dt.bool_ and (isinstance(b, bool) or (isinstance(b, Tensor) and b.dtype is _dt.bool_)):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
                           "`logical_xor()` operator instead.")


class DivInplace(InplaceSavingOriginal):
    """a /= b.  Saves: b (for either gradient), a clone of the original a (for b's gradient)."""

    node_name = "DivBackward0"
    saves = ("other", "self")

    @staticmethod
    def original_needed(needs_input_grad) -> bool:
        return needs_input_grad[1]

    @staticmethod
    def forward(ctx, a, b, original=None):
        _check_inplace(a, _float_dtype(_dt.result_type(a, b)), b)
        ctx.save_for_backward(b if isinstance(b, Tensor) else None, original)
        ctx.scalar_b = None if isinstance(b, Tensor) else b
        inplace("div_", a, b)
        ctx.mark_dirty(a)
        return a

    backward = Div.backward


class Zero(Function):
    """x.zero_().  Saves: nothing; the gradient is zero."""

    @staticmethod
    def forward(ctx, x):
        inplace("zero_", x)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return zeros_like(grad)


class FillScalar(Function):
    """x.fill_(value) with a Python number.  Saves: nothing; the gradient is zero."""

    node_name = "FillBackward2"

    @staticmethod
    def forward(ctx, x, value):
        inplace("fill_", x, value)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return zeros_like(grad), None


class FillTensor(Function):
    """x.fill_(value) with a 0-dim tensor.  Saves: nothing; value's gradient is grad.sum()."""

    node_name = "FillBackward3"

    @staticmethod
    def forward(ctx, x, value):
        if value.dim() != 0:
            raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.dim()} dimensions.")
        inplace("fill_", x, value)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        from .reduce import sum as _sum
        return (zeros_like(grad) if ctx.needs_input_grad[0] else None,
                _sum(grad) if ctx.needs_input_grad[1] else None)


# -- non-differentiable ops (bool results) -----------------------------------

def _bool_result(aten_name, *operands, **kwargs):
    """A comparison / logical / classification kernel: bool output, no autograd node (as in torch)."""
    tensors = [o for o in operands if isinstance(o, Tensor)]
    shape = broadcast_shapes(*(o.shape for o in tensors))
    out = kernel(aten_name, (shape, _dt.bool_, elementwise_strides(shape, tensors)), *operands, **kwargs)
    if autograd.is_inference_mode_enabled():
        out._inference = True
    return out


def eq(a, b):
    return _bool_result("eq", a, b)


def ne(a, b):
    return _bool_result("ne", a, b)


def lt(a, b):
    return _bool_result("lt", a, b)


def le(a, b):
    return _bool_result("le", a, b)


def gt(a, b):
    return _bool_result("gt", a, b)


def ge(a, b):
    return _bool_result("ge", a, b)


def logical_not(x):
    return _bool_result("logical_not", x)


def bitwise_not(x):
    """torch.bitwise_not / ``~x``: the logical not of a bool tensor, the bitwise not of an integer one (same
    dtype); torch has no floating kernel.  No autograd node (integer results), as in torch."""
    if x.dtype.is_floating_point:
        raise NotImplementedError(f'"bitwise_not_cpu" not implemented for \'{_dt.scalar_type_name(x.dtype)}\'')
    out = kernel("bitwise_not", (x.shape, x.dtype), x)
    if autograd.is_inference_mode_enabled():
        out._inference = True
    return out


def _invert(x):
    if x.dtype.is_floating_point:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return bitwise_not(x)


def logical_and(a, b):
    return _bool_result("logical_and", a, b)


def logical_or(a, b):
    return _bool_result("logical_or", a, b)


def logical_xor(a, b):
    return _bool_result("logical_xor", a, b)


def isnan(x):
    return ne(x, x)                     # torch's composite


def isinf(x):
    return _bool_result("isinf", x)


def isfinite(x):
    """torch's composite: (x == x) * (|x| != inf); the abs records a node saving x, as in torch."""
    if not x.dtype.is_floating_point:
        from ..creation import ones_like
        return ones_like(x, dtype=_dt.bool_)
    return mul(eq(x, x), ne(abs(x), math.inf))


# -- functional entry points ---------------------------------------------------

def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def log2(x):
    return Log2.apply(x)


def log1p(x):
    return Log1p.apply(x)


def expm1(x):
    return Expm1.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def rsqrt(x):
    return Rsqrt.apply(x)


def reciprocal(x):
    return Reciprocal.apply(x)


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def erf(x):
    return Erf.apply(x)


def erfinv(x):
    return Erfinv.apply(x)


def abs(x):  # noqa: A001 - torch's name
    return Abs.apply(x)


def sgn(x):
    return Sgn.apply(x)


def sign(x):
    return Sign.apply(x)


def floor(x):
    return Floor.apply(x)


def ceil(x):
    return Ceil.apply(x)


def trunc(x):
    return Trunc.apply(x)


def round(x, *, decimals=0):  # noqa: A001 - torch's name
    return Round.apply(x) if decimals == 0 else RoundDecimals.apply(x, decimals)


def pow(input, exponent):  # noqa: A001 - torch's name
    if isinstance(input, Tensor) and isinstance(exponent, Tensor):
        return PowTensorTensor.apply(input, exponent)
    if isinstance(input, Tensor):
        return PowTensorScalar.apply(input, exponent)
    if isinstance(exponent, Tensor):
        return PowScalarTensor.apply(input, exponent)
    raise TypeError("pow() expects at least one tensor argument")


def square(x):
    return pow(x, 2)


def _pow_inplace(x, exponent):
    if isinstance(exponent, Tensor):
        return PowTensorTensorInplace.apply(x, exponent)
    return PowTensorScalarInplace.apply(x, exponent)


def clamp(input, min=None, max=None):  # noqa: A002 - torch's names
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        if not all(b is None or isinstance(b, Tensor) for b in (min, max)):
            raise TypeError("clamp() received an invalid combination of arguments: min and max must both be "
                            "tensors or both numbers")
        return ClampTensor.apply(input, min, max)
    return Clamp.apply(input, min, max)


def _clamp_inplace(x, min=None, max=None):  # noqa: A002
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return ClampTensorInplace.apply(x, min, max)
    return ClampInplace.apply(x, min, max)


def clamp_min(input, min):  # noqa: A002
    if isinstance(min, Tensor):
        return ClampTensor.apply(input, min, None)
    return ClampMin.apply(input, min)


def clamp_max(input, max):  # noqa: A002
    if isinstance(max, Tensor):
        return ClampTensor.apply(input, None, max)
    return ClampMax.apply(input, max)


def minimum(input, other):
    _require_tensor("minimum", other)
    return Minimum.apply(input, other)


def maximum(input, other):
    _require_tensor("maximum", other)
    return Maximum.apply(input, other)


def lerp(input, end, weight):
    if isinstance(weight, Tensor):
        return LerpTensor.apply(input, end, weight)
    return LerpScalar.apply(input, end, weight)


def addcmul(input, tensor1, tensor2, *, value=1):
    return Addcmul.apply(input, tensor1, tensor2, value)


def addcdiv(input, tensor1, tensor2, *, value=1):
    return Addcdiv.apply(input, tensor1, tensor2, value)


def remainder(input, other):
    if not isinstance(input, Tensor):
        return RemainderScalarTensor.apply(input, other)
    if isinstance(other, Tensor):
        return Remainder.apply(input, other)
    return RemainderScalar.apply(input, other)


def floor_divide(input, other):
    if not isinstance(input, Tensor):
        from ..creation import full_like
        input = full_like(other, input, dtype=_dt.result_type(input, other))
    return FloorDivide.apply(input, other)


def _fill(x, value):
    return FillTensor.apply(x, value) if isinstance(value, Tensor) else FillScalar.apply(x, value)


def _reflected(fn):
    """``b <op> a`` for the reflected operators (``2 ** x``, ``7 % x``)."""
    return lambda a, b: fn(b, a)


def _method(fn_class):
    """A Tensor method running ``fn_class`` on the tensor (a bound classmethod would not receive self)."""
    return lambda self, *args: fn_class.apply(self, *args)


TENSOR_METHODS: dict = {
    "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "rsqrt": rsqrt, "reciprocal": reciprocal,
    "sin": sin, "cos": cos, "erf": erf, "abs": abs, "__abs__": abs, "sgn": sgn, "sign": sign,
    "floor": floor, "ceil": ceil, "trunc": trunc, "round": round,
    "log2": log2, "log2_": _method(Log2Inplace),
    "exp_": _method(ExpInplace), "log_": _method(LogInplace), "log1p_": _method(Log1pInplace),
    "expm1_": _method(Expm1Inplace), "sqrt_": _method(SqrtInplace), "rsqrt_": _method(RsqrtInplace),
    "reciprocal_": _method(ReciprocalInplace), "sin_": _method(SinInplace), "cos_": _method(CosInplace),
    "erfinv": erfinv, "erfinv_": _method(ErfinvInplace),
    "erf_": _method(ErfInplace), "abs_": _method(AbsInplace), "sign_": _method(SignInplace),
    "floor_": _method(FloorInplace), "ceil_": _method(CeilInplace), "trunc_": _method(TruncInplace),
    "round_": lambda x, *, decimals=0: _check_round_inplace(decimals) or RoundInplace.apply(x),
    "pow": pow, "pow_": _pow_inplace, "__pow__": pow, "__rpow__": _reflected(pow), "__ipow__": _pow_inplace,
    "square": square, "square_": lambda x: _pow_inplace(x, 2),
    "clamp": clamp, "clamp_": _clamp_inplace, "clip": clamp, "clip_": _clamp_inplace,
    "clamp_min": clamp_min, "clamp_min_": lambda x, min: ClampMinInplace.apply(x, min),
    "clamp_max": clamp_max, "clamp_max_": lambda x, max: ClampMaxInplace.apply(x, max),
    "minimum": minimum, "maximum": maximum,
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "logical_not": logical_not, "logical_and": logical_and, "logical_or": logical_or, "logical_xor": logical_xor,
    "bitwise_not": bitwise_not, "__invert__": _invert,
    "isnan": isnan, "isinf": isinf, "isfinite": isfinite,
    "lerp": lerp, "lerp_": lambda x, end, weight: _lerp_inplace(x, end, weight),
    "addcmul": addcmul, "addcdiv": addcdiv,
    "addcmul_": lambda x, tensor1, tensor2, *, value=1: AddcmulInplace.apply(x, tensor1, tensor2, value),
    "addcdiv_": lambda x, tensor1, tensor2, *, value=1: AddcdivInplace.apply(x, tensor1, tensor2, value),
    "remainder": remainder, "__mod__": remainder, "__rmod__": _reflected(remainder),
    "floor_divide": floor_divide, "__floordiv__": floor_divide, "__rfloordiv__": _reflected(floor_divide),
    "sub_": lambda x, other, *, alpha=1: SubInplace.apply(x, other, alpha),
    "__isub__": lambda x, other: SubInplace.apply(x, other),
    "div_": lambda x, other, *, rounding_mode=None: _div_inplace(x, other, rounding_mode),
    "__itruediv__": lambda x, other: DivInplace.apply(x, other),
    "divide": lambda x, other, *, rounding_mode=None: divide(x, other, rounding_mode=rounding_mode),
    "true_divide": lambda x, other: div(x, other),
    "zero_": _method(Zero), "fill_": _fill,
}


def _check_round_inplace(decimals):
    if decimals != 0:
        raise NotImplementedError("round_(decimals=...) is not supported yet")


def _lerp_inplace(x, end, weight):
    if isinstance(weight, Tensor):
        raise NotImplementedError("lerp_ with a tensor weight is not supported yet")
    return LerpScalarInplace.apply(x, end, weight)


def divide(input, other, *, rounding_mode=None):
    """torch.divide / torch.true_divide (aliases of torch.div): true division, or with ``rounding_mode``
    ("floor" | "trunc") the rounded quotient (piecewise constant: zero gradients)."""
    if rounding_mode is None:
        return div(input, other)
    if not isinstance(input, Tensor):
        raise TypeError("divide(): with rounding_mode the input must be a tensor")
    return DivRounding.apply(input, other, rounding_mode)


def _div_inplace(x, other, rounding_mode):
    if rounding_mode is not None:
        raise NotImplementedError("div_(rounding_mode=...) is not supported yet")
    return DivInplace.apply(x, other)


TORCH_FUNCTIONS: dict = {
    "log2": log2,
    "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "rsqrt": rsqrt, "reciprocal": reciprocal,
    "sin": sin, "cos": cos, "erf": erf, "erfinv": erfinv, "abs": abs, "sgn": sgn, "sign": sign,
    "floor": floor, "ceil": ceil, "trunc": trunc, "round": round,
    "pow": pow, "square": square, "clamp": clamp, "clip": clamp, "clamp_min": clamp_min, "clamp_max": clamp_max,
    "minimum": minimum, "maximum": maximum,
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    "logical_not": logical_not, "logical_and": logical_and, "logical_or": logical_or, "logical_xor": logical_xor,
    "bitwise_not": bitwise_not,
    "isnan": isnan, "isinf": isinf, "isfinite": isfinite,
    "lerp": lerp, "addcmul": addcmul, "addcdiv": addcdiv, "remainder": remainder, "floor_divide": floor_divide,
    "divide": divide, "true_divide": lambda input, other: div(input, other),
}
FUNCTIONAL: dict = {}
