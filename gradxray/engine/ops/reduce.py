"""Reductions: sum, mean, var/std (+ _mean), max/min, amax/amin, argmax/argmin, logsumexp, vector norms,
cumsum/cumprod, prod, all/any, count_nonzero.

Each backward follows torch's formula (FunctionsManual) op for op, written with engine ops so that it is
itself differentiable.  Pointwise helpers (exp, sign, comparisons, masked_fill_, flip, scatter_ ...) are
reached through their Tensor methods, the same surface torch's formulas use."""
from __future__ import annotations

import math
import types
from collections import namedtuple

from .. import dtypes as _dt
from ..creation import new_zeros
from ..function import Function
from ..symbolic import sym_prod
from ..tensor import Tensor, wrap_dim
from ._kernel import kernel


def _dims(x, dim):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(x.dim()))
    if isinstance(dim, int):
        dim = [dim]
    return sorted(wrap_dim(d, x.dim()) for d in dim)


def _reduced_shape(x, dims, keepdim):
    return [1 if i in dims else s for i, s in enumerate(x.shape)] if keepdim else \
        [s for i, s in enumerate(x.shape) if i not in dims]


def _unsqueeze_dims(t, dims):
    """torch's unsqueeze_multiple: put back the reduced (sorted) dims as size-1 dims."""
    from .views import unsqueeze
    for d in dims:
        t = unsqueeze(t, d)
    return t


def _expand_back(grad, in_shape, dims, keepdim):
    from .views import expand
    if not keepdim:
        grad = _unsqueeze_dims(grad, dims)
    return expand(grad, in_shape)


def _require_float(dtype, what):
    if not dtype.is_floating_point:
        raise RuntimeError(f"{what}(): could not infer output dtype. Input dtype must be either a floating point "
                           f"or complex dtype. Got: {_dt.scalar_type_name(dtype)}")



def _sum_dtype(x, dtype):
    """Integral inputs sum/prod/cumsum to int64 unless a dtype is given (torch's promotion)."""
    if dtype is not None:
        return dtype
    return x.dtype if x.dtype.is_floating_point else _dt.int64


# -- sum / mean -------------------------------------------------------------

class SumAll(Function):
    """y = x.sum() over every element.  Saves: nothing (sizes)."""

    node_name = "SumBackward0"

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.in_shape = x.shape
        return kernel("sum", ((), _sum_dtype(x, dtype)), x, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        from .views import expand
        return expand(grad, ctx.in_shape), None


class Sum(Function):
    """y = x.sum(dims, keepdim).  Saves: nothing (sizes)."""

    node_name = "SumBackward1"

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, dtype=None):
        dims = _dims(x, dim)
        ctx.in_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return kernel("sum", (_reduced_shape(x, dims, keepdim), _sum_dtype(x, dtype)), x, dims, keepdim,
                      dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.in_shape, ctx.dims, ctx.keepdim), None, None, None


class MeanAll(Function):
    """y = x.mean() over every element.  Saves: nothing (sizes)."""

    node_name = "MeanBackward0"

    @staticmethod
    def forward(ctx, x, dtype=None):
        ctx.in_shape = x.shape
        return kernel("mean", ((), dtype or x.dtype), x, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import div
        from .views import expand
        return div(expand(grad, ctx.in_shape), sym_prod(ctx.in_shape)), None


class Mean(Function):
    """y = x.mean(dims, keepdim).  Saves: nothing (sizes)."""

    node_name = "MeanBackward1"

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, dtype=None):
        dims = _dims(x, dim)
        ctx.in_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        ctx.count = sym_prod(x.shape[d] for d in dims)
        return kernel("mean", (_reduced_shape(x, dims, keepdim), dtype or x.dtype), x, dims, keepdim,
                      dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import div
        return div(_expand_back(grad, ctx.in_shape, ctx.dims, ctx.keepdim), ctx.count), None, None, None


# -- variance and standard deviation -----------------------------------------

def _var_backward(grad, x, dims, full, correction, keepdim):
    """torch's var_backward: 2 / (n - correction) * grad * (x - x.mean(dims, keepdim=True))."""
    from .pointwise import mul, sub
    if x.dim() == 0 or full:
        n = sym_prod(x.shape)
        centered = sub(x, mean(x))
    else:
        if not keepdim and x.dim() > 1:
            grad = _unsqueeze_dims(grad, dims)
        n = sym_prod(x.shape[d] for d in dims)
        centered = sub(x, mean(x, dims, keepdim=True))
    dof = n - correction
    scale = 2.0 / dof if dof > 0 else math.nan    # torch: n == correction gives inf * 0 = nan gradients
    return mul(mul(grad, scale), centered)


def _std_backward(result, grad, x, dims, full, correction, keepdim):
    """torch's std_backward: var_backward((grad / (2 * std)).masked_fill_(std == 0, 0))."""
    from .pointwise import div, mul
    grad_var = div(grad, mul(result, 2)).masked_fill_(result == 0, 0)
    return _var_backward(grad_var, x, dims, full, correction, keepdim)


def _mean_backward(grad, x, dims, keepdim):
    from .pointwise import div
    return div(_expand_back(grad, x.shape, dims, keepdim), sym_prod(x.shape[d] for d in dims))


class _Moments(Function):
    """Shared forward of var / std / var_mean / std_mean (one aten kernel each)."""

    aten = ""

    @classmethod
    def run(cls, ctx, x, dim, correction, keepdim):
        if not x.dtype.is_floating_point:
            raise RuntimeError("std and var only support floating point and complex dtypes")
        dims = _dims(x, dim)
        ctx.dims, ctx.full, ctx.correction, ctx.keepdim = dims, dim is None, correction, keepdim
        meta = (_reduced_shape(x, dims, keepdim), x.dtype)
        metas = [meta, meta] if cls.aten.endswith("_mean") else meta
        return kernel(cls.aten, metas, x, None if dim is None else dims, correction=correction, keepdim=keepdim)


class Var(_Moments):
    """y = x.var(dims, correction, keepdim).  Saves: self."""

    saves = ("self",)
    aten = "var"

    @classmethod
    def forward(cls, ctx, x, dim, correction, keepdim):
        ctx.save_for_backward(x)
        return cls.run(ctx, x, dim, correction, keepdim)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _var_backward(grad, x, ctx.dims, ctx.full, ctx.correction, ctx.keepdim), None, None, None


class Std(_Moments):
    """y = x.std(dims, correction, keepdim).  Saves: self, result."""

    saves = ("self", "result")
    aten = "std"

    @classmethod
    def forward(cls, ctx, x, dim, correction, keepdim):
        y = cls.run(ctx, x, dim, correction, keepdim)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return _std_backward(y, grad, x, ctx.dims, ctx.full, ctx.correction, ctx.keepdim), None, None, None


class VarMean(_Moments):
    """(var, mean) = torch.var_mean(x, ...).  Saves: self."""

    saves = ("self",)
    aten = "var_mean"

    @classmethod
    def forward(cls, ctx, x, dim, correction, keepdim):
        ctx.save_for_backward(x)
        return cls.run(ctx, x, dim, correction, keepdim)

    @staticmethod
    def backward(ctx, grad_var, grad_mean):
        (x,) = ctx.saved_tensors
        return _moments_backward(ctx, x, grad_mean, grad_var is not None and
                                 _var_backward(grad_var, x, ctx.dims, ctx.full, ctx.correction, ctx.keepdim))


class StdMean(_Moments):
    """(std, mean) = torch.std_mean(x, ...).  Saves: self, result0 (the std)."""

    saves = ("self", "result0")
    aten = "std_mean"

    @classmethod
    def forward(cls, ctx, x, dim, correction, keepdim):
        std, m = cls.run(ctx, x, dim, correction, keepdim)
        ctx.save_for_backward(x, std)
        return std, m

    @staticmethod
    def backward(ctx, grad_std, grad_mean):
        x, std = ctx.saved_tensors
        return _moments_backward(ctx, x, grad_mean, grad_std is not None and
                                 _std_backward(std, grad_std, x, ctx.dims, ctx.full, ctx.correction, ctx.keepdim))


def _moments_backward(ctx, x, grad_mean, grad_from_spread):
    """var_mean_backward / std_mean_backward: the spread's gradient plus mean_backward(grad_mean)."""
    from .pointwise import add
    grad = grad_from_spread if isinstance(grad_from_spread, Tensor) else None
    if grad_mean is not None:
        aux = _mean_backward(grad_mean, x, ctx.dims, ctx.keepdim)
        grad = aux if grad is None else add(grad, aux)
    return grad, None, None, None


def _correction(unbiased, correction):
    if unbiased is not None and correction is not None:
        raise RuntimeError("Cannot specify both unbiased and correction")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _moments_args(dim, unbiased):
    """torch accepts var(x, unbiased) with a bool in the dim position."""
    if isinstance(dim, bool):
        return None, dim
    return dim, unbiased


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _moments_args(dim, unbiased)
    return Var.apply(input, dim, _correction(unbiased, correction), keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _moments_args(dim, unbiased)
    return Std.apply(input, dim, _correction(unbiased, correction), keepdim)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _moments_args(dim, unbiased)
    return VarMean.apply(input, dim, _correction(unbiased, correction), keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _moments_args(dim, unbiased)
    return StdMean.apply(input, dim, _correction(unbiased, correction), keepdim)


# -- max / min ---------------------------------------------------------------

MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def _check_nonempty_reduce(x, name, dim=None):
    if int(x.numel()) != 0:
        return
    if dim is None:
        message = f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
        if name.startswith("arg"):
            raise IndexError(message)
        raise RuntimeError(message + " Specify the reduction dim with the 'dim' argument.")
    if x.dim() > 0 and int(x.shape[dim]) == 0:
        raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size.")


class _ExtremumAll(Function):
    """max() / min() of every element.  Saves: self, result."""

    saves = ("self", "result")
    aten = ""

    @classmethod
    def forward(cls, ctx, x):
        _check_nonempty_reduce(x, cls.aten)
        y = kernel(cls.aten, ((), x.dtype), x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return _evenly_distribute_backward(grad, x, y)


def _evenly_distribute_backward(grad, x, value):
    """Ties share the gradient equally (torch's CPU formula: zeros, then masked_fill_ with grad / count)."""
    from .pointwise import div
    value_is_nan = value.data_ is not None and bool(value.isnan())     # the shape backend assumes no nan
    mask = x.isnan() if value_is_nan else x == value
    return new_zeros(grad, x.shape).masked_fill_(mask, div(grad, sum(mask)))


class MaxAll(_ExtremumAll):
    __doc__ = _ExtremumAll.__doc__
    node_name = "MaxBackward1"
    aten = "max"


class MinAll(_ExtremumAll):
    __doc__ = _ExtremumAll.__doc__
    node_name = "MinBackward1"
    aten = "min"


class _ExtremumDim(Function):
    """(values, indices) = max/min(x, dim, keepdim).  Saves: indices (int64)."""

    saves = ("result1",)
    aten = ""

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        dim = wrap_dim(dim, x.dim())
        _check_nonempty_reduce(x, cls.aten, dim)
        shape = _reduced_shape(x, [dim], keepdim)
        values, indices = kernel(cls.aten, [(shape, x.dtype), (shape, _dt.int64)], x, dim, keepdim)
        ctx.save_for_backward(indices)
        ctx.mark_non_differentiable(indices)
        ctx.dim, ctx.keepdim, ctx.in_shape = dim, keepdim, x.shape
        return values, indices

    @staticmethod
    def backward(ctx, grad, _grad_indices=None):
        (indices,) = ctx.saved_tensors
        return _value_selecting_backward(grad, ctx.dim, indices, ctx.in_shape, ctx.keepdim), None, None


def _value_selecting_backward(grad, dim, indices, in_shape, keepdim):
    """torch's value_selecting_reduction_backward: scatter grad into zeros at the selected indices."""
    from .views import unsqueeze
    if not keepdim and len(in_shape) > 0:
        indices, grad = unsqueeze(indices, dim), unsqueeze(grad, dim)
    return new_zeros(grad, in_shape).scatter_(dim, indices, grad)


class MaxDim(_ExtremumDim):
    __doc__ = _ExtremumDim.__doc__
    node_name = "MaxBackward0"
    aten = "max"


class MinDim(_ExtremumDim):
    __doc__ = _ExtremumDim.__doc__
    node_name = "MinBackward0"
    aten = "min"


def _extremum(x, dim, keepdim, all_cls, dim_cls, result_type, binary_name):
    if isinstance(dim, Tensor):       # torch.max(input, other) is maximum(input, other)
        from .. import ops
        return ops.TORCH_FUNCTIONS[binary_name](x, dim)
    if dim is None:
        if keepdim:
            raise TypeError(f"{all_cls.aten}() received an invalid combination of arguments: keepdim without dim")
        return all_cls.apply(x)
    return result_type(*dim_cls.apply(x, dim, keepdim))


def max(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    return _extremum(input, dim, keepdim, MaxAll, MaxDim, MaxResult, "maximum")


def min(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    return _extremum(input, dim, keepdim, MinAll, MinDim, MinResult, "minimum")


class _AmaxAmin(Function):
    """y = amax/amin(x, dims, keepdim); ties share the gradient.  Saves: self, result."""

    saves = ("self", "result")
    aten = ""

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        dims = _dims(x, dim)
        for d in dims:
            if x.dim() > 0 and int(x.shape[d]) == 0:
                raise IndexError(f"{cls.aten}(): Expected reduction dim {d} to have non-zero size.")
        y = kernel(cls.aten, (_reduced_shape(x, dims, keepdim), x.dtype), x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import div, mul
        x, y = ctx.saved_tensors
        dims = ctx.dims
        # torch's restore_reduced_dims + scale_grad_by_count: (grad / mask.sum(dims, True)) * mask
        grad = _restore_reduced_dims(grad, dims, ctx.keepdim)
        mask = _restore_reduced_dims(y, dims, ctx.keepdim) == x
        return mul(div(grad, sum(mask, dims, keepdim=True)), mask), None, None


def _restore_reduced_dims(t, dims, keepdim):
    if keepdim:
        return t
    from .views import reshape
    total = t.dim() + len(dims)
    shape, rest = [], iter(t.shape)
    for i in range(total):
        shape.append(1 if i in dims else next(rest))
    return reshape(t, shape)


class Amax(_AmaxAmin):
    __doc__ = _AmaxAmin.__doc__
    aten = "amax"


class Amin(_AmaxAmin):
    __doc__ = _AmaxAmin.__doc__
    aten = "amin"


def amax(input, dim=(), keepdim=False):
    return Amax.apply(input, dim, keepdim)


def amin(input, dim=(), keepdim=False):
    return Amin.apply(input, dim, keepdim)


class _ArgExtremum(Function):
    """indices = argmax/argmin(x, dim, keepdim): int64, not differentiable.  Saves: nothing."""

    aten = ""

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        if dim is None:
            _check_nonempty_reduce(x, cls.aten)
            shape = [1] * x.dim() if keepdim else []
        else:
            dim = wrap_dim(dim, x.dim())
            _check_nonempty_reduce(x, cls.aten, dim)
            shape = _reduced_shape(x, [dim], keepdim)
        return kernel(cls.aten, (shape, _dt.int64), x, dim, keepdim)


class Argmax(_ArgExtremum):
    __doc__ = _ArgExtremum.__doc__
    aten = "argmax"


class Argmin(_ArgExtremum):
    __doc__ = _ArgExtremum.__doc__
    aten = "argmin"


def argmax(input, dim=None, keepdim=False):
    return Argmax.apply(input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return Argmin.apply(input, dim, keepdim)


# -- logsumexp and norms -----------------------------------------------------

class Logsumexp(Function):
    """y = log(sum(exp(x), dims)).  Saves: self, result."""

    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        dims = _dims(x, dim)
        # integral inputs give the default float dtype
        out_dtype = x.dtype if x.dtype.is_floating_point else _dt.default_float
        y = kernel("logsumexp", (_reduced_shape(x, dims, keepdim), out_dtype), x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import mul, sub
        x, y = ctx.saved_tensors
        if not ctx.keepdim and x.dim() != 0:
            grad, y = _unsqueeze_dims(grad, ctx.dims), _unsqueeze_dims(y, ctx.dims)
        return mul(grad, sub(x, y).exp()), None, None


def logsumexp(input, dim, keepdim=False):
    return Logsumexp.apply(input, dim, keepdim)


class LinalgVectorNorm(Function):
    """y = ||x||_ord over dims (ord 2, 1, inf, -inf, 0 or any p).  Saves: self, result."""

    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x, ord, dim, keepdim, dtype):
        if not x.dtype.is_floating_point:
            raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor as input. "
                               f"Got {_dt.scalar_type_name(x.dtype)}")
        dims = _dims(x, dim)
        if ord < 0 and int(x.numel()) == 0:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {ord} norm on an empty tensor because "
                               "the operation does not have an identity")
        y = kernel("linalg_vector_norm", (_reduced_shape(x, dims, keepdim), dtype or x.dtype), x, ord,
                   None if dim is None else dims, keepdim, dtype=dtype)
        ctx.save_for_backward(x, y)
        ctx.ord, ctx.dims, ctx.keepdim = float(ord), dims, keepdim
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return _norm_backward(grad, x, ctx.ord, y, ctx.dims, ctx.keepdim), None, None, None, None


def _norm_backward(grad, x, p, norm, dims, keepdim):
    """torch's norm_backward, case by case on p."""
    from .pointwise import div, mul
    if not keepdim and x.dim() != 0:
        grad, norm = _unsqueeze_dims(grad, dims), _unsqueeze_dims(norm, dims)
    if p == 0.0:
        return None
    if p == 1.0:
        return mul(x.sign(), grad)
    if p == 2.0:
        return mul(grad, div(x, norm).masked_fill_(norm == 0, 0))
    if math.isinf(p):
        # the gradient of amax(|x|): shared by the entries where |x| reaches the norm (or is nan)
        x_abs = x.abs()
        mask = (x_abs == norm).logical_or(x_abs.isnan())
        return mul(x.sign(), mul(div(grad, sum(mask, dims, keepdim=True)), mask))
    if p < 1.0:
        scaled = mul(x.sign(), x.abs().pow_(p - 1).masked_fill_(x == 0, 0))
        return mul(mul(scaled, grad), norm.pow(1 - p))
    if p < 2.0:
        scaled = mul(x.sign(), x.abs().pow_(p - 1))
    else:
        scaled = mul(x, x.abs().pow_(p - 2))
    scale = div(grad, norm.pow(p - 1)).masked_fill_(norm == 0, 0)
    return mul(scaled, scale)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    return LinalgVectorNorm.apply(x, ord, dim, keepdim, dtype)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm: numeric p and "fro" over at most two dims go to linalg.vector_norm ("fro" is the 2-norm)."""
    if isinstance(p, str):
        if p != "fro" or (dim is not None and not isinstance(dim, int) and len(dim) > 2):
            raise NotImplementedError(f"torch.norm with p={p!r} over a matrix (linalg.matrix_norm) is not "
                                      "supported yet")
        p = 2
    if p is None:
        p = 2
    return vector_norm(input, p, dim, keepdim, dtype=dtype)


# -- cumulative ops and products ---------------------------------------------

class Cumsum(Function):
    """y = x.cumsum(dim).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, dim, dtype=None):
        dim = wrap_dim(dim, x.dim())
        ctx.dim, ctx.in_dtype = dim, x.dtype
        return kernel("cumsum", (x.shape, _sum_dtype(x, dtype)), x, dim, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        from .misc import to_dtype
        grad = to_dtype(grad, ctx.in_dtype)
        if int(grad.numel()) <= 1 or grad.dim() == 0 or int(grad.shape[ctx.dim]) == 1:
            return grad, None, None
        return _reversed_cumsum(grad, ctx.dim), None, None


def _reversed_cumsum(t, dim):
    return cumsum(t.flip(dim), dim).flip(dim)


def cumsum(input, dim, *, dtype=None):
    return Cumsum.apply(input, dim, dtype)


class Cumprod(Function):
    """y = x.cumprod(dim).  Saves: self, result."""

    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x, dim, dtype=None):
        dim = wrap_dim(dim, x.dim())
        ctx.dim, ctx.in_dtype = dim, x.dtype
        y = kernel("cumprod", (x.shape, _sum_dtype(x, dtype)), x, dim, dtype=dtype)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        from .misc import to_dtype
        x, y = ctx.saved_tensors
        return _cumprod_backward(to_dtype(grad, ctx.in_dtype), x, ctx.dim, y), None, None


def _cumprod_backward(grad, x, dim, output):
    """torch's cumprod_backward.  Without zeros: reversed_cumsum(grad * output) / x.  With zeros, torch's
    differentiable O(n^2) form (used whenever grad mode is on; its O(n) no-grad variant gives the same
    values): grad_x[k] = sum_{j >= k} grad[j] * prod_{i <= j, i != k} x[i]."""
    from .pointwise import div, mul
    from .views import cat, expand, narrow
    if int(x.numel()) <= 1 or x.dim() == 0 or int(x.shape[dim]) == 1:
        return grad
    if _zero_count(x) == 0:
        return div(_reversed_cumsum(mul(output, grad), dim), x)
    size = int(x.shape[dim])
    ones_shape = list(x.shape)
    ones_shape[dim] = 1
    ones = _ones(grad, ones_shape)
    slices = []
    for k in range(size):
        if k == 0:
            omitted = cat([ones, cumprod(narrow(x, dim, 1, size - 1), dim)], dim)
        else:
            prods_until_k = prod(narrow(x, dim, 0, k), dim, keepdim=True)
            if k == size - 1:
                omitted = prods_until_k
            else:
                prods_from_k_plus_1 = cumprod(narrow(x, dim, k + 1, size - k - 1), dim)
                omitted = mul(expand(prods_until_k, prods_from_k_plus_1.shape), prods_from_k_plus_1)
                omitted = cat([prods_until_k, omitted], dim)
        slices.append(sum(mul(narrow(grad, dim, k, size - k), omitted), dim, keepdim=True))
    return cat(slices, dim)


def _ones(ref, shape):
    from ..creation import _filled, _like
    return _like(_filled("ones"), ref, shape=tuple(shape))


class ProdAll(Function):
    """y = x.prod() over every element.  Saves: self, result."""

    node_name = "ProdBackward0"
    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x, dtype=None):
        y = kernel("prod", ((), _sum_dtype(x, dtype)), x, dtype=dtype)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        from .. import autograd
        from ..creation import zeros_like
        from .misc import to_dtype
        from .pointwise import div, mul
        from .views import reshape
        x, y = ctx.saved_tensors
        x = to_dtype(x, grad.dtype)
        if x.dim() == 0:
            return grad, None
        zero_count = _zero_count(x)
        if zero_count == 0:
            return mul(grad, div(y, x)), None
        if zero_count > 1 and not autograd.is_grad_enabled():
            return zeros_like(x), None        # every partial product holds a zero; torch skips the work
        flat = reshape(x.contiguous(), [-1])
        return reshape(_prod_safe_zeros_backward(grad, flat, 0), x.shape), None


class ProdDim(Function):
    """y = x.prod(dim, keepdim).  Saves: self, result."""

    node_name = "ProdBackward1"
    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x, dim, keepdim=False, dtype=None):
        dim = wrap_dim(dim, x.dim())
        ctx.dim, ctx.keepdim = dim, keepdim
        y = kernel("prod", (_reduced_shape(x, [dim], keepdim), _sum_dtype(x, dtype)), x, dim, keepdim,
                   dtype=dtype)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        from .misc import to_dtype
        from .pointwise import div, mul
        from .views import unsqueeze
        x, y = ctx.saved_tensors
        x = to_dtype(x, grad.dtype)
        if x.dim() == 0:
            return grad, None, None, None
        if not ctx.keepdim:
            grad, y = unsqueeze(grad, ctx.dim), unsqueeze(y, ctx.dim)
        if _zero_count(x) == 0:
            return mul(grad, div(y, x)), None, None, None
        return _prod_safe_zeros_backward(grad, x, ctx.dim), None, None, None


def _zero_count(x) -> int:
    """torch branches on the number of zeros in the data; the shape backend takes the common no-zeros path."""
    return int(sum(x == 0).item()) if x.data_ is not None else 0


def _prod_safe_zeros_backward(grad, x, dim):
    """Gradient of a product that may contain zeros: grad * (exclusive prefix product * exclusive suffix
    product), both built with cumprod so they stay differentiable."""
    from .pointwise import mul
    from .views import cat, expand, narrow
    if int(x.numel()) == 0:
        return expand(grad, x.shape)
    ones_shape = list(x.shape)
    ones_shape[dim] = 1
    ones = _ones(grad, ones_shape)
    size = x.shape[dim]
    exclusive_normal = cumprod(cat([ones, narrow(x, dim, 0, size - 1)], dim), dim)
    narrow_reverse = narrow(x, dim, 1, size - 1).flip(dim)
    exclusive_reverse = cumprod(cat([ones, narrow_reverse], dim), dim).flip(dim)
    return mul(grad, mul(exclusive_normal, exclusive_reverse))


def cumprod(input, dim, *, dtype=None):
    return Cumprod.apply(input, dim, dtype)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    if dim is None:
        return ProdAll.apply(input, dtype)
    return ProdDim.apply(input, dim, keepdim, dtype)


# -- boolean reductions --------------------------------------------------------

class _BoolReduction(Function):
    """all / any: bool results (uint8 for uint8 inputs), not differentiable.  Saves: nothing."""

    aten = ""

    @classmethod
    def forward(cls, ctx, x, dim, keepdim):
        out_dtype = _dt.uint8 if x.dtype is _dt.uint8 else _dt.bool_
        if dim is None:
            return kernel(cls.aten, ((), out_dtype), x)
        dims = _dims(x, dim)
        return kernel(cls.aten, (_reduced_shape(x, dims, keepdim), out_dtype), x, dims, keepdim)


class All(_BoolReduction):
    __doc__ = _BoolReduction.__doc__
    aten = "all"


class Any(_BoolReduction):
    __doc__ = _BoolReduction.__doc__
    aten = "any"


def all(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    return All.apply(input, dim, keepdim)


def any(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    return Any.apply(input, dim, keepdim)


class CountNonzero(Function):
    """n = count_nonzero(x, dims): int64, not differentiable.  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, dim):
        dims = _dims(x, dim)
        return kernel("count_nonzero", (_reduced_shape(x, dims, False), _dt.int64), x,
                      dims if dim is not None else None)


def count_nonzero(input, dim=None):
    return CountNonzero.apply(input, dim)


# -- entry points --------------------------------------------------------------

def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001 - torch's name
    if dim is None and not keepdim:
        return SumAll.apply(x, dtype)
    return Sum.apply(x, dim, keepdim, dtype)


def mean(x, dim=None, keepdim=False, dtype=None):
    _require_float(dtype or x.dtype, "mean")
    if dim is None and not keepdim:
        return MeanAll.apply(x, dtype)
    return Mean.apply(x, dim, keepdim, dtype)


linalg = types.ModuleType("gradxray.engine.linalg", "torch.linalg's vector norm on the engine.")
linalg.vector_norm = vector_norm

# sum and mean are registered by ``ops/__init__`` itself (autograd's own code paths use them).
TENSOR_METHODS: dict = {
    "var": lambda self, dim=None, unbiased=None, keepdim=False, *, correction=None:
        var(self, dim, unbiased, keepdim, correction=correction),
    "std": lambda self, dim=None, unbiased=None, keepdim=False, *, correction=None:
        std(self, dim, unbiased, keepdim, correction=correction),
    "max": lambda self, dim=None, keepdim=False: max(self, dim, keepdim),
    "min": lambda self, dim=None, keepdim=False: min(self, dim, keepdim),
    "amax": lambda self, dim=(), keepdim=False: amax(self, dim, keepdim),
    "amin": lambda self, dim=(), keepdim=False: amin(self, dim, keepdim),
    "argmax": lambda self, dim=None, keepdim=False: argmax(self, dim, keepdim),
    "argmin": lambda self, dim=None, keepdim=False: argmin(self, dim, keepdim),
    "logsumexp": lambda self, dim, keepdim=False: logsumexp(self, dim, keepdim),
    "norm": lambda self, p="fro", dim=None, keepdim=False, dtype=None: norm(self, p, dim, keepdim, dtype),
    "cumsum": lambda self, dim, *, dtype=None: cumsum(self, dim, dtype=dtype),
    "cumprod": lambda self, dim, *, dtype=None: cumprod(self, dim, dtype=dtype),
    "prod": lambda self, dim=None, keepdim=False, *, dtype=None: prod(self, dim, keepdim, dtype=dtype),
    "all": lambda self, dim=None, keepdim=False: all(self, dim, keepdim),
    "any": lambda self, dim=None, keepdim=False: any(self, dim, keepdim),
    "count_nonzero": lambda self, dim=None: count_nonzero(self, dim),
}
TORCH_FUNCTIONS: dict = {
    "var": var, "std": std, "var_mean": var_mean, "std_mean": std_mean, "max": max, "min": min,
    "amax": amax, "amin": amin, "argmax": argmax, "argmin": argmin, "logsumexp": logsumexp, "norm": norm,
    "cumsum": cumsum, "cumprod": cumprod, "prod": prod, "all": all, "any": any, "count_nonzero": count_nonzero,
    "linalg": linalg,
}
FUNCTIONAL: dict = {}
