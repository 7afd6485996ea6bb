"""Creation ops: allocate on the current default backend ("shape" has no data)."""
from __future__ import annotations

from . import backends
from . import dtypes as _dt
from .symbolic import SymInt
from .tensor import Tensor, device as _device


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int):
            raise TypeError(f"size must be a tuple of ints, but got {type(s).__name__}")
    return tuple(size)


def _dev(device):
    return _device(device) if device is not None else _device("cpu")


def _make(kind, shape, dtype, device, requires_grad, fill=None):
    dtype = dtype or _dt.default_float
    dev = _dev(device)
    data = None
    if backends.current() == "torch":
        torch = backends.torch()
        ishape = [int(s) for s in shape]
        kw = dict(dtype=backends.torch_dtype(dtype), device=str(dev))
        if kind == "full":
            data = torch.full(ishape, fill, **kw)
        else:
            data = getattr(torch, kind)(ishape, **kw)
    t = Tensor._new(shape, dtype, dev, data=data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def empty(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("empty", _shape(size), dtype, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("zeros", _shape(size), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, **_):
    return _make("ones", _shape(size), dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None, **_):
    return _make("randn", _shape(size), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None, **_):
    return _make("rand", _shape(size), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False, **_):
    if dtype is None:
        dtype = _dt.bool_ if isinstance(fill_value, bool) else (
            _dt.int64 if isinstance(fill_value, int) else _dt.default_float)
    return _make("full", _shape((size,)), dtype, device, requires_grad, fill=fill_value)


def randint(low, high=None, size=None, dtype=None, device=None, **_):
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if high is None:
        low, high = 0, low
    dev = _dev(device)
    dtype = dtype or _dt.int64
    data = None
    if backends.current() == "torch":
        torch = backends.torch()
        data = torch.randint(low, high, [int(s) for s in size], dtype=backends.torch_dtype(dtype), device=str(dev))
    return Tensor._new(tuple(size), dtype, dev, data=data)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False, **_):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = _dt.int64 if all(isinstance(v, int) for v in (start, end, step)) else _dt.default_float
    length = (end - start + step - 1) // step if isinstance(end - start, int) and isinstance(step, int) else \
        int(-(-(float(end) - float(start)) // float(step)))
    if isinstance(length, int) and not isinstance(length, SymInt):
        length = max(int(length), 0)
    dev = _dev(device)
    data = None
    if backends.current() == "torch":
        torch = backends.torch()
        data = torch.arange(int(start) if isinstance(start, int) else start, int(end) if isinstance(end, int) else end,
                            step, dtype=backends.torch_dtype(dtype), device=str(dev))
    t = Tensor._new((length,), dtype, dev, data=data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A tensor from Python data (torch backend) or from a torch tensor."""
    dev = _dev(device)
    if isinstance(data, Tensor):
        raise TypeError("gx.tensor() of a Tensor: use .clone().detach()")
    torch = backends.torch()
    t_data = torch.as_tensor(data, dtype=backends.torch_dtype(dtype) if dtype else None, device=str(dev))
    if dtype is None and t_data.dtype == torch.float64 and not (hasattr(data, "dtype")):
        t_data = t_data.to(torch.float32)
    t = Tensor._new(tuple(t_data.shape), backends.from_torch_dtype(t_data.dtype), dev, data=t_data.clone())
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_torch(t, requires_grad=None) -> Tensor:
    """Wrap a copy of a torch tensor as an engine leaf on the torch backend."""
    torch = backends.torch()
    with torch.no_grad():
        data = t.detach().clone()
    out = Tensor._new(tuple(data.shape), backends.from_torch_dtype(data.dtype), _device(str(data.device)), data=data)
    if requires_grad if requires_grad is not None else t.requires_grad:
        out.requires_grad_(True)
    return out


def _like(kind, x, dtype=None, device=None, requires_grad=False, fill=None):
    dtype = dtype or x.dtype
    dev = _dev(device) if device is not None else x.device
    data = None
    if x.data_ is not None:
        torch = backends.torch()
        kw = dict(dtype=backends.torch_dtype(dtype), device=str(dev))
        ishape = [int(s) for s in x.shape]
        data = torch.full(ishape, fill, **kw) if kind == "full" else getattr(torch, kind)(ishape, **kw)
    t = Tensor._new(x.shape, dtype, dev, data=data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def empty_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like("empty", x, dtype, device, requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like("zeros", x, dtype, device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like("ones", x, dtype, device, requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False, **_):
    return _like("randn", x, dtype, device, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False, **_):
    if not isinstance(x, Tensor):
        raise TypeError("full_like() expects a tensor")
    return _like("full", x, dtype, device, requires_grad, fill=fill_value)


def new_zeros(ref, shape, dtype=None):
    """Zeros of ``shape`` on the same backend and device as ``ref`` (used inside backward formulas)."""
    dtype = dtype or ref.dtype
    data = None
    if ref.data_ is not None:
        torch = backends.torch()
        data = torch.zeros([int(s) for s in shape], dtype=backends.torch_dtype(dtype), device=str(ref.device))
    return Tensor._new(tuple(shape), dtype, ref.device, data=data)
