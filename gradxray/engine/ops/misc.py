"""Dtype conversion and copies used by autograd itself."""
from __future__ import annotations

from ..function import Function
from ._kernel import kernel


class ToCopy(Function):
    """y = x.to(dtype) (a copy).  Saves: nothing (the source dtype)."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.src = x.dtype
        return kernel("_to_copy", (x.shape, dtype), x, dtype=dtype)

    @staticmethod
    def backward(ctx, grad):
        return to_dtype(grad, ctx.src), None


def to_dtype(x, dtype):
    if dtype is None or dtype is x.dtype:
        return x
    return ToCopy.apply(x, dtype)


def clone_like_param(grad, param):
    """torch's clone_obey_contract: a gradient copy with the parameter's strides."""
    from .views import Clone
    return Clone.apply(grad)
