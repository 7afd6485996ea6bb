"""Running a kernel: meta (shape/dtype) always, data when the inputs carry data."""
from __future__ import annotations

from .. import backends, memory
from ..flops import kernel_flops
from ..tensor import Tensor


def first_device(args):
    for a in args:
        if isinstance(a, Tensor):
            return a.device
        if isinstance(a, (list, tuple)):
            d = first_device(a)
            if d is not None:
                return d
    return None


def kernel(aten_name: str, metas, *args, **kwargs):
    """Allocate the outputs described by ``metas`` ((shape, dtype) or a list of them).

    With data, ``torch.ops.aten.<aten_name>(*args, **kwargs)`` computes them and
    the meta shapes are checked against the kernel's (shape inference is tested by
    every run on the torch backend)."""
    single = not isinstance(metas, list)
    metas = [metas] if single else metas
    dev = first_device(args) or first_device(list(kwargs.values()))
    if backends.any_data(*args, *kwargs.values()):
        res = backends.aten(aten_name, *args, **kwargs)
        res = res if isinstance(res, (tuple, list)) else (res,)
        outs = []
        for (shape, dtype, *_), r in zip(metas, res):
            if tuple(r.shape) != tuple(int(s) for s in shape):
                raise AssertionError(f"shape inference for {aten_name}: {tuple(shape)} but torch gives {tuple(r.shape)}")
            outs.append(Tensor._new(shape, backends.from_torch_dtype(r.dtype), dev, data=r, stride=r.stride()))
    else:
        outs = [Tensor._new(m[0], m[1], dev, stride=m[2] if len(m) > 2 else None) for m in metas]
    if memory.active_trackers():
        memory.flops(kernel_flops(aten_name, args, outs))
    return outs[0] if single else tuple(outs)


def strides_like(shape, ref) -> tuple:
    """Contiguous strides for ``shape`` laid out in the memory order of ``ref`` (torch's empty_like)."""
    order = sorted(range(len(shape)), key=lambda d: (-int(ref.stride()[d]), d))
    strides = [0] * len(shape)
    acc = 1
    for d in reversed(order):
        strides[d] = acc
        acc *= max(int(shape[d]), 1)
    return tuple(strides)


def inplace(aten_name: str, target: Tensor, *args, **kwargs) -> Tensor:
    """Run an in-place kernel on ``target`` (its storage is reused; no allocation)."""
    if target.data_ is not None:
        backends.aten(aten_name, target, *args, **kwargs)
    return target


def view(x: Tensor, shape, stride, offset, aten_name: str, *args, **kwargs) -> Tensor:
    data = None
    if x.data_ is not None:
        data = backends.aten(aten_name, x, *args, **kwargs)
    return x._view(shape, stride, offset, data)
