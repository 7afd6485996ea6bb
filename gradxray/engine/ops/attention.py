"""scaled_dot_product_attention as torch runs it: the kernel torch's dispatcher would pick for the
target device (CPU flash, CUDA cuDNN, CUDA memory-efficient, or the math composite) and what that
kernel saves for backward.

What each variant keeps for backward (per [B, H, L, S] attention, E head dim):

* CPU flash (``_scaled_dot_product_flash_attention_for_cpu``): q, k, v, output, logsumexp [B, H, L]
  float32, and the float mask if one was given.  Picked on CPU for 4-D inputs without dropout whose
  last dims have stride 1 and equal head dims.
* CUDA cuDNN (``_scaled_dot_product_cudnn_attention``): q, k, v, output, logsumexp [B, H, L, 1] float32,
  philox seed/offset, the mask as given.  What torch 2.11 picks on an H100 for fp16/bf16.
* CUDA memory-efficient (``_scaled_dot_product_efficient_attention``): q, k, v, the additive mask,
  output, logsumexp [B, H, ceil(L/32)*32] float32, philox seed/offset.  fp32/fp16/bf16, masks allowed.
* math (everything else): q*sqrt(scale) @ (k^T*sqrt(scale)) (+ mask), ``_safe_softmax``, optional
  dropout, @ v — the [B, H, L, S] softmax result is saved (and the dropout mask, and the dropped
  matrix).  On CPU, fp16/bf16 inputs are computed in float32 (so the saved tensors are float32).
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..function import Function
from ..tensor import Tensor
from ._kernel import kernel, masked_kernel, strides_like

_FLOATS = (_dt.float32, _dt.float64, _dt.bfloat16, _dt.float16)


class FlashAttentionCpu(Function):
    """CPU fused attention.  Saves: q, k, v, output, logsumexp ([B, H, L], float32; float64 for float64
    inputs), attn_mask (float)."""

    node_name = "ScaledDotProductFlashAttentionForCpuBackward0"
    saves = ("query", "key", "value", "output", "logsumexp", "attn_mask")

    @staticmethod
    def forward(ctx, q, k, v, is_causal=False, scale=None, attn_mask=None):
        out_shape = tuple(q.shape[:-1]) + (v.shape[-1],)
        lse_shape = tuple(q.shape[:-1])
        out, lse = kernel("_scaled_dot_product_flash_attention_for_cpu",
                          [(out_shape, q.dtype, strides_like(out_shape, q)),
                           (lse_shape, _dt.float64 if q.dtype is _dt.float64 else _dt.float32)],
                          q, k, v, 0.0, is_causal, attn_mask=attn_mask, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse, attn_mask)
        ctx.is_causal, ctx.scale = is_causal, scale
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad, _glse=None):
        q, k, v, out, lse, mask = ctx.saved_tensors
        gq, gk, gv = FlashAttentionCpuBackward.apply(grad, q, k, v, out, lse, ctx.is_causal, ctx.scale, mask)
        return gq, gk, gv, None, None, None


class FlashAttentionCpuBackward(Function):
    """The CPU flash attention backward kernel.  torch has no derivative for it: differentiating again
    raises torch's error.  Saves: nothing."""

    @staticmethod
    def forward(ctx, grad, q, k, v, out, lse, is_causal, scale, attn_mask=None):
        return kernel("_scaled_dot_product_flash_attention_for_cpu_backward",
                      [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype)],
                      grad, q, k, v, out, lse, 0.0, is_causal, attn_mask=attn_mask, scale=scale)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not "
                           "implemented")


class CudnnAttentionCuda(Function):
    """cuDNN attention (what torch 2.11 picks on an H100 for fp16/bf16; masks, dropout and grouped-query
    heads included).  Saves: q, k, v, output, logsumexp ([B, H, L, 1] float32), philox seed and offset,
    the additive mask."""

    node_name = "ScaledDotProductCudnnAttentionBackward0"
    saves = ("query", "key", "value", "output", "logsumexp", "philox_seed", "philox_offset", "attn_bias")

    @staticmethod
    def forward(ctx, q, k, v, attn_bias, dropout_p, is_causal, scale):
        b, h, lq, _ = q.shape
        compute_lse = any(t.requires_grad for t in (q, k, v))
        out_shape = (b, h, lq, v.shape[-1])
        out_strides = strides_like(out_shape, _Layout(out_shape, order=(0, 2, 1, 3)))
        metas = [(out_shape, q.dtype, out_strides), ((b, h, lq, 1) if compute_lse else (0,), _dt.float32),
                 None, None, None, None, ((), _dt.int64), ((), _dt.int64), None]
        out, lse, cum_q, cum_k, max_q, max_k, seed, offset, _dbg = kernel(
            "_scaled_dot_product_cudnn_attention", metas, q, k, v, attn_bias, compute_lse, dropout_p, is_causal,
            False, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse, seed, offset, attn_bias)
        ctx.args = (cum_q, cum_k, max_q, max_k, dropout_p, is_causal, scale)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad, _glse=None):
        q, k, v, out, lse, seed, offset, bias = ctx.saved_tensors
        cum_q, cum_k, max_q, max_k, p, causal, scale = ctx.args
        gq, gk, gv = kernel("_scaled_dot_product_cudnn_attention_backward",
                            [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype)],
                            grad, q, k, v, out, lse, seed, offset, bias, cum_q, cum_k, max_q, max_k, p, causal,
                            scale=scale)
        return gq, gk, gv, None, None, None, None


class EfficientAttentionCuda(Function):
    """CUDA memory-efficient attention.  Saves: q, k, v, attn_bias, output, logsumexp
    ([B, H, ceil(L/32)*32] float32), philox seed and offset."""

    node_name = "ScaledDotProductEfficientAttentionBackward0"
    saves = ("query", "key", "value", "attn_bias", "output", "log_sumexp", "philox_seed", "philox_offset")

    @staticmethod
    def forward(ctx, q, k, v, attn_bias, dropout_p, is_causal, scale):
        b, h, lq, _ = q.shape
        compute_lse = any(t.requires_grad for t in (q, k, v))
        lse_len = -(-int(lq) // 32) * 32 if compute_lse else 0
        out_shape = (b, h, lq, v.shape[-1])
        out_strides = strides_like(out_shape, _Layout(out_shape, order=(0, 2, 1, 3)))
        metas = [(out_shape, q.dtype, out_strides), ((b, h, lse_len), _dt.float32), ((), _dt.int64), ((), _dt.int64)]
        out, lse, seed, offset = kernel("_scaled_dot_product_efficient_attention", metas, q, k, v, attn_bias,
                                        compute_lse, dropout_p, is_causal, scale=scale)
        ctx.save_for_backward(q, k, v, attn_bias, out, lse, seed, offset)
        ctx.args = (dropout_p, is_causal, scale)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad, _glse=None):
        q, k, v, bias, out, lse, seed, offset = ctx.saved_tensors
        p, causal, scale = ctx.args
        need = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2],
                bias is not None and ctx.needs_input_grad[3]]
        metas = [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype),
                 ((bias.shape if bias is not None else (0,)), q.dtype)]
        gq, gk, gv, gb = masked_kernel("_scaled_dot_product_efficient_attention_backward", metas, need, grad, q, k,
                                       v, bias, out, lse, seed, offset, p, need, causal, scale=scale)
        return gq, gk, gv, gb, None, None, None


class _Layout:
    """A stand-in with the strides of a contiguous tensor permuted by ``order`` (for strides_like)."""

    def __init__(self, shape, order):
        strides = [0] * len(shape)
        acc = 1
        for d in reversed(order):
            strides[d] = acc
            acc *= max(int(shape[d]), 1)
        self._strides = tuple(strides)

    def stride(self):
        return self._strides


class SafeSoftmax(Function):
    """y = _safe_softmax(x, dim): softmax, with rows that are entirely -inf giving 0 instead of NaN.
    Runs torch's composite (softmax, x == -inf, all over dim, where).  Saves: result."""

    node_name = "SafeSoftmaxBackward0"
    saves = ("result",)

    @staticmethod
    def forward(ctx, x, dim):
        soft = kernel("_softmax", (x.shape, x.dtype), x, dim, False)
        masked = kernel("eq", (x.shape, _dt.bool_), x, float("-inf"))
        row_shape = tuple(1 if i == dim % x.dim() else s for i, s in enumerate(x.shape))
        masked_rows = kernel("all", (row_shape, _dt.bool_), masked, dim, True)
        del masked
        zero = kernel("new_zeros", ((), x.dtype), x, [])
        y = kernel("where", (x.shape, x.dtype), masked_rows, zero, soft)
        ctx.save_for_backward(y)
        ctx.dim, ctx.in_dtype = dim % x.dim(), x.dtype
        return y

    @staticmethod
    def backward(ctx, grad):
        from .nn import SoftmaxBackwardData
        (y,) = ctx.saved_tensors
        return SoftmaxBackwardData.apply(grad, y, ctx.dim, ctx.in_dtype), None


def _additive_mask(mask: Tensor, dtype) -> Tensor:
    """torch's convert_boolean_attn_mask: a bool mask (True = attend) becomes 0 / -inf in ``dtype``."""
    if mask.dtype is not _dt.bool_:
        return mask
    keep_out = kernel("logical_not", (mask.shape, _dt.bool_), mask)
    zero = kernel("new_zeros", ((), dtype), mask, [], dtype=dtype)
    return kernel("where", (mask.shape, dtype), keep_out, float("-inf"), zero)


def _efficient_bias(mask, q, k):
    """torch's preprocess_mask for the memory-efficient kernel: a mask whose rows are not 8-element aligned
    is copied into a padded buffer (and sliced back), then expanded to [B, H, L, S] (measured on an H100:
    a [5, 6] float32 mask is saved as a [5, 8]-strided buffer of 160 bytes)."""
    from .indexing import ConstantPadNd
    from .views import expand, narrow
    alignment = 8
    aligned = int(mask.stride()[-1]) == 1 and all(int(st) % alignment == 0 for st in mask.stride()[:-1])
    if not aligned:
        s = mask.shape[-1]
        padded = ConstantPadNd.apply(mask, [0, alignment - int(s) % alignment], 0.0)
        mask = narrow(padded, -1, 0, s)
    return expand(mask, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]))


def _last_dim_contiguous(t) -> bool:
    return int(t.shape[-1]) == 1 or int(t.stride()[-1]) == 1


def _cpu_flash_ok(q, k, v, mask, dropout_p, enable_gqa) -> bool:
    """torch's use_flash_attention_cpp checks (a mask that needs a gradient rules the fused kernel out)."""
    if dropout_p != 0.0 or q.dim() != 4 or k.dim() != 4 or v.dim() != 4 or q.dtype not in _FLOATS:
        return False
    if mask is not None and mask.requires_grad:
        from .. import autograd
        if autograd.is_grad_enabled():
            return False
    if int(q.shape[0]) != int(k.shape[0]) or int(k.shape[0]) != int(v.shape[0]):
        return False
    hq, hk = int(q.shape[1]), int(k.shape[1])
    if hq != hk and not (enable_gqa and hk and hq % hk == 0):
        return False
    if not (int(q.shape[-1]) == int(k.shape[-1]) == int(v.shape[-1])):
        return False
    if any(int(t.shape[-2]) == 0 for t in (q, k)):
        return False
    tensors = (q, k, v) + ((mask,) if mask is not None else ())
    return all(_last_dim_contiguous(t) for t in tensors)


def _cuda_choice(q, k, v, mask, dropout_p, enable_gqa=False) -> str:
    """The kernel torch 2.11 picked on an H100 (measured): cuDNN attention for fp16/bf16 (masks, dropout,
    grouped-query heads, head dims that are multiples of 8), memory-efficient for fp32, math otherwise."""
    head_dims_equal = int(q.shape[-1]) == int(k.shape[-1]) == int(v.shape[-1])
    if q.dim() != 4 or not head_dims_equal:
        return "math"
    if q.dtype in (_dt.float16, _dt.bfloat16) and int(q.shape[-1]) % 8 == 0 and int(q.shape[-1]) <= 128:
        return "cudnn"
    if int(q.shape[1]) != int(k.shape[1]):          # grouped-query attention: not the efficient kernel
        return "math"
    if q.dtype in (_dt.float16, _dt.bfloat16, _dt.float32):
        return "efficient"
    return "math"


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if query.dtype is not key.dtype or query.dtype is not value.dtype:
        raise RuntimeError("Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{query.dtype.name} key.dtype: {key.dtype.name} and value.dtype: {value.dtype.name} "
                           "instead.")
    if query.device.type == "cuda":
        choice = _cuda_choice(query, key, value, attn_mask, dropout_p, enable_gqa)
    else:
        choice = "flash_cpu" if _cpu_flash_ok(query, key, value, attn_mask, dropout_p, enable_gqa) else "math"
    mask = _additive_mask(attn_mask, query.dtype) if attn_mask is not None else None
    if choice == "flash_cpu":
        return FlashAttentionCpu.apply(query, key, value, is_causal, scale, mask)[0]
    if choice == "cudnn":
        return CudnnAttentionCuda.apply(query, key, value, mask, dropout_p, is_causal, scale)[0]
    if choice == "efficient":
        if mask is not None:
            mask = _efficient_bias(mask, query, key)
        return EfficientAttentionCuda.apply(query, key, value, mask, dropout_p, is_causal, scale)[0]
    return _math(query, key, value, mask, dropout_p, is_causal, scale, enable_gqa)


def _math(q, k, v, mask, dropout_p, is_causal, scale, enable_gqa):
    """torch's _scaled_dot_product_attention_math, op for op."""
    from .linalg import matmul
    from .pointwise import AddInplace, mul
    from .misc import to_dtype
    from .views import transpose
    origin = q.dtype
    if q.device.type == "cpu" and origin in (_dt.float16, _dt.bfloat16):
        q, k, v = to_dtype(q, _dt.float32), to_dtype(k, _dt.float32), to_dtype(v, _dt.float32)
    e = int(q.shape[-1])
    scale_value = scale if scale is not None else 1.0 / math.sqrt(e)
    factor = math.sqrt(abs(scale_value))
    q = mul(q, -factor if scale_value < 0 else factor)
    if is_causal:
        lq, lk = q.shape[-2], k.shape[-2]
        ones = kernel("new_ones", ((lq, lk), _dt.bool_), q, [int(lq), int(lk)], dtype=_dt.bool_)
        mask = _additive_mask(kernel("tril", ((lq, lk), _dt.bool_), ones), q.dtype)
        del ones
    if enable_gqa and int(k.shape[-3]) != int(q.shape[-3]):
        from .. import ops
        groups = int(q.shape[-3]) // int(k.shape[-3])
        k = ops.TENSOR_METHODS["repeat_interleave"](k, groups, -3)
        v = ops.TENSOR_METHODS["repeat_interleave"](v, groups, -3)
    attn = matmul(q, mul(transpose(k, -2, -1), factor))
    if mask is not None:
        attn = AddInplace.apply(attn, mask)
    attn = SafeSoftmax.apply(attn, -1)
    if dropout_p > 0.0:
        from ..nn.functional import dropout
        out = matmul(dropout(attn, dropout_p, True), v)
    else:
        out = matmul(attn, v)
    if out.dtype is not origin:
        to_dtype(attn, origin)          # torch also returns the attention weights cast back (discarded)
        out = to_dtype(out, origin)
    return out
