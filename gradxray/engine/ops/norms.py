"""Normalisation ops beyond layer_norm: batch_norm (train and eval), group_norm, instance_norm (batch_norm
on a reshaped input, as torch decomposes it) and rms_norm (torch's CPU composite)."""
from __future__ import annotations

from .. import autograd
from .. import dtypes as _dt
from ..function import Function
from ..symbolic import sym_prod
from ._composite import composite_grads
from ._kernel import inplace, kernel, masked_kernel
from .indexing import Repeat
from .misc import to_dtype
from .pointwise import AddInplace, add, mul, sub
from .reduce import mean, sum as sum_
from .views import contiguous, reshape, view_

_HALF = (_dt.float16, _dt.bfloat16)


def _torch_size(x) -> str:
    return f"torch.Size({[int(s) for s in x.shape]})"


def _channel_view(t, ndim):
    """A [C] tensor viewed as [1, C, 1, ...] to broadcast against an [N, C, ...] input."""
    return view_(t, [1, t.shape[0]] + [1] * (ndim - 2))


# -- batch norm -------------------------------------------------------------

def _batch_norm_stat_dtype(x, *params):
    """CPU batch norm keeps its statistics in the parameters' dtype when a half input meets float params."""
    if x.dtype in _HALF and any(p is not None and p.dtype is _dt.float32 for p in params):
        return _dt.float32
    return x.dtype


class NativeBatchNorm(Function):
    """y, save_mean, save_invstd = native_batch_norm(x, ...); in training it updates the running stats in
    place.  Saves: input, weight, running_mean, running_var, save_mean, save_invstd ([C] in training, [0] in
    eval)."""

    saves = ("input", "weight", "running_mean", "running_var", "result1", "result2")

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        c = x.shape[1]
        for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
            if t is not None and int(t.numel()) != int(c):
                raise RuntimeError(f"{name} should contain {int(c)} elements not {int(t.numel())}")
        stat_dtype = _batch_norm_stat_dtype(x, weight, bias, running_mean, running_var)
        if x.device.type == "cuda" and x.dtype in _HALF:
            stat_dtype = _dt.float32
        stat_shape = (c,) if training or x.device.type == "cuda" else (0,)   # CUDA returns [C] stats in eval too
        out, save_mean, save_invstd = kernel(
            "native_batch_norm", [(x.shape, x.dtype), (stat_shape, stat_dtype), (stat_shape, stat_dtype)],
            x, weight, bias, running_mean, running_var, training, momentum, eps)
        if training:
            for stat in (running_mean, running_var):
                if stat is not None:
                    stat._storage.version += 1          # updated in place by the kernel
        ctx.save_for_backward(x, weight, running_mean, running_var, save_mean, save_invstd)
        ctx.mark_non_differentiable(save_mean, save_invstd)
        ctx.training, ctx.eps = training, eps
        return out, save_mean, save_invstd

    @staticmethod
    def backward(ctx, grad, _g_mean=None, _g_invstd=None):
        x, weight, rm, rv, save_mean, save_invstd = ctx.saved_tensors
        if grad is None:
            return (None,) * 8
        mask = (ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        gx, gw, gb = NativeBatchNormBackward.apply(grad, x, weight, rm, rv, save_mean, save_invstd, ctx.training,
                                                   ctx.eps, mask)
        return gx, gw, gb, None, None, None, None, None


class NativeBatchNormBackward(Function):
    """(grad_input, grad_weight, grad_bias) = native_batch_norm_backward(grad, x, ...), each only where the
    mask asks.  Saves: grad_out, input, weight, running_mean, running_var, save_mean, save_invstd.
    Derivative: torch's batchnorm_double_backward, here by differentiating the same backward written as
    engine ops (statistics recomputed from the input in training, the running ones in eval)."""

    saves = ("grad_out", "input", "weight", "running_mean", "running_var", "save_mean", "save_invstd")

    @staticmethod
    def forward(ctx, grad, x, weight, rm, rv, save_mean, save_invstd, training, eps, mask):
        ctx.save_for_backward(grad, x, weight, rm, rv, save_mean, save_invstd)
        ctx.training, ctx.eps = training, eps
        wshape = weight.shape if weight is not None else (x.shape[1],)
        wdtype = weight.dtype if weight is not None else x.dtype
        metas = [(x.shape, x.dtype), (wshape, wdtype), (wshape, wdtype)]
        return tuple(masked_kernel("native_batch_norm_backward", metas, list(mask), grad, x, weight, rm, rv,
                                    save_mean, save_invstd, training, eps, list(mask)))

    @staticmethod
    def backward(ctx, gg_x, gg_w=None, gg_b=None):
        grad, x, weight, rm, rv, _save_mean, _save_invstd = ctx.saved_tensors
        nd = x.dim()
        dims = [0] + list(range(2, nd))

        def batch_norm_backward(grad_, x_, weight_):
            from .elementwise import rsqrt
            if ctx.training:
                centered = sub(x_, mean(x_, dims, True))
                invstd = rsqrt(add(mean(mul(centered, centered), dims, True), ctx.eps))
            else:
                centered = sub(x_, _channel_view(rm, nd))
                invstd = _channel_view(rsqrt(add(rv, ctx.eps)), nd)
            xhat = mul(centered, invstd)
            g = mul(grad_, _channel_view(weight_, nd)) if weight_ is not None else grad_
            if ctx.training:
                gx = mul(invstd, sub(sub(g, mean(g, dims, True)), mul(xhat, mean(mul(g, xhat), dims, True))))
            else:
                gx = mul(g, invstd)
            return gx, sum_(mul(grad_, xhat), dims), sum_(grad_, dims)

        g_grad, g_x, g_w = composite_grads(batch_norm_backward, [grad, x, weight],
                                           [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                                            weight is not None and ctx.needs_input_grad[2]], [gg_x, gg_w, gg_b])
        return g_grad, g_x, g_w, None, None, None, None, None, None, None


class CudnnBatchNorm(Function):
    """The cuDNN batch norm torch picks on CUDA for affine float/half inputs of 3+ dims.  Saves: input,
    weight, running_mean, running_var, save_mean, save_var ([C] float32 in training, [0] in eval) and
    cuDNN's reserve space (uint8, empty for the default mode)."""

    saves = ("input", "weight", "running_mean", "running_var", "result1", "result2", "result3")

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        c = x.shape[1]
        stat = ((c,) if training else (0,), _dt.float32)
        out, save_mean, save_var, reserve = kernel(
            "cudnn_batch_norm", [(x.shape, x.dtype), stat, stat, ((0,), _dt.uint8)],
            x, weight, bias, running_mean, running_var, training, momentum, eps)
        if training:
            for s in (running_mean, running_var):
                if s is not None:
                    s._storage.version += 1
        ctx.save_for_backward(x, weight, running_mean, running_var, save_mean, save_var, reserve)
        ctx.mark_non_differentiable(save_mean, save_var, reserve)
        ctx.training, ctx.eps = training, eps
        return out, save_mean, save_var, reserve

    @staticmethod
    def backward(ctx, grad, *_unused):
        from .views import contiguous
        x, weight, rm, rv, save_mean, save_var, reserve = ctx.saved_tensors
        if grad is None:
            return (None,) * 8
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        if not ctx.training or autograd.is_grad_enabled():
            # eval mode (and double backward): torch's formula goes through native_batch_norm_backward
            gx, gw, gb = NativeBatchNormBackward.apply(grad, x, weight, rm, rv, save_mean, save_var, ctx.training,
                                                       ctx.eps, mask)
        else:
            metas = [(x.shape, x.dtype), (weight.shape, weight.dtype), (weight.shape, weight.dtype)]
            gx, gw, gb = kernel("cudnn_batch_norm_backward", metas, x, contiguous(grad), weight, rm, rv, save_mean,
                                save_var, ctx.eps, reserve)
        return gx, gw, gb, None, None, None, None, None


def _uses_cudnn(x, weight, bias, running_mean, running_var, training) -> bool:
    """torch's _batch_norm_impl_index test for the cuDNN kernel."""
    if x.device.type != "cuda" or weight is None or bias is None or x.dim() < 3:
        return False
    if x.dtype is _dt.bfloat16 or weight.dtype is _dt.bfloat16:
        return False
    if x.dtype is _dt.float16 and weight.dtype is not _dt.float32:
        return False
    stats = running_mean is not None and running_var is not None
    if not stats and not (running_mean is None and running_var is None and training):
        return False
    return int(x.shape[0]) <= (880801 if training else 65535)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training:
        size = [int(s) for s in input.shape]
        values = 1
        for s in size[2:]:
            values *= s
        if size[0] * values == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{_torch_size(input)}")
    elif running_mean is None or running_var is None:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    if not isinstance(momentum, (int, float)):
        raise TypeError(f"batch_norm(): argument 'momentum' (position 7) must be float, not "
                        f"{type(momentum).__name__}")
    return _batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps)


def _batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """at::batch_norm's kernel choice: cuDNN where torch takes it (on a contiguous copy), else native."""
    if _uses_cudnn(input, weight, bias, running_mean, running_var, training) and eps >= 1e-5:
        from .views import contiguous
        return CudnnBatchNorm.apply(contiguous(input), contiguous(weight), bias, running_mean, running_var, training,
                                    momentum, eps)[0]
    return NativeBatchNorm.apply(input, weight, bias, running_mean, running_var, training, momentum, eps)[0]


# -- group norm -------------------------------------------------------------

class NativeGroupNorm(Function):
    """y, mean, rstd = native_group_norm(x, weight, bias, N, C, HxW, group, eps) (stats [N, group] in the
    input dtype on CPU).  Saves: input, weight, mean, rstd."""

    saves = ("input", "weight", "result1", "result2")

    @staticmethod
    def forward(ctx, x, weight, bias, n, c, hxw, group, eps):
        out, mean_, rstd = kernel("native_group_norm", [(x.shape, x.dtype), ((n, group), x.dtype),
                                                        ((n, group), x.dtype)],
                                  x, weight, bias, int(n), int(c), int(hxw), group, eps)
        ctx.save_for_backward(x, weight, mean_, rstd)
        ctx.mark_non_differentiable(mean_, rstd)
        ctx.sizes, ctx.eps = (n, c, hxw, group), eps
        ctx.has_bias = bias is not None
        return out, mean_, rstd

    @staticmethod
    def backward(ctx, grad, _g_mean=None, _g_rstd=None):
        x, weight, mean_, rstd = ctx.saved_tensors
        n, c, hxw, group = ctx.sizes
        mask = (ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2])
        if grad is None:
            return (None,) * 8
        if autograd.is_grad_enabled():
            # torch switches to its infinitely differentiable composite when the graph is being recorded
            gx, gw, gb = _group_norm_composite_grads(grad, x, weight, ctx.has_bias, group, ctx.eps, mask)
        else:
            gx, gw, gb = NativeGroupNormBackward.apply(contiguous(grad), x, mean_, rstd, weight, n, c, hxw, group,
                                                       mask)
        return gx, gw, gb, None, None, None, None, None


def _group_norm_composite_grads(grad, x, weight, has_bias, group, eps, mask):
    from .elementwise import rsqrt

    def group_norm(x_, weight_):
        grouped = reshape(x_, [x_.shape[0], group, -1])
        centered = sub(grouped, mean(grouped, [2], True))
        rstd = rsqrt(add(mean(mul(centered, centered), [2], True), eps))
        y = reshape(mul(centered, rstd), x_.shape)
        return mul(y, _channel_view(weight_, x_.dim())) if weight_ is not None else y

    gx, gw = composite_grads(group_norm, [x, weight], [mask[0], mask[1]], [grad])
    gb = sum_(grad, [0] + list(range(2, x.dim()))) if mask[2] else None
    return gx, gw, gb


class NativeGroupNormBackward(Function):
    """(grad_input, grad_weight, grad_bias) = native_group_norm_backward(...), only where the mask asks.  torch
    runs it only when no graph is recorded (create_graph uses a composite), and defines no derivative."""

    @staticmethod
    def forward(ctx, grad, x, mean_, rstd, weight, n, c, hxw, group, mask):
        wshape = weight.shape if weight is not None else (c,)
        metas = [(x.shape, x.dtype), (wshape, x.dtype), (wshape, x.dtype)]
        return tuple(masked_kernel("native_group_norm_backward", metas, list(mask), grad, x, mean_, rstd, weight,
                                    int(n), int(c), int(hxw), group, list(mask)))

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("the derivative for 'native_group_norm_backward' is not implemented.")


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    n, c = input.shape[0], input.shape[1]
    if int(c) % num_groups != 0:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {[int(s) for s in input.shape]} and num_groups={num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and int(t.numel()) != int(c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, "
                               f"but got {name} of shape {[int(s) for s in t.shape]} and input of shape "
                               f"{[int(s) for s in input.shape]}")
    hxw = sym_prod(input.shape[2:])
    x = contiguous(input)
    return NativeGroupNorm.apply(x, contiguous(weight) if weight is not None else None,
                                 contiguous(bias) if bias is not None else None, n, c, hxw, num_groups, eps)[0]


# -- instance norm ----------------------------------------------------------

def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    if use_input_stats:
        spatial = 1
        for s in input.shape[2:]:
            spatial *= int(s)
        if spatial == 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                             f"{_torch_size(input)}")
    elif running_mean is None or running_var is None:
        raise RuntimeError("Expected running_mean and running_var to be defined when use_input_stats is false")
    b, c = input.shape[0], input.shape[1]

    def repeated(t):
        return Repeat.apply(t, [b]) if t is not None else None

    weight_, bias_, mean_, var_ = repeated(weight), repeated(bias), repeated(running_mean), repeated(running_var)
    folded = view_(contiguous(input), [1, b * c] + list(input.shape[2:]))
    out = _batch_norm_impl(folded, weight_, bias_, mean_, var_, use_input_stats,
                           0.0 if momentum is None else momentum, eps)
    # the per-sample running stats averaged back into the caller's buffers
    for stat, per_sample in ((running_mean, mean_), (running_var, var_)):
        if stat is not None:
            with autograd.no_grad():
                averaged = mean(view_(per_sample, [b, c]), [0])
            inplace("copy_", stat, averaged)
            stat._storage.version += 1
    return view_(out, list(input.shape))


# -- rms norm ---------------------------------------------------------------

_EPSILON = {_dt.float64: 2.220446049250313e-16, _dt.float32: 1.1920928955078125e-07}


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """torch's CPU composite (upcast half inputs, x * rsqrt(mean(x**2) + eps), times weight, cast back);
    CUDA's fused kernel."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    k = len(normalized_shape)
    if input.dim() < k or [int(s) for s in input.shape[input.dim() - k:]] != [int(s) for s in normalized_shape]:
        raise RuntimeError(f"Given normalized_shape={[int(s) for s in normalized_shape]}, expected input with shape "
                           f"[*{', '.join(str(int(s)) for s in normalized_shape)}], but got input of size"
                           f"{[int(s) for s in input.shape]}")
    if weight is not None and [int(s) for s in weight.shape] != [int(s) for s in normalized_shape]:
        raise RuntimeError(f"Expected weight to be of same shape as normalized_shape, but got weight of shape "
                           f"{[int(s) for s in weight.shape]} and normalized_shape = "
                           f"{[int(s) for s in normalized_shape]}")
    if input.device.type == "cuda":
        return FusedRmsNorm.apply(input, list(normalized_shape), weight, eps)[0]
    return rms_norm_composite(input, normalized_shape, weight, eps)


def rms_norm_composite(input, normalized_shape, weight, eps):
    """x * rsqrt(mean(x**2) + eps) (* weight) in the op's math type, cast back: torch's CPU rms_norm."""
    from .elementwise import pow as pow_, rsqrt
    k = len(normalized_shape)
    opmath = _dt.float32 if input.dtype in _HALF else input.dtype
    if eps is None:
        eps = _EPSILON[opmath]
    elif opmath is _dt.float32:
        eps = _float32(eps)              # torch converts eps to the op's math type
    x = to_dtype(input, opmath)
    dims = [input.dim() - 1 - i for i in range(k)]
    variance = mean(pow_(x, 2), dims, True)
    inv_rms = rsqrt(AddInplace.apply(variance, eps))
    out = mul(x, inv_rms)
    if weight is not None:
        out = mul(out, weight)
    return to_dtype(out, input.dtype)


class FusedRmsNorm(Function):
    """CUDA's fused RMSNorm: (y, rstd) = _fused_rms_norm(x, normalized_shape, weight, eps); rstd is
    [..., 1, ...] in float32 for half inputs.  Saves: input, rstd, weight."""

    saves = ("input", "result1", "weight")

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, eps):
        k = len(normalized_shape)
        stat_shape = tuple(x.shape[:x.dim() - k]) + (1,) * k
        stat_dtype = _dt.float32 if x.dtype in _HALF else x.dtype
        out, rstd = kernel("_fused_rms_norm", [(x.shape, x.dtype), (stat_shape, stat_dtype)], x, normalized_shape,
                           weight, eps)
        ctx.save_for_backward(x, rstd, weight)
        ctx.mark_non_differentiable(rstd)
        ctx.normalized_shape, ctx.eps = normalized_shape, eps
        return out, rstd

    @staticmethod
    def backward(ctx, grad, _g_rstd=None):
        x, rstd, weight = ctx.saved_tensors
        need = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[2]]
        if autograd.is_grad_enabled():
            # torch switches to its infinitely differentiable composite under create_graph
            def composite(x_, weight_):
                return rms_norm_composite(x_, ctx.normalized_shape, weight_, ctx.eps)
            gx, gw = composite_grads(composite, [x, weight], need, [grad])
        else:
            metas = [(x.shape, x.dtype), ((weight.shape if weight is not None else (0,)),
                                          weight.dtype if weight is not None else x.dtype)]
            gx, gw = masked_kernel("_fused_rms_norm_backward", metas, need, grad, x, ctx.normalized_shape, rstd,
                                   weight, need)
        return gx, None, gw, None


def _float32(value: float) -> float:
    import struct
    return struct.unpack("f", struct.pack("f", value))[0]


# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {
    "batch_norm": lambda input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=True:
        batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps),
    "group_norm": lambda input, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True:
        group_norm(input, num_groups, weight, bias, eps),
    "instance_norm": lambda input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
        cudnn_enabled=True: instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum,
                                          eps),
    "rms_norm": rms_norm,
}
FUNCTIONAL: dict = {
    "batch_norm": batch_norm, "group_norm": group_norm, "instance_norm": instance_norm, "rms_norm": rms_norm,
}
