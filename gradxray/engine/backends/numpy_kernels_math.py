"""numpy kernels: elementwise math, activations and their backward kernels, reductions, matrix products,
copies, joins, indexing, in-place fills and random fills, and views (see ``numpy_kernels``)."""
from __future__ import annotations

import math

import numpy as np

from .numpy_kernels import (LIKE_FIRST, POINTWISE, generator, is_floating, opmath, out_dtype, register,
                            register_inplace, register_view, shifted)

SQRT_HALF = 1.0 / math.sqrt(2.0)
_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """erf to libm precision (numpy has none; an element-wise call is exact, if slow)."""
    x = np.asarray(x)
    return np.asarray(_erf(x)).astype(x.dtype) if x.size else x.copy()


def _cast(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


def _compute(out, *operands):
    """(result dtype, dtype to compute in) for an elementwise kernel."""
    dt = out_dtype(out, *operands)
    return dt, opmath(dt)


def _float_compute(out, *operands):
    """Like ``_compute`` but for kernels whose result is floating even for integer inputs."""
    dt = out_dtype(out, *operands)
    if not is_floating(dt):
        dt = np.dtype(np.float32)
    return dt, opmath(dt)


def _scalar(v):
    """A Scalar argument (Python number or 0-d array) as a Python number."""
    return v.item() if isinstance(v, np.ndarray) else v


# -- binary arithmetic ----------------------------------------------------------------

@register("add", layout=POINTWISE)
def add(out, self, other, alpha=1):
    _, c = _compute(out, self, other)
    a, b = _cast(self, c), _cast(other, c)
    if c == np.bool_:
        return np.logical_or(a, b)
    return a + b if alpha == 1 else a + b * c.type(alpha)


@register("sub", "rsub", layout=POINTWISE)
def sub(out, self, other, alpha=1):
    _, c = _compute(out, self, other)
    a, b = _cast(self, c), _cast(other, c)
    return a - b if alpha == 1 else a - b * c.type(alpha)


@register("mul", layout=POINTWISE)
def mul(out, self, other):
    _, c = _compute(out, self, other)
    a, b = _cast(self, c), _cast(other, c)
    return np.logical_and(a, b) if c == np.bool_ else a * b


@register("div", layout=POINTWISE)
def div(out, self, other, rounding_mode=None):
    if rounding_mode is None:
        _, c = _float_compute(out, self, other)
        return _cast(self, c) / _cast(other, c)
    _, c = _compute(out, self, other)
    a, b = _cast(self, c), _cast(other, c)
    if rounding_mode == "floor":
        return np.floor_divide(a, b) if not is_floating(c) else np.floor(a / b)
    if is_floating(c):
        return np.trunc(a / b)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


@register("remainder", layout=POINTWISE)
def remainder(out, self, other):
    _, c = _compute(out, self, other)
    return np.mod(_cast(self, c), _cast(other, c))


@register("fmod", layout=POINTWISE)
def fmod(out, self, other):
    _, c = _compute(out, self, other)
    return np.fmod(_cast(self, c), _cast(other, c))


@register("pow", layout=POINTWISE)
def pow_(out, self, exponent):
    _, c = _compute(out, self, exponent)
    return np.power(_cast(self, c), _cast(exponent, c))


@register("atan2", layout=POINTWISE)
def atan2(out, self, other):
    _, c = _float_compute(out, self, other)
    return np.arctan2(_cast(self, c), _cast(other, c))


@register("maximum", "max.other", layout=POINTWISE)
def maximum(out, self, other):
    _, c = _compute(out, self, other)
    return np.maximum(_cast(self, c), _cast(other, c))


@register("minimum", "min.other", layout=POINTWISE)
def minimum(out, self, other):
    _, c = _compute(out, self, other)
    return np.minimum(_cast(self, c), _cast(other, c))


@register("lerp", layout=POINTWISE)
def lerp(out, self, end, weight):
    _, c = _compute(out, self, end)
    a, b, w = _cast(self, c), _cast(end, c), _cast(weight, c)
    # torch's lerp: the formula is evaluated from the nearer end for accuracy
    return np.where(np.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


@register("addcmul", layout=POINTWISE)
def addcmul(out, self, tensor1, tensor2, value=1):
    _, c = _compute(out, self, tensor1, tensor2)
    return _cast(self, c) + c.type(value) * _cast(tensor1, c) * _cast(tensor2, c)


@register("addcdiv", layout=POINTWISE)
def addcdiv(out, self, tensor1, tensor2, value=1):
    _, c = _compute(out, self, tensor1, tensor2)
    return _cast(self, c) + c.type(value) * (_cast(tensor1, c) / _cast(tensor2, c))


def _comparison(np_fn):
    def kernel(out, self, other):
        c = np.result_type(*(o for o in (self, other)))
        return np_fn(_cast(self, c), _cast(other, c))
    return kernel


for _name, _fn in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal), ("logical_and", np.logical_and),
                   ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)):
    register(_name, layout=POINTWISE)(_comparison(_fn))


@register("where", layout=POINTWISE)
def where(out, condition, self, other):
    _, c = _compute(out, self, other)
    return np.where(condition, _cast(self, c), _cast(other, c))


@register("masked_fill")
def masked_fill(out, self, mask, value):
    return np.where(mask, np.asarray(_scalar(value) if np.ndim(value) == 0 else value).astype(self.dtype), self)


# -- unary math ------------------------------------------------------------------------

def _unary_float(np_fn):
    def kernel(out, self):
        _, c = _float_compute(out, self)
        return np_fn(_cast(self, c))
    return kernel


def _rsqrt(x):
    return 1 / np.sqrt(x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _erfinv(x):
    # Newton steps on erf from a rational first guess (numpy has no erfinv)
    y = np.where(np.abs(x) < 1, x, np.nan)
    a = 0.147
    ln = np.log1p(-y * y)
    t = 2 / (math.pi * a) + ln / 2
    guess = np.sign(y) * np.sqrt(np.sqrt(t * t - ln / a) - t)
    for _ in range(4):
        guess = guess - (erf(guess) - y) / (2 / math.sqrt(math.pi) * np.exp(-guess * guess))
    return np.where(np.abs(x) == 1, np.sign(x) * np.inf, guess)


for _name, _fn in (("exp", np.exp), ("exp2", np.exp2), ("expm1", np.expm1), ("log", np.log), ("log2", np.log2),
                   ("log10", np.log10), ("log1p", np.log1p), ("sqrt", np.sqrt), ("rsqrt", _rsqrt),
                   ("sin", np.sin), ("cos", np.cos), ("tan", np.tan), ("asin", np.arcsin), ("acos", np.arccos),
                   ("atan", np.arctan), ("sinh", np.sinh), ("cosh", np.cosh), ("tanh", np.tanh),
                   ("asinh", np.arcsinh), ("acosh", np.arccosh), ("atanh", np.arctanh),
                   ("sigmoid", _sigmoid), ("erf", erf), ("erfc", lambda x: np.asarray(_erfc(x)).astype(x.dtype)),
                   ("erfinv", _erfinv), ("lgamma", lambda x: np.asarray(_lgamma(x)).astype(x.dtype)),
                   ("reciprocal", lambda x: 1 / x)):
    register(_name, layout=POINTWISE)(_unary_float(_fn))


def _unary_same(np_fn):
    def kernel(out, self):
        _, c = _compute(out, self)
        return np_fn(_cast(self, c))
    return kernel


for _name, _fn in (("neg", np.negative), ("abs", np.abs), ("sign", np.sign), ("sgn", np.sign),
                   ("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                   ("frac", lambda x: x - np.trunc(x)), ("square", np.square),
                   ("relu", lambda x: np.where(x > 0, x, np.zeros_like(x)) if not is_floating(x.dtype)
                    else np.maximum(x, x.dtype.type(0)))):
    register(_name, layout=POINTWISE)(_unary_same(_fn))


@register("round", layout=POINTWISE)
def round_(out, self, decimals=0):
    _, c = _compute(out, self)
    x = _cast(self, c)
    if decimals == 0:
        return np.round(x)
    # torch scales by 10**decimals, rounds half to even, and scales back (negative decimals divide first)
    scale = c.type(10.0 ** abs(decimals))
    return np.round(x * scale) / scale if decimals > 0 else np.round(x / scale) * scale


@register("logical_not", "bitwise_not", layout=POINTWISE)
def logical_not(out, self):
    if out is not None and out.dtype != np.bool_:
        return np.invert(self)
    return np.logical_not(self)


@register("isnan", layout=POINTWISE)
def isnan(out, self):
    return np.isnan(self.astype(opmath(self.dtype))) if is_floating(self.dtype) else np.zeros(self.shape, bool)


@register("clamp", layout=POINTWISE)
def clamp(out, self, min=None, max=None):  # noqa: A002 - torch's argument names
    _, c = _compute(out, self)
    x = _cast(self, c)
    if min is not None:
        x = np.where(np.isnan(x) if is_floating(c) else False, x, np.maximum(x, _cast(min, c)))
    if max is not None:
        x = np.where(np.isnan(x) if is_floating(c) else False, x, np.minimum(x, _cast(max, c)))
    return x


@register("clamp_min", layout=POINTWISE)
def clamp_min(out, self, min):  # noqa: A002
    return clamp(out, self, min=min)


@register("clamp_max", layout=POINTWISE)
def clamp_max(out, self, max):  # noqa: A002
    return clamp(out, self, max=max)


# -- activations and their backward kernels ------------------------------------------------

def _gelu_tanh_parts(x):
    beta = math.sqrt(2.0) * (2.0 / math.sqrt(math.pi)) * 0.5
    kappa = 0.044715
    inner = beta * (x + kappa * x * x * x)
    return beta, kappa, np.tanh(inner)


@register("gelu", layout=POINTWISE)
def gelu(out, self, approximate="none"):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    if approximate == "tanh":
        _, _, t = _gelu_tanh_parts(x)
        return 0.5 * x * (1 + t)
    return x * 0.5 * (1 + erf(x * SQRT_HALF))


@register("gelu_backward", layout=POINTWISE)
def gelu_backward(out, grad_output, self, approximate="none"):
    _, c = _float_compute(out, grad_output)
    g, x = _cast(grad_output, c), _cast(self, c)
    if approximate == "tanh":
        beta, kappa, t = _gelu_tanh_parts(x)
        left_derivative = 0.5 * (1 + t)
        right_derivative = 0.5 * x * (1 - t * t) * beta * (1 + 3 * kappa * x * x)
        return g * (left_derivative + right_derivative)
    cdf = 0.5 * (1 + erf(x * SQRT_HALF))
    pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return g * (cdf + x * pdf)


@register("threshold_backward", layout=POINTWISE)
def threshold_backward(out, grad_output, self, threshold):
    dt, c = _compute(out, grad_output, self)
    return np.where(_cast(self, c) <= threshold, np.zeros((), c), _cast(grad_output, c))


@register("threshold", layout=POINTWISE)
def threshold(out, self, threshold, value):  # noqa: A002
    _, c = _compute(out, self)
    x = _cast(self, c)
    return np.where(x <= threshold, c.type(value), x)


@register("silu", layout=POINTWISE)
def silu(out, self):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    return x / (1 + np.exp(-x))


@register("silu_backward", layout=POINTWISE)
def silu_backward(out, grad_output, self):
    _, c = _float_compute(out, grad_output)
    g, x = _cast(grad_output, c), _cast(self, c)
    s = 1 / (1 + np.exp(-x))
    return g * s * (1 + x * (1 - s))


@register("sigmoid_backward", layout=POINTWISE)
def sigmoid_backward(out, grad_output, output):
    _, c = _float_compute(out, grad_output)
    y = _cast(output, c)
    return _cast(grad_output, c) * (1 - y) * y


@register("tanh_backward", layout=POINTWISE)
def tanh_backward(out, grad_output, output):
    _, c = _float_compute(out, grad_output)
    y = _cast(output, c)
    return _cast(grad_output, c) * (1 - y * y)


@register("softplus", layout=POINTWISE)
def softplus(out, self, beta=1, threshold=20):  # noqa: A002
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    bx = x * beta
    return np.where(bx > threshold, x, np.log1p(np.exp(np.minimum(bx, threshold))) / beta)


@register("softplus_backward", layout=POINTWISE)
def softplus_backward(out, grad_output, self, beta, threshold):  # noqa: A002
    _, c = _float_compute(out, grad_output)
    x, g = _cast(self, c), _cast(grad_output, c)
    z = np.exp(np.minimum(x * beta, threshold))
    return np.where(x * beta > threshold, g, g * z / (z + 1))


@register("leaky_relu", layout=POINTWISE)
def leaky_relu(out, self, negative_slope=0.01):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    return np.where(x > 0, x, x * c.type(negative_slope))


@register("leaky_relu_backward", layout=POINTWISE)
def leaky_relu_backward(out, grad_output, self, negative_slope, self_is_result):
    _, c = _float_compute(out, grad_output)
    g = _cast(grad_output, c)
    return np.where(_cast(self, c) > 0, g, g * c.type(negative_slope))


@register("elu", layout=POINTWISE)
def elu(out, self, alpha=1, scale=1, input_scale=1):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    return np.where(x > 0, x * scale, np.expm1(np.minimum(x, 0) * input_scale) * alpha * scale)


@register("elu_backward", layout=POINTWISE)
def elu_backward(out, grad_output, alpha, scale, input_scale, is_result, self_or_result):
    _, c = _float_compute(out, grad_output)
    g, v = _cast(grad_output, c), _cast(self_or_result, c)
    if is_result:
        neg = g * input_scale * (v + alpha * scale)
    else:
        neg = g * input_scale * alpha * scale * np.exp(np.minimum(v, 0) * input_scale)
    return np.where(v > 0 if not is_result else v > 0, g * scale, neg)


@register("hardtanh", layout=POINTWISE)
def hardtanh(out, self, min_val=-1, max_val=1):
    _, c = _compute(out, self)
    return np.clip(_cast(self, c), min_val, max_val)


@register("hardtanh_backward", layout=POINTWISE)
def hardtanh_backward(out, grad_output, self, min_val, max_val):
    _, c = _float_compute(out, grad_output)
    x = _cast(self, c)
    return np.where((x <= min_val) | (x >= max_val), np.zeros((), c), _cast(grad_output, c))


@register("hardsigmoid", layout=POINTWISE)
def hardsigmoid(out, self):
    _, c = _float_compute(out, self)
    return np.clip(_cast(self, c) + 3, 0, 6) / 6


@register("hardsigmoid_backward", layout=POINTWISE)
def hardsigmoid_backward(out, grad_output, self):
    _, c = _float_compute(out, grad_output)
    x = _cast(self, c)
    # torch multiplies by the float32 constant 1/6 whatever the dtype
    return np.where((x > -3) & (x < 3), _cast(grad_output, c) * c.type(np.float32(1) / np.float32(6)),
                    np.zeros((), c))


@register("hardswish", layout=POINTWISE)
def hardswish(out, self):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    return x * np.clip(x + 3, 0, 6) / 6


@register("hardswish_backward", layout=POINTWISE)
def hardswish_backward(out, grad_output, self):
    _, c = _float_compute(out, grad_output)
    g, x = _cast(grad_output, c), _cast(self, c)
    return np.where(x < -3, np.zeros((), c), np.where(x <= 3, g * ((x / 3) + 0.5), g))


@register("mish", layout=POINTWISE)
def mish(out, self):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    return x * np.tanh(np.log1p(np.exp(x)))


@register("mish_backward", layout=POINTWISE)
def mish_backward(out, grad_output, self):
    _, c = _float_compute(out, grad_output)
    g, x = _cast(grad_output, c), _cast(self, c)
    s = 1 / (1 + np.exp(-x))
    t = np.tanh(np.log1p(np.exp(x)))
    return g * (t + x * s * (1 - t * t))


@register("native_dropout_backward", layout=POINTWISE)
def native_dropout_backward(out, grad_output, mask, scale):
    _, c = _float_compute(out, grad_output)
    return _cast(grad_output, c) * _cast(mask, c) * c.type(scale)


@register("native_dropout")
def native_dropout(out, input, p, train):  # noqa: A002
    c = opmath(input.dtype)
    if not train:
        return input.copy(), np.ones(input.shape, bool)
    keep = generator().random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return _cast(input, c) * keep * c.type(scale), keep


# -- reductions --------------------------------------------------------------------------

def _axes(self, dim):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(self.ndim))
    if isinstance(dim, int):
        dim = [dim]
    return tuple(d % max(self.ndim, 1) for d in dim) if self.ndim else ()


def _acc_dtype(out, self):
    """Accumulation dtype of sum-like reductions: float32 for half types, int64 for integers and bool."""
    dt = out.dtype if out is not None else None
    if dt is None:
        dt = self.dtype if is_floating(self.dtype) else np.dtype(np.int64)
    return opmath(dt)


@register("sum")
def sum_(out, self, dim=None, keepdim=False, dtype=None):
    acc = _acc_dtype(out, self)
    return np.sum(_cast(self, acc), axis=_axes(self, dim), keepdims=keepdim)


@register("mean")
def mean(out, self, dim=None, keepdim=False, dtype=None):
    acc = _acc_dtype(out, self)
    return np.mean(_cast(self, acc), axis=_axes(self, dim), keepdims=keepdim)


@register("prod")
def prod(out, self, dim=None, keepdim=False, dtype=None):
    acc = _acc_dtype(out, self)
    return np.prod(_cast(self, acc), axis=_axes(self, dim), keepdims=keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return _scalar(correction)
    return 1 if unbiased in (None, True) else 0


@register("var")
def var(out, self, dim=None, unbiased=None, keepdim=False, correction=None):
    acc = opmath(self.dtype)
    return np.var(_cast(self, acc), axis=_axes(self, dim), ddof=_correction(unbiased, correction), keepdims=keepdim)


@register("std")
def std(out, self, dim=None, unbiased=None, keepdim=False, correction=None):
    acc = opmath(self.dtype)
    return np.std(_cast(self, acc), axis=_axes(self, dim), ddof=_correction(unbiased, correction), keepdims=keepdim)


@register("var_mean")
def var_mean(out, self, dim=None, unbiased=None, keepdim=False, correction=None):
    return (var(out, self, dim, unbiased, keepdim, correction),
            np.mean(_cast(self, opmath(self.dtype)), axis=_axes(self, dim), keepdims=keepdim))


@register("std_mean")
def std_mean(out, self, dim=None, unbiased=None, keepdim=False, correction=None):
    return (std(out, self, dim, unbiased, keepdim, correction),
            np.mean(_cast(self, opmath(self.dtype)), axis=_axes(self, dim), keepdims=keepdim))


@register("amax")
def amax(out, self, dim=(), keepdim=False):
    return np.max(self, axis=_axes(self, dim), keepdims=keepdim)


@register("amin")
def amin(out, self, dim=(), keepdim=False):
    return np.min(self, axis=_axes(self, dim), keepdims=keepdim)


def _extremum_with_index(np_arg):
    def kernel(out, self, dim=None, keepdim=False):
        if dim is None:
            return np.asarray(self.max() if np_arg is np.argmax else self.min())
        d = dim % max(self.ndim, 1)
        work = self if self.ndim else self.reshape(1)
        idx = np.expand_dims(np_arg(work, axis=d), d)
        values = np.take_along_axis(work, idx, axis=d)
        if not keepdim:
            values, idx = np.squeeze(values, d), np.squeeze(idx, d)
        if self.ndim == 0:
            values, idx = values.reshape(()), idx.reshape(())
        return values, idx.astype(np.int64)
    return kernel


register("max")(_extremum_with_index(np.argmax))
register("min")(_extremum_with_index(np.argmin))


@register("argmax")
def argmax(out, self, dim=None, keepdim=False):
    if dim is None:
        return np.asarray(np.argmax(self), np.int64).reshape((1,) * self.ndim if keepdim else ())
    return np.argmax(self, axis=dim, keepdims=keepdim)


@register("argmin")
def argmin(out, self, dim=None, keepdim=False):
    if dim is None:
        return np.asarray(np.argmin(self), np.int64).reshape((1,) * self.ndim if keepdim else ())
    return np.argmin(self, axis=dim, keepdims=keepdim)


@register("logsumexp")
def logsumexp(out, self, dim, keepdim=False):
    x = _cast(self, opmath(self.dtype) if is_floating(self.dtype) else np.float32)
    axes = _axes(self, dim)
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros([1] * x.ndim, x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    res = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return res if keepdim else np.squeeze(res, axis=axes)


@register("linalg_vector_norm")
def linalg_vector_norm(out, self, ord=2, dim=None, keepdim=False, dtype=None):  # noqa: A002
    x = np.abs(_cast(self, opmath(out.dtype if out is not None else self.dtype)))
    axes = _axes(self, dim)
    if ord == math.inf:
        return np.max(x, axis=axes, keepdims=keepdim)
    if ord == -math.inf:
        return np.min(x, axis=axes, keepdims=keepdim)
    if ord == 0:
        return np.sum(x != 0, axis=axes, keepdims=keepdim)
    if ord == 1:
        return np.sum(x, axis=axes, keepdims=keepdim)
    if ord == 2:
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdim))
    return np.sum(x ** ord, axis=axes, keepdims=keepdim) ** (1.0 / ord)


@register("any")
def any_(out, self, dim=None, keepdim=False):
    return np.any(self, axis=_axes(self, dim), keepdims=keepdim)


@register("all")
def all_(out, self, dim=None, keepdim=False):
    return np.all(self, axis=_axes(self, dim), keepdims=keepdim)


@register("cumsum")
def cumsum(out, self, dim, dtype=None):
    return np.cumsum(_cast(self, _acc_dtype(out, self)), axis=dim)


@register("cumprod")
def cumprod(out, self, dim, dtype=None):
    return np.cumprod(_cast(self, _acc_dtype(out, self)), axis=dim)


# -- matrix products ---------------------------------------------------------------------

def _matmul(a, b, out):
    c = opmath(out_dtype(out, a, b))
    return np.matmul(_cast(a, c), _cast(b, c))


def _scaled_sum(base, product, beta, alpha):
    c = product.dtype
    res = product if alpha == 1 else product * c.type(alpha)
    if beta == 0:
        return np.broadcast_to(res, np.broadcast_shapes(res.shape, np.shape(base)))
    b = _cast(base, c)
    return res + (b if beta == 1 else b * c.type(beta))


@register("mm", "bmm", "matmul", "mv", "dot", "vdot", "outer")
def mm(out, self, other=None, mat2=None, vec=None, tensor=None, vec2=None):
    second = next(x for x in (other, mat2, vec, tensor, vec2) if x is not None)
    if self.ndim == 1 and second.ndim == 1 and out is not None and len(out.shape) == 2:
        return np.multiply.outer(_cast(self, opmath(out.dtype)), _cast(second, opmath(out.dtype)))
    return _matmul(self, second, out)


@register("addmm", "baddbmm", "addmv", "addbmm")
def addmm(out, self, mat1=None, mat2=None, beta=1, alpha=1, batch1=None, batch2=None, vec=None):
    a = next(x for x in (mat1, batch1) if x is not None)
    b = next(x for x in (mat2, batch2, vec) if x is not None)
    product = _matmul(a, b, out)
    if product.ndim == 3 and out is not None and len(out.shape) == 2:       # addbmm sums the batch
        product = product.sum(0)
    return _scaled_sum(self, product, beta, alpha)


# -- copies, casts, joins, fills -------------------------------------------------------------

@register("_to_copy", layout=LIKE_FIRST)
def to_copy(out, self, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False,
            memory_format=None):
    return self.astype(dtype if dtype is not None else self.dtype)


@register("clone", layout=LIKE_FIRST)
def clone(out, self, memory_format=None):
    return self.copy()


@register("contiguous", "_unsafe_view_copy", "view_copy")
def contiguous(out, self, *args, **kwargs):
    return self.reshape(out.shape) if out is not None else np.ascontiguousarray(self)


@register("empty_like", "new_empty", "new_empty_strided", "empty_strided", layout=LIKE_FIRST)
def empty_like(out, self, *args, **kwargs):
    # the engine's meta carries shape, dtype and (for empty_strided) strides; contents are unspecified
    return np.zeros(out.shape if out is not None else self.shape, out.dtype if out is not None else self.dtype)


@register("zeros_like", "new_zeros", layout=LIKE_FIRST)
def zeros_like(out, self, *args, **kwargs):
    return np.zeros(out.shape if out is not None else self.shape, out.dtype if out is not None else self.dtype)


@register("ones_like", "new_ones", layout=LIKE_FIRST)
def ones_like(out, self, *args, **kwargs):
    return np.ones(out.shape if out is not None else self.shape, out.dtype if out is not None else self.dtype)


@register("full_like", layout=LIKE_FIRST)
def full_like(out, self, fill_value, *args, **kwargs):
    return np.full(out.shape if out is not None else self.shape, fill_value,
                   out.dtype if out is not None else self.dtype)


@register("new_full")
def new_full(out, self, size, fill_value, *args, **kwargs):
    return np.full(tuple(size), fill_value, out.dtype if out is not None else self.dtype)


@register("fill", layout=LIKE_FIRST)
def fill(out, self, value):
    return np.full(self.shape, _scalar(value), self.dtype)


@register("zero", layout=LIKE_FIRST)
def zero(out, self):
    return np.zeros(self.shape, self.dtype)


@register("cat", "concat", "concatenate")
def cat(out, tensors, dim=0):
    dt = out_dtype(out, *tensors)
    # torch skips legacy empty 1-D tensors (shape [0]) when concatenating
    parts = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or list(tensors)
    return np.concatenate([_cast(t, dt) for t in parts], axis=dim)


@register("stack")
def stack(out, tensors, dim=0):
    dt = out_dtype(out, *tensors)
    return np.stack([_cast(t, dt) for t in tensors], axis=dim)


@register("repeat")
def repeat(out, self, repeats):
    lead = len(repeats) - self.ndim
    return np.tile(self.reshape((1,) * lead + self.shape), tuple(repeats))


@register("flip", layout=LIKE_FIRST)
def flip(out, self, dims):
    return np.flip(self, axis=tuple(dims)).copy()


@register("roll")
def roll(out, self, shifts, dims=()):
    if not dims:
        return np.roll(self.reshape(-1), shifts).reshape(self.shape)
    return np.roll(self, tuple(shifts), axis=tuple(dims))


@register("tril")
def tril(out, self, diagonal=0):
    return np.tril(self, diagonal)


@register("triu")
def triu(out, self, diagonal=0):
    return np.triu(self, diagonal)


@register("constant_pad_nd")
def constant_pad_nd(out, self, pad, value=0):
    widths = [(0, 0)] * self.ndim
    for i in range(len(pad) // 2):
        widths[self.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    cropped = self
    for d, (lo, hi) in enumerate(widths):           # negative padding crops
        if lo < 0 or hi < 0:
            idx = [slice(None)] * self.ndim
            idx[d] = slice(max(-lo, 0), cropped.shape[d] - max(-hi, 0))
            cropped = cropped[tuple(idx)]
    return np.pad(cropped, [(max(lo, 0), max(hi, 0)) for lo, hi in widths], constant_values=value)


# -- indexing -----------------------------------------------------------------------------

def _check_index(index, size, message="index out of range in self"):
    index = np.asarray(index)
    if index.size and (index.min() < -size or index.max() >= size):
        raise IndexError(message)


@register("index_select")
def index_select(out, self, dim, index):
    _check_index(index, self.shape[dim] if self.ndim else 1)
    return np.take(self, index, axis=dim) if self.ndim else self.copy()


@register("gather")
def gather(out, self, dim, index, sparse_grad=False):
    if self.ndim == 0:                       # a 0-dim tensor gathers like a 1-element vector
        return np.take_along_axis(self.reshape(1), index.reshape(1), 0).reshape(index.shape)
    return np.take_along_axis(self, index, axis=dim)


def _scatter_target(self, dim, index):
    if index.ndim == 0:
        return (index,) if self.ndim else (Ellipsis,)
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    return tuple(idx)


@register("scatter")
def scatter(out, self, dim, index, src=None, value=None, reduce=None):
    res = self.copy()
    source = src if src is not None else value
    vals = source[tuple(slice(0, n) for n in index.shape)] if np.ndim(source) else source
    res[_scatter_target(self, dim, index)] = vals
    return res


@register("scatter_add")
def scatter_add(out, self, dim, index, src):
    res = self.copy()
    np.add.at(res, _scatter_target(self, dim, index), src[tuple(slice(0, n) for n in index.shape)])
    return res


@register("index_add")
def index_add(out, self, dim, index, source, alpha=1):
    res = self.copy()
    moved = np.moveaxis(res, dim, 0)
    np.add.at(moved, index, np.moveaxis(source, dim, 0) * alpha)
    return res


@register("index_fill")
def index_fill(out, self, dim, index, value):
    res = self.copy()
    moved = np.moveaxis(res, dim, 0)
    moved[index] = _scalar(value)
    return res


def _advanced_index(indices):
    # None entries mean "the whole dim"; boolean masks are numpy's too
    return tuple(slice(None) if i is None else i for i in indices)


@register("index")
def index(out, self, indices):
    return self[_advanced_index(indices)]


@register("index_put")
def index_put(out, self, indices, values, accumulate=False):
    res = self.copy()
    key = _advanced_index(indices)
    if accumulate:
        np.add.at(res, key, values)
    else:
        res[key] = values
    return res


@register("masked_scatter")
def masked_scatter(out, self, mask, source):
    res = np.array(np.broadcast_to(self, np.broadcast_shapes(self.shape, mask.shape)))
    full_mask = np.broadcast_to(mask, res.shape)
    res[full_mask] = source.reshape(-1)[:int(full_mask.sum())]
    return res


@register("masked_select")
def masked_select(out, self, mask):
    shape = np.broadcast_shapes(self.shape, mask.shape)
    return np.broadcast_to(self, shape)[np.broadcast_to(mask, shape)]


@register("nonzero", layout=lambda shape: (1, max(shape[0], 1)))      # torch fills it column by column
def nonzero(out, self):
    return np.stack(np.nonzero(self), axis=1).astype(np.int64) if self.ndim else \
        np.zeros((int(bool(self)), 0), np.int64)


@register("_unique2")
def unique2(out, self, sorted=True, return_inverse=False, return_counts=False):  # noqa: A002
    values, inverse, counts = np.unique(self, return_inverse=True, return_counts=True)
    return (values, inverse.reshape(self.shape).astype(np.int64) if return_inverse else np.zeros(0, np.int64),
            counts.astype(np.int64) if return_counts else np.zeros(0, np.int64))


@register("unique_dim")
def unique_dim(out, self, dim, sorted=True, return_inverse=False, return_counts=False):  # noqa: A002
    values, inverse, counts = np.unique(self, axis=dim, return_inverse=True, return_counts=True)
    return values, inverse.reshape(-1).astype(np.int64), counts.astype(np.int64)


# -- in-place kernels that write their target themselves ------------------------------------------

@register_inplace("copy_")
def copy_(self, src, non_blocking=False):
    np.copyto(self, np.broadcast_to(src, self.shape), casting="unsafe")


@register_inplace("zero_")
def zero_(self):
    self[...] = 0


@register_inplace("fill_")
def fill_(self, value):
    self[...] = _scalar(value)


@register_inplace("bernoulli_")
def bernoulli_(self, p=0.5, generator=None):
    self[...] = (_generator().random(self.shape) < p).astype(self.dtype)


@register_inplace("uniform_")
def uniform_(self, from_=0.0, to=1.0, generator=None, **kwargs):
    low = kwargs.get("from", from_)
    self[...] = _generator().uniform(low, to, self.shape).astype(self.dtype)


@register_inplace("normal_")
def normal_(self, mean=0.0, std=1.0, generator=None):
    self[...] = _generator().normal(mean, std, self.shape).astype(self.dtype)


@register_inplace("random_")
def random_(self, from_=0, to=None, generator=None):
    # torch's default upper bound: the largest integer the dtype represents exactly (+1 for floats)
    float_bounds = {np.dtype(np.float64): 2 ** 53 + 1, np.dtype(np.float32): 2 ** 24 + 1,
                    np.dtype(np.float16): 2 ** 11 + 1}
    if to is not None:
        high = to
    elif is_floating(self.dtype):
        high = float_bounds.get(np.dtype(self.dtype), 2 ** 8 + 1)          # bfloat16: 2**8
    else:
        high = np.iinfo(self.dtype).max
    self[...] = _generator().integers(from_, high, self.shape).astype(self.dtype)


def _generator():
    return generator()


# -- views (numpy views share memory with their base) ------------------------------------------

@register_view("view", "_unsafe_view", "_reshape_alias", "reshape")
def view(self, size, *args):
    return np.reshape(self, tuple(size), copy=False)


@register_view("alias", "detach", "_alias")
def alias(self):
    return self.view()


@register_view("transpose")
def transpose(self, dim0, dim1):
    return np.swapaxes(self, dim0, dim1)


@register_view("t")
def t(self):
    return self.T


@register_view("permute")
def permute(self, dims):
    return np.transpose(self, tuple(dims))


@register_view("expand")
def expand(self, size, implicit=False):
    shape = tuple(size)
    lead = len(shape) - self.ndim
    strides = [0] * lead + [0 if n == 1 and s != 1 else st
                            for n, s, st in zip(self.shape, shape[lead:], self.strides)]
    # as_strided (not broadcast_to) keeps the view writable, like torch's expand
    return np.lib.stride_tricks.as_strided(self, shape, tuple(strides))


@register_view("unsqueeze")
def unsqueeze(self, dim):
    return np.expand_dims(self, dim)


@register_view("squeeze")
def squeeze(self, dim=None):
    if dim is None:
        return np.squeeze(self)
    dims = [dim] if isinstance(dim, int) else list(dim)
    dims = [d % max(self.ndim, 1) for d in dims if self.ndim and self.shape[d] == 1]
    return np.squeeze(self, axis=tuple(dims)) if dims else self.view()


@register_view("slice")
def slice_(self, dim=0, start=None, end=None, step=1):
    idx = [slice(None)] * self.ndim
    idx[dim] = slice(start, end, step)
    return self[tuple(idx)]


@register_view("select")
def select(self, dim, index):
    idx = [slice(None)] * self.ndim
    idx[dim] = index
    return self[tuple(idx) + (Ellipsis,)]        # the Ellipsis keeps a 0-d result a view, not a scalar copy


@register_view("narrow")
def narrow(self, dim, start, length):
    return slice_(self, dim, start, start + length, 1)


@register_view("diagonal")
def diagonal(self, offset=0, dim1=0, dim2=1):
    return np.diagonal(self, offset, dim1, dim2)


@register_view("unfold")
def unfold(self, dimension, size, step):
    d = dimension % max(self.ndim, 1)
    count = (self.shape[d] - size) // step + 1 if self.ndim else 1
    shape = self.shape[:d] + (count,) + self.shape[d + 1:] + (size,)
    strides = self.strides[:d] + (self.strides[d] * step,) + self.strides[d + 1:] + (self.strides[d],)
    return np.lib.stride_tricks.as_strided(self, shape, strides)


@register_view("as_strided")
def as_strided(self, self_offset, size, stride, storage_offset=None):
    start = self_offset if storage_offset is None else storage_offset
    origin = shifted(self, start - self_offset)
    return np.lib.stride_tricks.as_strided(origin, tuple(size), tuple(s * self.itemsize for s in stride))


@register_view("split_with_sizes", "split")
def split_with_sizes(self, split_sizes, dim=0):
    if isinstance(split_sizes, int):
        total = self.shape[dim]
        split_sizes = [min(split_sizes, total - s) for s in range(0, total, split_sizes)]
    bounds = np.cumsum(split_sizes)[:-1]
    return [p.view() for p in np.split(self, bounds, axis=dim)]


@register_view("unbind")
def unbind(self, dim=0):
    return [select(self, dim, i) for i in range(self.shape[dim])]


# -- more elementwise, indexing and reduction kernels ----------------------------------------

@register("floor_divide", layout=POINTWISE)
def floor_divide(out, self, other):
    return div(out, self, other, rounding_mode="floor")


@register("isinf", layout=POINTWISE)
def isinf(out, self):
    return np.isinf(self.astype(opmath(self.dtype))) if is_floating(self.dtype) else np.zeros(self.shape, bool)


@register("isfinite", layout=POINTWISE)
def isfinite(out, self):
    return np.isfinite(self.astype(opmath(self.dtype))) if is_floating(self.dtype) else np.ones(self.shape, bool)


@register("celu", layout=POINTWISE)
def celu(out, self, alpha=1.0):
    return elu(out, self, alpha=alpha, scale=1.0, input_scale=1.0 / alpha)


@register("log_sigmoid_forward")
def log_sigmoid_forward(out, self):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    # -softplus(-x), stably; the CPU kernel's buffer holds exp(-|x|) for the backward
    buffer = np.exp(-np.abs(x))
    return np.minimum(x, 0) - np.log1p(buffer), buffer


@register("log_sigmoid_backward", layout=POINTWISE)
def log_sigmoid_backward(out, grad_output, self, buffer):
    _, c = _float_compute(out, grad_output)
    x, z = _cast(self, c), _cast(buffer, c)
    # d/dx log(sigmoid(x)) = 1 - sigmoid(x), from the buffer z = exp(-|x|) as torch's CPU kernel does
    return _cast(grad_output, c) * np.where(x < 0, 1 / (1 + z), z / (1 + z))


@register("logit", layout=POINTWISE)
def logit(out, self, eps=None):
    _, c = _float_compute(out, self)
    x = _cast(self, c)
    if eps is not None:
        x = np.clip(x, eps, 1 - eps)
    return np.log(x / (1 - x))


@register("logit_backward", layout=POINTWISE)
def logit_backward(out, grad_output, self, eps=None):
    _, c = _float_compute(out, grad_output)
    x, g = _cast(self, c), _cast(grad_output, c)
    if eps is None:
        return np.where((x < 0) | (x > 1), np.nan, g / (x * (1 - x)))
    return np.where((x < eps) | (x > 1 - eps), np.zeros((), c), g / (x * (1 - x)))


@register("xlogy", layout=POINTWISE)
def xlogy(out, self, other):
    _, c = _float_compute(out, self, other)
    x, y = _cast(self, c), _cast(other, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = x * np.log(y)
    return np.where(np.isnan(y), np.nan, np.where(x == 0, np.zeros((), c), res))


@register("count_nonzero")
def count_nonzero(out, self, dim=None):
    return np.count_nonzero(self, axis=None if dim is None else tuple(np.atleast_1d(dim))).astype(np.int64)


@register("one_hot")
def one_hot(out, self, num_classes=-1):
    n = out.shape[-1] if out is not None else (num_classes if num_classes >= 0 else int(self.max()) + 1)
    return (self[..., None] == np.arange(n)).astype(np.int64)


@register("masked_scatter_backward")
def masked_scatter_backward(out, grad_output, mask, sizes):
    full_mask = np.broadcast_to(mask, grad_output.shape)
    picked = grad_output[full_mask]
    res = np.zeros(int(np.prod(sizes, dtype=np.int64)), grad_output.dtype)
    res[:picked.size] = picked
    return res.reshape(tuple(sizes))


@register_inplace("_index_put_impl_", "index_put_")
def index_put_(self, indices, values, accumulate=False, unsafe=False):
    key = _advanced_index(indices)
    if accumulate:
        np.add.at(self, key, values)
    else:
        self[key] = values


@register("gather_backward")
def gather_backward(out, grad, self, dim, index, sparse_grad=False):
    return scatter_add(out, np.zeros(self.shape, grad.dtype), dim, index, grad)


# -- mixed precision (GradScaler) ---------------------------------------------------------------

@register_inplace("_amp_foreach_non_finite_check_and_unscale_")
def amp_non_finite_check_and_unscale_(self, found_inf, inv_scale):
    """Unscale every gradient in place; found_inf becomes 1 if any value is inf or nan."""
    for grad in self:
        grad[...] = grad * inv_scale.astype(grad.dtype)
        if not np.isfinite(grad.astype(opmath(grad.dtype))).all():
            found_inf[...] = 1


@register_inplace("_amp_update_scale_")
def amp_update_scale_(self, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    """torch's scale update: back off after an overflow, grow after ``growth_interval`` clean steps."""
    if found_inf.item():
        self[...] = self * backoff_factor
        growth_tracker[...] = 0
        return
    successful = growth_tracker.item() + 1
    if successful == growth_interval:
        self[...] = self * growth_factor
        successful = 0
    growth_tracker[...] = successful


# -- sorting and order statistics ------------------------------------------------------------------

def _stable_order(x, axis, descending):
    """Indices that sort ``x`` along ``axis``, ties in input order and NaN last (first when descending), as
    torch's stable sort orders them."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # ascending order of the reversed array, reversed: descending, with ties back in input order
    reversed_order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return np.flip(x.shape[axis] - 1 - reversed_order, axis)


def _sortable(self):
    """At least 1-D, half types widened (exact) so numpy's sort compares them as numbers."""
    x = np.asarray(self)
    x = x.reshape(1) if x.ndim == 0 else x
    return x.astype(opmath(x.dtype), copy=False) if is_floating(x.dtype) else x


@register("sort", layout=LIKE_FIRST)
def sort(out, self, dim=-1, descending=False, stable=None):
    x = _sortable(self)
    order = _stable_order(x, dim, descending)
    values = np.take_along_axis(np.asarray(self).reshape(x.shape), order, dim)
    return values.reshape(np.shape(self)), order.reshape(np.shape(self)).astype(np.int64)


@register("topk")
def topk(out, self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's argument name
    x = _sortable(self)
    order = np.take(_stable_order(x, dim, largest), np.arange(k), axis=dim)
    values = np.take_along_axis(np.asarray(self).reshape(x.shape), order, dim)
    if np.ndim(self) == 0:
        return values.reshape(()), order.reshape(()).astype(np.int64)
    return values, order.astype(np.int64)


def _select_position(self, dim, keepdim, position_of):
    """(values, indices) at the index ``position_of(sorted_order, x)`` picks along ``dim``."""
    x = _sortable(self)
    picked = position_of(_stable_order(x, dim, False), x)
    values = np.take_along_axis(np.asarray(self).reshape(x.shape), picked, dim)
    if np.ndim(self) == 0:
        return values.reshape(()), picked.reshape(()).astype(np.int64)
    if not keepdim:
        values, picked = np.squeeze(values, dim), np.squeeze(picked, dim)
    return values, picked.astype(np.int64)


@register("kthvalue")
def kthvalue(out, self, k, dim=-1, keepdim=False):
    return _select_position(self, dim, keepdim, lambda order, x: np.take(order, [k - 1], axis=dim))


@register("median")
def median(out, self, dim=None, keepdim=False):
    """median() of all elements, or median.dim: the lower median; a NaN in the slice is the median."""
    if dim is None:
        flat = _sortable(self).reshape(-1)
        if flat.size == 0 or np.isnan(flat).any():
            return np.asarray(np.nan)
        return np.asarray(np.sort(flat)[(flat.size - 1) // 2])

    def lower_median(order, x):
        middle = np.take(order, [(x.shape[dim] - 1) // 2], axis=dim)
        nan = np.isnan(x) if is_floating(x.dtype) else np.zeros(x.shape, bool)
        first_nan = np.expand_dims(np.argmax(nan, axis=dim), dim)
        return np.where(np.expand_dims(nan.any(axis=dim), dim), first_nan, middle)
    return _select_position(self, dim, keepdim, lower_median)


# -- creation kernels (no tensor input: the engine's meta gives shape and dtype) ---------------------

def _range_dtype(out):
    """torch computes ranges in the output's floating type, and in double for integer outputs."""
    return out.dtype if is_floating(out.dtype) and out.dtype not in (np.float16,) and out.dtype.itemsize >= 4 \
        else np.dtype(np.float64)


def _two_sided_range(out, start, end, steps):
    """torch's linspace points: from ``start`` for the first half and from ``end`` for the second (its scalar
    formula; torch's vectorised loop rounds a few points differently, within the last place)."""
    dt = _range_dtype(out)
    if steps == 1:
        return np.full(1, start, dt)
    index = np.arange(steps, dtype=dt)
    step = (dt.type(end) - dt.type(start)) / dt.type(steps - 1)
    from_start = dt.type(start) + step * index
    from_end = dt.type(end) - step * (dt.type(steps - 1) - index)
    return np.where(np.arange(steps) < steps // 2, from_start, from_end)


@register("linspace")
def linspace(out, start, end, steps, dtype=None, layout=None, device=None, pin_memory=None):
    return _two_sided_range(out, start, end, steps)


@register("logspace")
def logspace(out, start, end, steps, base=10.0, dtype=None, layout=None, device=None, pin_memory=None):
    exponents = _two_sided_range(out, start, end, steps)
    return np.power(exponents.dtype.type(base), exponents)


@register("eye")
def eye(out, n, m=None, dtype=None, layout=None, device=None, pin_memory=None):
    return np.eye(n, n if m is None else m)


@register("tril_indices")
def tril_indices(out, row, col, offset=0, dtype=None, layout=None, device=None, pin_memory=None):
    return np.stack(np.tril_indices(row, offset, col)).reshape(2, -1)


@register("triu_indices")
def triu_indices(out, row, col, offset=0, dtype=None, layout=None, device=None, pin_memory=None):
    return np.stack(np.triu_indices(row, offset, col)).reshape(2, -1)


@register_inplace("exponential_")
def exponential_(self, lambd=1.0, generator=None):
    self[...] = _generator().exponential(1.0 / lambd, self.shape).astype(self.dtype)


@register("linalg_cross")
def linalg_cross(out, self, other, dim=-1):
    dt, ct = _compute(out, self, other)
    a, b = np.broadcast_arrays(_cast(self, ct), _cast(other, ct))
    return np.cross(a, b, axis=dim)
