"""Running a kernel: meta (shape/dtype) always, data when the inputs carry data (numpy or torch)."""
from __future__ import annotations

from .. import backends, memory
from ..flops import kernel_flops
from ..layout import iterator_strides
from ..tensor import Tensor, contiguous_strides


def first_device(args):
    for a in args:
        if isinstance(a, Tensor):
            return a.device
        if isinstance(a, (list, tuple)):
            d = first_device(a)
            if d is not None:
                return d
    return None


def _run_data(aten_name, metas, kind, args, kwargs):
    """The kernel's outputs on the data backend ``kind``: (data, engine dtype, strides) or None where a
    masked kernel leaves an output undefined.  Shapes are checked against the meta's."""
    if kind == "numpy":
        from ..backends import numpy_kernels
        res = numpy_kernels.run(aten_name, metas, args, kwargs)
        return [None if r is None else (r, m[1], numpy_kernels.element_strides(r)) for m, r in zip(metas, res)]
    res = backends.aten(aten_name, *args, **kwargs)
    res = res if isinstance(res, (tuple, list)) else (res,)
    outs = []
    for meta, r in zip(metas, res):
        if meta is None or r is None:          # a non-tensor output (e.g. a SymInt) or an undefined one
            outs.append(None if r is None else (r, None, None))
            continue
        shape, dtype = meta[0], meta[1]
        if tuple(r.shape) != tuple(int(s) for s in shape):
            raise AssertionError(f"shape inference for {aten_name}: {tuple(shape)} but torch gives {tuple(r.shape)}")
        got = backends.from_torch_dtype(r.dtype)
        if got is not dtype:
            raise AssertionError(f"dtype inference for {aten_name}: {dtype.name} but torch gives {got.name}")
        outs.append((r, got, r.stride()))
    return outs


def kernel(aten_name: str, metas, *args, **kwargs):
    """Allocate the outputs described by ``metas`` ((shape, dtype[, strides]) or a list of them; None for
    a non-tensor output such as a SymInt, which is passed through with data and None without).

    With data, the backend's kernel computes them (``torch.ops.aten.<aten_name>`` or the numpy kernel
    registered under that name) and the meta shapes and dtypes are checked against torch's (shape and
    dtype inference are tested by every run on the torch backend)."""
    single = not isinstance(metas, list)
    metas = [metas] if single else metas
    dev = first_device(args) or first_device(list(kwargs.values()))
    if kwargs.get("device") is not None:          # a kernel told where to put its output (_to_copy, new_*)
        from ..tensor import device as _device
        dev = _device(kwargs["device"])
    kind = backends.data_kind(*args, *kwargs.values())
    if kind is not None:
        outs = [None if out is None else out[0] if meta is None else
                Tensor._new(meta[0], out[1], dev, data=out[0], stride=out[2])
                for meta, out in zip(metas, _run_data(aten_name, metas, kind, args, kwargs))]
    else:
        outs = [None if m is None else Tensor._new(m[0], m[1], dev, stride=m[2] if len(m) > 2 else None)
                for m in metas]
    if memory._trackers:
        memory.flops(kernel_flops(aten_name, args, outs))
    return outs[0] if single else tuple(outs)


def masked_kernel(aten_name: str, metas, mask, *args, **kwargs):
    """A kernel whose outputs are only produced where ``mask`` is True (the others are None), e.g.
    ``convolution_backward`` or ``native_layer_norm_backward`` with their ``output_mask``."""
    if memory.active_trackers():
        memory.flops(kernel_flops(aten_name, args, None))
    dev = first_device(args)
    kind = backends.data_kind(*args)
    if kind is None:
        return [Tensor._new(meta[0], meta[1], dev, stride=meta[2] if len(meta) > 2 else None) if m else None
                for m, meta in zip(mask, metas)]
    produced = _run_data(aten_name, list(metas), kind, args, kwargs)
    return [Tensor._new(meta[0], out[1], dev, data=out[0], stride=out[2]) if m and out is not None else None
            for m, meta, out in zip(mask, metas, produced)]


def strides_like(shape, ref) -> tuple:
    """Contiguous strides for ``shape`` laid out in the memory order of ``ref`` (torch's empty_like)."""
    order = sorted(range(len(shape)), key=lambda d: (-int(ref.stride()[d]), d))
    strides = [0] * len(shape)
    acc = 1
    for d in reversed(order):
        strides[d] = acc
        acc *= max(int(shape[d]), 1)
    return tuple(strides)


def elementwise_strides(shape, operands) -> tuple | None:
    """The strides torch gives the output of an elementwise op over ``operands`` (tensors and Python
    numbers) broadcast to ``shape`` (see layout.iterator_strides); None for contiguous.  So
    ``q * cos + rotate_half(q) * sin`` on a transposed ``q`` keeps ``q``'s memory order, as the
    attention kernel after it, and the copies (or their absence) later, depend on."""
    tensors = [o for o in operands if isinstance(o, Tensor) and o._shape]
    if not tensors or all(t._stride == contiguous_strides(t._shape) for t in tensors):
        return None          # the common case, decided without the general rule
    sizes = tuple(int(s) for s in shape)
    pairs = [(tuple(int(n) for n in o._shape), tuple(int(st) for st in o._stride)) if isinstance(o, Tensor)
             else ((), ()) for o in operands if isinstance(o, (Tensor, int, float, complex))]
    out = iterator_strides(sizes, pairs)
    return None if out == contiguous_strides(sizes) else out


def inplace(aten_name: str, target: Tensor, *args, **kwargs) -> Tensor:
    """Run an in-place kernel on ``target`` (its storage is reused; no allocation)."""
    kind = backends.data_kind(target, *args, *kwargs.values())
    if kind == "numpy":
        from ..backends import numpy_kernels
        numpy_kernels.run_inplace(aten_name, target.data_, args, kwargs)
    elif kind == "torch":
        backends.aten(aten_name, target, *args, **kwargs)
    elif target.data_ is not None:      # data mixed with shape-only inputs (backends.shape_absorbs_data)
        target.data_ = None
    return target


def view(x: Tensor, shape, stride, offset, aten_name: str, *args, **kwargs) -> Tensor:
    """A view of ``x`` with the engine's geometry (shape, strides, storage offset); on a data backend the
    view kernel's data shares memory with ``x``'s (checked on numpy against the engine's geometry)."""
    data = None
    kind = backends.data_kind(x)
    if kind == "numpy":
        from ..backends import numpy_kernels
        data = numpy_kernels.run_view(aten_name, x.data_, int(x.storage_offset()), args, kwargs)
        _check_view_geometry(aten_name, x, data, shape, stride, offset)
    elif kind == "torch":
        data = backends.aten(aten_name, x, *args, **kwargs)
    return x._view(shape, stride, offset, data)


def _check_view_geometry(aten_name, x, data, shape, stride, offset) -> None:
    """The numpy view must be the engine's view: same shape, same memory, same strides (size-1 dims aside)."""
    from ..backends.numpy_kernels import element_strides
    expected_shape = tuple(int(s) for s in shape)
    start = data.__array_interface__["data"][0] - x.data_.__array_interface__["data"][0]
    expected_start = (int(offset) - int(x.storage_offset())) * data.itemsize
    strides = element_strides(data)
    same_strides = all(n <= 1 or a == int(b) for n, a, b in zip(expected_shape, strides, stride))
    if data.shape != expected_shape or (data.size and (start != expected_start or not same_strides)):
        raise AssertionError(f"view inference for {aten_name}: engine shape {expected_shape} strides "
                             f"{tuple(int(s) for s in stride)} offset {int(offset)}, numpy gives {data.shape} "
                             f"strides {strides} offset {x.storage_offset() + start // data.itemsize}")
