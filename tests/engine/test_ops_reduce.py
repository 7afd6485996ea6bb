"""Reductions against torch.autograd: values, dtypes, saved tensors (bytes by storage), first- and
second-order gradients and the shape backend, for every option that changes what torch saves or computes."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def same(fn):
    """A case whose torch and engine code read the same (methods on both tensor types)."""
    return fn, fn


def both(name, *args, **kwargs):
    """torch.<name>(...) and gx.<name>(...) with the same arguments."""
    return (lambda x: getattr(torch, name)(x, *args, **kwargs), lambda x: getattr(gx, name)(x, *args, **kwargs))


# (torch_fn, gx_fn, args, check_kwargs).  0-dim inputs are taken as x[0] of a [1] leaf: the harness's Arg
# cannot make a 0-dim tensor (torch.randn(*()) needs a size).
CASES = {
    # sum / mean: nothing saved
    "sum_all": (*same(lambda x: x.sum()), [Arg((3, 4))], {}),
    "sum_dims_keepdim": (*same(lambda x: x.sum((0, 2), keepdim=True)), [Arg((2, 3, 4))], {}),
    "sum_negative_dim": (*same(lambda x: x.sum(-1)), [Arg((2, 3, 4))], {}),
    "sum_empty_dim_list": (*same(lambda x: x.sum([])), [Arg((2, 3))], {}),
    "sum_transposed": (*same(lambda x: x.sum(0)), [Arg((3, 5), transposed=True)], {}),
    "sum_0dim": (*same(lambda x: x[0].sum()), [Arg((1,))], {}),
    "sum_int_input": (*same(lambda x: x.sum(1)), [Arg((3, 4), dtype=torch.int64)], {}),
    "torch_sum_dim": (lambda x: torch.sum(x, dim=1), lambda x: gx.sum(x, dim=1), [Arg((3, 4))], {}),
    "mean_all": (*same(lambda x: x.mean()), [Arg((3, 4))], {}),
    "mean_dims": (*same(lambda x: x.mean((0, -1))), [Arg((2, 3, 4))], {}),
    "mean_keepdim_transposed": (*same(lambda x: x.mean(1, keepdim=True)), [Arg((4, 3), transposed=True)], {}),
    "mean_0dim": (*same(lambda x: x[0].mean()), [Arg((1,))], {}),
    # var / std (+ _mean): self (std: and its result)
    "var_all": (*same(lambda x: x.var()), [Arg((3, 4))], {}),
    "var_dim": (*same(lambda x: x.var(1)), [Arg((3, 4))], {}),
    "var_dims_keepdim": (*same(lambda x: x.var((0, 2), keepdim=True)), [Arg((2, 3, 4))], {}),
    "var_1d": (*same(lambda x: x.var(0)), [Arg((5,))], {}),
    "var_unbiased_false": (*same(lambda x: x.var(1, False)), [Arg((3, 4))], {}),
    "var_bool_unbiased": (*same(lambda x: x.var(False)), [Arg((3, 4))], {}),
    "var_correction_float": (*same(lambda x: x.var(0, correction=1.5)), [Arg((4, 3))], {}),
    "var_transposed": (*same(lambda x: x.var(0, correction=0)), [Arg((3, 5), transposed=True)], {}),
    "torch_var_keyword": (lambda x: torch.var(x, dim=1, correction=0, keepdim=True),
                          lambda x: gx.var(x, dim=1, correction=0, keepdim=True), [Arg((3, 4))], {}),
    "std_all": (*same(lambda x: x.std()), [Arg((3, 4))], {}),
    "std_dim_keepdim": (*same(lambda x: x.std(-1, keepdim=True)), [Arg((2, 3, 4))], {}),
    "std_correction0": (*same(lambda x: x.std(0, correction=0)), [Arg((4, 3))], {}),
    "std_zero_spread": (*same(lambda x: torch.cat([x, x], 1).std(1) if isinstance(x, torch.Tensor)
                              else gx.cat([x, x], 1).std(1)), [Arg((3, 1))], {}),
    "var_mean_dim": (*both("var_mean", 1), [Arg((3, 4))], {}),
    "var_mean_all_keepdim": (*both("var_mean", None, keepdim=True, correction=0), [Arg((3, 4))], {}),
    "std_mean_dim": (*both("std_mean", 0, keepdim=True), [Arg((3, 4))], {}),
    "std_mean_all": (*both("std_mean"), [Arg((2, 3))], {}),
    "var_mean_only_mean_used": (lambda x: torch.var_mean(x, 1)[1], lambda x: gx.var_mean(x, 1)[1], [Arg((3, 4))], {}),
    "std_mean_only_std_used": (lambda x: torch.std_mean(x, 1)[0], lambda x: gx.std_mean(x, 1)[0], [Arg((3, 4))], {}),
    # max / min: full reduction saves self + result; with dim, the int64 indices
    "max_all": (*same(lambda x: x.max()), [Arg((3, 4))], {}),
    "min_all": (*same(lambda x: x.min()), [Arg((3, 4))], {}),
    "max_all_ties": (lambda x: torch.cat([x, x]).max(), lambda x: gx.cat([x, x]).max(), [Arg((2, 3))], {}),
    "max_dim": (*same(lambda x: x.max(1)), [Arg((3, 4))], {}),
    "max_dim_keepdim": (*same(lambda x: x.max(0, keepdim=True)), [Arg((3, 4))], {}),
    "min_dim_negative": (*same(lambda x: x.min(-1)), [Arg((2, 3, 4))], {}),
    "max_dim_transposed": (*same(lambda x: x.max(1)), [Arg((4, 3), transposed=True)], {}),
    "max_dim_0dim": (*same(lambda x: x[0].max(0)), [Arg((1,))], {}),
    "max_values_attribute": (*same(lambda x: x.max(1).values * 2), [Arg((3, 4))], {}),
    "torch_max_binary_is_maximum": (lambda x, y: torch.max(x, y), lambda x, y: gx.max(x, y),
                                    [Arg((3, 4)), Arg((4,))], {}),
    "torch_min_dim": (lambda x: torch.min(x, 1, True), lambda x: gx.min(x, 1, True), [Arg((3, 4))], {}),
    "amax_dim": (*same(lambda x: x.amax(1)), [Arg((3, 4))], {}),
    "amax_all": (*same(lambda x: x.amax()), [Arg((3, 4))], {}),
    "amin_dims_keepdim": (*same(lambda x: x.amin((0, 2), keepdim=True)), [Arg((2, 3, 4))], {}),
    "amax_ties": (lambda x: torch.cat([x, x], 1).amax(1), lambda x: gx.cat([x, x], 1).amax(1), [Arg((3, 2))], {}),
    "amin_transposed": (*same(lambda x: x.amin(0)), [Arg((3, 5), transposed=True)], {}),
    "argmax_all": (*same(lambda x: x.argmax()), [Arg((3, 4))], {}),
    "argmax_dim_keepdim": (*same(lambda x: x.argmax(1, keepdim=True)), [Arg((3, 4))], {}),
    "argmin_dim": (*same(lambda x: x.argmin(0)), [Arg((3, 4), transposed=True)], {}),
    # logsumexp and norms: self + result
    "logsumexp_dim": (*same(lambda x: x.logsumexp(1)), [Arg((3, 4))], {}),
    "logsumexp_dims_keepdim": (*same(lambda x: x.logsumexp((0, 2), keepdim=True)), [Arg((2, 3, 4))], {}),
    "logsumexp_0dim": (*same(lambda x: x[0].logsumexp(0)), [Arg((1,))], {}),
    "norm_2": (*same(lambda x: x.norm()), [Arg((3, 4))], {}),
    "norm_fro_dim": (*same(lambda x: x.norm("fro", dim=1)), [Arg((3, 4))], {}),
    "norm_fro_two_dims": (*same(lambda x: x.norm("fro", dim=(0, 2))), [Arg((2, 3, 4))], {}),
    "norm_1_keepdim": (*same(lambda x: x.norm(1, dim=0, keepdim=True)), [Arg((3, 4))], {}),
    "norm_inf": (*same(lambda x: x.norm(float("inf"))), [Arg((3, 4))], {}),
    "norm_inf_dim": (*same(lambda x: x.norm(float("inf"), dim=1)), [Arg((3, 4))], {}),
    "norm_neg_inf": (*same(lambda x: x.norm(float("-inf"), dim=1)), [Arg((3, 4))], {}),
    "norm_3": (*same(lambda x: x.norm(3, dim=-1)), [Arg((3, 4))], {}),
    "norm_1p5": (*same(lambda x: x.norm(1.5)), [Arg((3, 4))], {}),
    "norm_half": (*same(lambda x: x.norm(0.5, dim=1)), [Arg((3, 4))], {}),
    "norm_transposed": (*same(lambda x: x.norm(dim=0)), [Arg((3, 5), transposed=True)], {}),
    "norm_0dim": (*same(lambda x: x[0].norm()), [Arg((1,))], {}),
    "norm_zero_row": (lambda x: torch.cat([x, x * 0], 1).norm(dim=0), lambda x: gx.cat([x, x * 0], 1).norm(dim=0),
                      [Arg((3, 2))], {}),
    "vector_norm": (lambda x: torch.linalg.vector_norm(x, 2, (0, 2)), lambda x: gx.linalg.vector_norm(x, 2, (0, 2)),
                    [Arg((2, 3, 4))], {}),
    "vector_norm_ord1_keepdim": (lambda x: torch.linalg.vector_norm(x, ord=1, dim=1, keepdim=True),
                                 lambda x: gx.linalg.vector_norm(x, ord=1, dim=1, keepdim=True), [Arg((3, 4))], {}),
    # cumulative ops: cumsum saves nothing; cumprod and prod save self + result
    "cumsum": (*same(lambda x: x.cumsum(1)), [Arg((3, 4))], {}),
    "cumsum_negative_dim_transposed": (*same(lambda x: x.cumsum(-1)), [Arg((4, 3), transposed=True)], {}),
    "cumsum_size1_dim": (*same(lambda x: x.cumsum(1)), [Arg((3, 1))], {}),
    "cumsum_dtype": (*same(lambda x: x.cumsum(0, dtype=torch.float64) if isinstance(x, torch.Tensor)
                           else x.cumsum(0, dtype=gx.float64)), [Arg((5,))], {}),
    "cumsum_int": (*same(lambda x: x.cumsum(0)), [Arg((5,), dtype=torch.int32)], {}),
    "cumprod": (*same(lambda x: x.cumprod(1)), [Arg((3, 4))], {}),
    "cumprod_transposed": (*same(lambda x: x.cumprod(0)), [Arg((4, 3), transposed=True)], {}),
    "cumprod_with_zeros": (lambda x, m: (x * m).cumprod(1), lambda x, m: (x * m).cumprod(1),
                           [Arg((3, 5)), Arg((3, 5), dtype=torch.int64)], {}),
    "prod_all": (*same(lambda x: x.prod()), [Arg((3, 4))], {}),
    "prod_dim": (*same(lambda x: x.prod(1)), [Arg((3, 4))], {}),
    "prod_dim_keepdim_transposed": (*same(lambda x: x.prod(0, keepdim=True)), [Arg((4, 3), transposed=True)], {}),
    "prod_0dim": (*same(lambda x: x[0].prod()), [Arg((1,))], {}),
    "prod_all_one_zero": (lambda x, m: (x * m).prod(), lambda x, m: (x * m).prod(),
                          [Arg((2, 3)), torch.tensor([[1, 1, 0], [1, 1, 1]])], {}),
    "prod_all_two_zeros": (lambda x, m: (x * m).prod(), lambda x, m: (x * m).prod(),
                           [Arg((2, 3)), torch.tensor([[1, 1, 0], [0, 1, 1]])], {}),
    "prod_dim_with_zeros": (lambda x, m: (x * m).prod(1), lambda x, m: (x * m).prod(1),
                            [Arg((3, 4)), torch.tensor([[1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]])], {}),
    # boolean and counting reductions: not differentiable
    "all": (*same(lambda x: x.all()), [Arg((3, 4), dtype=torch.int64)], {}),
    "any_dim_keepdim": (*same(lambda x: x.any(1, keepdim=True)), [Arg((3, 4), dtype=torch.int64)], {}),
    "all_float_dim": (*same(lambda x: (x > 0).all(0)), [Arg((3, 4))], {}),
    "count_nonzero": (*same(lambda x: x.count_nonzero()), [Arg((3, 4), dtype=torch.int64)], {}),
    "count_nonzero_dims": (*both("count_nonzero", (0, 2)), [Arg((2, 3, 4), dtype=torch.int64)], {}),
}

# torch CPU runs these in float16 / bfloat16 as well
REDUCED_PRECISION = ["sum_dims_keepdim", "mean_dims", "var_dim", "std_dim_keepdim", "max_dim", "max_all",
                     "amax_dim", "logsumexp_dim", "norm_2", "cumsum", "prod_dim"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_reduction_matches_torch(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", REDUCED_PRECISION)
def test_reduction_reduced_precision(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **{**kwargs, "second_order": False})


def _engine(shape, dtype=gx.float64):
    with gx.backend("torch"):
        return gx.randn(*shape, dtype=dtype)


def test_max_with_dim_is_a_named_pair():
    x = _engine((3, 4))
    result = x.max(1)
    values, indices = result
    assert result.values is values and result.indices is indices
    assert indices.dtype is gx.int64 and tuple(values.shape) == (3,)
    assert type(result).__name__ == "max" and type(x.min(0)).__name__ == "min"


def test_node_names_follow_torch():
    x = _engine((3, 4)).requires_grad_()
    assert x.sum().grad_fn.name() == "SumBackward0"
    assert x.sum(1).grad_fn.name() == "SumBackward1"
    assert x.mean().grad_fn.name() == "MeanBackward0"
    assert x.max().grad_fn.name() == "MaxBackward1"
    assert x.max(1).values.grad_fn.name() == "MaxBackward0"
    assert x.prod(1).grad_fn.name() == "ProdBackward1"
    assert x.norm().grad_fn.name() == "LinalgVectorNormBackward0"
    assert x.std(1).grad_fn.name() == "StdBackward0"


def test_indices_and_boolean_results_do_not_require_grad():
    x = _engine((3, 4)).requires_grad_()
    assert not x.max(1).indices.requires_grad
    assert not x.argmax().requires_grad
    assert not x.any().requires_grad


def test_shape_backend_keeps_symbolic_sizes():
    batch = gx.SymInt(6, "B")
    x = gx.empty(batch, 4).requires_grad_()
    assert x.sum(1).shape[0].expr == "B"
    assert x.var(1, keepdim=True).shape[0].expr == "B"
    assert x.cumsum(0).shape[0].expr == "B"


ERRORS = {
    "mean_of_int": (lambda t: t.ones(3, dtype=t.int64).mean(), RuntimeError,
                    "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
                    "dtype. Got: Long"),
    "var_of_int": (lambda t: t.ones(3, dtype=t.int64).var(), RuntimeError,
                   "std and var only support floating point and complex dtypes"),
    "max_of_empty": (lambda t: t.ones(0).max(), RuntimeError,
                     "max(): Expected reduction dim to be specified for input.numel() == 0."),
    "max_over_empty_dim": (lambda t: t.ones(0, 3).max(0), IndexError,
                           "max(): Expected reduction dim 0 to have non-zero size."),
    "amax_over_empty_dim": (lambda t: t.ones(0, 3).amax(0), IndexError,
                            "amax(): Expected reduction dim 0 to have non-zero size."),
    "argmax_of_empty": (lambda t: t.ones(0).argmax(), IndexError,
                        "argmax(): Expected reduction dim to be specified for input.numel() == 0."),
    "sum_dim_out_of_range": (lambda t: t.ones(3).sum(2), IndexError,
                             "Dimension out of range (expected to be in range of [-1, 0], but got 2)"),
    "cumsum_dim_out_of_range": (lambda t: t.ones(3).cumsum(1), IndexError,
                                "Dimension out of range (expected to be in range of [-1, 0], but got 1)"),
    "vector_norm_of_int": (lambda t: t.ones(3, dtype=t.int64).norm(), RuntimeError,
                           "linalg.vector_norm: Expected a floating point or complex tensor as input. Got Long"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_match_torch(name):
    make, error, message = ERRORS[name]
    with pytest.raises(error, match=_escaped(message)):
        make(torch)
    with gx.backend("torch"), pytest.raises(error, match=_escaped(message)):
        make(gx)
    with pytest.raises(error, match=_escaped(message)):      # shape backend: same checks without data
        make(gx)


def _escaped(message):
    import re
    return re.escape(message)


def test_prod_with_several_zeros_first_order_only():
    # without a graph for the gradient torch returns zeros directly when two or more entries are zero
    torch_fn, gx_fn, args, _ = CASES["prod_all_two_zeros"]
    check_op(torch_fn, gx_fn, args, second_order=False)
