"""Convolutions (1d/2d/3d, transposed) and pooling (max/avg 1d/2d, adaptive avg/max), as torch runs them on
CPU: every convolution goes through aten ``convolution``; the 1d poolings are the 2d kernels on an
unsqueezed input.  Each backward kernel is its own differentiable op (double backward works)."""
from __future__ import annotations

from .. import autograd
from .. import dtypes as _dt
from ..creation import new_zeros
from ..function import Function
from ._kernel import kernel, masked_kernel
from .indexing import ConstantPadNd, Gather
from .pointwise import add
from .reduce import mean
from .views import expand, squeeze, unsqueeze, view_


def _ntuple(value, n: int, name: str = "") -> list:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return list(value) * n
        if len(value) != n:
            raise RuntimeError(f"expected {name or 'argument'} to be a single integer value or a list of {n} values "
                               f"to match the convolution dimensions, but got {name or 'argument'}={list(value)}")
        return list(value)
    return [value] * n


def _sizes_text(sizes) -> str:
    return " x ".join(str(int(s)) for s in sizes)


# -- convolution ----------------------------------------------------------

def _conv_output_shape(x, w, stride, padding, dilation, transposed, output_padding, groups):
    nd = x.dim() - 2
    if transposed:
        spatial = [(x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (int(w.shape[2 + i]) - 1)
                   + output_padding[i] + 1 for i in range(nd)]
        return (x.shape[0], w.shape[1] * groups, *spatial)
    spatial = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (int(w.shape[2 + i]) - 1) - 1) // stride[i] + 1
               for i in range(nd)]
    return (x.shape[0], w.shape[0], *spatial)


def _check_conv(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    """torch's check_shape_forward, with its wording."""
    nd = x.dim() - 2
    sizes = [int(s) for s in w.shape]
    in_shape = [int(s) for s in x.shape]
    if x.dim() != w.dim():
        raise RuntimeError(f"Expected {w.dim()}-dimensional input for {w.dim()}-dimensional weight {sizes}, but got "
                           f"{x.dim()}-dimensional input of size {in_shape} instead")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if not transposed:
        if in_shape[1] != sizes[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {sizes}, expected input{in_shape} to have "
                               f"{sizes[1] * groups} channels, but got {in_shape[1]} channels instead")
        padded = [in_shape[2 + i] + 2 * padding[i] for i in range(nd)]
        kernel_extent = [dilation[i] * (sizes[2 + i] - 1) + 1 for i in range(nd)]
        if any(k > p for k, p in zip(kernel_extent, padded)):
            raise RuntimeError(f"Calculated padded input size per channel: ({_sizes_text(padded)}). Kernel size: "
                               f"({_sizes_text(kernel_extent)}). Kernel size can't be greater than actual input size")
        out_channels = sizes[0]
    else:
        if in_shape[1] != sizes[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {sizes}, expected input{in_shape} to have "
                               f"{sizes[0]} channels, but got {in_shape[1]} channels instead")
        for i in range(nd):
            if output_padding[i] >= stride[i] and output_padding[i] >= dilation[i]:
                raise RuntimeError(
                    "output padding must be smaller than either stride or dilation, but got output_padding_height: "
                    f"{output_padding[0]} output_padding_width: {output_padding[-1]} stride_height: {stride[0]} "
                    f"stride_width: {stride[-1]} dilation_height: {dilation[0]} dilation_width: {dilation[-1]}")
        out_channels = sizes[1] * groups
    if b is not None and (b.dim() != 1 or int(b.shape[0]) != out_channels):
        raise RuntimeError(f"Given weight of size {sizes}, expected bias to be 1-dimensional with {out_channels} "
                           f"elements, but got bias of size {[int(s) for s in b.shape]} instead")


def _suggests_channels_last(t) -> bool:
    """torch's ``suggest_memory_format() == channels_last`` for a 4-D tensor (is_channels_last_strides_2d_s4):
    strides ordered C, W, H, N, falling back to NCHW where the layout is ambiguous."""
    if t.dim() != 4:
        return False
    sizes = [int(s) for s in t.shape]
    strides = [int(s) for s in t.stride()]
    if strides[1] == 0:
        return False
    smallest = 0
    for d in (1, 3, 2, 0):
        if sizes[d] == 0 or strides[d] < smallest:
            return False
        if d == 0 and smallest == strides[1]:      # N111-like: identical strides, taken as NCHW
            return False
        smallest = strides[d] * max(sizes[d], 1)
    return True


def _conv_meta(shape, dtype, x, w):
    """The layout of a 2-D convolution's outputs (forward, grad_input, grad_weight): channels-last when the
    input or the weight suggests it, as torch's CPU kernels (mkldnn and the slow 2-D ones) and cuDNN choose
    (_determine_backend_memory_format); contiguous otherwise.  It decides, for instance, whether
    AccumulateGrad can adopt a weight's gradient or must copy it into the weight's layout."""
    if len(shape) == 4 and (_suggests_channels_last(x) or _suggests_channels_last(w)):
        n, c, h, wd = (int(s) for s in shape)
        return (shape, dtype, (h * wd * c, 1, wd * c, c))
    return (shape, dtype)


class Convolution(Function):
    """y = convolution(x, w, b) (plain or transposed, any groups).  Saves: input, weight (bias: sizes only)."""

    saves = ("input", "weight")

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, transposed=False, output_padding=None, groups=1):
        nd = x.dim() - 2
        output_padding = list(output_padding) if output_padding is not None else [0] * nd
        _check_conv(x, w, b, stride, padding, dilation, transposed, output_padding, groups)
        out_shape = _conv_output_shape(x, w, stride, padding, dilation, transposed, output_padding, groups)
        if any(int(s) <= 0 for s in out_shape[2:]):
            raise RuntimeError("Calculated output size is too small")
        ctx.save_for_backward(x, w)
        ctx.args = (list(stride), list(padding), list(dilation), transposed, output_padding, groups)
        ctx.bias_sizes = [b.shape[0]] if b is not None else None
        return kernel("convolution", _conv_meta(out_shape, x.dtype, x, w), x, w, b, *ctx.args)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None, None, None, None, None
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.bias_sizes is not None and ctx.needs_input_grad[2])
        gx, gw, gb = ConvolutionBackward.apply(grad, x, w, ctx.bias_sizes, *ctx.args, mask)
        return gx, gw, gb, None, None, None, None, None, None


class ConvolutionBackward(Function):
    """(grad_input, grad_weight, grad_bias) = convolution_backward(grad, x, w, ...), each only where the mask asks.
    Saves: grad_output, input, weight.  Its derivative is torch's _convolution_double_backward: every term
    is a convolution (or its backward) of the incoming second-order gradients."""

    saves = ("grad_output", "input", "weight")

    @staticmethod
    def forward(ctx, grad, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, mask):
        ctx.save_for_backward(grad, x, w)
        ctx.args = (stride, padding, dilation, transposed, output_padding, groups)
        metas = [_conv_meta(x.shape, x.dtype, x, w), _conv_meta(w.shape, w.dtype, x, w),
                 ((bias_sizes or [0])[0:1], grad.dtype)]
        return tuple(masked_kernel("convolution_backward", metas, list(mask), grad, x, w,
                                    [int(s) for s in bias_sizes] if bias_sizes is not None else None,
                                    *ctx.args, list(mask)))

    @staticmethod
    def backward(ctx, gg_input, gg_weight=None, gg_bias=None):
        grad, x, w = ctx.saved_tensors
        need_grad, need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        args = ctx.args
        g_grad = g_x = g_w = None
        if need_grad:
            # grad_input is linear in grad through w, grad_weight through x, grad_bias is grad's sum
            if gg_input is not None:
                g_grad = Convolution.apply(gg_input, w, None, *args)
            if gg_weight is not None:
                term = Convolution.apply(x, gg_weight, None, *args)
                g_grad = term if g_grad is None else add(g_grad, term)
            if gg_bias is not None:
                shape = [1, gg_bias.shape[0]] + [1] * (grad.dim() - 2)
                term = expand(view_(gg_bias, shape), grad.shape)
                g_grad = term if g_grad is None else add(g_grad, term)
        if need_w and gg_input is not None:
            g_w = ConvolutionBackward.apply(grad, gg_input, w, None, *args, (False, True, False))[1]
        if need_x and gg_weight is not None:
            g_x = ConvolutionBackward.apply(grad, x, gg_weight, None, *args, (True, False, False))[0]
        return g_grad, g_x, g_w, None, None, None, None, None, None, None, None


def _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, nd):
    """torch's conv{nd}d / conv_transpose{nd}d entry: argument expansion, unbatched input, string padding."""
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to conv{nd}d, but got input "
                           f"of size: {[int(s) for s in input.shape]}")
    unbatched = input.dim() == nd + 1
    x = unsqueeze(input, 0) if unbatched else input
    stride, dilation = _ntuple(stride, nd, "stride"), _ntuple(dilation, nd, "dilation")
    if isinstance(padding, str):
        x, padding = _string_padding(x, weight, padding, stride, dilation, nd)
    else:
        padding = _ntuple(padding, nd, "padding")
    out = Convolution.apply(x, weight, bias, stride, padding, dilation, transposed,
                            _ntuple(output_padding, nd, "output_padding"), groups)
    return squeeze(out, 0) if unbatched else out


def _string_padding(x, weight, padding, stride, dilation, nd):
    """padding='valid' is zero padding; 'same' pads dilation*(k-1) in total, the odd element on the right
    (by padding the input itself, as torch's _convolution_mode does)."""
    if padding == "valid":
        return x, [0] * nd
    if padding != "same":
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    left, pad_nd = [], [0] * (2 * nd)
    for i in range(nd):
        total = dilation[i] * (int(weight.shape[2 + i]) - 1)
        lo = total // 2
        left.append(lo)
        if total - lo != lo:
            pad_nd[2 * (nd - 1 - i) + 1] = total - 2 * lo     # the extra element goes on the right
    if any(pad_nd):
        x = ConstantPadNd.apply(x, pad_nd, 0.0)
    return x, left


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, False, 0, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, False, 0, groups, 2)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, False, 0, groups, 3)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, True, output_padding, groups, 1)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, True, output_padding, groups, 2)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, True, output_padding, groups, 3)


# -- pooling --------------------------------------------------------------

def _pool_out(size, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape: floor or ceil, and a window may not start in the right padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out = out - 1
    return out


def _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode):
    for k, p, d in zip(kernel_size, padding, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    out = [_pool_out(x.shape[-2 + i], kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode)
           for i in range(2)]
    if any(int(o) < 1 for o in out):
        plane = int(x.shape[-3]) if x.dim() >= 3 else 1
        raise RuntimeError(f"Given input size: ({plane}x{int(x.shape[-2])}x{int(x.shape[-1])}). Calculated output "
                           f"size: ({plane}x{int(out[0])}x{int(out[1])}). Output size is too small")
    return tuple(x.shape[:-2]) + tuple(out)


class MaxPool2dWithIndices(Function):
    """y, idx = max_pool2d_with_indices(x).  Saves: self, indices (int64, output-shaped)."""

    node_name = "MaxPool2DWithIndicesBackward0"
    saves = ("self", "result1")

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        shape = _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
        out, idx = kernel("max_pool2d_with_indices", [(shape, x.dtype), (shape, _dt.int64)], x, kernel_size,
                          stride, padding, dilation, ceil_mode)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x, idx)
        ctx.args = (kernel_size, stride, padding, dilation, ceil_mode)
        return out, idx

    @staticmethod
    def backward(ctx, grad, _g_indices=None):
        x, idx = ctx.saved_tensors
        return MaxPool2dWithIndicesBackward.apply(grad, x, *ctx.args, idx), None, None, None, None, None


class MaxPool2dWithIndicesBackward(Function):
    """grad_input = max_pool2d_with_indices_backward(grad, x, ..., indices): grad scattered to the maxima.
    Saves: indices.  Derivative: the incoming gradient gathered at the indices (zero for x)."""

    node_name = "MaxPool2DWithIndicesBackwardBackward0"
    saves = ("indices",)

    @staticmethod
    def forward(ctx, grad, x, kernel_size, stride, padding, dilation, ceil_mode, idx):
        ctx.save_for_backward(idx)
        ctx.x_meta = (x.shape, x.dtype)     # sizes and options only, as torch keeps for zeros_like(self)
        return kernel("max_pool2d_with_indices_backward", (x.shape, x.dtype), grad, x, kernel_size, stride,
                      padding, dilation, ceil_mode, idx)

    @staticmethod
    def backward(ctx, gg):
        (idx,) = ctx.saved_tensors
        g_grad = max_pool_double_backward(gg, idx) if ctx.needs_input_grad[0] else None
        g_x = new_zeros(gg, *ctx.x_meta) if ctx.needs_input_grad[1] else None
        return g_grad, g_x, None, None, None, None, None, None


def max_pool_double_backward(gg, indices):
    """torch's max_pool_double_backward for 2d pooling: gg's planes, flattened, gathered at the indices."""
    flat = list(indices.shape[:-2]) + [-1]
    picked = Gather.apply(view_(gg.contiguous(), flat), -1, view_(indices, flat))
    return view_(picked, list(indices.shape))


class AvgPool2d(Function):
    """y = avg_pool2d(x).  Saves: self."""

    node_name = "AvgPool2DBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        if divisor_override is not None and divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
        shape = _pool_shape(x, kernel_size, stride, padding, (1, 1), ceil_mode)
        ctx.save_for_backward(x)
        ctx.args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        return kernel("avg_pool2d", (shape, x.dtype), x, *ctx.args)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return AvgPool2dBackward.apply(grad, x, *ctx.args), None, None, None, None, None, None


class AvgPool2dBackward(Function):
    """grad_input = avg_pool2d_backward(grad, x, ...).  Saves: nothing.  Derivative: avg_pool2d of the
    incoming gradient (the op is linear in grad; zero for x)."""

    node_name = "AvgPool2DBackwardBackward0"

    @staticmethod
    def forward(ctx, grad, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        ctx.x_meta = (x.shape, x.dtype)     # sizes and options only, as torch keeps for zeros_like(self)
        return kernel("avg_pool2d_backward", (x.shape, x.dtype), grad, x, *ctx.args)

    @staticmethod
    def backward(ctx, gg):
        g_grad = AvgPool2d.apply(gg, *ctx.args) if ctx.needs_input_grad[0] else None
        g_x = new_zeros(gg, *ctx.x_meta) if ctx.needs_input_grad[1] else None
        return (g_grad, g_x) + (None,) * 6


class AdaptiveAvgPool2d(Function):
    """y = _adaptive_avg_pool2d(x, size).  Saves: self."""

    node_name = "AdaptiveAvgPool2DBackward0"
    saves = ("self",)

    @staticmethod
    def forward(ctx, x, output_size):
        ctx.save_for_backward(x)
        return kernel("_adaptive_avg_pool2d", (tuple(x.shape[:-2]) + tuple(output_size), x.dtype), x,
                      [int(s) for s in output_size])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return AdaptiveAvgPool2dBackward.apply(grad, x), None


class AdaptiveAvgPool2dBackward(Function):
    """grad_input = _adaptive_avg_pool2d_backward(grad, x).  Saves: nothing (grad's last two sizes).
    Derivative: _adaptive_avg_pool2d of the incoming gradient (zero for x)."""

    node_name = "AdaptiveAvgPool2DBackwardBackward0"

    @staticmethod
    def forward(ctx, grad, x):
        ctx.out_size = tuple(grad.shape[-2:])
        ctx.x_meta = (x.shape, x.dtype)     # sizes and options only, as torch keeps for zeros_like(self)
        return kernel("_adaptive_avg_pool2d_backward", (x.shape, x.dtype), grad, x)

    @staticmethod
    def backward(ctx, gg):
        g_grad = AdaptiveAvgPool2d.apply(gg, ctx.out_size) if ctx.needs_input_grad[0] else None
        return g_grad, new_zeros(gg, *ctx.x_meta) if ctx.needs_input_grad[1] else None


class AdaptiveMaxPool2d(Function):
    """y, idx = adaptive_max_pool2d(x, size).  Saves: self, indices (int64, output-shaped)."""

    node_name = "AdaptiveMaxPool2DBackward0"
    saves = ("self", "result1")

    @staticmethod
    def forward(ctx, x, output_size):
        shape = tuple(x.shape[:-2]) + tuple(output_size)
        out, idx = kernel("adaptive_max_pool2d", [(shape, x.dtype), (shape, _dt.int64)], x,
                          [int(s) for s in output_size])
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(x, idx)
        return out, idx

    @staticmethod
    def backward(ctx, grad, _g_indices=None):
        x, idx = ctx.saved_tensors
        return AdaptiveMaxPool2dBackward.apply(grad, x, idx), None


class AdaptiveMaxPool2dBackward(Function):
    """grad_input = adaptive_max_pool2d_backward(grad, x, indices).  Saves: indices.  Derivative: the
    incoming gradient gathered at the indices (zero for x)."""

    node_name = "AdaptiveMaxPool2DBackwardBackward0"
    saves = ("indices",)

    @staticmethod
    def forward(ctx, grad, x, idx):
        ctx.save_for_backward(idx)
        ctx.x_meta = (x.shape, x.dtype)     # sizes and options only, as torch keeps for zeros_like(self)
        return kernel("adaptive_max_pool2d_backward", (x.shape, x.dtype), grad, x, idx)

    @staticmethod
    def backward(ctx, gg):
        (idx,) = ctx.saved_tensors
        g_grad = max_pool_double_backward(gg, idx) if ctx.needs_input_grad[0] else None
        return g_grad, new_zeros(gg, *ctx.x_meta) if ctx.needs_input_grad[1] else None, None


class MaxPool1dNoIndices(Function):
    """y = max_pool1d(x) without indices: torch's CPU kernel when no gradient is recorded.  Never recorded
    (the differentiable path is max_pool1d_with_indices)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        shape = _pool_shape(unsqueeze(x, -2), (1, kernel_size), (1, stride), (0, padding), (1, dilation), ceil_mode)
        shape = tuple(shape[:-2]) + (shape[-1],)
        return kernel("max_pool1d", (shape, x.dtype), x, [kernel_size], [stride], [padding], [dilation], ceil_mode)


def _pool2d_args(kernel_size, stride, padding, dilation=1):
    k = _ntuple(kernel_size, 2, "kernel_size")
    s = _ntuple(stride, 2, "stride") if stride not in (None, [], ()) else k
    return k, s, _ntuple(padding, 2, "padding"), _ntuple(dilation, 2, "dilation")


def _check_pool_input(x, name, dims=(3, 4)):
    if x.dim() not in dims:
        raise RuntimeError(f"{name}: Expected {'2D or 3D' if dims == (2, 3) else '3D or 4D'} (batch mode) tensor "
                           f"with optional 0 dim batch size for input, but got:{[int(s) for s in x.shape]}")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _check_pool_input(input, "max_pool2d")
    k, s, p, d = _pool2d_args(kernel_size, stride, padding, dilation)
    out, idx = MaxPool2dWithIndices.apply(input, k, s, p, d, ceil_mode)
    return (out, idx) if return_indices else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _check_pool_input(input, "max_pool1d", (2, 3))
    k = _ntuple(kernel_size, 1, "kernel_size")[0]
    s = _ntuple(stride, 1, "stride")[0] if stride not in (None, [], ()) else k
    p, d = _ntuple(padding, 1, "padding")[0], _ntuple(dilation, 1, "dilation")[0]
    if not return_indices and not (autograd.is_grad_enabled() and input.requires_grad) \
            and input.device.type == "cpu":
        return MaxPool1dNoIndices.apply(input, k, s, p, d, ceil_mode)
    # max_pool1d_with_indices: the 2d kernel on a height-1 plane
    out, idx = MaxPool2dWithIndices.apply(unsqueeze(input, -2), [1, k], [1, s], [0, p], [1, d], ceil_mode)
    out, idx = squeeze(out, -2), squeeze(idx, -2)
    return (out, idx) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    _check_pool_input(input, "avg_pool2d")
    k, s, p, _ = _pool2d_args(kernel_size, stride, padding)
    return AvgPool2d.apply(input, k, s, p, ceil_mode, count_include_pad, divisor_override)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    if input.dim() not in (2, 3):
        raise RuntimeError(f"avg_pool1d() Expected 2D or 3D input tensor, but got {[int(s) for s in input.shape]}")
    k = _ntuple(kernel_size, 1, "kernel_size")[0]
    s = _ntuple(stride, 1, "stride")[0] if stride not in (None, [], ()) else k
    p = _ntuple(padding, 1, "padding")[0]
    out = AvgPool2d.apply(unsqueeze(input, -2), [1, k], [1, s], [0, p], ceil_mode, count_include_pad, None)
    return squeeze(out, -2)


def _adaptive_size(input, output_size, n):
    if input.dim() < n + 1:
        raise ValueError("Input dimension should be at least " + str(n + 1))
    size = _ntuple(output_size, n, "output_size")
    return [input.shape[input.dim() - n + i] if s is None else s for i, s in enumerate(size)]


def adaptive_avg_pool2d(input, output_size):
    size = _adaptive_size(input, output_size, 2)
    if input.dim() not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {[int(s) for s in input.shape]}")
    if [int(s) for s in size] == [1, 1]:
        return mean(input, (-1, -2), keepdim=True)      # torch's composite for a 1x1 output
    return AdaptiveAvgPool2d.apply(input, tuple(size))


def adaptive_avg_pool1d(input, output_size):
    size = _adaptive_size(input, output_size, 1)
    if input.dim() not in (2, 3):
        raise RuntimeError(f"adaptive_avg_pool1d() argument 'input' (position 1) must be 2D or 3D, but got "
                           f"{input.dim()}D")
    return squeeze(adaptive_avg_pool2d(unsqueeze(input, -2), (1, size[0])), -2)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    size = _adaptive_size(input, output_size, 2)
    out, idx = AdaptiveMaxPool2d.apply(input, tuple(size))
    return (out, idx) if return_indices else out


def adaptive_max_pool1d(input, output_size, return_indices=False):
    size = _adaptive_size(input, output_size, 1)
    out, idx = AdaptiveMaxPool2d.apply(unsqueeze(input, -2), (1, size[0]))
    out, idx = squeeze(out, -2), squeeze(idx, -2)
    return (out, idx) if return_indices else out


def _with_indices(fn):
    def with_indices(*args, **kwargs):
        return fn(*args, **kwargs, return_indices=True)
    return with_indices


# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {
    "conv1d": conv1d, "conv2d": conv2d, "conv3d": conv3d,
    "conv_transpose1d": conv_transpose1d, "conv_transpose2d": conv_transpose2d, "conv_transpose3d": conv_transpose3d,
    "max_pool1d": lambda input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False:
        max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode),
    "max_pool2d": lambda input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False:
        max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode),
    "avg_pool1d": avg_pool1d,
    "adaptive_avg_pool1d": adaptive_avg_pool1d,
    "adaptive_max_pool1d": lambda input, output_size: adaptive_max_pool1d(input, output_size, True),
}
FUNCTIONAL: dict = {
    "conv1d": conv1d, "conv2d": conv2d, "conv3d": conv3d,
    "conv_transpose1d": conv_transpose1d, "conv_transpose2d": conv_transpose2d, "conv_transpose3d": conv_transpose3d,
    "max_pool1d": max_pool1d, "max_pool2d": max_pool2d,
    "max_pool1d_with_indices": _with_indices(max_pool1d), "max_pool2d_with_indices": _with_indices(max_pool2d),
    "avg_pool1d": avg_pool1d, "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool1d": adaptive_avg_pool1d, "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "adaptive_max_pool1d": adaptive_max_pool1d, "adaptive_max_pool2d": adaptive_max_pool2d,
    "adaptive_max_pool1d_with_indices": _with_indices(adaptive_max_pool1d),
    "adaptive_max_pool2d_with_indices": _with_indices(adaptive_max_pool2d),
}
