"""Moving tensors and module state between torch and the engine (torch backend)."""
from __future__ import annotations

from . import backends


def load_torch_state(gx_module, torch_module) -> None:
    """Copy a torch module's parameters and buffers into the engine module with the same structure.

    Tied parameters stay tied: a torch parameter seen twice maps to the engine's single Parameter."""
    torch = backends.torch()
    gx_params = dict(gx_module.named_parameters(remove_duplicate=False))
    gx_buffers = dict(gx_module.named_buffers(remove_duplicate=False))
    with torch.no_grad():
        for name, p in torch_module.named_parameters(remove_duplicate=False):
            _assign(gx_params, name, p, torch)
        for name, b in torch_module.named_buffers(remove_duplicate=False):
            _assign(gx_buffers, name, b, torch)


def _assign(store, name, src, torch):
    if name not in store:
        raise KeyError(f"engine module has no parameter or buffer named {name!r}")
    dst = store[name]
    if tuple(int(s) for s in dst.shape) != tuple(src.shape):
        raise ValueError(f"{name}: engine shape {tuple(int(s) for s in dst.shape)} != torch shape {tuple(src.shape)}")
    data = src.detach().clone()
    dst.data_ = data
    dst.dtype = backends.from_torch_dtype(data.dtype)


def to_torch(t):
    """The data of an engine tensor (torch backend) as a torch tensor."""
    if t.data_ is None:
        raise RuntimeError("tensor has no data (shape backend)")
    return t.data_
