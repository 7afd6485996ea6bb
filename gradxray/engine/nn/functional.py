"""torch.nn.functional on the engine, decomposed the way torch decomposes each call on the target device."""
from __future__ import annotations

from .. import dtypes as _dt
from ..ops import nn as _nn
from ..ops import linear as _linear
from ..ops import mean as _mean
from ..ops.pointwise import gelu as _gelu, relu as _relu


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


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


def softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return _nn.Softmax.apply(input, dim if dim is not None else -1)


def log_softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return _nn.LogSoftmax.apply(input, dim if dim is not None else -1)


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
    if query.device.type == "cpu" and dropout_p == 0.0 and attn_mask is None and query.dim() == 4 \
            and query.dtype in (_dt.float32, _dt.float64, _dt.bfloat16, _dt.float16) and not enable_gqa:
        return _nn.FlashAttentionCpu.apply(query, key, value, is_causal, scale)[0]
    raise NotImplementedError("scaled_dot_product_attention: only the CPU flash kernel (no dropout, no mask) "
                              "is modelled yet")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    if label_smoothing != 0.0:
        raise NotImplementedError("cross_entropy(label_smoothing>0) is not supported yet")
    if input.dim() != 2:
        raise NotImplementedError("cross_entropy is modelled for [N, C] inputs; flatten first")
    if target.dtype.is_floating_point:
        raise NotImplementedError("cross_entropy with class probabilities is not supported yet")
    return nll_loss(log_softmax(input, 1), target, weight, ignore_index=ignore_index, reduction=reduction)


_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    return _nn.NllLoss.apply(input, target, weight, _REDUCTIONS[reduction], ignore_index)[0]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str):
        raise NotImplementedError("string padding is not supported yet")
    return _nn.Convolution.apply(input, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    return _nn.NativeBatchNorm.apply(input, weight, bias, running_mean, running_var, training, momentum, eps)[0]


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    k = _pair(kernel_size)
    s = _pair(stride) if stride not in (None, []) else k
    out, idx = _nn.MaxPool2dWithIndices.apply(input, k, s, _pair(padding), _pair(dilation), ceil_mode)
    return (out, idx) if return_indices else out


def adaptive_avg_pool2d(input, output_size):
    size = _pair(output_size)
    if tuple(int(s) if s is not None else -1 for s in size) == (1, 1):
        return _mean(input, (-1, -2), keepdim=True)      # torch's composite for a 1x1 output
    size = tuple(input.shape[-2 + i] if s is None else s for i, s in enumerate(size))
    return _nn.AdaptiveAvgPool2d.apply(input, size)


def _install_family_functions() -> None:
    """The op families' ``FUNCTIONAL`` entries (losses, activations ...) become names of this module."""
    from .. import ops
    for name, fn in ops.FUNCTIONAL.items():
        if name in globals():
            raise RuntimeError(f"nn.functional.{name} is registered by an op family but already defined")
        globals()[name] = fn


_install_family_functions()
