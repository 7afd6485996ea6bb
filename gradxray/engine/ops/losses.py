"""Loss functions as torch decomposes them (mse, l1, smooth_l1, huber, binary cross entropy (+ with logits),
kl_div, nll_loss, cross_entropy with its label-smoothing and class-probability variants), each saving what
torch's nodes save.

Losses that are aten ops (mse_loss, smooth_l1_loss, huber_loss, binary_cross_entropy, nll_loss ...) run
their backward through the aten backward kernel, itself an engine op whose backward follows
derivatives.yaml, so double backward works and the backward's temporaries are torch's.  Composite losses
(l1_loss, kl_div, cross_entropy's extra terms) are built from engine ops exactly as ATen builds them.
Pointwise helpers owned by other families are reached through their Tensor methods."""
from __future__ import annotations

from .. import dtypes as _dt
from ..function import Function
from ..symbolic import sym_prod
from ._kernel import kernel
from .shapes import broadcast_shapes

# torch's at::Reduction enum
NONE, MEAN, SUM = 0, 1, 2
_REDUCTIONS = {"none": NONE, "mean": MEAN, "sum": SUM}


def _reduction_enum(reduction, size_average=None, reduce=None) -> int:
    """torch's _Reduction: the legacy size_average/reduce flags win over ``reduction`` when given."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return _REDUCTIONS[reduction]


def _reduced_meta(x, reduction):
    return (x.shape if reduction == NONE else (), x.dtype)


def _apply_loss_reduction(loss, reduction):
    """ATen's apply_loss_reduction: mean() / sum() / unchanged."""
    from .reduce import mean, sum as _sum
    if reduction == MEAN:
        return mean(loss)
    if reduction == SUM:
        return _sum(loss)
    return loss


def _broadcast_pair(a, b):
    """torch.broadcast_tensors as F.*_loss uses it: a tensor already of the common shape is returned as is."""
    from .views import expand
    shape = broadcast_shapes(a.shape, b.shape)
    same = lambda t: tuple(int(s) for s in t.shape) == tuple(int(s) for s in shape)  # noqa: E731
    return (a if same(a) else expand(a, shape)), (b if same(b) else expand(b, shape))


def _mean_scale(grad, x, reduction):
    """grad / numel for mean reduction (the double-backward helpers' last step)."""
    from .pointwise import div
    return div(grad, sym_prod(x.shape)) if reduction == MEAN else grad


# -- nll_loss ------------------------------------------------------------------

class NllLoss(Function):
    """(loss, total_weight) = nll_loss_forward(logp [N, C] or [C], target, weight).
    Saves: self, target, weight, total_weight (0-dim)."""

    node_name = "NllLossBackward0"
    saves = ("self", "target", "weight", "total_weight")
    forward_kernel = "nll_loss_forward"

    @classmethod
    def forward(cls, ctx, logp, target, weight=None, reduction=MEAN, ignore_index=-100):
        out_shape = tuple(target.shape) if reduction == NONE and logp.dim() > 1 else ()
        if cls.forward_kernel == "nll_loss2d_forward" and reduction == NONE:
            out_shape = (logp.shape[0],) + tuple(logp.shape[2:])
        out, total_weight = kernel(cls.forward_kernel, [(out_shape, logp.dtype), ((), logp.dtype)], logp, target,
                                   weight, reduction, ignore_index)
        ctx.save_for_backward(logp, target, weight, total_weight)
        ctx.mark_non_differentiable(total_weight)
        ctx.reduction, ctx.ignore_index = reduction, ignore_index
        return out, total_weight

    @classmethod
    def backward(cls, ctx, grad, _grad_total_weight=None):
        logp, target, weight, total_weight = ctx.saved_tensors
        backward_cls = NllLoss2dBackward if cls is NllLoss2d else NllLossBackward
        return (backward_cls.apply(grad, logp, target, weight, ctx.reduction, ctx.ignore_index, total_weight),
                None, None, None, None)


class NllLoss2d(NllLoss):
    """(loss, total_weight) = nll_loss2d_forward(logp [N, C, H, W], target [N, H, W], weight).
    Saves: self, target, weight, total_weight (0-dim)."""

    node_name = "NllLoss2DBackward0"
    forward_kernel = "nll_loss2d_forward"


class NllLossBackward(Function):
    """grad_self = nll_loss_backward(grad, self, target, weight, reduction, ignore_index, total_weight):
    -weight[target] * grad at the target entries.  Linear in grad; zero derivative in self.
    Saves: target, weight."""

    saves = ("target", "weight")
    backward_kernel = "nll_loss_backward"
    loss_cls = NllLoss

    @classmethod
    def forward(cls, ctx, grad, logp, target, weight, reduction, ignore_index, total_weight):
        ctx.save_for_backward(target, weight)
        ctx.reduction, ctx.ignore_index = reduction, ignore_index
        return kernel(cls.backward_kernel, (logp.shape, logp.dtype), grad, logp, target, weight, reduction,
                      ignore_index, total_weight)

    @classmethod
    def backward(cls, ctx, gg):
        from ..creation import zeros_like
        target, weight = ctx.saved_tensors
        g_grad = cls.loss_cls.apply(gg, target, weight, ctx.reduction, ctx.ignore_index)[0] \
            if ctx.needs_input_grad[0] else None
        g_self = zeros_like(gg) if ctx.needs_input_grad[1] else None
        return g_grad, g_self, None, None, None, None, None


class NllLoss2dBackward(NllLossBackward):
    """grad_self = nll_loss2d_backward(...), the [N, C, H, W] form of nll_loss_backward.  Saves: target, weight."""

    backward_kernel = "nll_loss2d_backward"
    loss_cls = NllLoss2d


def _check_nll_target(target):
    if target.dtype not in (_dt.int64, _dt.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_dt.scalar_type_name(target.dtype)}")


def _nll_loss_nd(logp, target, weight, reduction, ignore_index):
    """torch's nll_loss_nd: [C] / [N, C] → nll_loss; [N, C, H, W] → nll_loss2d; other ranks are viewed as
    [N, C, 1, -1] (after contiguous()) for nll_loss2d and the unreduced result viewed back."""
    from .views import contiguous, view_
    if logp.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {logp.dim()})")
    if logp.dim() != 1 and int(logp.shape[0]) != int(target.shape[0] if target.dim() else 1):
        raise ValueError(f"Expected input batch_size ({int(logp.shape[0])}) to match target batch_size "
                         f"({int(target.shape[0]) if target.dim() else 1}).")
    _check_nll_target(target)
    classes = logp.shape[0] if logp.dim() == 1 else logp.shape[1]
    if weight is not None and (weight.dim() != 1 or int(weight.shape[0]) != int(classes)):
        raise RuntimeError(f"weight tensor should be defined either for all {int(classes)} classes or no classes but "
                           f"got weight tensor of shape: {[int(s) for s in weight.shape]}")
    if logp.dim() <= 2:
        if target.dim() > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if logp.dim() == 1 and target.dim() != 0:
            raise RuntimeError(f"1D target tensor expects 0D input, but got target of size: "
                               f"{[int(s) for s in target.shape]}")
        return NllLoss.apply(logp, target, weight, reduction, ignore_index)[0]
    if logp.dim() == 4:
        _check_target_size(logp, target)
        return NllLoss2d.apply(logp, target, weight, reduction, ignore_index)[0]
    _check_target_size(logp, target)
    n, c = logp.shape[0], logp.shape[1]
    out_size = [n] + list(logp.shape[2:])
    logp, target = contiguous(logp), contiguous(target)
    if int(logp.numel()) > 0:
        logp = view_(logp, n, c, 1, -1)
    else:
        logp = view_(logp, n, c, 0, 0)
    target = view_(target, n, 1, -1) if int(target.numel()) > 0 else view_(target, n, 0, 0)
    out = NllLoss2d.apply(logp, target, weight, reduction, ignore_index)[0]
    return view_(out, out_size) if reduction == NONE else out


def _check_target_size(logp, target):
    expected = [logp.shape[0]] + list(logp.shape[2:])
    if [int(s) for s in target.shape] != [int(s) for s in expected]:
        raise RuntimeError(f"Expected target size {[int(s) for s in expected]}, got {[int(s) for s in target.shape]}")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    return _nll_loss_nd(input, target, weight, _reduction_enum(reduction, size_average, reduce), ignore_index)


# -- cross_entropy -------------------------------------------------------------

def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """torch's cross_entropy_loss: log_softmax over the class dim, then nll_loss (class indices), the
    label-smoothing mix, or the class-probability sum."""
    from .nn import LogSoftmax
    reduction = _reduction_enum(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing:g}")
    class_dim = 0 if input.dim() == 1 else 1
    if target.dtype.is_floating_point and tuple(target.shape) == tuple(input.shape):
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        logp = LogSoftmax.apply(input, class_dim)
        return _cross_entropy_probabilities(logp, target, weight, reduction, label_smoothing, class_dim)
    if label_smoothing > 0.0:
        logp = LogSoftmax.apply(input, class_dim)
        return _cross_entropy_label_smoothing(logp, target, weight, reduction, ignore_index, label_smoothing,
                                              class_dim)
    if input.dim() >= 1 and target.dtype.is_floating_point and target.dim() > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    return _nll_loss_nd(LogSoftmax.apply(input, class_dim), target, weight, reduction, ignore_index)


def _class_weight_view(weight, logp, class_dim):
    """weight [C] viewed to broadcast along the class dim of logp."""
    from .views import view_
    if logp.dim() <= 1:
        return weight
    shape = [1] * logp.dim()
    shape[class_dim] = weight.shape[0]
    return view_(weight, shape)


def _cross_entropy_probabilities(logp, target, weight, reduction, label_smoothing, class_dim):
    from .pointwise import add, div, mul, neg
    from .reduce import sum as _sum
    n_classes = logp.shape[class_dim]
    if label_smoothing > 0.0:
        target = add(mul(target, 1 - label_smoothing), label_smoothing / int(n_classes))
    terms = mul(logp, target)
    if weight is not None:
        terms = mul(terms, _class_weight_view(weight, logp, class_dim))
    if reduction == NONE:
        return neg(_sum(terms, class_dim))
    total = neg(_sum(terms))
    if reduction == SUM:
        return total
    if int(logp.numel()) == 0:
        return total.fill_(float("nan"))
    return div(total, logp.numel() // n_classes)


def _cross_entropy_label_smoothing(logp, target, weight, reduction, ignore_index, label_smoothing, class_dim):
    from .pointwise import add, div, mul, neg
    from .reduce import sum as _sum
    n_classes = logp.shape[class_dim]
    nll = _nll_loss_nd(logp, target, weight, reduction, ignore_index)
    ignore_mask = target == ignore_index
    if weight is not None:
        smooth = neg(_sum(mul(logp, _class_weight_view(weight, logp, class_dim)), class_dim))
    else:
        smooth = neg(_sum(logp, class_dim))
    smooth = smooth.masked_fill_(ignore_mask, 0.0)
    if reduction == MEAN:
        if weight is not None:
            smooth = div(_sum(smooth), _kept_weight_total(weight, target, ignore_mask))
        else:
            smooth = div(_sum(smooth), _sum(ignore_mask.logical_not()))
    elif reduction == SUM:
        smooth = _sum(smooth)
    return add(mul(nll, 1 - label_smoothing), mul(smooth, label_smoothing / int(n_classes)))


def _kept_weight_total(weight, target, ignore_mask):
    """Sum of the class weights of the targets that are not ignored (torch gathers them after a
    masked_select).  The masked_select's length depends on the data, so the shape backend, which only needs
    this 0-dim float, sums the weight vector instead."""
    from .reduce import sum as _sum
    if target.data_ is None:
        return _sum(weight)
    kept = target.masked_select(ignore_mask.logical_not()).flatten()
    return _sum(weight.gather(0, kept))


# -- mse, l1, smooth l1, huber ---------------------------------------------------

class _PairLoss(Function):
    """A pointwise loss of (self, target) that is one aten op with its own backward kernel.
    Saves: self, target."""

    saves = ("self", "target")
    aten = ""
    backward_cls: type = None

    @classmethod
    def forward(cls, ctx, x, target, reduction, *params):
        ctx.save_for_backward(x, target)
        ctx.reduction, ctx.params = reduction, params
        return kernel(cls.aten, _reduced_meta(x, reduction), x, target, reduction, *params)

    @classmethod
    def backward(cls, ctx, grad):
        x, target = ctx.saved_tensors
        g_self = cls.backward_cls.apply(grad, x, target, ctx.reduction, *ctx.params) \
            if ctx.needs_input_grad[0] else None
        g_target = cls.backward_cls.apply(grad, target, x, ctx.reduction, *ctx.params) \
            if ctx.needs_input_grad[1] else None
        return (g_self, g_target, None) + (None,) * len(ctx.params)


class _PairLossBackward(Function):
    """grad_self = <loss>_backward(grad_output, self, target, reduction, ...).
    Saves: grad_output, self, target."""

    saves = ("grad_output", "self", "target")
    aten = ""

    @classmethod
    def forward(cls, ctx, grad, x, target, reduction, *params):
        ctx.save_for_backward(grad, x, target)
        ctx.reduction, ctx.params = reduction, params
        return kernel(cls.aten, (x.shape, x.dtype), grad, x, target, reduction, *params)

    @classmethod
    def backward(cls, ctx, gg):
        from .pointwise import mul, neg
        grad, x, target = ctx.saved_tensors
        g_grad = cls.grad_output_grad(ctx, gg, grad, x, target) if ctx.needs_input_grad[0] else None
        g_x = g_target = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            g_x = cls.double_backward(ctx, mul(gg, grad), x, target)
            g_target = neg(g_x) if ctx.needs_input_grad[2] else None
            g_x = g_x if ctx.needs_input_grad[1] else None
        return (g_grad, g_x, g_target, None) + (None,) * len(ctx.params)

    @classmethod
    def grad_output_grad(cls, ctx, gg, grad, x, target):
        """The loss backward is linear in grad_output: the same kernel applied to the incoming gradient."""
        return cls.apply(gg, x, target, ctx.reduction, *ctx.params)


class MseLossBackward(_PairLossBackward):
    __doc__ = _PairLossBackward.__doc__
    aten = "mse_loss_backward"

    @staticmethod
    def double_backward(ctx, grad, x, target):
        """mse_loss_double_backward: 2 * grad (/ numel for mean)."""
        from .pointwise import mul
        return _mean_scale(mul(grad, 2), x, ctx.reduction)


class MseLoss(_PairLoss):
    """loss = mse_loss(self, target, reduction).  Saves: self, target."""

    aten = "mse_loss"
    backward_cls = MseLossBackward


class SmoothL1LossBackward(_PairLossBackward):
    __doc__ = _PairLossBackward.__doc__
    aten = "smooth_l1_loss_backward"

    @staticmethod
    def double_backward(ctx, grad, x, target):
        """smooth_l1_loss_double_backward: grad * (|x - target| < beta) / beta (/ numel for mean)."""
        from ..creation import zeros_like
        from .pointwise import div, mul, sub
        (beta,) = ctx.params
        if beta == 0.0:
            return zeros_like(grad)
        inside = (sub(x, target).abs() < beta).type_as(grad)
        return _mean_scale(div(mul(grad, inside), beta), x, ctx.reduction)


class SmoothL1Loss(_PairLoss):
    """loss = smooth_l1_loss(self, target, reduction, beta).  Saves: self, target."""

    aten = "smooth_l1_loss"
    backward_cls = SmoothL1LossBackward


class HuberLossBackward(_PairLossBackward):
    __doc__ = _PairLossBackward.__doc__
    aten = "huber_loss_backward"

    @staticmethod
    def double_backward(ctx, grad, x, target):
        """huber_loss_double_backward: grad * (|x - target| < delta) (/ numel for mean)."""
        from .pointwise import mul, sub
        (delta,) = ctx.params
        return _mean_scale(mul(grad, sub(x, target).abs() < delta), x, ctx.reduction)

    @classmethod
    def grad_output_grad(cls, ctx, gg, grad, x, target):
        """huber_loss_double_backward_grad_output: reduced losses have a 0-dim grad_output, so the kernel runs
        on ones and the product with gg is summed."""
        from ..creation import ones_like
        from .pointwise import mul
        from .reduce import sum as _sum
        if ctx.reduction == NONE:
            return cls.apply(gg, x, target, ctx.reduction, *ctx.params)
        r = cls.apply(ones_like(grad), x, target, ctx.reduction, *ctx.params)
        return _sum(mul(r, gg))


class HuberLoss(_PairLoss):
    """loss = huber_loss(self, target, reduction, delta).  Saves: self, target."""

    aten = "huber_loss"
    backward_cls = HuberLossBackward


def _warn_size_mismatch(input, target):
    import warnings
    if tuple(int(s) for s in target.shape) != tuple(int(s) for s in input.shape):
        warnings.warn(f"Using a target size ({_size_text(target)}) that is different to the input size "
                      f"({_size_text(input)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)


def _size_text(t):
    return f"torch.Size({[int(s) for s in t.shape]})"


def _check_weight_size(weight, input):
    if tuple(int(s) for s in weight.shape) != tuple(int(s) for s in input.shape):
        raise ValueError("Weights and input must have the same size.")


def _weighted_reduction(loss, weight, reduction, mean_over_weight):
    """The torch.nn.functional path for an explicit per-element weight: loss * weight, then sum, or a mean
    that is either sum / weight.sum() (mse, l1) or a plain mean (huber)."""
    from .pointwise import div, mul
    from .reduce import mean, sum as _sum
    weighted = mul(loss, weight)
    if reduction == NONE:
        return weighted
    if reduction == SUM:
        return _sum(weighted)
    return div(_sum(weighted), _sum(weight)) if mean_over_weight else mean(weighted)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _warn_size_mismatch(input, target)
    reduction = _reduction_enum(reduction, size_average, reduce)
    input, target = _broadcast_pair(input, target)
    if weight is not None:
        from .pointwise import sub
        _check_weight_size(weight, input)
        diff = sub(input, target)
        return _weighted_reduction(diff.pow(2), weight, reduction, mean_over_weight=True)
    return MseLoss.apply(input, target, reduction)


def _l1(input, target, reduction):
    """ATen's l1_loss (composite): apply_loss_reduction(|input - target|)."""
    from .pointwise import sub
    return _apply_loss_reduction(sub(input, target).abs(), reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _warn_size_mismatch(input, target)
    reduction = _reduction_enum(reduction, size_average, reduce)
    input, target = _broadcast_pair(input, target)
    if weight is not None:
        from .pointwise import sub
        _check_weight_size(weight, input)
        return _weighted_reduction(sub(input, target).abs(), weight, reduction, mean_over_weight=True)
    return _l1(input, target, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    _warn_size_mismatch(input, target)
    reduction = _reduction_enum(reduction, size_average, reduce)
    input, target = _broadcast_pair(input, target)
    if beta == 0.0:
        return _l1(input, target, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    return SmoothL1Loss.apply(input, target, reduction, float(beta))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _warn_size_mismatch(input, target)
    reduction = _reduction_enum(reduction)
    input, target = _broadcast_pair(input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    if weight is None:
        return HuberLoss.apply(input, target, reduction, float(delta))
    _check_weight_size(weight, input)
    return _weighted_reduction(HuberLoss.apply(input, target, NONE, float(delta)), weight, reduction,
                               mean_over_weight=False)


# -- binary cross entropy ----------------------------------------------------------

_BCE_EPS = 1e-12     # the eps torch's double-backward formulas use, for every dtype


class BinaryCrossEntropy(Function):
    """loss = binary_cross_entropy(self, target, weight, reduction).  Saves: self, target, weight."""

    saves = ("self", "target", "weight")

    @staticmethod
    def forward(ctx, x, target, weight, reduction):
        ctx.save_for_backward(x, target, weight)
        ctx.reduction = reduction
        return kernel("binary_cross_entropy", _reduced_meta(x, reduction), x, target, weight, reduction)

    @staticmethod
    def backward(ctx, grad):
        x, target, weight = ctx.saved_tensors
        g_x = BinaryCrossEntropyBackward.apply(grad, x, target, weight, ctx.reduction) \
            if ctx.needs_input_grad[0] else None
        g_target = _bce_target_backward(grad, x, target, weight, ctx.reduction) if ctx.needs_input_grad[1] else None
        return g_x, g_target, None, None


def _bce_target_backward(grad, x, target, weight, reduction):
    """binary_cross_entropy_target_backward: -logit(self) * grad (* weight) (/ numel for mean)."""
    from .pointwise import mul, neg
    g = mul(neg(Logit.apply(x)), grad)
    if weight is not None:
        g = mul(g, weight)
    return _mean_scale(g, target, reduction)


class Logit(Function):
    """y = logit(x) = log(x / (1 - x)).  Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return kernel("logit", (x.shape, x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        # logit_backward without eps: grad / (x * (1 - x)), written with engine ops
        from .pointwise import div, mul, sub
        (x,) = ctx.saved_tensors
        return div(grad, mul(x, sub(1, x)))


class BinaryCrossEntropyBackward(Function):
    """grad_self = binary_cross_entropy_backward(grad_output, self, target, weight, reduction).
    Saves: grad_output, self, target, weight."""

    saves = ("grad_output", "self", "target", "weight")

    @staticmethod
    def forward(ctx, grad, x, target, weight, reduction):
        ctx.save_for_backward(grad, x, target, weight)
        ctx.reduction = reduction
        return kernel("binary_cross_entropy_backward", (x.shape, x.dtype), grad, x, target, weight, reduction)

    @staticmethod
    def backward(ctx, gg):
        grad, x, target, weight = ctx.saved_tensors
        need_grad, need_x, need_target = ctx.needs_input_grad[:3]
        return (_bce_double_backward_grad_output(gg, x, target, weight, ctx.reduction) if need_grad else None,
                _bce_double_backward(grad, gg, x, target, weight, ctx.reduction) if need_x else None,
                _bce_double_backward_target(gg, grad, x, target, weight, ctx.reduction) if need_target else None,
                None, None)


def _bce_double_backward(grad_output, grad, x, target, weight, reduction):
    """d/dself of the bce backward: (x^2 - 2 x t + t) / ((x + eps)^2 (1 - x + eps)^2) * grad * grad_output."""
    from .pointwise import add, div, mul, sub
    x_eps = add(x, _BCE_EPS)
    one_minus_x_eps = add(sub(1, x), _BCE_EPS)
    numerator = add(sub(mul(x, x), mul(mul(x, 2), target)), target)
    g = div(numerator, mul(x_eps.pow(2), one_minus_x_eps.pow(2)))
    g = mul(g, mul(grad, grad_output))
    if weight is not None:
        g = mul(g, weight)
    return _mean_scale(g, x, reduction)


def _bce_double_backward_grad_output(grad, x, target, weight, reduction):
    """d/dgrad_output of the bce backward: (x - t) / ((x + eps)(1 - x + eps)) * grad, reduced like the loss."""
    from .pointwise import add, div, mul, sub
    from .reduce import sum as _sum
    g = div(sub(x, target), mul(add(x, _BCE_EPS), add(sub(1, x), _BCE_EPS)))
    g = mul(g, grad)
    if weight is not None:
        g = mul(g, weight)
    if reduction == MEAN:
        return div(_sum(g), sym_prod(x.shape))
    return _sum(g) if reduction == SUM else g


def _bce_double_backward_target(grad, grad_output, x, target, weight, reduction):
    """d/dtarget of the bce backward: -grad * grad_output / clamp_min((1 - x) x, eps)."""
    from .. import autograd
    from .pointwise import div, mul, neg, sub
    res = mul(neg(grad), grad_output)
    if weight is not None:
        res = mul(res, weight)
    denom = mul(sub(1, x), x)
    with autograd.no_grad():      # torch clamps in place under NoGradGuard
        denom.clamp_min_(_BCE_EPS)
    return _mean_scale(div(res, denom), x, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """loss = binary_cross_entropy_with_logits(self, target, weight, pos_weight, reduction).
    Saves: self, target, weight, pos_weight."""

    saves = ("self", "target", "weight", "pos_weight")

    @staticmethod
    def forward(ctx, x, target, weight, pos_weight, reduction):
        ctx.save_for_backward(x, target, weight, pos_weight)
        ctx.reduction = reduction
        return kernel("binary_cross_entropy_with_logits", _reduced_meta(x, reduction), x, target, weight,
                      pos_weight, reduction)

    @staticmethod
    def backward(ctx, grad):
        x, target, weight, pos_weight = ctx.saved_tensors
        g_x = _bce_logits_backward(grad, x, target, weight, pos_weight, ctx.reduction) \
            if ctx.needs_input_grad[0] else None
        g_target = _bce_logits_target_backward(grad, x, target, weight, pos_weight, ctx.reduction) \
            if ctx.needs_input_grad[1] else None
        return g_x, g_target, None, None, None


def _bce_logits_backward(grad, x, target, weight, pos_weight, reduction):
    """binary_cross_entropy_with_logits_backward (a FunctionsManual formula, not a kernel):
    (sigmoid(x) - t) or ((pw t + 1 - t) sigmoid(x) - pw t), times grad (* weight) (/ numel for mean)."""
    from .pointwise import add, mul, sub
    if pos_weight is not None:
        t = mul(pos_weight, target)
        g = sub(mul(sub(add(t, 1), target), x.sigmoid()), t)
    else:
        g = sub(x.sigmoid(), target)
    g = mul(g, grad)
    if weight is not None:
        g = mul(g, weight)
    return _mean_scale(g, x, reduction)


def _bce_logits_target_backward(grad, x, target, weight, pos_weight, reduction):
    """binary_cross_entropy_with_logits_target_backward: -x, or log_sigmoid(-x) - log_sigmoid(x) * pw."""
    from .. import ops
    from .pointwise import mul, neg, sub
    log_sigmoid = ops.FUNCTIONAL["logsigmoid"]
    if pos_weight is not None:
        g = sub(log_sigmoid(neg(x)), mul(log_sigmoid(x), pos_weight))
    else:
        g = neg(x)
    g = mul(g, grad)
    if weight is not None:
        g = mul(g, weight)
    return _mean_scale(g, target, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    from .views import expand
    reduction = _reduction_enum(reduction, size_average, reduce)
    if tuple(int(s) for s in target.shape) != tuple(int(s) for s in input.shape):
        raise ValueError(f"Using a target size ({_size_text(target)}) that is different to the input size "
                         f"({_size_text(input)}) is deprecated. Please ensure they have the same size.")
    if weight is not None:
        shape = broadcast_shapes(target.shape, weight.shape)
        weight = expand(weight, shape)
    return BinaryCrossEntropy.apply(input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    reduction = _reduction_enum(reduction, size_average, reduce)
    if tuple(int(s) for s in target.shape) != tuple(int(s) for s in input.shape):
        raise ValueError(f"Target size ({_size_text(target)}) must be the same as input size ({_size_text(input)})")
    return BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction)


# -- kl_div ----------------------------------------------------------------------

class Xlogy(Function):
    """y = x * log(other) (0 where x == 0).  Saves: self, other."""

    saves = ("self", "other")

    @staticmethod
    def forward(ctx, x, other):
        ctx.save_for_backward(x, other)
        return kernel("xlogy", (broadcast_shapes(x.shape, other.shape), _dt.result_type(x, other)), x, other)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import div, mul
        from .views import sum_to
        x, other = ctx.saved_tensors
        g_x = g_other = None
        if ctx.needs_input_grad[0]:
            # xlogy(grad, other), zeroed where x == 0 and other <= 0 (the limit torch defines)
            g_x = Xlogy.apply(grad, other).masked_fill((x == 0.0).logical_and(other <= 0.0), 0.0)
            g_x = sum_to(g_x, x.shape)
        if ctx.needs_input_grad[1]:
            g_other = sum_to(div(mul(grad, x), other), other.shape)
        return g_x, g_other


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """ATen's kl_div (composite): exp(t) * (t - input) or xlogy(t, t) - t * input, then the reduction;
    "batchmean" sums and divides by the batch size in Python, as torch.nn.functional does."""
    import warnings
    from .pointwise import div, mul, sub
    if size_average is not None or reduce is not None:
        reduction_enum = _reduction_enum(reduction, size_average, reduce)
    else:
        if reduction == "mean":
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                          "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                          "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                          stacklevel=2)
        reduction_enum = SUM if reduction == "batchmean" else _reduction_enum(reduction)
    if log_target:
        loss = mul(target.exp(), sub(target, input))
    else:
        loss = sub(Xlogy.apply(target, target), mul(target, input))
    reduced = _apply_loss_reduction(loss, reduction_enum)
    if reduction == "batchmean" and input.dim() != 0:
        reduced = div(reduced, input.shape[0])
    return reduced


# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {
    "nll_loss": nll_loss, "cross_entropy": cross_entropy, "mse_loss": mse_loss, "l1_loss": l1_loss,
    "smooth_l1_loss": smooth_l1_loss, "huber_loss": huber_loss, "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits, "kl_div": kl_div,
}
