"""Backends: where an op's numbers come from.

* ``shape`` — no data: kernels only produce shapes, dtypes and strides.
* ``torch`` — torch kernels (``torch.ops.aten.*``) on CPU or CUDA; torch's
  autograd is never used (everything runs on plain tensors under
  ``torch.no_grad``-free inference, since inputs never require grad there).

An op runs on the backend of its inputs: if they carry data the torch kernel
runs, otherwise only the meta computation does.  Creation ops use the current
default backend (``with gx.backend("torch"):``).  torch is imported lazily, so
the shape backend (the analyzer's) never imports it.
"""
from __future__ import annotations

import contextlib

from . import dtypes as _dt

_default = "shape"
_torch = None


def current() -> str:
    return _default


@contextlib.contextmanager
def backend(name: str):
    """Default backend for creation ops inside the block: "shape" or "torch"."""
    global _default
    if name not in ("shape", "torch"):
        raise ValueError(f"unknown backend {name!r}; expected 'shape' or 'torch'")
    prev = _default
    _default = name
    try:
        yield
    finally:
        _default = prev


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


def _unwrap(x):
    from .tensor import Tensor, device
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
    """Run ``torch.ops.aten.<name>`` on the data of engine tensors."""
    fn = getattr(torch().ops.aten, name)
    return fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})


def any_data(*xs) -> bool:
    from .tensor import Tensor
    for x in xs:
        if isinstance(x, Tensor):
            if x.data_ is not None:
                return True
        elif isinstance(x, (list, tuple)) and any_data(*x):
            return True
    return False
