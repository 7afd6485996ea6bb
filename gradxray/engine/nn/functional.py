"""torch.nn.functional on the engine, decomposed the way torch decomposes each call on the target device."""
from __future__ import annotations

from ..ops import attention as _attention
from ..ops import nn as _nn
from ..ops import linear as _linear
from ..ops.pointwise import gelu as _gelu, relu as _relu


def linear(input, weight, bias=None):
    return _linear(input, weight, bias)


def relu(input, inplace=False):
    return _relu(input, inplace=inplace)


def gelu(input, approximate="none"):
    return _gelu(input, approximate)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    if max_norm is not None or sparse:
        raise NotImplementedError("embedding with max_norm or sparse=True is not supported yet")
    if padding_idx is not None and padding_idx < 0:
        padding_idx = int(weight.shape[0]) + padding_idx
    return _nn.Embedding.apply(weight, input, -1 if padding_idx is None else padding_idx, scale_grad_by_freq)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    return _nn.NativeLayerNorm.apply(input, tuple(normalized_shape), weight, bias, eps)[0]


def _softmax_dim(name: str, ndim: int) -> int:
    """torch's implicit dim (deprecated): 0 for 0-, 1- and 3-D input, else 1."""
    import warnings
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim("softmax", input.dim())
    if dtype is not None:
        input = input.to(dtype)
    return _nn.Softmax.apply(input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim())
    if dtype is not None:
        input = input.to(dtype)
    return _nn.LogSoftmax.apply(input, dim)


def dropout(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if input.device.type == "cuda":
        return _nn.NativeDropout.apply(input, p)[0]
    return _nn.BernoulliMaskDropout.apply(input, p)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    return _attention.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                                   enable_gqa)


def _install_family_functions() -> None:
    """The op families' ``FUNCTIONAL`` entries (losses, activations ...) become names of this module."""
    from .. import ops
    for name, fn in ops.FUNCTIONAL.items():
        if name in globals():
            raise RuntimeError(f"nn.functional.{name} is registered by an op family but already defined")
        globals()[name] = fn


_install_family_functions()
__import__("gradxray.engine.amp", fromlist=["_"]).wrap_policy_entries(globals())   # autocast's per-op policy
