"""Creation ops: allocate on the current default backend ("shape" has no data; "numpy"; "torch"), or on
the backend of the tensor they are modelled on (``*_like``, ``new_zeros``)."""
from __future__ import annotations

import math

from . import backends
from . import dtypes as _dt
from .tensor import Tensor, device as _device, non_overlapping_and_dense


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int):
            raise TypeError(f"size must be a tuple of ints, but got {type(s).__name__}")
    return tuple(size)


_CPU = _device("cpu")      # the default of every creation op, parsed once


def _dev(device, default=None):
    if device is not None:
        return _device(device)
    return default if default is not None else _CPU


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


def _make(kind, size, dtype, device, requires_grad, kw):
    if "size" in kw:                        # torch.zeros(size=(2, 3))
        if size:
            raise TypeError(f"{kind}() got multiple values for argument 'size'")
        size = (kw["size"],)
    return _alloc(_shape(size), dtype or _dt.default_float, _dev(device), backends.current(), kind,
                  requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, **kw):
    return _make("empty", size, dtype, device, requires_grad, kw)


def zeros(*size, dtype=None, device=None, requires_grad=False, **kw):
    return _make("zeros", size, dtype, device, requires_grad, kw)


def ones(*size, dtype=None, device=None, requires_grad=False, **kw):
    return _make("ones", size, dtype, device, requires_grad, kw)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None, **kw):
    return _make("randn", size, dtype, device, requires_grad, kw)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None, **kw):
    return _make("rand", size, dtype, device, requires_grad, kw)


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
                 non_overlapping_and_dense(array.shape, strides))
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


def _wrap_torch(data, requires_grad: bool) -> Tensor:
    if not non_overlapping_and_dense(data.shape, data.stride()):
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


# -- creation kernels run by aten name: ranges, eye, strided, triangle indices ---------------------

def _from_kernel(aten_name, shape, dtype, dev, args=(), kwargs=None, stride=None, requires_grad=False):
    """A new tensor made by the creation kernel ``aten_name`` on the current backend: ``torch.ops.aten``
    on torch, the numpy kernel registered under that name on numpy, metadata only on shape."""
    kwargs = dict(kwargs or {})
    backend = backends.current()
    data, data_stride = None, stride
    if backend == "torch":
        data = backends.aten(aten_name, *args, dtype=dtype, device=dev, **kwargs)
        data_stride = data.stride()
    elif backend == "numpy":
        if dev.type != "cpu":
            raise RuntimeError(f"the numpy backend has no {dev.type} device; use the torch backend")
        from .backends import numpy_kernels
        meta = (tuple(shape), dtype) if stride is None else (tuple(shape), dtype, tuple(stride))
        (data,) = numpy_kernels.run(aten_name, [meta], args, kwargs)
        data_stride = numpy_kernels.element_strides(data)
    out = Tensor._new(tuple(shape), dtype, dev, data=data, stride=data_stride)
    if requires_grad:
        out.requires_grad_(True)
    return out


def _check_steps(steps):
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False, **_):
    """``steps`` evenly spaced values from start to end (the default float dtype, even for integer bounds)."""
    _check_steps(steps)
    return _from_kernel("linspace", (steps,), dtype or _dt.default_float, _dev(device), (start, end, steps),
                        requires_grad=requires_grad)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, **_):
    _check_steps(steps)
    return _from_kernel("logspace", (steps,), dtype or _dt.default_float, _dev(device), (start, end, steps, base),
                        requires_grad=requires_grad)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False, **_):
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m is not None and m < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    args = (n,) if m is None else (n, m)
    return _from_kernel("eye", (n, n if m is None else m), dtype or _dt.default_float, _dev(device), args,
                        requires_grad=requires_grad)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad=False, **_):
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride):
        raise RuntimeError(f"dimensionality of sizes ({len(size)}) must match dimensionality of strides "
                           f"({len(stride)})")
    return _from_kernel("empty_strided", size, dtype or _dt.default_float, _dev(device), (list(size), list(stride)),
                        stride=stride, requires_grad=requires_grad)


def _tril_count(row, col, offset):
    return sum(max(0, min(col, i + offset + 1)) for i in range(row))


def _triu_count(row, col, offset):
    return row * col - _tril_count(row, col, offset - 1)


def _triangle_indices(aten_name, count, row, col, offset, dtype, device):
    if row < 0:
        raise RuntimeError(f"row must be non-negative, got{row}")
    if col < 0:
        raise RuntimeError(f"col must be non-negative, got{col}")
    return _from_kernel(aten_name, (2, count(row, col, offset)), dtype or _dt.int64, _dev(device),
                        (row, col, offset))


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None, **_):
    """The (2, N) coordinates of the lower triangle of a row x col matrix, row by row."""
    return _triangle_indices("tril_indices", _tril_count, row, col, offset, dtype, device)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None, **_):
    return _triangle_indices("triu_indices", _triu_count, row, col, offset, dtype, device)


# -- from data, random *_like ----------------------------------------------------------------------

def as_tensor(data, dtype=None, device=None):
    """torch.as_tensor: a tensor is returned as is (or converted with ``to``, recorded by autograd); a numpy
    array shares its memory where no conversion is needed; other data is copied as by ``tensor``."""
    import numpy as np
    if isinstance(data, Tensor):
        same_dtype = dtype is None or dtype is data.dtype
        same_device = device is None or _device(device) == data.device
        return data if same_dtype and same_device else data.to(dtype=dtype or data.dtype, device=device)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(data.dtype) == _np_dtype(dtype)):
        if backends.current() == "numpy" or not _torch_available():
            return from_numpy(data)
        torch = backends.torch()
        return _wrap_torch(torch.as_tensor(data, device=str(_dev(device))), False)
    return tensor(data, dtype=dtype, device=device)


def _np_dtype(dtype):
    from .backends import numpy_kernels
    return numpy_kernels.np_dtype(dtype)


def rand_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None, **_):
    return _like(_filled("rand"), input, dtype, device, requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, layout=None, device=None, requires_grad=False,
                 memory_format=None, **_):
    """randint_like(input, high) or randint_like(input, low, high), in input's dtype by default."""
    if high is None:
        low, high = 0, low
    return _like(_filled("randint", low, high), input, dtype, device, requires_grad)


# -- Tensor.new_* (dtype and device default to self's; same backend as self) -------------------------

def _size_args(size):
    return _shape(size) if size else ()


def _tensor_new_empty(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    return _like(_filled("empty"), self, dtype, device, requires_grad, shape=_size_args(size))


def _tensor_new_zeros(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    return _like(_filled("zeros"), self, dtype, device, requires_grad, shape=_size_args(size))


def _tensor_new_ones(self, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    return _like(_filled("ones"), self, dtype, device, requires_grad, shape=_size_args(size))


def _tensor_new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None,
                     pin_memory=False):
    return _like(_filled("full", fill_value), self, dtype, device, requires_grad, shape=_shape((size,)))


def _tensor_new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A copy of ``data`` in self's dtype and on self's backend and device unless told otherwise."""
    import numpy as np
    dtype = dtype or self.dtype
    kind = backends.data_kind(self) or "shape"
    if isinstance(data, Tensor):
        data = backends.to_numpy(data) if data.data_ is not None else np.empty(tuple(int(s) for s in data.shape))
    if kind == "shape":
        out = Tensor._new(tuple(np.shape(data)), dtype, _dev(device, self.device))
        return out.requires_grad_(True) if requires_grad else out
    with backends.backend(kind):
        return tensor(data, dtype=dtype, device=_dev(device, self.device), requires_grad=requires_grad)


# -- in-place random initialisers: gradient zero (torch's zeros_like(grad)) ------------------------

from .function import Function  # noqa: E402  (after the creation ops: function.py never imports this module)


class _RandomFill(Function):
    """x overwritten in place by random numbers; the gradient through it is zero.  Saves: nothing."""

    aten = ""

    @classmethod
    def forward(cls, ctx, x, *args):
        ctx.n_args = len(args)
        from .ops._kernel import inplace       # not at import time: the ops package imports this module
        ctx.mark_dirty(x)
        return inplace(cls.aten, x, *args)

    @staticmethod
    def backward(ctx, grad):
        return (zeros_like(grad),) + (None,) * ctx.n_args


class UniformFill(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "UniformBackward0", "uniform_"


class NormalFill(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "NormalBackward0", "normal_"


class BernoulliFill(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "BernoulliBackward2", "bernoulli_"        # bernoulli_.float


class ExponentialFill(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "ExponentialBackward0", "exponential_"


class RandomFromTo(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "RandomBackward0", "random_"             # random_.from


class RandomTo(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "RandomBackward1", "random_"             # random_.to: [0, to), run as random_.from(0, to)


class RandomFull(_RandomFill):
    __doc__ = _RandomFill.__doc__
    node_name, aten = "RandomBackward2", "random_"             # random_(): the dtype's whole range


def _cpp(value) -> str:
    """A double as torch's C++ messages print it (``2`` for 2.0, ``0.5``, ``1e-07``)."""
    return f"{value:g}"


def _uniform_(self, from_=0.0, to=1.0, *, generator=None, **kwargs):
    from_ = kwargs.pop("from", from_)          # torch's keyword is ``from``, a Python keyword
    if from_ > to:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={_cpp(from_)} > "
                           f"to={_cpp(to)}")
    return UniformFill.apply(self, from_, to)


def _normal_(self, mean=0.0, std=1.0, *, generator=None):
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {_cpp(std)}")
    return NormalFill.apply(self, mean, std)


def _bernoulli_(self, p=0.5, *, generator=None):
    if isinstance(p, Tensor):
        raise NotImplementedError("bernoulli_ with a tensor of probabilities is not supported yet")
    if not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={_cpp(p)}")
    return BernoulliFill.apply(self, p)


def _exponential_(self, lambd=1.0, *, generator=None):
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={_cpp(lambd)}")
    return ExponentialFill.apply(self, lambd)


def _random_(self, from_=None, to=None, *, generator=None, **kwargs):
    from_ = kwargs.pop("from", from_)
    if from_ is None and to is None:
        return RandomFull.apply(self)
    if to is None:                               # random_(to)
        return RandomTo.apply(self, 0, from_)
    if from_ >= to:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} >= to={to}")
    return RandomFromTo.apply(self, from_, to)


TENSOR_METHODS: dict = {
    "new_empty": _tensor_new_empty, "new_zeros": _tensor_new_zeros, "new_ones": _tensor_new_ones,
    "new_full": _tensor_new_full, "new_tensor": _tensor_new_tensor,
    "uniform_": _uniform_, "normal_": _normal_, "bernoulli_": _bernoulli_, "exponential_": _exponential_,
    "random_": _random_,
}
