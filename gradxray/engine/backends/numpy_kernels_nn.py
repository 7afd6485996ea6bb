"""numpy kernels of the neural-network ops: softmax family, normalisation, convolution (any number of spatial
dims, stride / padding / dilation / groups, transposed), pooling, losses, embedding, CPU flash attention,
and the slice/select backward kernels (see ``numpy_kernels``)."""
from __future__ import annotations

import itertools
import math

import numpy as np

from .numpy_kernels import opmath, out_dtype, register

_REDUCTION_NONE, _REDUCTION_MEAN, _REDUCTION_SUM = 0, 1, 2


def _cast(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


def _acc(x):
    return _cast(x, opmath(x.dtype))


# -- softmax family ---------------------------------------------------------------------------

@register("_softmax", "softmax")
def softmax(out, self, dim, half_to_float=False, dtype=None):
    x = _acc(self)
    e = np.exp(x - np.max(x, axis=dim, keepdims=True)) if x.size else x
    return e / np.sum(e, axis=dim, keepdims=True) if x.size else x


@register("_log_softmax", "log_softmax")
def log_softmax(out, self, dim, half_to_float=False, dtype=None):
    x = _acc(self)
    if not x.size:
        return x
    shifted = x - np.max(x, axis=dim, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


@register("_softmax_backward_data")
def softmax_backward_data(out, grad_output, output, dim, input_dtype):
    g, y = _acc(grad_output), _acc(output)
    return y * (g - np.sum(g * y, axis=dim, keepdims=True))


@register("_log_softmax_backward_data")
def log_softmax_backward_data(out, grad_output, output, dim, input_dtype):
    g, y = _acc(grad_output), _acc(output)
    return g - np.exp(y) * np.sum(g, axis=dim, keepdims=True)


# -- normalisation --------------------------------------------------------------------------

@register("native_layer_norm")
def native_layer_norm(out, input, normalized_shape, weight, bias, eps):  # noqa: A002
    x = _acc(input)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * _acc(weight)
    if bias is not None:
        y = y + _acc(bias)
    return y, mean, rstd


@register("native_layer_norm_backward")
def native_layer_norm_backward(out, grad_out, input, normalized_shape, mean, rstd, weight, bias,  # noqa: A002
                               output_mask):
    x, g = _acc(input), _acc(grad_out)
    k = len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    mean, rstd = _acc(mean), _acc(rstd)
    xhat = (x - mean) * rstd
    gx = gw = gb = None
    if output_mask[0]:
        gy = g * _acc(weight) if weight is not None else g
        gx = rstd * (gy - np.mean(gy, axis=axes, keepdims=True) -
                     xhat * np.mean(gy * xhat, axis=axes, keepdims=True))
    if output_mask[1] and weight is not None:
        gw = np.sum(g * xhat, axis=lead)
    if output_mask[2] and bias is not None:
        gb = np.sum(g, axis=lead)
    return gx, gw, gb


@register("native_group_norm")
def native_group_norm(out, input, weight, bias, N, C, HxW, group, eps):  # noqa: A002,N803 - torch's names
    x = _acc(input).reshape(N, group, -1)
    mean = x.mean(axis=2)
    rstd = 1 / np.sqrt(x.var(axis=2) + eps)
    y = ((x - mean[..., None]) * rstd[..., None]).reshape(input.shape)
    shape = (1, C) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * _acc(weight).reshape(shape)
    if bias is not None:
        y = y + _acc(bias).reshape(shape)
    return y, mean, rstd


@register("native_group_norm_backward")
def native_group_norm_backward(out, grad_out, input, mean, rstd, weight, N, C, HxW, group,  # noqa: A002,N803
                               output_mask):
    x = _acc(input).reshape(N, group, C // group, -1)
    g = _acc(grad_out).reshape(N, group, C // group, -1)
    mean, rstd = _acc(mean)[..., None, None], _acc(rstd)[..., None, None]
    xhat = (x - mean) * rstd
    gx = gw = gb = None
    if output_mask[0]:
        gy = g * _acc(weight).reshape(1, group, C // group, 1) if weight is not None else g
        axes = (2, 3)
        gx = (rstd * (gy - gy.mean(axis=axes, keepdims=True) -
                      xhat * (gy * xhat).mean(axis=axes, keepdims=True))).reshape(input.shape)
    if output_mask[1]:
        gw = (g * xhat).sum(axis=(0, 3)).reshape(C)
    if output_mask[2]:
        gb = g.sum(axis=(0, 3)).reshape(C)
    return gx, gw, gb


@register("_fused_rms_norm")
def fused_rms_norm(out, input, normalized_shape, weight=None, eps=None):  # noqa: A002
    x = _acc(input)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    if eps is None:
        eps = float(np.finfo(input.dtype if input.dtype.kind == "f" else np.float32).eps)
    rstd = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
    y = x * rstd
    return (y * _acc(weight) if weight is not None else y), rstd


def _bn_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


@register("native_batch_norm", "_native_batch_norm_legit_functional")
def native_batch_norm(out, input, weight, bias, running_mean, running_var, training, momentum, eps):  # noqa: A002
    x = _acc(input)
    axes, shape = _bn_axes(x), _bn_shape(x)
    if training:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        invstd = 1 / np.sqrt(var + eps)
        n = x.size // x.shape[1]
        if running_mean is not None:       # updated in place, as torch's kernel does
            running_mean[...] = (1 - momentum) * _acc(running_mean) + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * _acc(running_var) + momentum * var * n / max(n - 1, 1)
        use_mean, use_invstd = mean, invstd
        save_mean, save_invstd = mean, invstd
    else:
        use_mean, use_invstd = _acc(running_mean), 1 / np.sqrt(_acc(running_var) + eps)
        save_mean = save_invstd = np.zeros((0,), x.dtype)
    y = (x - use_mean.reshape(shape)) * use_invstd.reshape(shape)
    if weight is not None:
        y = y * _acc(weight).reshape(shape)
    if bias is not None:
        y = y + _acc(bias).reshape(shape)
    return y, save_mean, save_invstd


@register("native_batch_norm_backward")
def native_batch_norm_backward(out, grad_out, input, weight, running_mean, running_var, save_mean,  # noqa: A002
                               save_invstd, train, eps, output_mask):
    x, g = _acc(input), _acc(grad_out)
    axes, shape = _bn_axes(x), _bn_shape(x)
    if train:
        mean, invstd = _acc(save_mean), _acc(save_invstd)
    else:
        mean, invstd = _acc(running_mean), 1 / np.sqrt(_acc(running_var) + eps)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    w = _acc(weight).reshape(shape) if weight is not None else 1
    gx = gw = gb = None
    if output_mask[0]:
        if train:
            gx = w * invstd.reshape(shape) * (g - g.mean(axis=axes, keepdims=True) -
                                              xhat * (g * xhat).mean(axis=axes, keepdims=True))
        else:
            gx = g * w * invstd.reshape(shape)
    if output_mask[1]:
        gw = (g * xhat).sum(axis=axes)
    if output_mask[2]:
        gb = g.sum(axis=axes)
    return gx, gw, gb


# -- convolution ------------------------------------------------------------------------------

def _windows(xp, out_sizes, kernel, stride, dilation):
    """[N, C, *out, *kernel] strided view of the padded input ``xp`` (im2col without the copy)."""
    nd = len(kernel)
    st = xp.strides
    shape = xp.shape[:2] + tuple(out_sizes) + tuple(kernel)
    strides = st[:2] + tuple(st[2 + i] * stride[i] for i in range(nd)) + \
        tuple(st[2 + i] * dilation[i] for i in range(nd))
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def _pad(x, padding, value=0.0):
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding], constant_values=value)


def _conv_forward(x, w, stride, padding, dilation, groups):
    nd = x.ndim - 2
    kernel = w.shape[2:]
    out_sizes = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                 for i in range(nd)]
    cols = _windows(_pad(x, padding), out_sizes, kernel, stride, dilation)
    cin_g, cout_g = x.shape[1] // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        cols_g = cols[:, g * cin_g:(g + 1) * cin_g]
        w_g = w[g * cout_g:(g + 1) * cout_g]
        # contract channels and kernel taps: [N, *out, Cout_g]
        y = np.tensordot(cols_g, w_g, axes=([1] + list(range(2 + nd, 2 + 2 * nd)), [1] + list(range(2, 2 + nd))))
        outs.append(np.moveaxis(y, -1, 1))
    return np.concatenate(outs, axis=1)


def _conv_input_grad(gy, w, input_shape, stride, padding, dilation, groups):
    """Gradient of a convolution with respect to its input (col2im of grad · weight)."""
    nd = gy.ndim - 2
    kernel = w.shape[2:]
    cin_g, cout_g = input_shape[1] // groups, w.shape[0] // groups
    padded = np.zeros(tuple(input_shape[:2]) + tuple(input_shape[2 + i] + 2 * padding[i] for i in range(nd)),
                      gy.dtype)
    out_sizes = gy.shape[2:]
    for g in range(groups):
        gy_g = gy[:, g * cout_g:(g + 1) * cout_g]
        w_g = w[g * cout_g:(g + 1) * cout_g]
        # [N, *out, Cin_g, *kernel]
        cols = np.tensordot(np.moveaxis(gy_g, 1, -1), w_g, axes=([-1], [0]))
        for tap in itertools.product(*(range(k) for k in kernel)):
            region = [slice(None), slice(g * cin_g, (g + 1) * cin_g)]
            for i in range(nd):
                start = tap[i] * dilation[i]
                region.append(slice(start, start + stride[i] * (out_sizes[i] - 1) + 1, stride[i]))
            contribution = cols[(Ellipsis, slice(None)) + tap]              # [N, *out, Cin_g]
            padded[tuple(region)] += np.moveaxis(contribution, -1, 1)
    crop = [slice(None), slice(None)] + [slice(padding[i], padding[i] + input_shape[2 + i]) for i in range(nd)]
    return padded[tuple(crop)]


def _conv_weight_grad(gy, x, weight_shape, stride, padding, dilation, groups):
    nd = x.ndim - 2
    kernel = weight_shape[2:]
    cols = _windows(_pad(x, padding), gy.shape[2:], kernel, stride, dilation)
    cin_g, cout_g = x.shape[1] // groups, weight_shape[0] // groups
    parts = []
    for g in range(groups):
        cols_g = cols[:, g * cin_g:(g + 1) * cin_g]
        gy_g = gy[:, g * cout_g:(g + 1) * cout_g]
        # contract batch and output positions: [Cout_g, Cin_g, *kernel]
        parts.append(np.tensordot(gy_g, cols_g, axes=([0] + list(range(2, 2 + nd)), [0] + list(range(2, 2 + nd)))))
    return np.concatenate(parts, axis=0)


def _bias_shape(nd, c):
    return (1, c) + (1,) * nd


@register("convolution", "_convolution")
def convolution(out, input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,  # noqa: A002
                *_flags):
    c = opmath(out_dtype(out, input, weight))
    x, w = _cast(input, c), _cast(weight, c)
    nd = x.ndim - 2
    if transposed:
        out_shape = (x.shape[0], w.shape[1] * groups) + tuple(
            (x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (w.shape[2 + i] - 1) +
            output_padding[i] + 1 for i in range(nd))
        y = _conv_input_grad(x, w, out_shape, stride, padding, dilation, groups)
    else:
        y = _conv_forward(x, w, stride, padding, dilation, groups)
    if bias is not None:
        y = y + _cast(bias, c).reshape(_bias_shape(nd, y.shape[1]))
    return y


@register("convolution_backward")
def convolution_backward(out, grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,  # noqa: A002
                         output_padding, groups, output_mask):
    c = opmath(out_dtype(out, input, weight))
    gy, x, w = _cast(grad_output, c), _cast(input, c), _cast(weight, c)
    nd = x.ndim - 2
    gx = gw = gb = None
    if transposed:
        # y = conv_transpose(x, w) is the input-gradient of conv(y) -> x with the same weight
        if output_mask[0]:
            gx = _conv_forward(gy, w, stride, padding, dilation, groups)
        if output_mask[1]:
            gw = _conv_weight_grad(x, gy, w.shape, stride, padding, dilation, groups)
    else:
        if output_mask[0]:
            gx = _conv_input_grad(gy, w, x.shape, stride, padding, dilation, groups)
        if output_mask[1]:
            gw = _conv_weight_grad(gy, x, w.shape, stride, padding, dilation, groups)
    if output_mask[2]:
        gb = gy.sum(axis=(0,) + tuple(range(2, 2 + nd)))
    return gx, gw, gb


# -- pooling ------------------------------------------------------------------------------------

def _pool_windows(x, out_sizes, kernel, stride, padding, dilation, fill):
    """Windows [N.., *out, *kernel] over ``x`` padded with ``fill`` (extra right padding for ceil_mode),
    and a mask of which window taps fall inside the input."""
    nd = len(kernel)
    lead = x.ndim - nd
    right = [max((out_sizes[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - x.shape[lead + i] - padding[i],
                 0) for i in range(nd)]
    widths = [(0, 0)] * lead + [(padding[i], right[i]) for i in range(nd)]
    xp = np.pad(x, widths, constant_values=fill)
    valid = np.pad(np.ones(x.shape[lead:], bool), widths[lead:], constant_values=False)
    st = xp.strides
    shape = xp.shape[:lead] + tuple(out_sizes) + tuple(kernel)
    strides = st[:lead] + tuple(st[lead + i] * stride[i] for i in range(nd)) + \
        tuple(st[lead + i] * dilation[i] for i in range(nd))
    win = np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)
    vst = valid.strides
    vwin = np.lib.stride_tricks.as_strided(valid, tuple(out_sizes) + tuple(kernel),
                                           tuple(vst[i] * stride[i] for i in range(nd)) +
                                           tuple(vst[i] * dilation[i] for i in range(nd)), writeable=False)
    return win, vwin


@register("max_pool2d_with_indices")
def max_pool2d_with_indices(out, self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation)
    out_sizes = out.shapes[0][-2:] if out is not None else _pool_out(self.shape[-2:], kernel, stride, padding,
                                                                     dilation, ceil_mode)
    x = _acc(self)
    win, valid = _pool_windows(x, out_sizes, kernel, stride, padding, dilation, -np.inf)
    flat = win.reshape(win.shape[:-2] + (-1,))
    flat_valid = valid.reshape(valid.shape[:-2] + (-1,))
    # torch scans taps in order and keeps the first maximum (a NaN wins); padding never wins
    keyed = np.where(flat_valid, flat, -np.inf)
    pick = np.argmax(np.where(np.isnan(keyed), np.inf, keyed), axis=-1)
    no_valid_max = np.take_along_axis(keyed, pick[..., None], -1)[..., 0] == -np.inf
    first_valid = np.argmax(flat_valid, axis=-1)
    pick = np.where(no_valid_max, np.broadcast_to(first_valid, pick.shape), pick)
    values = np.take_along_axis(flat, pick[..., None], -1)[..., 0]
    kh, kw = np.divmod(pick, kernel[1])
    oh = np.arange(out_sizes[0]).reshape(-1, 1)
    ow = np.arange(out_sizes[1]).reshape(1, -1)
    row = oh * stride[0] - padding[0] + kh * dilation[0]
    col = ow * stride[1] - padding[1] + kw * dilation[1]
    return values, (row * self.shape[-1] + col).astype(np.int64)


@register("max_pool2d_with_indices_backward")
def max_pool2d_with_indices_backward(out, grad_output, self, kernel_size, stride, padding, dilation, ceil_mode,
                                     indices):
    return _scatter_by_plane_index(grad_output, indices, self.shape)


def _scatter_by_plane_index(grad_output, indices, input_shape):
    g = _acc(grad_output)
    plane = input_shape[-2] * input_shape[-1]
    planes = int(np.prod(input_shape[:-2], dtype=np.int64))
    gi = np.zeros((planes, plane), g.dtype)
    rows = np.repeat(np.arange(planes), g.size // max(planes, 1))
    np.add.at(gi, (rows, indices.reshape(-1)), g.reshape(-1))
    return gi.reshape(input_shape)


def _pool_args(kernel_size, stride, padding, dilation):
    def pair(v, default=None):
        if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
            return default
        return tuple(v) * (2 if len(v) == 1 else 1) if isinstance(v, (list, tuple)) else (v, v)
    kernel = pair(kernel_size)
    return kernel, pair(stride, kernel), pair(padding, (0, 0)), pair(dilation, (1, 1))


def _pool_out(sizes, kernel, stride, padding, dilation, ceil_mode):
    res = []
    for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        res.append(o)
    return res


@register("avg_pool2d")
def avg_pool2d(out, self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding, 1)
    out_sizes = out.shapes[0][-2:] if out is not None else _pool_out(self.shape[-2:], kernel, stride, padding,
                                                                     (1, 1), ceil_mode)
    x = _acc(self)
    win, valid = _pool_windows(x, out_sizes, kernel, stride, padding, (1, 1), 0.0)
    total = win.sum(axis=(-2, -1))
    return total / _avg_divisors(self.shape[-2:], out_sizes, kernel, stride, padding, count_include_pad,
                                 divisor_override, valid)


def _avg_divisors(in_sizes, out_sizes, kernel, stride, padding, count_include_pad, divisor_override, valid):
    if divisor_override:
        return divisor_override
    if not count_include_pad:
        return valid.sum(axis=(-2, -1))
    # taps inside input + padding (not the extra ceil_mode overhang)
    counts = []
    for i in range(2):
        start = np.arange(out_sizes[i]) * stride[i] - padding[i]
        end = np.minimum(start + kernel[i], in_sizes[i] + padding[i])
        counts.append(end - start)
    return np.multiply.outer(counts[0], counts[1])


@register("avg_pool2d_backward")
def avg_pool2d_backward(out, grad_output, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding, 1)
    g = _acc(grad_output)
    out_sizes = g.shape[-2:]
    _, valid = _pool_windows(np.zeros(self.shape[-2:]), out_sizes, kernel, stride, padding, (1, 1), 0.0)
    share = g / _avg_divisors(self.shape[-2:], out_sizes, kernel, stride, padding, count_include_pad,
                              divisor_override, valid)
    h, w = self.shape[-2:]
    padded = np.zeros(self.shape[:-2] + (h + 2 * padding[0] + kernel[0] + stride[0] * out_sizes[0],
                                         w + 2 * padding[1] + kernel[1] + stride[1] * out_sizes[1]), g.dtype)
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            padded[..., kh:kh + stride[0] * out_sizes[0]:stride[0], kw:kw + stride[1] * out_sizes[1]:stride[1]] += share
    return padded[..., padding[0]:padding[0] + h, padding[1]:padding[1] + w]


def _adaptive_bounds(n_in, n_out):
    return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


@register("_adaptive_avg_pool2d", "adaptive_avg_pool2d")
def adaptive_avg_pool2d(out, self, output_size):
    x = _acc(self)
    rows, cols = _adaptive_bounds(x.shape[-2], output_size[0]), _adaptive_bounds(x.shape[-1], output_size[1])
    res = np.empty(x.shape[:-2] + tuple(output_size), x.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            res[..., i, j] = x[..., r0:r1, c0:c1].mean(axis=(-2, -1))
    return res


@register("_adaptive_avg_pool2d_backward")
def adaptive_avg_pool2d_backward(out, grad_output, self):
    g = _acc(grad_output)
    oh, ow = g.shape[-2:]
    res = np.zeros(self.shape, g.dtype)
    for i, (r0, r1) in enumerate(_adaptive_bounds(self.shape[-2], oh)):
        for j, (c0, c1) in enumerate(_adaptive_bounds(self.shape[-1], ow)):
            res[..., r0:r1, c0:c1] += (g[..., i, j] / ((r1 - r0) * (c1 - c0)))[..., None, None]
    return res


@register("adaptive_max_pool2d")
def adaptive_max_pool2d(out, self, output_size):
    x = _acc(self)
    h, w = x.shape[-2:]
    rows, cols = _adaptive_bounds(h, output_size[0]), _adaptive_bounds(w, output_size[1])
    values = np.empty(x.shape[:-2] + tuple(output_size), x.dtype)
    idx = np.empty(values.shape, np.int64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            cell = x[..., r0:r1, c0:c1].reshape(x.shape[:-2] + (-1,))
            k = np.argmax(cell, axis=-1)
            values[..., i, j] = np.take_along_axis(cell, k[..., None], -1)[..., 0]
            idx[..., i, j] = (r0 + k // (c1 - c0)) * w + c0 + k % (c1 - c0)
    return values, idx


@register("adaptive_max_pool2d_backward")
def adaptive_max_pool2d_backward(out, grad_output, self, indices):
    return _scatter_by_plane_index(grad_output, indices, self.shape)


# -- losses -----------------------------------------------------------------------------------

def _nll_parts(self, target, weight, ignore_index):
    """Per-sample class weights (0 where ignored) and the picked log-probabilities; the class dim is 1
    (or 0 for an unbatched input)."""
    class_dim = 1 if self.ndim >= 2 else 0
    n_classes = self.shape[class_dim]
    t = np.asarray(target).astype(np.int64)
    ignored = t == ignore_index
    bad = (~ignored) & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad].flat[0])} is out of bounds.")
    safe = np.where(ignored, 0, t)
    x = _acc(self)
    w = np.ones(n_classes, x.dtype) if weight is None else _acc(weight)
    sample_w = np.where(ignored, 0, w[safe]).astype(x.dtype)
    picked = np.take_along_axis(x, np.expand_dims(safe, class_dim), class_dim).squeeze(class_dim) \
        if x.ndim >= 2 else x[safe]
    return sample_w, picked, safe


@register("nll_loss_forward", "nll_loss2d_forward", "nll_loss_nd")
def nll_loss_forward(out, self, target, weight, reduction, ignore_index):
    sample_w, picked, _ = _nll_parts(self, target, weight, ignore_index)
    losses = -sample_w * picked
    total_weight = sample_w.sum()
    if reduction == _REDUCTION_NONE:
        return losses, np.zeros((), losses.dtype)
    if reduction == _REDUCTION_SUM:
        return losses.sum(), total_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return losses.sum() / total_weight, total_weight


@register("nll_loss_backward", "nll_loss2d_backward")
def nll_loss_backward(out, grad_output, self, target, weight, reduction, ignore_index, total_weight):
    sample_w, _, safe = _nll_parts(self, target, weight, ignore_index)
    g = _acc(grad_output)
    if reduction == _REDUCTION_MEAN:
        with np.errstate(invalid="ignore", divide="ignore"):
            g = g / _acc(total_weight)
    contribution = -sample_w * g
    grad = np.zeros(self.shape, sample_w.dtype)
    class_dim = 1 if self.ndim >= 2 else 0
    if self.ndim >= 2:
        np.put_along_axis(grad, np.expand_dims(safe, class_dim), np.expand_dims(contribution, class_dim), class_dim)
    else:
        grad[safe] = contribution
    return grad


def _reduce(losses, reduction):
    if reduction == _REDUCTION_MEAN:
        return losses.mean()
    if reduction == _REDUCTION_SUM:
        return losses.sum()
    return losses


def _loss_grad_scale(grad_output, x, reduction):
    g = _acc(grad_output)
    return g / x.size if reduction == _REDUCTION_MEAN else g


@register("mse_loss")
def mse_loss(out, self, target, reduction=_REDUCTION_MEAN):
    d = _acc(self) - _acc(target)
    return _reduce(d * d, reduction)


@register("mse_loss_backward")
def mse_loss_backward(out, grad_output, self, target, reduction):
    return 2 * (_acc(self) - _acc(target)) * _loss_grad_scale(grad_output, self, reduction)


@register("l1_loss")
def l1_loss(out, self, target, reduction=_REDUCTION_MEAN):
    return _reduce(np.abs(_acc(self) - _acc(target)), reduction)


def _smooth_l1(d, beta):
    ad = np.abs(d)
    return np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta) if beta > 0 else ad


@register("smooth_l1_loss")
def smooth_l1_loss(out, self, target, reduction=_REDUCTION_MEAN, beta=1.0):
    return _reduce(_smooth_l1(_acc(self) - _acc(target), beta), reduction)


@register("smooth_l1_loss_backward")
def smooth_l1_loss_backward(out, grad_output, self, target, reduction, beta):
    d = _acc(self) - _acc(target)
    local = np.where(np.abs(d) < beta, d / beta, np.sign(d)) if beta > 0 else np.sign(d)
    return local * _loss_grad_scale(grad_output, self, reduction)


@register("huber_loss")
def huber_loss(out, self, target, reduction=_REDUCTION_MEAN, delta=1.0):
    d = _acc(self) - _acc(target)
    ad = np.abs(d)
    return _reduce(np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


@register("huber_loss_backward")
def huber_loss_backward(out, grad_output, self, target, reduction, delta):
    d = _acc(self) - _acc(target)
    local = np.where(d < -delta, -delta, np.where(d > delta, delta, d))
    return local * _loss_grad_scale(grad_output, self, reduction)


@register("binary_cross_entropy")
def binary_cross_entropy(out, self, target, weight=None, reduction=_REDUCTION_MEAN):
    x, y = _acc(self), _acc(target)
    if ((x < 0) | (x > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        losses = -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log1p(-x), -100))
    if weight is not None:
        losses = losses * _acc(weight)
    return _reduce(losses, reduction)


@register("binary_cross_entropy_backward")
def binary_cross_entropy_backward(out, grad_output, self, target, weight=None, reduction=_REDUCTION_MEAN):
    x, y = _acc(self), _acc(target)
    eps = 1e-12
    local = (x - y) / np.maximum((1 - x) * x, eps)
    if weight is not None:
        local = local * _acc(weight)
    return local * _loss_grad_scale(grad_output, self, reduction)


@register("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(out, self, target, weight=None, pos_weight=None, reduction=_REDUCTION_MEAN):
    x, y = _acc(self), _acc(target)
    # (1 - y) x - lw log(sigmoid(x)), with lw = 1 + (pos_weight - 1) y; -log(sigmoid(x)) written stably
    lw = 1 + (_acc(pos_weight) - 1) * y if pos_weight is not None else 1
    losses = (1 - y) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))
    if weight is not None:
        losses = losses * _acc(weight)
    return _reduce(losses, reduction)


@register("soft_margin_loss")
def soft_margin_loss(out, self, target, reduction=_REDUCTION_MEAN):
    return _reduce(np.log1p(np.exp(-_acc(target) * _acc(self))), reduction)


@register("kl_div")
def kl_div(out, self, target, reduction=_REDUCTION_MEAN, log_target=False):
    x, y = _acc(self), _acc(target)
    if log_target:
        losses = np.exp(y) * (y - x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            losses = np.where(y > 0, y * (np.log(np.where(y > 0, y, 1)) - x), 0.0)
    return _reduce(losses, reduction)


# -- embedding --------------------------------------------------------------------------------

@register("embedding")
def embedding(out, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    idx = np.asarray(indices)
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError("index out of range in self")
    return weight[idx]


@register("embedding_dense_backward")
def embedding_dense_backward(out, grad_output, indices, num_weights, padding_idx, scale_grad_by_freq):
    g = _acc(grad_output)
    dim = g.shape[-1]
    idx = np.asarray(indices).reshape(-1)
    rows = g.reshape(-1, dim)
    if scale_grad_by_freq:
        counts = np.bincount(idx, minlength=num_weights)
        rows = rows / counts[idx][:, None]
    keep = idx != padding_idx
    grad = np.zeros((num_weights, dim), g.dtype)
    np.add.at(grad, idx[keep], rows[keep])
    return grad


# -- attention ---------------------------------------------------------------------------------

def _attention_scores(q, k, is_causal, attn_mask, scale):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if attn_mask is not None:
        s = np.where(attn_mask, s, -np.inf) if attn_mask.dtype == np.bool_ else s + _cast(attn_mask, s.dtype)
    if is_causal:
        L, S = s.shape[-2:]  # noqa: N806 - the usual names
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    return s, scale


@register("_scaled_dot_product_flash_attention_for_cpu")
def flash_attention_cpu(out, query, key, value, dropout_p=0.0, is_causal=False, attn_mask=None, scale=None):
    if dropout_p:
        raise NotImplementedError("numpy backend: flash attention with dropout is not supported")
    c = opmath(query.dtype)
    q, k, v = _cast(query, c), _gqa(_cast(key, c), query), _gqa(_cast(value, c), query)
    s, _ = _attention_scores(q, k, is_causal, attn_mask, scale)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    lse = (np.log(total) + m)[..., 0]
    return np.matmul(e / total, v), lse


@register("_scaled_dot_product_flash_attention_for_cpu_backward")
def flash_attention_cpu_backward(out, grad_out, query, key, value, out_, logsumexp, dropout_p, is_causal,
                                 attn_mask=None, scale=None):
    c = opmath(query.dtype)
    q, o, g = (_cast(a, c) for a in (query, out_, grad_out))
    k, v = _gqa(_cast(key, c), query), _gqa(_cast(value, c), query)
    s, scale = _attention_scores(q, k, is_causal, attn_mask, scale)
    p = np.exp(s - _cast(logsumexp, c)[..., None])
    gv = np.matmul(np.swapaxes(p, -1, -2), g)
    gp = np.matmul(g, np.swapaxes(v, -1, -2))
    ds = p * (gp - np.sum(g * o, axis=-1, keepdims=True))
    gq = np.matmul(ds, k) * scale
    gk = np.matmul(np.swapaxes(ds, -1, -2), q) * scale
    return gq, _gqa_sum(gk, key), _gqa_sum(gv, value)


def _gqa(kv, query):
    """Grouped-query attention: each key/value head serves ``Hq / Hkv`` consecutive query heads."""
    groups = query.shape[-3] // kv.shape[-3] if kv.ndim >= 3 else 1
    return np.repeat(kv, groups, axis=-3) if groups > 1 else kv


def _gqa_sum(grad, kv):
    groups = grad.shape[-3] // kv.shape[-3] if kv.ndim >= 3 else 1
    if groups == 1:
        return grad
    return grad.reshape(grad.shape[:-3] + (kv.shape[-3], groups) + grad.shape[-2:]).sum(axis=-3)


# -- backward kernels of views -------------------------------------------------------------------

@register("slice_backward")
def slice_backward(out, grad_output, input_sizes, dim, start, end, step):
    grad = np.zeros(tuple(input_sizes), grad_output.dtype)
    idx = [slice(None)] * len(input_sizes)
    idx[dim] = slice(start, end, step)
    grad[tuple(idx)] = grad_output
    return grad


@register("select_backward")
def select_backward(out, grad_output, input_sizes, dim, index):
    grad = np.zeros(tuple(input_sizes), grad_output.dtype)
    idx = [slice(None)] * len(input_sizes)
    idx[dim] = index
    grad[tuple(idx)] = grad_output
    return grad


@register("diagonal_backward")
def diagonal_backward(out, grad_output, input_sizes, offset, dim1, dim2):
    grad = np.zeros(tuple(input_sizes), grad_output.dtype)
    moved = np.moveaxis(grad, (dim1, dim2), (-2, -1))      # a writable view of grad
    i = np.arange(grad_output.shape[-1])
    rows, cols = (i, i + offset) if offset >= 0 else (i - offset, i)
    moved[..., rows, cols] = grad_output
    return grad


# -- prelu, upsampling, padding ------------------------------------------------------------------

@register("_prelu_kernel", "prelu")
def prelu_kernel(out, self, weight):
    c = opmath(out_dtype(out, self, weight))
    x, w = _cast(self, c), _cast(weight, c)
    return np.where(x > 0, x, w * x)


@register("_prelu_kernel_backward")
def prelu_kernel_backward(out, grad_output, self, weight):
    c = opmath(out_dtype(out, self, weight))
    x, w, g = _cast(self, c), _cast(weight, c), _cast(grad_output, c)
    gw = np.where(x > 0, 0, x * g)
    w_shape = out.shapes[1] if out is not None else w.shape
    lead = gw.ndim - len(w_shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(w_shape) if n == 1 and gw.shape[lead + i] != 1)
    return np.where(x > 0, g, w * g), gw.sum(axis=axes).reshape(w_shape)


def _nearest_matrix(n_in, n_out, scale, dtype):
    """[n_out, n_in] 0/1 matrix of torch's nearest source index floor(dst * scale), in float32 like torch."""
    if n_out == n_in:
        src = np.arange(n_out)
    elif n_out == 2 * n_in:
        src = np.arange(n_out) >> 1
    else:
        s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        src = np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * s).astype(np.int64), n_in - 1)
    m = np.zeros((n_out, n_in), dtype)
    m[np.arange(n_out), src] = 1
    return m


def _linear_matrix(n_in, n_out, align_corners, scale, dtype):
    """[n_out, n_in] interpolation weights of torch's (bi)linear upsampling along one dim."""
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = np.arange(n_out, dtype=dtype) * dtype.type(s)
    else:
        s = 1.0 / scale if scale else n_in / n_out
        src = np.maximum((np.arange(n_out, dtype=dtype) + dtype.type(0.5)) * dtype.type(s) - dtype.type(0.5), 0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), dtype)
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def _apply_matrices(x, mats):
    """Contract the last len(mats) dims of x with [n_out, n_in] matrices."""
    k = len(mats)
    for i, m in enumerate(mats):
        axis = x.ndim - k + i
        x = np.moveaxis(np.tensordot(x, m, axes=([axis], [1])), -1, axis)
    return x


def _scales(args, k):
    vals = list(args)[:k]
    return vals + [None] * (k - len(vals))


def _upsample_nearest(k):
    def forward(out, self, output_size, *scales):
        x = _acc(self)
        mats = [_nearest_matrix(x.shape[-k + i], output_size[i], s, x.dtype)
                for i, s in enumerate(_scales(scales, k))]
        return _apply_matrices(x, mats)

    def backward(out, grad_output, output_size, input_size, *scales):
        g = _acc(grad_output)
        mats = [_nearest_matrix(input_size[-k + i], output_size[i], s, g.dtype).T
                for i, s in enumerate(_scales(scales, k))]
        return _apply_matrices(g, mats)
    return forward, backward


for _k in (1, 2, 3):
    _fwd, _bwd = _upsample_nearest(_k)
    register(f"upsample_nearest{_k}d")(_fwd)
    register(f"upsample_nearest{_k}d_backward")(_bwd)


@register("upsample_bilinear2d", "upsample_linear1d", "upsample_trilinear3d")
def upsample_linear(out, self, output_size, align_corners, *scales):
    x = _acc(self)
    k = len(output_size)
    mats = [_linear_matrix(x.shape[-k + i], output_size[i], align_corners, s, x.dtype)
            for i, s in enumerate(_scales(scales, k))]
    return _apply_matrices(x, mats)


@register("upsample_bilinear2d_backward", "upsample_linear1d_backward", "upsample_trilinear3d_backward")
def upsample_linear_backward(out, grad_output, output_size, input_size, align_corners, *scales):
    g = _acc(grad_output)
    k = len(output_size)
    mats = [_linear_matrix(input_size[-k + i], output_size[i], align_corners, s, g.dtype).T
            for i, s in enumerate(_scales(scales, k))]
    return _apply_matrices(g, mats)


def _pad_sources(n, before, after, mode):
    """Source index of every position of a padded dim (torch's reflection / replication rules)."""
    i = np.arange(-before, n + after)
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= n, 2 * (n - 1) - i, i)
    return np.clip(i, 0, n - 1)


def _pad_maps(shape, padding, mode):
    k = len(padding) // 2
    # padding lists the last dim first: (left, right, top, bottom, ...)
    return [(len(shape) - 1 - i, _pad_sources(shape[len(shape) - 1 - i], padding[2 * i], padding[2 * i + 1], mode))
            for i in range(k)]


def _pad_kernels(mode):
    def forward(out, self, padding):
        x = self
        for axis, src in _pad_maps(self.shape, padding, mode):
            x = np.take(x, src, axis=axis)
        return x

    def backward(out, grad_output, self, padding):
        g = _acc(grad_output)
        for axis, src in _pad_maps(self.shape, padding, mode):
            res = np.zeros(g.shape[:axis] + (self.shape[axis],) + g.shape[axis + 1:], g.dtype)
            np.add.at(np.moveaxis(res, axis, 0), src, np.moveaxis(g, axis, 0))
            g = res
        return g
    return forward, backward


for _mode, _aten in (("reflect", "reflection_pad"), ("edge", "replication_pad")):
    _fwd, _bwd = _pad_kernels(_mode)
    for _k in (1, 2, 3):
        register(f"{_aten}{_k}d")(_fwd)
        register(f"{_aten}{_k}d_backward")(_bwd)


@register("max_pool1d")
def max_pool1d(out, self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """max_pool2d_with_indices over an added trailing dim of size 1 (values only)."""
    def first(v, default):
        if isinstance(v, (list, tuple)):
            return v[0] if len(v) else default
        return v
    k = first(kernel_size, None)
    values, _ = max_pool2d_with_indices(None, self[..., None], (k, 1), (first(stride, k), 1),
                                        (first(padding, 0), 0), (first(dilation, 1), 1), ceil_mode)
    return values[..., 0]


# -- glu, pixel shuffle, im2col / col2im ------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@register("glu")
def glu(out, self, dim=-1):
    a, b = np.split(_acc(self), 2, axis=dim)
    return a * _sigmoid(b)


@register("glu_backward")
def glu_backward(out, grad_output, self, dim):
    a, b = np.split(_acc(self), 2, axis=dim)
    g = _acc(grad_output)
    s = _sigmoid(b)
    return np.concatenate([g * s, g * a * s * (1 - s)], axis=dim)


@register("pixel_shuffle")
def pixel_shuffle(out, self, upscale_factor):
    r = upscale_factor
    *lead, c, h, w = self.shape
    blocks = self.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)          # (*, C, r, r, H, W) -> (*, C, H, r, W, r)
    order = list(range(n)) + [n, n + 3, n + 1, n + 4, n + 2]
    return blocks.transpose(order).reshape(*lead, c // (r * r), h * r, w * r)


@register("pixel_unshuffle")
def pixel_unshuffle(out, self, downscale_factor):
    r = downscale_factor
    *lead, c, h, w = self.shape
    blocks = self.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)          # (*, C, H, r, W, r) -> (*, C, r, r, H, W)
    order = list(range(n)) + [n, n + 2, n + 4, n + 1, n + 3]
    return blocks.transpose(order).reshape(*lead, c * r * r, h // r, w // r)


def _block_windows(kernel_size, dilation, stride, blocks):
    """(kernel row, kernel col, row slice, col slice) of each kernel offset over the padded image."""
    (kh, kw), (dh, dw), (sh, sw), (oh, ow) = kernel_size, dilation, stride, blocks
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


def _sliding_blocks(size, kernel_size, dilation, padding, stride):
    return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                 for s, k, d, p, st in zip(size, kernel_size, dilation, padding, stride))


@register("im2col")
def im2col(out, self, kernel_size, dilation, padding, stride):
    x = _acc(self)
    batched = x.ndim == 4
    x = x if batched else x[None]
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = kernel_size, padding
    blocks = _sliding_blocks((h, w), kernel_size, dilation, padding, stride)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw) + blocks, x.dtype)
    for i, j, rows, columns in _block_windows(kernel_size, dilation, stride, blocks):
        cols[:, :, i, j] = padded[:, :, rows, columns]
    cols = cols.reshape(n, c * kh * kw, blocks[0] * blocks[1])
    return cols if batched else cols[0]


@register("col2im")
def col2im(out, self, output_size, kernel_size, dilation, padding, stride):
    cols = _acc(self)
    batched = cols.ndim == 3
    cols = cols if batched else cols[None]
    (kh, kw), (ph, pw), (h, w) = kernel_size, padding, output_size
    n, c = cols.shape[0], cols.shape[1] // (kh * kw)
    blocks = _sliding_blocks((h, w), kernel_size, dilation, padding, stride)
    cols = cols.reshape((n, c, kh, kw) + blocks)
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    for i, j, rows, columns in _block_windows(kernel_size, dilation, stride, blocks):
        padded[:, :, rows, columns] += cols[:, :, i, j]
    image = padded[:, :, ph:ph + h, pw:pw + w]
    return image if batched else image[0]
