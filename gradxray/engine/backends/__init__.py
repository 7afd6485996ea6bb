"""Backends: where an op's numbers come from.

* ``shape`` — no data: kernels only produce shapes, dtypes and strides.
* ``numpy`` — CPU numerics with numpy only (``numpy_kernels``: one numpy implementation per aten
  kernel the engine calls).  torch is never imported on this path.
* ``torch`` — torch kernels (``torch.ops.aten.*``) on CPU or CUDA; torch's autograd is never
  used (inputs never require grad there).

An op runs on the backend of its inputs: numpy data runs the numpy kernel, torch data the torch
kernel, no data only the meta computation.  Inputs from two backends in one op are an error.
Creation ops use the current default backend (``with gx.backend("numpy"):``).  torch is imported
lazily, so the shape and numpy backends never import it.
"""
from __future__ import annotations

import contextlib
import sys

from .. import dtypes as _dt

BACKENDS = ("shape", "numpy", "torch")
_default = "shape"
_torch = None


def current() -> str:
    return _default


@contextlib.contextmanager
def backend(name: str):
    """Default backend for creation ops inside the block: "shape", "numpy" or "torch"."""
    global _default
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    prev = _default
    _default = name
    try:
        yield
    finally:
        _default = prev


def preload(name: str) -> None:
    """Import backend ``name``'s kernels now rather than at its first op (for numpy, numpy itself:
    about 0.1 s), e.g. before forking processes that will all use it: one import instead of one in
    each, side by side."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    if name == "numpy":
        from . import numpy_kernels  # noqa: F401
    elif name == "torch":
        torch()


_shape_absorbs = False


@contextlib.contextmanager
def shape_absorbs_data():
    """Inside the block an op whose inputs mix data tensors with data-less (shape backend) ones runs on
    the shape backend (its outputs have no data) instead of raising.  For static analysis, where small
    tensors computed from constants carry values (``torch.arange(4)``) and meet shape-only activations;
    an in-place op of that kind leaves its target without data (its values are no longer known)."""
    global _shape_absorbs
    prev = _shape_absorbs
    _shape_absorbs = True
    try:
        yield
    finally:
        _shape_absorbs = prev


class _MemoryFormat:
    """torch.contiguous_format without importing torch (mapped when a torch kernel runs)."""

    def __repr__(self):
        return "gx.contiguous_format"


CONTIGUOUS = _MemoryFormat()


def torch():
    global _torch
    if _torch is None:
        try:
            import torch as _t
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise RuntimeError("the torch backend needs PyTorch: pip install 'gradxray[torch]'") from e
        _torch = _t
    return _torch


def torch_dtype(d: _dt.dtype):
    return getattr(torch(), d.name)


def from_torch_dtype(td) -> _dt.dtype:
    return _dt.from_name(str(td).replace("torch.", ""))


def _is_numpy_array(data) -> bool:
    # a numpy array is recognised by its type's module, so that no check here imports torch
    return type(data).__module__ == "numpy"


_Tensor = None     # the engine's Tensor class, bound on first use (tensor.py imports later)
_NOT_TENSOR_TYPES: frozenset = frozenset()     # tensor.NOT_TENSOR_TYPES, bound with it


def _bind_tensor_class() -> None:
    global _Tensor, _NOT_TENSOR_TYPES
    if _Tensor is None:
        from ..tensor import NOT_TENSOR_TYPES as _NOT_TENSOR_TYPES, Tensor as _Tensor


def _collect_kinds(xs, kinds: set) -> None:
    for x in xs:
        if isinstance(x, _Tensor):
            data = x.data_
            kinds.add("shape" if data is None else "numpy" if _is_numpy_array(data) else "torch")
        elif isinstance(x, (list, tuple)):
            _collect_kinds(x, kinds)


def _has_data(xs) -> bool:
    for x in xs:
        if type(x) in _NOT_TENSOR_TYPES:
            continue
        if isinstance(x, _Tensor):
            if x.data_ is not None:
                return True
        elif isinstance(x, (list, tuple)) and _has_data(x):
            return True
    return False


def data_kind(*xs):
    """"numpy", "torch" or None (no data) for the tensors among ``xs`` (lists searched too).

    Tensors of two backends — or data tensors mixed with data-less ones — in one op are an error."""
    if _Tensor is None:
        _bind_tensor_class()
    if not _has_data(xs):       # the shape backend's case (every op of an analysis): no kinds to collect
        return None
    kinds: set = set()
    _collect_kinds(xs, kinds)
    if len(kinds) != 1:
        if _shape_absorbs and "shape" in kinds:
            return None
        if kinds:
            raise RuntimeError("an op received tensors from different backends (" + ", ".join(sorted(kinds)) +
                               "); convert them to one backend first")
        return None
    kind, = kinds
    return None if kind == "shape" else kind


def _unwrap(x):
    from ..tensor import Tensor, device
    if isinstance(x, Tensor):
        return x.data_
    if isinstance(x, _dt.dtype):
        return torch_dtype(x)
    if isinstance(x, device):
        return str(x)
    if x is CONTIGUOUS:
        return torch().contiguous_format
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def aten(name: str, *args, **kwargs):
    """Run the aten kernel ``name`` on the data of engine tensors, on their backend: ``torch.ops.aten.<name>``
    for torch data, the numpy kernel registered under ``name`` for numpy data (outputs in the dtypes numpy
    computes; ``ops._kernel`` is the path that fixes output dtypes and layouts)."""
    if data_kind(*args, *kwargs.values()) == "numpy":
        from . import numpy_kernels
        return numpy_kernels.call(name, None, args, kwargs)
    fn = getattr(torch().ops.aten, name)
    return fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})


def any_data(*xs) -> bool:
    _bind_tensor_class()
    return _has_data(xs)


def to_numpy(t):
    """The data of an engine tensor as a numpy array: the array itself on the numpy backend (shared
    memory, like ``Tensor.numpy()``), a CPU copy on the torch backend (bfloat16 as ``ml_dtypes.bfloat16``)."""
    data = t.data_
    if data is None:
        raise RuntimeError("tensor has no data (shape backend)")
    if _is_numpy_array(data):
        return data
    data = data.detach().cpu()
    if str(data.dtype) == "torch.bfloat16":
        import ml_dtypes
        return data.view(torch().int16).numpy().view(ml_dtypes.bfloat16)
    return data.numpy()


def manual_seed(seed: int) -> None:
    """Seed the numpy backend's generator, and torch's when torch is in use (already imported, or the
    torch backend is the default and torch can be imported); never imports torch otherwise."""
    from . import numpy_kernels
    numpy_kernels.seed(int(seed))
    if "torch" in sys.modules or _default == "torch":
        try:
            torch().manual_seed(int(seed))
        except RuntimeError:      # torch not installed: only numpy needed seeding
            pass
