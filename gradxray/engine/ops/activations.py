"""Activation functions (silu, sigmoid, tanh, softplus, leaky_relu, elu, hardswish, mish ...), each with
its torch backward kernel as an engine op (so double backward works).

What each node saves follows derivatives.yaml: sigmoid and tanh save their ``result``; the others save
the input (``self``).  The in-place forms of leaky_relu / elu / celu / selu have formulas of their own
that read the result; every other in-place activation saves a clone of the original input, as torch's
codegen does.  Backward kernels without a derivative in torch (silu_backward, mish_backward,
hardsigmoid_backward) raise when differentiated; silu and mish switch to a differentiable composite
when backward itself is recorded (``create_graph=True``), exactly as torch does.
"""
from __future__ import annotations

from .. import autograd
from .. import dtypes as _dt
from ..creation import zeros_like
from ..function import Function
from ._kernel import inplace, kernel
from .elementwise import (_Unary, _UnaryInplace, _as_dtype, _check_inplace,
                          _unary_meta, _where, abs, exp, ge, gt, log1p, logical_and, lt)
from .pointwise import add, div, mul, sub

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class _Activation(_Unary):
    """y = op(x, *params) with the aten kernel ``aten``; saves ``self`` or ``result`` per ``saves``
    (integer inputs keep their dtype unless ``float_only``)."""

    float_only = False


class _InplaceActivation(_UnaryInplace):
    """op_(x, *params) in place: torch's node of the out-of-place op (see ``_UnaryInplace``)."""

    out_of_place: type = _Activation


def _grads(ctx, grad_input, n_params):
    """The input's gradient followed by None for each non-tensor parameter."""
    return (grad_input,) + (None,) * n_params


# -- sigmoid / tanh (save the result) -------------------------------------------

class Sigmoid(_Activation):
    """y = 1 / (1 + exp(-x)).  Saves: result."""

    aten, saves, float_only = "sigmoid", ("result",), True

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return sigmoid_backward(grad, result)


class SigmoidInplace(_InplaceActivation):
    out_of_place = Sigmoid


class SigmoidBackward(Function):
    """grad_input = sigmoid_backward(grad_output, output) = grad_output * output * (1 - output).
    Saves: output (for either gradient), grad_output (for output's)."""

    saves = ("grad_output", "output")

    @staticmethod
    def forward(ctx, grad_output, output):
        ctx.save_for_backward(grad_output if ctx.needs_input_grad[1] else None, output)
        return kernel("sigmoid_backward", _unary_meta(grad_output), grad_output, output)

    @staticmethod
    def backward(ctx, grad):
        grad_output, output = ctx.saved_tensors
        g_grad_output = sigmoid_backward(grad, output) if ctx.needs_input_grad[0] else None
        g_output = (mul(mul(grad, grad_output), add(mul(output, -2), 1)) if ctx.needs_input_grad[1] else None)
        return g_grad_output, g_output


class Tanh(_Activation):
    """y = tanh(x).  Saves: result."""

    aten, saves, float_only = "tanh", ("result",), True

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return tanh_backward(grad, result)


class TanhInplace(_InplaceActivation):
    out_of_place = Tanh


class TanhBackward(Function):
    """grad_input = tanh_backward(grad_output, output) = grad_output * (1 - output²).
    Saves: output (for either gradient), grad_output (for output's)."""

    saves = ("grad_output", "output")

    @staticmethod
    def forward(ctx, grad_output, output):
        ctx.save_for_backward(grad_output if ctx.needs_input_grad[1] else None, output)
        return kernel("tanh_backward", _unary_meta(grad_output), grad_output, output)

    @staticmethod
    def backward(ctx, grad):
        grad_output, output = ctx.saved_tensors
        g_grad_output = tanh_backward(grad, output) if ctx.needs_input_grad[0] else None
        g_output = mul(grad, mul(mul(output, -2), grad_output)) if ctx.needs_input_grad[1] else None
        return g_grad_output, g_output


def sigmoid_backward(grad_output, output):
    return SigmoidBackward.apply(grad_output, output)


def tanh_backward(grad_output, output):
    return TanhBackward.apply(grad_output, output)


# -- backward kernels torch cannot differentiate ----------------------------------

class _UndifferentiableBackwardKernel(Function):
    """A backward kernel with no derivative in torch: differentiating it raises torch's error."""

    node_name = "torch::autograd::NotImplemented"
    aten = ""

    @classmethod
    def forward(cls, ctx, grad_output, x):
        return kernel(cls.aten, _unary_meta(grad_output), grad_output, x)

    @classmethod
    def backward(cls, ctx, grad):
        raise RuntimeError(f"derivative for aten::{cls.aten} is not implemented")


class SiluBackward(_UndifferentiableBackwardKernel):
    """grad_input = silu_backward(grad_output, x) (first-order backward only)."""

    aten = "silu_backward"


class MishBackward(_UndifferentiableBackwardKernel):
    """grad_input = mish_backward(grad_output, x) (first-order backward only)."""

    aten = "mish_backward"


class HardsigmoidBackward(_UndifferentiableBackwardKernel):
    """grad_input = hardsigmoid_backward(grad_output, x): grad_output / 6 inside (-3, 3)."""

    aten = "hardsigmoid_backward"


# -- silu / mish ---------------------------------------------------------------------

class Silu(_Activation):
    """y = x * sigmoid(x).  Saves: self."""

    aten = "silu"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if autograd.is_grad_enabled():      # torch's infinitely_differentiable_silu_backward
            s = sigmoid(x)
            return mul(mul(grad, s), add(mul(x, sub(1.0, s)), 1.0))
        return SiluBackward.apply(grad, x)


class SiluInplace(_InplaceActivation):
    out_of_place = Silu


class Mish(_Activation):
    """y = x * tanh(softplus(x)).  Saves: self."""

    aten = "mish"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if autograd.is_grad_enabled():      # torch's infinitely_differentiable_mish_backward
            s = sigmoid(x)
            tanh_softplus = tanh(log1p(exp(x)))
            return mul(grad, add(tanh_softplus, mul(mul(x, s), sub(1.0, mul(tanh_softplus, tanh_softplus)))))
        return MishBackward.apply(grad, x)


class MishInplace(_InplaceActivation):
    out_of_place = Mish


# -- softplus ----------------------------------------------------------------------------

class Softplus(_Activation):
    """y = log(1 + exp(beta x)) / beta (linear above threshold).  Saves: self."""

    aten = "softplus"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _grads(ctx, SoftplusBackward.apply(grad, x, *ctx.params), 2)


class SoftplusBackward(Function):
    """grad_input = softplus_backward(grad_output, x, beta, threshold).  Saves: self (for either
    gradient), grad_output (for self's)."""

    saves = ("grad_output", "self")

    @staticmethod
    def forward(ctx, grad_output, x, beta, threshold):
        ctx.save_for_backward(grad_output if ctx.needs_input_grad[1] else None, x)
        ctx.beta, ctx.threshold = beta, threshold
        return kernel("softplus_backward", _unary_meta(grad_output), grad_output, x, beta, threshold)

    @staticmethod
    def backward(ctx, grad):
        grad_output, x = ctx.saved_tensors
        beta, threshold = ctx.beta, ctx.threshold
        g_grad_output = SoftplusBackward.apply(grad, x, beta, threshold) if ctx.needs_input_grad[0] else None
        g_x = None
        if ctx.needs_input_grad[1]:         # torch's softplus_double_backward
            g = mul(grad, grad_output)
            scaled = mul(x, beta)
            below = _as_dtype(lt(scaled, threshold), g.dtype)
            g_x = mul(mul(sigmoid_backward(g, sigmoid(scaled)), below), beta)
        return g_grad_output, g_x, None, None


# -- leaky_relu ----------------------------------------------------------------------------

class LeakyRelu(_Activation):
    """y = x if x > 0 else negative_slope * x.  Saves: self."""

    aten = "leaky_relu"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _grads(ctx, LeakyReluBackward.apply(grad, x, ctx.params[0], False), 1)


class LeakyReluInplace(Function):
    """leaky_relu_(x): torch's own formula on the result.  Saves: result."""

    node_name = "LeakyReluBackward1"
    saves = ("result",)

    @staticmethod
    def forward(ctx, x, negative_slope):
        _check_inplace(x, x.dtype)
        inplace("leaky_relu_", x, negative_slope)
        ctx.save_for_backward(x)
        ctx.mark_dirty(x)
        ctx.negative_slope = negative_slope
        return x

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return LeakyReluBackward.apply(grad, result, ctx.negative_slope, True), None


class LeakyReluBackward(Function):
    """grad_input = leaky_relu_backward(grad_output, self, negative_slope, self_is_result).
    Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, grad_output, x, negative_slope, self_is_result):
        ctx.save_for_backward(x)
        ctx.negative_slope = negative_slope
        return kernel("leaky_relu_backward", _unary_meta(grad_output), grad_output, x, negative_slope,
                      self_is_result)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g_grad_output = LeakyReluBackward.apply(grad, x, ctx.negative_slope, False) \
            if ctx.needs_input_grad[0] else None
        return g_grad_output, zeros_like(grad) if ctx.needs_input_grad[1] else None, None, None


# -- elu family ------------------------------------------------------------------------

class Elu(_Activation):
    """y = scale * (x if x > 0 else alpha * (exp(input_scale x) - 1)).  Saves: self.  (selu is elu with
    fixed alpha and scale.)"""

    aten = "elu"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        alpha, scale, input_scale = ctx.params
        return _grads(ctx, EluBackward.apply(grad, alpha, scale, input_scale, False, x), 3)


class EluInplace(Function):
    """elu_(x) / selu_(x): torch's own formula on the result.  Saves: result."""

    node_name = "EluBackward1"
    saves = ("result",)

    @staticmethod
    def forward(ctx, x, alpha, scale, input_scale):
        _check_inplace(x, x.dtype)
        inplace("elu_", x, alpha, scale, input_scale)
        ctx.save_for_backward(x)
        ctx.mark_dirty(x)
        ctx.params = (alpha, scale, input_scale)
        return x

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return (EluBackward.apply(grad, *ctx.params, True, result),) + (None,) * 3


class Celu(_Activation):
    """y = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).  Saves: self."""

    aten = "celu"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        alpha = ctx.params[0]
        return EluBackward.apply(grad, alpha, 1, 1.0 / float(alpha), False, x), None


class CeluInplace(Function):
    """celu_(x): the elu formula on the result.  Saves: result."""

    node_name = "CeluBackward1"
    saves = ("result",)

    @staticmethod
    def forward(ctx, x, alpha):
        _check_inplace(x, x.dtype)
        inplace("celu_", x, alpha)
        ctx.save_for_backward(x)
        ctx.mark_dirty(x)
        ctx.alpha = alpha
        return x

    @staticmethod
    def backward(ctx, grad):
        (result,) = ctx.saved_tensors
        return EluBackward.apply(grad, ctx.alpha, 1, 1.0 / float(ctx.alpha), True, result), None


class EluBackward(Function):
    """grad_input = elu_backward(grad_output, alpha, scale, input_scale, is_result, self_or_result).
    Saves: self_or_result (for either gradient), grad_output (for self_or_result's)."""

    saves = ("grad_output", "self_or_result")

    @staticmethod
    def forward(ctx, grad_output, alpha, scale, input_scale, is_result, self_or_result):
        ctx.save_for_backward(grad_output if ctx.needs_input_grad[5] else None, self_or_result)
        ctx.args = (alpha, scale, input_scale, is_result)
        return kernel("elu_backward", _unary_meta(grad_output), grad_output, alpha, scale, input_scale, is_result,
                      self_or_result)

    @staticmethod
    def backward(ctx, grad):
        grad_output, self_or_result = ctx.saved_tensors
        alpha, scale, input_scale, is_result = ctx.args
        g_grad_output = EluBackward.apply(grad, *ctx.args, self_or_result) if ctx.needs_input_grad[0] else None
        g_sr = None
        if ctx.needs_input_grad[5]:         # torch's elu_double_backward
            negative = _as_dtype(lt(self_or_result, 0), grad.dtype)
            if is_result:
                g_sr = mul(mul(mul(grad, grad_output), input_scale), negative)
            else:
                inner = EluBackward.apply(mul(mul(grad, grad_output), input_scale), *ctx.args, self_or_result)
                g_sr = mul(inner, negative)
        return g_grad_output, None, None, None, None, g_sr


# -- hard* ------------------------------------------------------------------------

class Hardswish(_Activation):
    """y = x * relu6(x + 3) / 6.  Saves: self."""

    aten = "hardswish"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return HardswishBackward.apply(grad, x)


class HardswishInplace(_InplaceActivation):
    out_of_place = Hardswish


class HardswishBackward(Function):
    """grad_input = hardswish_backward(grad_output, self).  Saves: self (for either gradient),
    grad_output (for self's)."""

    saves = ("grad_output", "self")

    @staticmethod
    def forward(ctx, grad_output, x):
        ctx.save_for_backward(grad_output if ctx.needs_input_grad[1] else None, x)
        return kernel("hardswish_backward", _unary_meta(grad_output), grad_output, x)

    @staticmethod
    def backward(ctx, grad):
        grad_output, x = ctx.saved_tensors
        g_grad_output = HardswishBackward.apply(grad, x) if ctx.needs_input_grad[0] else None
        g_x = None
        if ctx.needs_input_grad[1]:
            inside = logical_and(gt(x, -3.0), lt(x, 3.0))
            g_x = _where(inside, div(mul(grad, grad_output), 3.0), 0.0)
        return g_grad_output, g_x


class Hardsigmoid(_Activation):
    """y = relu6(x + 3) / 6.  Saves: self."""

    aten = "hardsigmoid"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return HardsigmoidBackward.apply(grad, x)


class HardsigmoidInplace(_InplaceActivation):
    out_of_place = Hardsigmoid


class Hardtanh(_Activation):
    """y = clamp(x, min_val, max_val) (relu6 is hardtanh(0, 6)).  Saves: self."""

    aten = "hardtanh"

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _grads(ctx, HardtanhBackward.apply(grad, x, *ctx.params), 2)


class HardtanhInplace(_InplaceActivation):
    out_of_place = Hardtanh


class HardtanhBackward(Function):
    """grad_input = hardtanh_backward(grad_output, self, min_val, max_val).  Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, grad_output, x, min_val, max_val):
        ctx.save_for_backward(x)
        ctx.bounds = (min_val, max_val)
        return kernel("hardtanh_backward", _unary_meta(grad_output), grad_output, x, min_val, max_val)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g_grad_output = HardtanhBackward.apply(grad, x, *ctx.bounds) if ctx.needs_input_grad[0] else None
        return g_grad_output, zeros_like(grad) if ctx.needs_input_grad[1] else None, None, None


# -- log_sigmoid ------------------------------------------------------------------------

class LogSigmoid(Function):
    """(y, buffer) = log_sigmoid_forward(x); buffer is x-shaped on CPU and empty on CUDA.
    Saves: self, buffer."""

    saves = ("self", "buffer")

    @staticmethod
    def forward(ctx, x):
        buffer_shape = x.shape if x.device.type == "cpu" else (0,)
        y, buffer = kernel("log_sigmoid_forward", [(x.shape, x.dtype), (buffer_shape, x.dtype)], x)  # contiguous
        ctx.save_for_backward(x, buffer)
        ctx.mark_non_differentiable(buffer)
        return y, buffer

    @staticmethod
    def backward(ctx, grad, _grad_buffer=None):
        x, buffer = ctx.saved_tensors
        return LogSigmoidBackward.apply(grad, x, buffer)


class LogSigmoidBackward(Function):
    """grad_input = log_sigmoid_backward(grad_output, self, buffer).  Saves: self, buffer (for
    grad_output's gradient), grad_output (for self's)."""

    saves = ("buffer", "grad_output", "self")

    @staticmethod
    def forward(ctx, grad_output, x, buffer):
        ctx.save_for_backward(buffer if ctx.needs_input_grad[0] else None,
                              grad_output if ctx.needs_input_grad[1] else None, x)
        return kernel("log_sigmoid_backward", _unary_meta(grad_output), grad_output, x, buffer)

    @staticmethod
    def backward(ctx, grad):
        buffer, grad_output, x = ctx.saved_tensors
        g_grad_output = LogSigmoidBackward.apply(grad, x, buffer) if ctx.needs_input_grad[0] else None
        g_x = None
        if ctx.needs_input_grad[1]:         # torch's log_sigmoid_double_backward
            z = sigmoid(x)
            g_x = mul(mul(mul(grad, grad_output), sub(z, 1)), z)
        return g_grad_output, g_x, None


# -- prelu ------------------------------------------------------------------------------

class PreluKernel(Function):
    """y = x if x >= 0 else weight * x (weight already shaped to broadcast).  Saves: self, weight."""

    saves = ("self", "weight")

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return kernel("_prelu_kernel", _unary_meta(x), x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return PreluKernelBackward.apply(grad, x, weight)


class PreluKernelBackward(Function):
    """(grad_input, grad_weight) = _prelu_kernel_backward(grad_output, self, weight); grad_weight comes
    out input-shaped and autograd sums it to the weight's shape.  Saves: grad_output, self, weight."""

    saves = ("grad_output", "self", "weight")

    @staticmethod
    def forward(ctx, grad_output, x, weight):
        ctx.save_for_backward(grad_output, x, weight)
        return kernel("_prelu_kernel_backward", [_unary_meta(x), _unary_meta(x)], grad_output, x,
                      weight)

    @staticmethod
    def backward(ctx, grad_x, grad_w):
        grad_output, x, weight = ctx.saved_tensors
        non_negative = ge(x, 0)
        g_grad_output = g_x = g_weight = None
        if ctx.needs_input_grad[0]:
            if grad_x is not None:
                negative_part = mul(grad_x, weight)
                if grad_w is not None:
                    negative_part = add(negative_part, mul(grad_w, x))
                g_grad_output = _where(non_negative, grad_x, negative_part)
            elif grad_w is not None:
                g_grad_output = _where(non_negative, 0.0, mul(grad_w, x))
        if ctx.needs_input_grad[1]:
            g_x = _where(non_negative, 0.0, mul(grad_output, grad_w)) if grad_w is not None else zeros_like(x)
        if ctx.needs_input_grad[2]:
            g_weight = _where(non_negative, 0.0, mul(grad_output, grad_x)) if grad_x is not None else zeros_like(x)
        return g_grad_output, g_x, g_weight


# -- functional entry points --------------------------------------------------------------

def sigmoid(input):
    return Sigmoid.apply(input)


def tanh(input):
    return Tanh.apply(input)


def silu(input, inplace=False):
    return SiluInplace.apply(input) if inplace else Silu.apply(input)


def mish(input, inplace=False):
    return MishInplace.apply(input) if inplace else Mish.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta, threshold)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return LeakyReluInplace.apply(input, negative_slope) if inplace else LeakyRelu.apply(input, negative_slope)


def leaky_relu_(input, negative_slope=0.01):
    return LeakyReluInplace.apply(input, negative_slope)


def elu(input, alpha=1.0, inplace=False):
    return EluInplace.apply(input, alpha, 1, 1) if inplace else Elu.apply(input, alpha, 1, 1)


def elu_(input, alpha=1.0):
    return EluInplace.apply(input, alpha, 1, 1)


def selu(input, inplace=False):
    if inplace:
        return EluInplace.apply(input, SELU_ALPHA, SELU_SCALE, 1)
    return Elu.apply(input, SELU_ALPHA, SELU_SCALE, 1)


def celu(input, alpha=1.0, inplace=False):
    return CeluInplace.apply(input, alpha) if inplace else Celu.apply(input, alpha)


def hardswish(input, inplace=False):
    return HardswishInplace.apply(input) if inplace else Hardswish.apply(input)


def hardsigmoid(input, inplace=False):
    return HardsigmoidInplace.apply(input) if inplace else Hardsigmoid.apply(input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if inplace:
        return HardtanhInplace.apply(input, min_val, max_val)
    return Hardtanh.apply(input, min_val, max_val)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def softsign(input):
    return div(input, add(abs(input), 1))          # torch's composite


def logsigmoid(input):
    return LogSigmoid.apply(input)[0]


def prelu(input, weight):
    """torch.prelu: weight is a scalar or one value per channel (dim 1), reshaped to broadcast."""
    from .views import reshape
    if weight.dtype is not input.dtype:
        raise RuntimeError(f"prelu: Type promoting not supported. Got {_dt.scalar_type_name(input.dtype)} and "
                           f"{_dt.scalar_type_name(weight.dtype)}")
    weight_num = weight.numel()
    if int(weight_num) != 1:
        channels = input.shape[1] if input.dim() > 1 else 1
        if int(channels) != int(weight_num):
            raise RuntimeError("Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{int(weight_num)} and channel size = {int(channels)}.")
    if weight.dim() > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.dim()}")
    if input.dim() != weight.dim():
        broadcast_shape = [1] * input.dim()
        if input.dim() > 1:
            broadcast_shape[1] = weight_num
        weight = reshape(weight, broadcast_shape)
    return PreluKernel.apply(input, weight)


TENSOR_METHODS: dict = {
    "sigmoid": sigmoid, "sigmoid_": lambda self: SigmoidInplace.apply(self),
    "tanh": tanh, "tanh_": lambda self: TanhInplace.apply(self),
    "prelu": prelu,
}
TORCH_FUNCTIONS: dict = {
    "sigmoid": sigmoid, "tanh": tanh, "selu": selu, "celu": celu, "prelu": prelu,
}
FUNCTIONAL: dict = {
    "sigmoid": sigmoid, "tanh": tanh, "silu": silu, "mish": mish, "softplus": softplus,
    "leaky_relu": leaky_relu, "leaky_relu_": leaky_relu_, "elu": elu, "elu_": elu_, "selu": selu, "celu": celu,
    "hardswish": hardswish, "hardsigmoid": hardsigmoid, "hardtanh": hardtanh, "hardtanh_": hardtanh_,
    "relu6": relu6, "softsign": softsign, "logsigmoid": logsigmoid, "prelu": prelu,
}
