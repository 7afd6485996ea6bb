"""Creation ops: allocate on the current default backend ("shape" has no data)."""
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


def _filled(kind, *args):
    """Data maker for ``torch.<kind>``: size-first creators (zeros, randn, full with its value)."""
    return lambda torch, size, kw: getattr(torch, kind)(size, *args, **kw)


def _alloc(shape, dtype, dev, with_data: bool, make, requires_grad=False) -> Tensor:
    """A new tensor; on the torch backend ``make(torch, int_sizes, dtype/device kwargs)`` gives its data."""
    data = None
    if with_data:
        torch = backends.torch()
        data = make(torch, [int(s) for s in shape], dict(dtype=backends.torch_dtype(dtype), device=str(dev)))
    t = Tensor._new(tuple(shape), dtype, dev, data=data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _make(kind, size, dtype, device, requires_grad):
    return _alloc(_shape(size), dtype or _dt.default_float, _dev(device), backends.current() == "torch",
                  _filled(kind), requires_grad)


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
    return _alloc(_shape((size,)), dtype or _fill_dtype(fill_value), _dev(device), backends.current() == "torch",
                  _filled("full", fill_value), requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None, **_):
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if high is None:
        low, high = 0, low
    return _alloc(tuple(size), dtype or _dt.int64, _dev(device), backends.current() == "torch",
                  lambda torch, s, kw: torch.randint(low, high, s, **kw))


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
                  backends.current() == "torch", lambda torch, _s, kw: torch.arange(*bounds, **kw), requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A tensor from Python data (torch backend)."""
    if isinstance(data, Tensor):
        raise TypeError("gx.tensor() of a Tensor: use .clone().detach()")
    torch = backends.torch()
    t_data = torch.as_tensor(data, dtype=backends.torch_dtype(dtype) if dtype else None, device=str(_dev(device)))
    return _wrap_torch(t_data.clone(), requires_grad)


def from_torch(t, requires_grad=None) -> Tensor:
    """Wrap a copy of a torch tensor as an engine leaf on the torch backend."""
    torch = backends.torch()
    with torch.no_grad():
        data = t.detach().clone()
    return _wrap_torch(data, t.requires_grad if requires_grad is None else requires_grad)


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


def _like(make, x, dtype=None, device=None, requires_grad=False, shape=None):
    return _alloc(x.shape if shape is None else shape, dtype or x.dtype, _dev(device, x.device), x.data_ is not None,
                  make, requires_grad)


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
