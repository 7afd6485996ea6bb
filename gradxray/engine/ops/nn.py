"""Neural-network ops: embedding, normalisation, softmax, dropout, attention, convolution, pooling."""
from __future__ import annotations

from .. import backends
from .. import dtypes as _dt
from ..function import Function
from ..tensor import Tensor, wrap_dim
from ._kernel import inplace, kernel, strides_like
from .shapes import conv_out


class Embedding(Function):
    """y = weight[indices].  Saves: indices (the weight is not saved; only its row count)."""

    saves = ("indices",)

    @staticmethod
    def forward(ctx, weight, indices, padding_idx=-1, scale_grad_by_freq=False):
        if indices.dtype not in (_dt.int64, _dt.int32):
            raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                               f"Long, Int; but got {indices.dtype.name} instead")
        ctx.save_for_backward(indices)
        ctx.num_weights, ctx.padding_idx, ctx.scale = weight.shape[0], padding_idx, scale_grad_by_freq
        return kernel("embedding", (tuple(indices.shape) + (weight.shape[1],), weight.dtype), weight, indices,
                      padding_idx, scale_grad_by_freq)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        gw = kernel("embedding_dense_backward", ((ctx.num_weights, grad.shape[-1]), grad.dtype), grad, indices,
                    int(ctx.num_weights), ctx.padding_idx, ctx.scale)
        return gw, None, None, None


class NativeLayerNorm(Function):
    """y = layer_norm(x).  Saves: input, weight, bias, mean, rstd (stats in the input dtype on CPU,
    float32 for half inputs on CUDA)."""

    saves = ("input", "weight", "bias", "result1", "result2")

    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        k = len(normalized_shape)
        stat_shape = tuple(x.shape[:x.dim() - k]) + (1,) * k
        stat_dtype = x.dtype
        if x.device.type == "cuda" and x.dtype in (_dt.float16, _dt.bfloat16):
            stat_dtype = _dt.float32
        out, mean, rstd = kernel("native_layer_norm", [(x.shape, x.dtype), (stat_shape, stat_dtype),
                                                       (stat_shape, stat_dtype)],
                                 x, list(normalized_shape), weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.normalized_shape = list(normalized_shape)
        return out, mean, rstd

    @staticmethod
    def backward(ctx, grad, _gm=None, _gr=None):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[2],
                bias is not None and ctx.needs_input_grad[3]]
        metas = [(x.shape, x.dtype)] + [((weight.shape if weight is not None else (0,)), x.dtype)] * 2
        gx, gw, gb = _masked_kernel("native_layer_norm_backward", metas, mask, grad, x, ctx.normalized_shape,
                                    mean, rstd, weight, bias, mask)
        return gx, None, gw, gb, None


def _masked_kernel(name, metas, mask, *args):
    """A kernel whose outputs are only produced where ``mask`` is True (others are None)."""
    from .. import memory
    from ..flops import kernel_flops
    if memory.active_trackers():
        memory.flops(kernel_flops(name, args, None))
    if backends.any_data(*args):
        res = backends.aten(name, *args)
        outs = []
        for m, r, meta in zip(mask, res, metas):
            outs.append(Tensor._new(meta[0], backends.from_torch_dtype(r.dtype), _dev(args), data=r,
                                    stride=r.stride()) if m else None)
        return outs
    return [Tensor._new(meta[0], meta[1], _dev(args)) if m else None for m, meta in zip(mask, metas)]


def _dev(args):
    for a in args:
        if isinstance(a, Tensor):
            return a.device
    return None


class _SoftmaxFamily(Function):
    """Both softmaxes save their result and run a ``*_backward_data`` kernel on it."""

    saves = ("result",)
    forward_kernel = backward_kernel = ""

    @classmethod
    def forward(cls, ctx, x, dim):
        dim = wrap_dim(dim, x.dim())
        ctx.dim, ctx.in_dtype = dim, x.dtype
        y = kernel(cls.forward_kernel, (x.shape, x.dtype), x, dim, False)
        ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        (y,) = ctx.saved_tensors
        return kernel(cls.backward_kernel, (grad.shape, grad.dtype), grad, y, ctx.dim, ctx.in_dtype), None


class LogSoftmax(_SoftmaxFamily):
    """y = log_softmax(x, dim).  Saves: result."""

    forward_kernel, backward_kernel = "_log_softmax", "_log_softmax_backward_data"


class Softmax(_SoftmaxFamily):
    """y = softmax(x, dim).  Saves: result."""

    forward_kernel, backward_kernel = "_softmax", "_softmax_backward_data"


class BernoulliMaskDropout(Function):
    """CPU dropout as torch runs it: noise = bernoulli(1-p) / (1-p); y = x * noise.
    Saves: noise (a float mask of x's shape and dtype)."""

    node_name = "MulBackward0"
    saves = ("other",)

    @staticmethod
    def forward(ctx, x, p):
        noise = kernel("empty_like", (x.shape, x.dtype), x)
        inplace("bernoulli_", noise, 1 - p)
        inplace("div_", noise, 1 - p)
        ctx.save_for_backward(noise)
        return kernel("mul", (x.shape, x.dtype), x, noise)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import mul
        (noise,) = ctx.saved_tensors
        return mul(grad, noise), None


class NativeDropout(Function):
    """CUDA dropout (fused kernel).  Saves: mask (bool, 1 byte per element)."""

    saves = ("result1",)

    @staticmethod
    def forward(ctx, x, p):
        y, mask = kernel("native_dropout", [(x.shape, x.dtype), (x.shape, _dt.bool_)], x, p, True)
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / (1.0 - p)
        return y, mask

    @staticmethod
    def backward(ctx, grad, _gmask=None):
        (mask,) = ctx.saved_tensors
        return kernel("native_dropout_backward", (grad.shape, grad.dtype), grad, mask, ctx.scale), None


class FlashAttentionCpu(Function):
    """CPU fused attention (torch picks it without dropout).  Saves: q, k, v, output, logsumexp
    ([B, H, L] float32) — no L×S matrix."""

    node_name = "ScaledDotProductFlashAttentionForCpuBackward0"
    saves = ("query", "key", "value", "output", "logsumexp")

    @staticmethod
    def forward(ctx, q, k, v, is_causal=False, scale=None):
        out_shape = tuple(q.shape[:-1]) + (v.shape[-1],)
        lse_shape = tuple(q.shape[:-1])
        out, lse = kernel("_scaled_dot_product_flash_attention_for_cpu",
                          [(out_shape, q.dtype, strides_like(out_shape, q)), (lse_shape, _dt.float32)],
                          q, k, v, 0.0, is_causal, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.is_causal, ctx.scale = is_causal, scale
        return out, lse

    @staticmethod
    def backward(ctx, grad, _glse=None):
        q, k, v, out, lse = ctx.saved_tensors
        gq, gk, gv = kernel("_scaled_dot_product_flash_attention_for_cpu_backward",
                            [(q.shape, q.dtype), (k.shape, k.dtype), (v.shape, v.dtype)],
                            grad, q, k, v, out, lse, 0.0, ctx.is_causal, scale=ctx.scale)
        return gq, gk, gv, None, None


class Convolution(Function):
    """y = conv(x, w, b).  Saves: input, weight (bias: sizes only)."""

    saves = ("input", "weight")

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        nd = x.dim() - 2
        out_sp = [conv_out(x.shape[2 + i], int(w.shape[2 + i]), stride[i], padding[i], dilation[i])
                  for i in range(nd)]
        if any(int(s) <= 0 for s in out_sp):
            raise RuntimeError("Calculated output size is too small")
        if int(x.shape[1]) != int(w.shape[1]) * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {[int(s) for s in w.shape]}, expected input"
                               f"{[int(s) for s in x.shape]} to have {int(w.shape[1]) * groups} channels, but got "
                               f"{int(x.shape[1])} channels instead")
        ctx.save_for_backward(x, w)
        ctx.args = (list(stride), list(padding), list(dilation), False, [0] * nd, groups)
        ctx.bias_sizes = [int(b.shape[0])] if b is not None else None
        return kernel("convolution", ((x.shape[0], w.shape[0], *out_sp), x.dtype), x, w, b, *ctx.args)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.bias_sizes is not None and ctx.needs_input_grad[2]]
        metas = [(x.shape, x.dtype), (w.shape, w.dtype), ((ctx.bias_sizes or [0])[0:1], grad.dtype)]
        gx, gw, gb = _masked_kernel("convolution_backward", metas, mask, grad, x, w, ctx.bias_sizes, *ctx.args, mask)
        return gx, gw, gb, None, None, None, None


class NativeBatchNorm(Function):
    """Training-mode batch norm (updates running stats in place).  Saves: input, weight, running_mean,
    running_var, save_mean, save_invstd ([C], float32 for float inputs)."""

    saves = ("input", "weight", "running_mean", "running_var", "result1", "result2")

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        c = x.shape[1]
        stat_dtype = _dt.float32 if x.dtype in (_dt.float16, _dt.bfloat16) else x.dtype
        if not training:
            stat_shape = (0,)
        else:
            stat_shape = (c,)
        out, save_mean, save_invstd = kernel(
            "native_batch_norm", [(x.shape, x.dtype), (stat_shape, stat_dtype), (stat_shape, stat_dtype)],
            x, weight, bias, running_mean, running_var, training, momentum, eps)
        if running_mean is not None and training:
            running_mean._storage.version += 1
            running_var._storage.version += 1
        ctx.save_for_backward(x, weight, running_mean, running_var, save_mean, save_invstd)
        ctx.training, ctx.eps = training, eps
        return out, save_mean, save_invstd

    @staticmethod
    def backward(ctx, grad, _g1=None, _g2=None):
        x, weight, rm, rv, save_mean, save_invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                ctx.needs_input_grad[2]]
        wshape = weight.shape if weight is not None else (x.shape[1],)
        metas = [(x.shape, x.dtype), (wshape, x.dtype), (wshape, x.dtype)]
        gx, gw, gb = _masked_kernel("native_batch_norm_backward", metas, mask, grad, x, weight, rm, rv,
                                    save_mean, save_invstd, ctx.training, ctx.eps, mask)
        return gx, gw, gb, None, None, None, None, None


class MaxPool2dWithIndices(Function):
    """y, idx = max_pool2d_with_indices(x).  Saves: input, indices (int64, output-shaped)."""

    saves = ("self", "result1")

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        if ceil_mode:
            raise NotImplementedError("max_pool2d(ceil_mode=True) is not supported yet")
        out_sp = [conv_out(x.shape[-2 + i], kernel_size[i], stride[i], padding[i], dilation[i]) for i in range(2)]
        shape = tuple(x.shape[:-2]) + tuple(out_sp)
        out, idx = kernel("max_pool2d_with_indices", [(shape, x.dtype), (shape, _dt.int64)], x, kernel_size,
                          stride, padding, dilation, ceil_mode)
        ctx.save_for_backward(x, idx)
        ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
        return out, idx

    @staticmethod
    def backward(ctx, grad, _gi=None):
        x, idx = ctx.saved_tensors
        return (kernel("max_pool2d_with_indices_backward", (x.shape, x.dtype), grad, x, *ctx.args, idx),
                None, None, None, None, None)


class AdaptiveAvgPool2d(Function):
    """y = _adaptive_avg_pool2d(x, size).  Saves: input."""

    node_name = "AdaptiveAvgPool2DBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, output_size):
        ctx.save_for_backward(x)
        return kernel("_adaptive_avg_pool2d", (tuple(x.shape[:-2]) + tuple(output_size), x.dtype), x,
                      list(output_size))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return kernel("_adaptive_avg_pool2d_backward", (x.shape, x.dtype), grad, x), None


class NllLoss(Function):
    """loss = nll_loss(logp, target).  Saves: self, target, total_weight (0-dim)."""

    node_name = "NllLossBackward0"
    saves = ("self", "target", "total_weight")

    @staticmethod
    def forward(ctx, logp, target, weight=None, reduction=1, ignore_index=-100):
        out_shape = () if reduction != 0 else tuple(target.shape)
        out, total_weight = kernel("nll_loss_forward", [(out_shape, logp.dtype), ((), logp.dtype)], logp, target,
                                   weight, reduction, ignore_index)
        ctx.save_for_backward(logp, target, total_weight)
        ctx.weight, ctx.reduction, ctx.ignore_index = weight, reduction, ignore_index
        return out, total_weight

    @staticmethod
    def backward(ctx, grad, _gtw=None):
        logp, target, total_weight = ctx.saved_tensors
        g = kernel("nll_loss_backward", (logp.shape, logp.dtype), grad, logp, target, ctx.weight, ctx.reduction,
                   ctx.ignore_index, total_weight)
        return g, None, None, None, None
