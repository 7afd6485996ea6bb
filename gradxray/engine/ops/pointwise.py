"""Elementwise ops with broadcasting and type promotion.  One class per op."""
from __future__ import annotations

from .. import dtypes as _dt
from ..function import Function
from ..tensor import Tensor
from ._kernel import elementwise_strides, inplace, kernel
from .shapes import broadcast_shapes


def _shape(x):
    return x.shape if isinstance(x, Tensor) else ()


def _binary_meta(a, b, out_dtype=None):
    shape = broadcast_shapes(_shape(a), _shape(b))
    return shape, out_dtype or _dt.result_type(a, b), elementwise_strides(shape, (a, b))


def _check_inplace(self, other):
    shape = broadcast_shapes(self.shape, _shape(other))
    if tuple(int(s) for s in shape) != tuple(int(s) for s in self.shape):
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(shape)}")


class Add(Function):
    """out = a + alpha * b.  Saves: nothing."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return kernel("add", _binary_meta(a, b), a, b, alpha=alpha)

    @staticmethod
    def backward(ctx, grad):
        return grad, (grad if ctx.alpha == 1 else mul(grad, ctx.alpha)), None


class AddInplace(Function):
    """a += alpha * b (in place).  Saves: nothing."""
    node_name = "AddBackward0"

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        _check_inplace(a, b)
        ctx.alpha = alpha
        ctx.mark_dirty(a)
        return inplace("add_", a, b, alpha=alpha)

    backward = Add.backward


class Sub(Function):
    """out = a - alpha * b.  Saves: nothing."""

    @staticmethod
    def forward(ctx, a, b, alpha=1):
        ctx.alpha = alpha
        return kernel("sub", _binary_meta(a, b), a, b, alpha=alpha)

    @staticmethod
    def backward(ctx, grad):
        return grad, neg(grad) if ctx.alpha == 1 else mul(grad, -ctx.alpha), None


class Mul(Function):
    """out = a * b.  Saves: b if a needs grad, a if b needs grad (torch's guarded saving)."""

    saves = ("other", "self")

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(b if need_a and isinstance(b, Tensor) else None,
                              a if need_b and isinstance(a, Tensor) else None)
        ctx.scalar_b = None if isinstance(b, Tensor) else b
        return kernel("mul", _binary_meta(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        other, self_ = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = mul(grad, other if other is not None else ctx.scalar_b)
        if ctx.needs_input_grad[1]:
            gb = mul(grad, self_)
        return ga, gb


class InplaceSavingOriginal(Function):
    """Base of in-place ops whose formula reads the original input.  torch saves a clone taken just
    before the kernel runs, itself recorded by autograd (double backward reaches the input's earlier
    history through it); ``apply`` takes that clone and hands it to ``forward`` as ``original``."""

    @staticmethod
    def original_needed(needs_input_grad) -> bool:
        return needs_input_grad[0]

    @classmethod
    def apply(cls, x, *args):
        from .. import autograd
        from .views import Clone
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in (x, *args))
        original = Clone.apply(x) if autograd.is_grad_enabled() and cls.original_needed(needs) else None
        return super().apply(x, *args, original=original)


class MulInplace(InplaceSavingOriginal):
    """a *= b (in place).  Saves: b if a needs grad; a clone of the original a if b needs grad."""
    node_name = "MulBackward0"
    saves = ("other", "self")

    @staticmethod
    def original_needed(needs_input_grad) -> bool:
        return len(needs_input_grad) > 1 and needs_input_grad[1]

    @staticmethod
    def forward(ctx, a, b, original=None):
        _check_inplace(a, b)
        ctx.save_for_backward(b if isinstance(b, Tensor) and ctx.needs_input_grad[0] else None, original)
        ctx.scalar_b = None if isinstance(b, Tensor) else b
        ctx.mark_dirty(a)
        return inplace("mul_", a, b)

    @staticmethod
    def backward(ctx, grad):
        other, original = ctx.saved_tensors
        ga = mul(grad, other if other is not None else ctx.scalar_b) if ctx.needs_input_grad[0] else None
        gb = mul(grad, original) if len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1] else None
        return ga, gb, None


class Div(Function):
    """out = a / b.  Saves: b (for a's grad); a and b (for b's grad)."""

    saves = ("other", "self")

    @staticmethod
    def forward(ctx, a, b):
        need_b = ctx.needs_input_grad[1]
        ctx.save_for_backward(b if isinstance(b, Tensor) else None, a if need_b else None)
        ctx.scalar_b = None if isinstance(b, Tensor) else b
        meta = _binary_meta(a, b)
        if not meta[1].is_floating_point:
            meta = (meta[0], _dt.default_float, meta[2])
        return kernel("div", meta, a, b)

    @staticmethod
    def backward(ctx, grad):
        other, self_ = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = div(grad, other if other is not None else ctx.scalar_b)
        if ctx.needs_input_grad[1]:
            gb = neg(div(mul(grad, self_), mul(other, other)))
        return ga, gb


class Neg(Function):
    """out = -a.  Saves: nothing."""

    @staticmethod
    def forward(ctx, a):
        return kernel("neg", (a.shape, a.dtype), a)

    @staticmethod
    def backward(ctx, grad):
        return neg(grad)


class Relu(Function):
    """y = relu(x).  Saves: result."""

    saves = ("result",)

    @staticmethod
    def forward(ctx, x):
        y = kernel("relu", (x.shape, x.dtype), x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return threshold_backward(grad, y, 0)


class ReluInplace(Function):
    """x = relu(x) in place.  Saves: result (the modified x)."""
    node_name = "ReluBackward0"
    saves = ("result",)

    @staticmethod
    def forward(ctx, x):
        ctx.mark_dirty(x)
        inplace("relu_", x)
        ctx.save_for_backward(x)
        return x

    backward = Relu.backward


class Gelu(Function):
    """y = gelu(x).  Saves: x."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return kernel("gelu", (x.shape, x.dtype), x, approximate=approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return gelu_backward(grad, x, ctx.approximate), None


# -- backward kernels: engine ops themselves, so backward can be differentiated again ---------

class ThresholdBackward(Function):
    """grad_input = threshold_backward(grad, self, threshold): grad where self > threshold, else 0.
    Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, grad, x, threshold):
        ctx.save_for_backward(x)
        ctx.threshold = threshold
        return kernel("threshold_backward", (grad.shape, grad.dtype), grad, x, threshold)

    @staticmethod
    def backward(ctx, gg):
        from ..creation import zeros_like
        (x,) = ctx.saved_tensors
        return (threshold_backward(gg, x, ctx.threshold) if ctx.needs_input_grad[0] else None,
                zeros_like(gg) if ctx.needs_input_grad[1] else None, None)


class GeluBackward(Function):
    """grad_input = gelu_backward(grad, self, approximate) = grad * gelu'(self).  Saves: grad_output, self."""

    saves = ("grad_output", "self")

    @staticmethod
    def forward(ctx, grad, x, approximate):
        ctx.save_for_backward(grad if ctx.needs_input_grad[1] else None, x)
        ctx.approximate = approximate
        return kernel("gelu_backward", (grad.shape, grad.dtype), grad, x, approximate=approximate)

    @staticmethod
    def backward(ctx, gg):
        from ._composite import composite_grads
        grad, x = ctx.saved_tensors
        g_grad = gelu_backward(gg, x, ctx.approximate) if ctx.needs_input_grad[0] else None
        g_x = None
        if ctx.needs_input_grad[1]:
            (g_x,) = composite_grads(lambda x_: mul(grad, gelu_derivative(x_, ctx.approximate)), [x], [True], [gg])
        return g_grad, g_x, None


def gelu_derivative(x, approximate):
    """d gelu(x) / dx written with engine ops (what gelu_backward multiplies the gradient by)."""
    import math
    from .elementwise import erf, exp
    if approximate == "tanh":
        from .activations import tanh
        k = math.sqrt(2.0 / math.pi)
        x2 = mul(x, x)
        inner = mul(add(x, mul(mul(x2, x), 0.044715)), k)
        t = tanh(inner)
        dinner = mul(add(mul(x2, 3 * 0.044715), 1.0), k)
        return add(mul(add(t, 1.0), 0.5), mul(mul(mul(x, 0.5), sub(1.0, mul(t, t))), dinner))
    cdf = mul(add(erf(mul(x, 1 / math.sqrt(2.0))), 1.0), 0.5)
    pdf = mul(exp(mul(mul(x, x), -0.5)), 1 / math.sqrt(2 * math.pi))
    return add(cdf, mul(x, pdf))


def threshold_backward(grad, y, threshold):
    return ThresholdBackward.apply(grad, y, threshold)


def gelu_backward(grad, x, approximate):
    return GeluBackward.apply(grad, x, approximate)


# -- functional entry points ----------------------------------------------

def add(a, b, alpha=1):
    if not isinstance(a, Tensor):
        a, b = b, a
    return Add.apply(a, b, alpha)


def sub(a, b, alpha=1):
    if not isinstance(a, Tensor):
        return add(neg(b), a)
    return Sub.apply(a, b, alpha)


def mul(a, b):
    if not isinstance(a, Tensor):
        a, b = b, a
    return Mul.apply(a, b)


def div(a, b, *, rounding_mode=None):
    if rounding_mode is not None:           # torch.div(a, b, rounding_mode="floor" | "trunc")
        from .elementwise import divide
        return divide(a, b, rounding_mode=rounding_mode)
    if not isinstance(a, Tensor):
        from .elementwise import reciprocal
        return mul(reciprocal(b), a)        # torch's Tensor.__rtruediv__: reciprocal() * number
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def relu(x, inplace=False):
    return ReluInplace.apply(x) if inplace else Relu.apply(x)


def gelu(x, approximate="none"):
    return Gelu.apply(x, approximate)
