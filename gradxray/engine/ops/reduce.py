"""Reductions."""
from __future__ import annotations

from .. import dtypes as _dt
from ..function import Function
from ..symbolic import sym_prod
from ..tensor import wrap_dim
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


class Sum(Function):
    """y = x.sum(dims).  Saves: nothing (sizes)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, dtype=None):
        dims = _dims(x, dim)
        ctx.in_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        out_dtype = dtype or (x.dtype if x.dtype.is_floating_point else _dt.int64)
        return kernel("sum", (_reduced_shape(x, dims, keepdim), out_dtype), x, dims, keepdim,
                      dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx.in_shape, ctx.dims, ctx.keepdim), None, None, None


class Mean(Function):
    """y = x.mean(dims).  Saves: nothing (sizes)."""

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
        return div(_expand_back(grad, ctx.in_shape, ctx.dims, ctx.keepdim), int(ctx.count)), None, None, None


def _expand_back(grad, in_shape, dims, keepdim):
    from .views import expand, unsqueeze
    if not keepdim:
        for d in dims:
            grad = unsqueeze(grad, d)
    return expand(grad, in_shape)


def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001 - torch's name
    return Sum.apply(x, dim, keepdim, dtype)


def mean(x, dim=None, keepdim=False, dtype=None):
    return Mean.apply(x, dim, keepdim, dtype)
