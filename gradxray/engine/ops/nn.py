"""Neural-network ops: embedding, layer norm, the softmax family and dropout (attention, convolution, pooling
and the other norms live in their own family modules)."""
from __future__ import annotations

from .. import dtypes as _dt
from ..function import Function
from ..tensor import wrap_dim
from ._kernel import inplace, kernel, masked_kernel


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
        return EmbeddingDenseBackward.apply(grad, indices, ctx.num_weights, ctx.padding_idx, ctx.scale), None, None, None


class EmbeddingDenseBackward(Function):
    """grad_weight = embedding_dense_backward(grad, indices, num_weights, ...): rows of grad summed into
    the weight's rows.  Saves: indices."""

    saves = ("indices",)

    @staticmethod
    def forward(ctx, grad, indices, num_weights, padding_idx, scale_grad_by_freq):
        ctx.save_for_backward(indices)
        ctx.padding_idx = padding_idx
        return kernel("embedding_dense_backward", ((num_weights, grad.shape[-1]), grad.dtype), grad, indices,
                      int(num_weights), padding_idx, scale_grad_by_freq)

    @staticmethod
    def backward(ctx, gg):
        (indices,) = ctx.saved_tensors
        if ctx.padding_idx >= 0:
            raise NotImplementedError("double backward of embedding with padding_idx is not supported yet")
        # torch's embedding_dense_double_backward: the rows of gg picked by the indices
        return Embedding.apply(gg, indices, -1, False), None, None, None, None


class NativeLayerNorm(Function):
    """y = layer_norm(x).  Saves: input, weight, bias, mean, rstd (stats in the input dtype on CPU unless
    half inputs meet float32 parameters, float32 for half inputs on CUDA)."""

    saves = ("input", "weight", "bias", "result1", "result2")

    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        k = len(normalized_shape)
        stat_shape = tuple(x.shape[:x.dim() - k]) + (1,) * k
        stat_dtype = x.dtype
        params = [p for p in (weight, bias) if p is not None]
        if x.dtype in (_dt.float16, _dt.bfloat16) and (x.device.type == "cuda" or
                                                      any(p.dtype is not x.dtype for p in params)):
            stat_dtype = _dt.float32     # CUDA accumulates half in float; CPU does for mixed half/float params
        out, mean, rstd = kernel("native_layer_norm", [(x.shape, x.dtype), (stat_shape, stat_dtype),
                                                       (stat_shape, stat_dtype)],
                                 x, list(normalized_shape), weight, bias, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.normalized_shape, ctx.eps = list(normalized_shape), eps
        return out, mean, rstd

    @staticmethod
    def backward(ctx, grad, _gm=None, _gr=None):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        mask = (ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[2],
                bias is not None and ctx.needs_input_grad[3])
        gx, gw, gb = NativeLayerNormBackward.apply(grad, x, ctx.normalized_shape, mean, rstd, weight, bias, mask,
                                                   ctx.eps)
        return gx, None, gw, gb, None


class NativeLayerNormBackward(Function):
    """(grad_input, grad_weight, grad_bias) = native_layer_norm_backward(...), each only where the output mask
    asks.  Saves: grad_out, input, mean, rstd, weight (for the double backward)."""

    saves = ("grad_out", "input", "mean", "rstd", "weight")

    @staticmethod
    def forward(ctx, grad, x, normalized_shape, mean, rstd, weight, bias, mask, eps):
        ctx.save_for_backward(grad, x, mean, rstd, weight)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        param_dtype = weight.dtype if weight is not None else (bias.dtype if bias is not None else x.dtype)
        metas = [(x.shape, x.dtype)] + [((weight.shape if weight is not None else (0,)), param_dtype)] * 2
        outs = masked_kernel("native_layer_norm_backward", metas, list(mask), grad, x, normalized_shape, mean,
                              rstd, weight, bias, list(mask))
        return tuple(outs)

    @staticmethod
    def backward(ctx, ggx, ggw=None, ggb=None):
        from ._composite import composite_grads
        grad, x, _mean, _rstd, weight = ctx.saved_tensors
        k = len(ctx.normalized_shape)
        dims = list(range(x.dim() - k, x.dim()))

        def layer_norm_backward(grad_, x_, weight_):
            from .elementwise import rsqrt
            from .reduce import mean, sum as sum_
            from .pointwise import add, mul, sub
            centered = sub(x_, mean(x_, dims, True))
            rstd = rsqrt(add(mean(mul(centered, centered), dims, True), ctx.eps))
            xhat = mul(centered, rstd)
            g = mul(grad_, weight_) if weight_ is not None else grad_
            gx = mul(rstd, sub(sub(g, mean(g, dims, True)), mul(xhat, mean(mul(g, xhat), dims, True))))
            lead = list(range(x_.dim() - k))
            gw = sum_(mul(grad_, xhat), lead) if weight_ is not None else None
            return gx, gw

        g_grad, g_x, g_w = composite_grads(layer_norm_backward, [grad, x, weight],
                                           [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                                            weight is not None and ctx.needs_input_grad[5]], [ggx, ggw])
        if ggb is not None and ctx.needs_input_grad[0]:
            from .views import expand
            from .pointwise import add
            gb_term = expand(ggb, tuple(grad.shape))        # d(grad_bias)/d(grad) broadcasts back
            g_grad = gb_term if g_grad is None else add(g_grad, gb_term)
        return g_grad, g_x, None, None, None, g_w, None, None, None


class _SoftmaxFamily(Function):
    """Both softmaxes save their result and run a ``*_backward_data`` kernel on it."""

    saves = ("result",)
    forward_kernel = ""
    backward_node = None

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
        return cls.backward_node.apply(grad, y, ctx.dim, ctx.in_dtype), None


class _SoftmaxBackwardFamily(Function):
    """grad_input = _(log_)softmax_backward_data(grad, output, dim, input_dtype).
    Saves: grad_output (for the output's gradient), output."""

    saves = ("grad_output", "output")
    kernel_name = ""

    @classmethod
    def forward(cls, ctx, grad, y, dim, in_dtype):
        ctx.save_for_backward(grad if ctx.needs_input_grad[1] else None, y)
        ctx.dim, ctx.in_dtype = dim, in_dtype
        return kernel(cls.kernel_name, (grad.shape, in_dtype), grad, y, dim, in_dtype)

    @classmethod
    def backward(cls, ctx, gg):
        from ._composite import composite_grads
        grad, y = ctx.saved_tensors
        g_grad = cls.grad_output_grad(gg, y, ctx.dim, ctx.in_dtype) if ctx.needs_input_grad[0] else None
        g_y = None
        if ctx.needs_input_grad[1]:
            (g_y,) = composite_grads(lambda y_: cls.composite(grad, y_, ctx.dim), [y], [True], [gg])
        return g_grad, g_y, None, None


class SoftmaxBackwardData(_SoftmaxBackwardFamily):
    """softmax's backward kernel: y * (g - sum(g * y, dim)).  Saves: grad_output, output."""

    kernel_name = "_softmax_backward_data"

    @classmethod
    def grad_output_grad(cls, gg, y, dim, in_dtype):
        """The kernel is linear in grad_output with a symmetric matrix: its own transpose."""
        return cls.apply(gg, y, dim, in_dtype)

    @staticmethod
    def composite(grad, y, dim):
        from .pointwise import mul, sub
        from .reduce import sum as sum_
        return mul(y, sub(grad, sum_(mul(grad, y), dim, True)))


class LogSoftmaxBackwardData(_SoftmaxBackwardFamily):
    """log_softmax's backward kernel: g - exp(y) * sum(g, dim).  Saves: grad_output, output."""

    kernel_name = "_log_softmax_backward_data"

    @staticmethod
    def grad_output_grad(gg, y, dim, in_dtype):
        """torch's formula: gg - sum(gg * exp(y), dim) (the transpose of the kernel's linear map)."""
        from .elementwise import exp
        from .pointwise import mul, sub
        from .reduce import sum as sum_
        return sub(gg, sum_(mul(gg, exp(y)), dim, True))

    @staticmethod
    def composite(grad, y, dim):
        from .elementwise import exp
        from .pointwise import mul, sub
        from .reduce import sum as sum_
        return sub(grad, mul(exp(y), sum_(grad, dim, True)))


class LogSoftmax(_SoftmaxFamily):
    """y = log_softmax(x, dim).  Saves: result."""

    forward_kernel, backward_node = "_log_softmax", LogSoftmaxBackwardData


class Softmax(_SoftmaxFamily):
    """y = softmax(x, dim).  Saves: result."""

    forward_kernel, backward_node = "_softmax", SoftmaxBackwardData


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
        return NativeDropoutBackward.apply(grad, mask, ctx.scale), None


class NativeDropoutBackward(Function):
    """grad_input = native_dropout_backward(grad, mask, scale) = grad * mask * scale.  Saves: mask."""

    saves = ("mask",)

    @staticmethod
    def forward(ctx, grad, mask, scale):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return kernel("native_dropout_backward", (grad.shape, grad.dtype), grad, mask, scale)

    @staticmethod
    def backward(ctx, gg):
        (mask,) = ctx.saved_tensors
        return NativeDropoutBackward.apply(gg, mask, ctx.scale), None, None
