"""Loss functions against torch.autograd: values, dtypes, saved tensors (bytes by storage), first- and
second-order gradients and the shape backend, for every option that changes what torch saves or computes."""
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def loss(name, **kwargs):
    """F.<name>(*tensors, **kwargs) on torch and on the engine."""
    return (lambda *t: getattr(TF, name)(*t, **kwargs), lambda *t: getattr(F, name)(*t, **kwargs))


def weighted(name, keyword, **kwargs):
    """F.<name>(input, target, <keyword>=weight, **kwargs): for losses whose weight is not the third parameter."""
    return (lambda x, t, w: getattr(TF, name)(x, t, **{keyword: w}, **kwargs),
            lambda x, t, w: getattr(F, name)(x, t, **{keyword: w}, **kwargs))


TARGET = torch.tensor([1, 0, 4, 2, 2, 3])                   # class indices for [6, 5] inputs
TARGET_3D = torch.tensor([[1, 0, 4], [2, 2, 0]])              # [N=2, d=3] for [2, 5, 3] inputs
TARGET_4D = torch.tensor([[[1, 0], [4, 2]], [[2, 2], [0, 3]]])  # [N=2, 2, 2] for [2, 5, 2, 2] inputs
TARGET_5D = torch.zeros(2, 2, 1, 3, dtype=torch.int64).random_(0, 5, generator=torch.Generator().manual_seed(1))
SCALAR_TARGET = torch.tensor(3)

WEIGHT = Arg((5,), requires_grad=False, positive=True)     # class weights in the case's dtype
PROBS = Arg((6, 5), requires_grad=False, unit=True)         # class-probability targets

# (torch_fn, gx_fn, args, check_kwargs)
CASES = {
    # nll_loss: saves self, target, weight, total_weight; [N, C, d...] goes through nll_loss2d
    "nll_mean": (*loss("nll_loss"), [Arg((6, 5)), TARGET], {}),
    "nll_sum_weight": (*loss("nll_loss", reduction="sum"), [Arg((6, 5)), TARGET, WEIGHT], {}),
    "nll_none_ignore_index": (*loss("nll_loss", reduction="none", ignore_index=2), [Arg((6, 5)), TARGET], {}),
    "nll_mean_weight_ignore_index": (*loss("nll_loss", ignore_index=4), [Arg((6, 5)), TARGET, WEIGHT], {}),
    "nll_unbatched": (*loss("nll_loss"), [Arg((5,)), SCALAR_TARGET], {}),
    "nll_transposed": (*loss("nll_loss"), [Arg((6, 5), transposed=True), TARGET], {}),
    "nll_3d_mean": (*loss("nll_loss"), [Arg((2, 5, 3)), TARGET_3D], {}),
    "nll_3d_none": (*loss("nll_loss", reduction="none"), [Arg((2, 5, 3)), TARGET_3D], {}),
    "nll_4d_weight_sum": (*loss("nll_loss", reduction="sum"), [Arg((2, 5, 2, 2)), TARGET_4D, WEIGHT], {}),
    "nll_4d_none": (*loss("nll_loss", reduction="none"), [Arg((2, 5, 2, 2)), TARGET_4D], {}),
    "nll_5d_none_ignore_index": (*loss("nll_loss", reduction="none", ignore_index=1),
                                 [Arg((2, 5, 2, 1, 3)), TARGET_5D], {}),
    "nll_legacy_size_average": (*loss("nll_loss", size_average=False), [Arg((6, 5)), TARGET], {}),
    # cross_entropy = log_softmax + nll_loss (+ label smoothing terms / class probabilities)
    "ce_mean": (*loss("cross_entropy"), [Arg((6, 5)), TARGET], {}),
    "ce_weight_ignore_index": (*loss("cross_entropy", ignore_index=2), [Arg((6, 5)), TARGET, WEIGHT], {}),
    "ce_none": (*loss("cross_entropy", reduction="none"), [Arg((6, 5)), TARGET], {}),
    "ce_sum_transposed": (*loss("cross_entropy", reduction="sum"), [Arg((6, 5), transposed=True), TARGET], {}),
    "ce_unbatched": (*loss("cross_entropy"), [Arg((5,)), SCALAR_TARGET], {}),
    "ce_3d": (*loss("cross_entropy"), [Arg((2, 5, 3)), TARGET_3D], {}),
    "ce_4d_none": (*loss("cross_entropy", reduction="none"), [Arg((2, 5, 2, 2)), TARGET_4D], {}),
    "ce_smoothing_mean": (*loss("cross_entropy", label_smoothing=0.1), [Arg((6, 5)), TARGET], {}),
    "ce_smoothing_sum_ignore_index": (*loss("cross_entropy", label_smoothing=0.2, reduction="sum", ignore_index=2),
                                      [Arg((6, 5)), TARGET], {}),
    "ce_smoothing_none": (*loss("cross_entropy", label_smoothing=0.3, reduction="none"), [Arg((6, 5)), TARGET], {}),
    "ce_smoothing_weight_mean": (*loss("cross_entropy", label_smoothing=0.1, ignore_index=0),
                                 [Arg((6, 5)), TARGET, WEIGHT], {}),
    "ce_smoothing_weight_none": (*loss("cross_entropy", label_smoothing=0.1, reduction="none"),
                                 [Arg((6, 5)), TARGET, WEIGHT], {}),
    "ce_smoothing_3d": (*loss("cross_entropy", label_smoothing=0.1), [Arg((2, 5, 3)), TARGET_3D], {}),
    "ce_smoothing_unbatched": (*loss("cross_entropy", label_smoothing=0.1), [Arg((5,)), SCALAR_TARGET], {}),
    "ce_probs_mean": (*loss("cross_entropy"), [Arg((6, 5)), PROBS], {}),
    "ce_probs_target_grad": (*loss("cross_entropy", reduction="sum"), [Arg((6, 5)), Arg((6, 5), unit=True)], {}),
    "ce_probs_none_weight": (*loss("cross_entropy", reduction="none"), [Arg((6, 5)), PROBS, WEIGHT], {}),
    "ce_probs_smoothing_weight": (*loss("cross_entropy", label_smoothing=0.2), [Arg((6, 5)), PROBS, WEIGHT], {}),
    "ce_probs_3d": (*loss("cross_entropy"), [Arg((2, 5, 3)), Arg((2, 5, 3), requires_grad=False, unit=True)], {}),
    "ce_probs_unbatched": (*loss("cross_entropy"), [Arg((5,)), Arg((5,), requires_grad=False, unit=True)], {}),
    # mse / l1 / smooth_l1 / huber: aten ops saving self and target (l1 is composite: sub, abs, mean)
    "mse_mean": (*loss("mse_loss"), [Arg((4, 5)), Arg((4, 5))], {}),
    "mse_sum_target_fixed": (*loss("mse_loss", reduction="sum"), [Arg((4, 5)), Arg((4, 5), requires_grad=False)], {}),
    "mse_none_broadcast": (*loss("mse_loss", reduction="none"), [Arg((4, 5)), Arg((5,))], {}),
    "mse_transposed": (*loss("mse_loss"), [Arg((4, 5), transposed=True), Arg((4, 5))], {}),
    "mse_weight": (*weighted("mse_loss", "weight"),
                   [Arg((4, 5)), Arg((4, 5)), Arg((4, 5), requires_grad=False, positive=True)], {}),
    "mse_0dim_via_select": (lambda x, y: TF.mse_loss(x[0], y[0]), lambda x, y: F.mse_loss(x[0], y[0]),
                            [Arg((1,)), Arg((1,))], {}),
    "l1_mean": (*loss("l1_loss"), [Arg((4, 5)), Arg((4, 5))], {}),
    "l1_none_broadcast": (*loss("l1_loss", reduction="none"), [Arg((4, 5)), Arg((4, 1))], {}),
    "l1_weight_sum": (*weighted("l1_loss", "weight", reduction="sum"),
                      [Arg((4, 5)), Arg((4, 5)), Arg((4, 5), requires_grad=False, positive=True)], {}),
    "smooth_l1_mean": (*loss("smooth_l1_loss"), [Arg((4, 5)), Arg((4, 5))], {}),
    "smooth_l1_beta_none": (*loss("smooth_l1_loss", beta=0.5, reduction="none"), [Arg((4, 5)), Arg((4, 5))], {}),
    "smooth_l1_beta_zero_is_l1": (*loss("smooth_l1_loss", beta=0.0), [Arg((4, 5)), Arg((4, 5))], {}),
    "smooth_l1_sum_transposed": (*loss("smooth_l1_loss", reduction="sum", beta=2.0),
                                 [Arg((4, 5), transposed=True), Arg((4, 5))], {}),
    "huber_mean": (*loss("huber_loss"), [Arg((4, 5)), Arg((4, 5))], {}),
    "huber_delta_sum": (*loss("huber_loss", delta=0.5, reduction="sum"), [Arg((4, 5)), Arg((4, 5))], {}),
    "huber_none_broadcast": (*loss("huber_loss", delta=0.7, reduction="none"), [Arg((4, 5)), Arg((5,))], {}),
    "huber_weight_mean": (*weighted("huber_loss", "weight", delta=0.5),
                          [Arg((4, 5)), Arg((4, 5)), Arg((4, 5), requires_grad=False, positive=True)], {}),
    # binary cross entropy: self, target, weight (expanded to the input's shape, a view)
    "bce_mean": (*loss("binary_cross_entropy"), [Arg((4, 5), unit=True), Arg((4, 5), requires_grad=False, unit=True)],
                 {}),
    "bce_weight_broadcast_sum": (*loss("binary_cross_entropy", reduction="sum"),
                                 [Arg((4, 5), unit=True), Arg((4, 5), requires_grad=False, unit=True),
                                  Arg((5,), requires_grad=False, positive=True)], {}),
    "bce_none_target_grad": (*loss("binary_cross_entropy", reduction="none"),
                             [Arg((4, 5), unit=True), Arg((4, 5), unit=True)], {}),
    "bce_transposed_weight_full": (*loss("binary_cross_entropy"),
                                   [Arg((4, 5), unit=True, transposed=True),
                                    Arg((4, 5), requires_grad=False, unit=True),
                                    Arg((4, 5), requires_grad=False, positive=True)], {}),
    "bce_logits_mean": (*loss("binary_cross_entropy_with_logits"), [Arg((4, 5)), Arg((4, 5), unit=True)], {}),
    "bce_logits_weight_pos_weight": (lambda x, t, w, pw: TF.binary_cross_entropy_with_logits(
                                         x, t, w, reduction="sum", pos_weight=pw),
                                     lambda x, t, w, pw: F.binary_cross_entropy_with_logits(
                                         x, t, w, reduction="sum", pos_weight=pw),
                                     [Arg((4, 5)), Arg((4, 5), unit=True),
                                      Arg((5,), requires_grad=False, positive=True),
                                      Arg((5,), requires_grad=False, positive=True)], {}),
    "bce_logits_pos_weight_none": (*weighted("binary_cross_entropy_with_logits", "pos_weight", reduction="none"),
                                   [Arg((4, 5)), Arg((4, 5), unit=True), Arg((5,), requires_grad=False, positive=True)],
                                   {}),
    "bce_logits_transposed": (*loss("binary_cross_entropy_with_logits"),
                              [Arg((4, 5), transposed=True), Arg((4, 5), requires_grad=False, unit=True)], {}),
    # kl_div: composite (xlogy / exp, sub, mul, then the reduction)
    "kl_mean": (*loss("kl_div"), [Arg((4, 5)), Arg((4, 5), unit=True)], {}),
    "kl_batchmean": (*loss("kl_div", reduction="batchmean"), [Arg((4, 5)), Arg((4, 5), unit=True)], {}),
    "kl_sum_target_fixed": (*loss("kl_div", reduction="sum"),
                            [Arg((4, 5)), Arg((4, 5), requires_grad=False, unit=True)], {}),
    "kl_none_log_target": (*loss("kl_div", reduction="none", log_target=True), [Arg((4, 5)), Arg((4, 5))], {}),
    "kl_batchmean_log_target_transposed": (*loss("kl_div", reduction="batchmean", log_target=True),
                                           [Arg((4, 5), transposed=True), Arg((4, 5))], {}),
    "kl_legacy_reduce_false": (*loss("kl_div", reduce=False), [Arg((4, 5)), Arg((4, 5), unit=True)], {}),
}

# torch CPU runs these in float16 / bfloat16 as well
REDUCED_PRECISION = ["nll_mean", "ce_mean", "ce_smoothing_mean", "ce_probs_mean", "mse_mean", "l1_mean",
                     "smooth_l1_mean", "huber_mean", "bce_mean", "bce_logits_mean", "kl_batchmean"]


def _run(name, dtype, **overrides):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    with warnings.catch_warnings():
        # torch and the engine both warn about kl_div's "mean" and broadcast targets
        warnings.simplefilter("ignore", UserWarning)
        check_op(torch_fn, gx_fn, args, dtype=dtype, **{**kwargs, **overrides})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_torch(name, dtype):
    _run(name, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", REDUCED_PRECISION)
def test_loss_reduced_precision(name, dtype):
    _run(name, dtype, second_order=False)


def test_node_names_follow_torch():
    import gradxray.engine as gx
    with gx.backend("torch"):
        x = gx.randn(6, 5, dtype=gx.float64, requires_grad=True)
        y = gx.randn(2, 5, 3, dtype=gx.float64, requires_grad=True)
    assert F.cross_entropy(x, gx.from_torch(TARGET)).grad_fn.name() == "NllLossBackward0"
    assert F.cross_entropy(y, gx.from_torch(TARGET_3D)).grad_fn.name() == "NllLoss2DBackward0"
    assert F.mse_loss(x, x.detach()).grad_fn.name() == "MseLossBackward0"
    assert F.huber_loss(x, x.detach()).grad_fn.name() == "HuberLossBackward0"


def test_shape_backend_keeps_symbolic_sizes():
    import gradxray.engine as gx
    batch = gx.SymInt(6, "B")
    logits = gx.empty(batch, 5, 3).requires_grad_()
    target = gx.empty(batch, 3, dtype=gx.int64)
    per_position = F.cross_entropy(logits, target, reduction="none")
    assert [getattr(d, "expr", d) for d in per_position.shape] == ["B", 3]
    assert tuple(F.cross_entropy(logits, target).shape) == ()
    assert F.mse_loss(logits, logits.detach(), reduction="none").shape[0].expr == "B"


def test_mean_kl_div_warns_like_torch():
    import gradxray.engine as gx
    with gx.backend("torch"):
        x = gx.randn(2, 3)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, x)


ERRORS = {
    "nll_batch_mismatch": (lambda f, t: f.nll_loss(t.randn(4, 5), t.zeros(3, dtype=t.int64)), ValueError,
                           "Expected input batch_size (4) to match target batch_size (3)."),
    "nll_0dim_input": (lambda f, t: f.nll_loss(t.randn(4, 5)[0, 0], t.zeros((), dtype=t.int64)), ValueError,
                       "Expected 1 or more dimensions (got 0)"),
    "nll_3d_target_size": (lambda f, t: f.nll_loss(t.randn(2, 5, 3), t.zeros(2, 4, dtype=t.int64)), RuntimeError,
                           "Expected target size [2, 3], got [2, 4]"),
    "nll_weight_size": (lambda f, t: f.nll_loss(t.randn(4, 5), t.zeros(4, dtype=t.int64), weight=t.ones(4)),
                        RuntimeError, "weight tensor should be defined either for all 5 classes or no classes but got "
                                      "weight tensor of shape: [4]"),
    "nll_float_target": (lambda f, t: f.nll_loss(t.randn(4, 5), t.zeros(4)), RuntimeError,
                         "expected target dtype to be Long or Byte, but got Float"),
    "ce_label_smoothing_range": (lambda f, t: f.cross_entropy(t.randn(4, 5), t.zeros(4, dtype=t.int64),
                                                              label_smoothing=1.5), RuntimeError,
                                 "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    "ce_probs_ignore_index": (lambda f, t: f.cross_entropy(t.randn(4, 5), t.ones(4, 5), ignore_index=1), RuntimeError,
                              "ignore_index is not supported for floating point target"),
    "ce_bad_reduction": (lambda f, t: f.cross_entropy(t.randn(4, 5), t.zeros(4, dtype=t.int64), reduction="avg"),
                         ValueError, "avg is not a valid value for reduction"),
    "bce_target_size": (lambda f, t: f.binary_cross_entropy(t.ones(4, 5) / 2, t.ones(4) / 2), ValueError,
                        "Using a target size (torch.Size([4])) that is different to the input size "
                        "(torch.Size([4, 5])) is deprecated. Please ensure they have the same size."),
    "bce_logits_target_size": (lambda f, t: f.binary_cross_entropy_with_logits(t.ones(4, 5), t.ones(4)), ValueError,
                               "Target size (torch.Size([4])) must be the same as input size (torch.Size([4, 5]))"),
    "smooth_l1_negative_beta": (lambda f, t: f.smooth_l1_loss(t.ones(3), t.ones(3), beta=-1.0), RuntimeError,
                                "smooth_l1_loss does not support negative values for beta."),
    "huber_zero_delta": (lambda f, t: f.huber_loss(t.ones(3), t.ones(3), delta=0.0), RuntimeError,
                         "huber_loss does not support non-positive values for delta."),
    "mse_weight_size": (lambda f, t: f.mse_loss(t.ones(3), t.ones(3), weight=t.ones(2)), ValueError,
                        "Weights and input must have the same size."),
    "mse_not_broadcastable": (lambda f, t: f.mse_loss(t.ones(4, 5), t.ones(3, 5)), RuntimeError,
                              "The size of tensor a (4) must match the size of tensor b (3) at non-singleton "
                              "dimension 0"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_match_torch(name):
    import re

    import gradxray.engine as gx
    make, error, message = ERRORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(error, match=re.escape(message)):
            make(TF, torch)
        with gx.backend("torch"), pytest.raises(error, match=re.escape(message)):
            make(F, gx)
        with pytest.raises(error, match=re.escape(message)):      # shape backend: same checks without data
            make(F, gx)
