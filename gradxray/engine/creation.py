"""Creation ops: allocate on the current default backend ("shape" has no data; "numpy"; "torch"), or on
the backend of the tensor they are modelled on (``*_like``, ``new_zeros``)."""
from __future__ import annotations

import math

from . import backends
from . import dtypes as _dt
from .tensor import Tensor, device as _device


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int):
            raise TypeError(f"size must be a tuple of ints, but got {type(s).__name__}")
    return tuple(size)


def _dev(device, default=None):
    if device is not None:
        return _device(device)
    return default if default is not None else _device("cpu")


def _alloc(shape, dtype, dev, backend, kind, fill=(), requires_grad=False) -> Tensor:
    """A new tensor on ``backend`` ("shape": no data) made by creation op ``kind`` (empty, zeros, ones,
    full, randn, rand, randint, arange) with its extra arguments ``fill``."""
    data = None
    if backend == "torch":
        data = _torch_data(kind, [int(s) for s in shape], dtype, dev, fill)
    elif backend == "numpy":
        if dev.type != "cpu":
            raise RuntimeError(f"the numpy backend has no {dev.type} device; use the torch backend")
        from .backends import numpy_kernels
        data = numpy_kernels.create(kind, shape, dtype, *fill)
    t = Tensor._new(tuple(shape), dtype, dev, data=data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _torch_data(kind, size, dtype, dev, fill):
    torch = backends.torch()
    kw = dict(dtype=backends.torch_dtype(dtype), device=str(dev))
    if kind == "arange":
        return torch.arange(*fill, **kw)
    if kind == "randint":
        return torch.randint(fill[0], fill[1], size, **kw)
    return getattr(torch, kind)(size, *fill, **kw)


def _make(kind, size, dtype, device, requires_grad):
    return _alloc(_shape(size), dtype or _dt.default_float, _dev(device), backends.current(), kind,
                  requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("empty", size, dtype, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("zeros", size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("ones", size, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None, **_):
    return _make("randn", size, dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None, **_):
    return _make("rand", size, dtype, device, requires_grad)


def _fill_dtype(fill_value):
    if isinstance(fill_value, bool):
        return _dt.bool_
    return _dt.int64 if isinstance(fill_value, int) else _dt.default_float


def full(size, fill_value, dtype=None, device=None, requires_grad=False, **_):
    return _alloc(_shape((size,)), dtype or _fill_dtype(fill_value), _dev(device), backends.current(), "full",
                  (fill_value,), requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None, **_):
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if high is None:
        low, high = 0, low
    return _alloc(tuple(size), dtype or _dt.int64, _dev(device), backends.current(), "randint", (low, high))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False, **_):
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, int) for v in (start, end, step))
    if integral:
        length = max((end - start + step - 1) // step, 0)      # keeps a symbolic end: arange(T) is [T]
    else:
        length = max(math.ceil((float(end) - float(start)) / float(step)), 0)
    bounds = tuple(int(v) if isinstance(v, int) else v for v in (start, end, step))
    return _alloc((length,), dtype or (_dt.int64 if integral else _dt.default_float), _dev(device),
                  backends.current(), "arange", bounds, requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A tensor from Python data (nested lists, numbers, numpy arrays): numpy data on the numpy backend (or
    when torch is not installed), torch data otherwise."""
    if isinstance(data, Tensor):
        raise TypeError("gx.tensor() of a Tensor: use .clone().detach()")
    if backends.current() == "numpy" or not _torch_available():
        return from_numpy(_numpy_from_python(data, dtype), requires_grad)
    torch = backends.torch()
    t_data = torch.as_tensor(data, dtype=backends.torch_dtype(dtype) if dtype else None, device=str(_dev(device)))
    return _wrap_torch(t_data.clone(), requires_grad)


def _torch_available() -> bool:
    try:
        backends.torch()
    except RuntimeError:
        return False
    return True


def _numpy_from_python(data, dtype):
    """A fresh numpy array with torch.tensor's dtype inference (Python floats give float32, ints int64)."""
    import numpy as np
    from .backends import numpy_kernels
    if dtype is not None:
        return np.array(data, dtype=numpy_kernels.np_dtype(dtype))
    arr = np.array(data)
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        return arr
    if arr.dtype.kind == "f":
        return arr.astype(numpy_kernels.np_dtype(_dt.default_float))
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr


def from_numpy(array, requires_grad=False) -> Tensor:
    """An engine leaf on the numpy backend whose data is ``array`` itself (shared memory, like
    ``torch.from_numpy``); an array numpy cannot share that way (read-only, negative or overlapping
    strides) is copied into a contiguous one."""
    import numpy as np
    from .backends import numpy_kernels
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtype = numpy_kernels.gx_dtype(array.dtype) if array.dtype != object else None
    if dtype is None:
        raise TypeError(f"can't convert np.ndarray of type {array.dtype}")
    strides = numpy_kernels.element_strides(array)
    shareable = (array.flags.writeable and all(s >= 0 for s in array.strides) and
                 all(s % array.itemsize == 0 for s in array.strides) and
                 _non_overlapping_and_dense(array.shape, strides))
    if not shareable:
        array = np.ascontiguousarray(array).copy()
        strides = numpy_kernels.element_strides(array)
    out = Tensor._new(tuple(array.shape), dtype, _device("cpu"), data=array, stride=strides)
    if requires_grad:
        out.requires_grad_(True)
    return out


def from_torch(t, requires_grad=None) -> Tensor:
    """Wrap a copy of a torch tensor as an engine leaf: on the numpy backend when that is the default
    (``with gx.backend("numpy")``), on the torch backend otherwise."""
    requires_grad = t.requires_grad if requires_grad is None else requires_grad
    if backends.current() == "numpy":
        holder = Tensor._new(tuple(t.shape), backends.from_torch_dtype(t.dtype), _device("cpu"), data=t)
        return from_numpy(backends.to_numpy(holder).copy(), requires_grad)
    torch = backends.torch()
    with torch.no_grad():
        data = t.detach().clone()
    return _wrap_torch(data, requires_grad)


def _non_overlapping_and_dense(shape, stride) -> bool:
    expected = 1
    for st, n in sorted((st, n) for n, st in zip(shape, stride) if n != 1):
        if st != expected:
            return False
        expected *= n
    return True


def _wrap_torch(data, requires_grad: bool) -> Tensor:
    if not _non_overlapping_and_dense(data.shape, data.stride()):
        data = data.contiguous()
    out = Tensor._new(tuple(data.shape), backends.from_torch_dtype(data.dtype), _device(str(data.device)), data=data,
                      stride=data.stride())
    if requires_grad:
        out.requires_grad_(True)
    return out


def _filled(kind, *fill):
    """What ``_like`` makes: creation op ``kind`` (zeros, ones, full, randn ...) with its extra arguments."""
    return kind, fill


def _like(make, x, dtype=None, device=None, requires_grad=False, shape=None):
    """A new tensor made by ``make`` (see ``_filled``) on ``x``'s backend (and device unless given)."""
    kind, fill = make
    return _alloc(x.shape if shape is None else shape, dtype or x.dtype, _dev(device, x.device),
                  backends.data_kind(x) or "shape", kind, fill, requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like(_filled("empty"), x, dtype, device, requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like(_filled("zeros"), x, dtype, device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like(_filled("ones"), x, dtype, device, requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like(_filled("randn"), x, dtype, device, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False, **_):
    if not isinstance(x, Tensor):
        raise TypeError("full_like() expects a tensor")
    return _like(_filled("full", fill_value), x, dtype, device, requires_grad)


def new_zeros(ref, shape, dtype=None):
    """Zeros of ``shape`` on the same backend and device as ``ref`` (used inside backward formulas)."""
    return _like(_filled("zeros"), ref, dtype, shape=tuple(shape))
