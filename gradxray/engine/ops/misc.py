"""Dtype conversion and copies used by autograd itself."""
from __future__ import annotations

from ..function import Function
from ._kernel import kernel


class ToCopy(Function):
    """y = x.to(dtype, device) (a copy; a dense input keeps its strides, as torch's preserve_format).
    Saves: nothing (the source dtype and device)."""

    @staticmethod
    def forward(ctx, x, dtype, device=None):
        ctx.src_dtype, ctx.src_device = x.dtype, x.device
        dtype = dtype or x.dtype
        strides = x.stride() if x.is_non_overlapping_and_dense() else None
        kwargs = {"dtype": dtype}
        if device is not None and device != x.device:
            kwargs["device"] = device
        return kernel("_to_copy", (x.shape, dtype, strides) if strides is not None else (x.shape, dtype), x,
                      **kwargs)

    @staticmethod
    def backward(ctx, grad):
        return to_copy(grad, ctx.src_dtype, ctx.src_device), None, None


def to_copy(x, dtype=None, device=None):
    """x converted to ``dtype`` and/or moved to ``device``; x itself when nothing changes (as torch)."""
    from ..tensor import device as _device
    device = _device(device) if device is not None else None
    same_device = device is None or device == x.device
    if (dtype is None or dtype is x.dtype) and same_device:
        return x
    return ToCopy.apply(x, dtype, None if same_device else device)


def to_dtype(x, dtype):
    return to_copy(x, dtype)


def clone_like_param(grad, param):
    """torch's clone_obey_contract: a gradient copy with the parameter's strides."""
    from .views import Clone
    return Clone.apply(grad)
