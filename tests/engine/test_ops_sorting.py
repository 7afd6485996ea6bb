"""Sorting and order statistics against torch.autograd: sort / argsort / msort / topk / kthvalue / median
values and int64 indices, the saved indices (value_selecting_reduction_backward) or self + result
(median of all elements), first- and second-order gradients, node names and torch's errors."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def same(fn):
    """A case whose torch and engine code read the same (methods on both tensor types)."""
    return fn, fn


def both(name, *args, **kwargs):
    """torch.<name>(x, ...) and gx.<name>(x, ...) with the same arguments."""
    return (lambda x: getattr(torch, name)(x, *args, **kwargs), lambda x: getattr(gx, name)(x, *args, **kwargs))


def lib(x):
    return torch if isinstance(x, torch.Tensor) else gx


def doubled(fn, dim):
    """``fn`` applied to cat([x, x], dim): every value tied with another."""
    return lambda x: fn(lib(x).cat([x, x], dim))


def doubled_values(shape, dim=None):
    """A tensor not requiring grad whose values (or slices along ``dim``) each appear twice."""
    half = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return torch.cat([half, half.flip(dim if dim is not None else -1)], dim if dim is not None else -1)


NO_GRAD_SHAPE = {"shape_backend": False}

# (torch_fn, gx_fn, args, check_kwargs).  0-dim inputs are x[0] of a [1] leaf.
CASES = {
    # sort: SortBackward0 (dim, descending) / SortBackward1 (stable given), both save the int64 indices
    "sort_default": (*same(lambda x: x.sort()), [Arg((3, 4))], {}),
    "sort_dim0_descending": (*same(lambda x: x.sort(0, True)), [Arg((4, 3))], {}),
    "sort_transposed": (*same(lambda x: x.sort(1)), [Arg((3, 5), transposed=True)], {}),
    "sort_3d_middle_dim": (*same(lambda x: x.sort(dim=1, descending=True)), [Arg((2, 4, 3))], {}),
    "sort_stable": (*both("sort", dim=1, stable=True), [Arg((3, 4))], {}),
    "sort_stable_false_keyword": (*same(lambda x: x.sort(stable=False, descending=True)), [Arg((3, 4))], {}),
    "sort_stable_ties": (*same(doubled(lambda x: x.sort(dim=1, stable=True), 1)), [Arg((3, 3))], {}),
    "sort_stable_ties_descending": (*same(doubled(lambda x: x.sort(dim=0, descending=True, stable=True), 0)),
                                    [Arg((2, 3))], {}),
    "sort_values_attribute": (*same(lambda x: x.sort(-1).values * 2), [Arg((3, 4))], {}),
    "sort_0dim": (*same(lambda x: x[0].sort()), [Arg((1,))], {}),
    "sort_integers": (*same(lambda x: x.sort(1)), [Arg((3, 4), dtype=torch.int64)], {}),
    "msort": (*both("msort"), [Arg((4, 3))], {}),
    # argsort is sort(...).indices: the sort node is recorded (and saves the indices) even though the
    # indices are not differentiable
    "argsort": (*same(lambda x: x.argsort(1)), [Arg((3, 4))], {}),
    "argsort_descending_stable": (*both("argsort", dim=0, descending=True, stable=True), [Arg((4, 3))], {}),
    # topk: TopkBackward0, saves indices
    "topk_default": (*same(lambda x: x.topk(2)), [Arg((3, 5))], {}),
    "topk_smallest_dim0": (*same(lambda x: x.topk(2, 0, largest=False)), [Arg((4, 3))], {}),
    "topk_all": (*both("topk", 4), [Arg((3, 4))], {}),
    "topk_transposed": (*same(lambda x: x.topk(3, dim=0)), [Arg((5, 2), transposed=True)], {}),
    "topk_3d": (*same(lambda x: x.topk(1, 1)), [Arg((2, 3, 4))], {}),
    "topk_zero_k": (*same(lambda x: x.topk(0)), [Arg((3, 4))], {}),
    "topk_0dim": (*same(lambda x: x[0].topk(1)), [Arg((1,))], {}),
    # kthvalue: KthvalueBackward0, saves indices (reduced shape, keepdim honoured)
    "kthvalue_default": (*same(lambda x: x.kthvalue(2)), [Arg((3, 5))], {}),
    "kthvalue_dim0_keepdim": (*both("kthvalue", 3, 0, True), [Arg((4, 3))], {}),
    "kthvalue_transposed": (*same(lambda x: x.kthvalue(1, dim=1)), [Arg((3, 4), transposed=True)], {}),
    "kthvalue_0dim": (*same(lambda x: x[0].kthvalue(1)), [Arg((1,))], {}),
    # median(): MedianBackward0 saves self and result, ties share the gradient
    "median_all": (*same(lambda x: x.median()), [Arg((3, 5))], {}),
    "median_all_even_count": (*both("median"), [Arg((2, 4))], {}),
    "median_all_ties": (*same(doubled(lambda x: x.median(), 0)), [Arg((3, 1))], {}),
    "median_all_0dim": (*same(lambda x: x[0].median()), [Arg((1,))], {}),
    # median(dim): MedianBackward1 saves indices
    "median_dim": (*same(lambda x: x.median(1)), [Arg((3, 5))], {}),
    "median_dim_even_keepdim": (*both("median", 0, True), [Arg((4, 3))], {}),
    "median_dim_transposed": (*same(lambda x: x.median(-1)), [Arg((3, 4), transposed=True)], {}),
    "median_dim_0dim": (*same(lambda x: x[0].median(0)), [Arg((1,))], {}),
    # unique: data-dependent size (no shape-backend run); torch has no derivative (see test below)
    "unique": (*both("unique"), [doubled_values((4, 3))], NO_GRAD_SHAPE),
    "unique_inverse_counts": (*same(lambda x: x.unique(return_inverse=True, return_counts=True)),
                              [doubled_values((3, 4))], NO_GRAD_SHAPE),
    "unique_unsorted_counts": (*both("unique", sorted=False, return_counts=True), [doubled_values((5,))],
                               NO_GRAD_SHAPE),
    "unique_0dim_inverse": (*same(lambda x: x[0].unique(return_inverse=True)), [doubled_values((1,))],
                            NO_GRAD_SHAPE),
    "unique_empty": (*same(lambda x: x[:0].unique(return_counts=True)), [doubled_values((2,))], NO_GRAD_SHAPE),
    "unique_integers": (*both("unique", return_inverse=True), [Arg((4, 5), dtype=torch.int64)], NO_GRAD_SHAPE),
    "unique_dim0": (*both("unique", dim=0, return_inverse=True, return_counts=True),
                    [doubled_values((3, 2), dim=0)], NO_GRAD_SHAPE),
    "unique_dim_last": (*both("unique", dim=-1), [doubled_values((2, 3), dim=1)], NO_GRAD_SHAPE),
    "unique_dim_middle_3d": (*both("unique", dim=1, return_counts=True), [doubled_values((2, 2, 3), dim=1)],
                             NO_GRAD_SHAPE),
}

LOW_PRECISION = {torch.float16, torch.bfloat16}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_sorting_matches_torch(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    if dtype in LOW_PRECISION:
        check = {**check, "second_order": False}
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


def test_results_are_named_tuples():
    x = gx.from_torch(torch.randn(3, 4))
    for result, name in ((x.sort(), "sort"), (x.topk(2), "topk"), (x.kthvalue(1), "kthvalue"),
                         (x.median(0), "median")):
        assert type(result).__name__ == name
        values, indices = result
        assert result.values is values and result.indices is indices and indices.dtype is gx.int64


def test_topk_unsorted_selects_the_same_elements():
    xt = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = gx.from_torch(xt).topk(3, sorted=False)
    theirs = xt.topk(3, sorted=False)
    assert torch.equal(ours.values.data_.sort(1).values, theirs.values.sort(1).values)
    assert torch.equal(ours.indices.data_.sort(1).values, theirs.indices.sort(1).values)


NODE_NAMES = {
    "sort": (lambda x: x.sort(1).values, "SortBackward0"),
    "sort_stable": (lambda x: x.sort(stable=True).values, "SortBackward1"),
    "msort": (lambda x: x.msort(), "SortBackward0"),
    "topk": (lambda x: x.topk(2).values, "TopkBackward0"),
    "kthvalue": (lambda x: x.kthvalue(2).values, "KthvalueBackward0"),
    "median": (lambda x: x.median(), "MedianBackward0"),
    "median_dim": (lambda x: x.median(0).values, "MedianBackward1"),
}


@pytest.mark.parametrize("name", sorted(NODE_NAMES))
def test_node_names_match_torch(name):
    fn, expected = NODE_NAMES[name]
    xt = torch.randn(3, 4, requires_grad=True)
    assert type(fn(xt).grad_fn).__name__ == expected
    assert fn(gx.from_torch(xt)).grad_fn.name() == expected


def test_indices_are_not_differentiable():
    x = gx.from_torch(torch.randn(3, 4), requires_grad=True)
    values, indices = x.sort()
    assert values.requires_grad and not indices.requires_grad and indices.grad_fn is None


def test_unique_is_not_differentiable_and_data_dependent():
    from gradxray.engine.ops.indexing import DataDependentShapeError

    xt = torch.tensor([3.0, 1.0, 3.0], requires_grad=True)
    x = gx.from_torch(xt.detach(), requires_grad=True)
    ours, theirs = x.unique(return_counts=True), xt.unique(return_counts=True)
    assert ours[0].requires_grad == theirs[0].requires_grad and not ours[1].requires_grad
    assert ours[0].grad_fn.name() == type(theirs[0].grad_fn).__name__ == "Unique2Backward0"
    with pytest.raises(RuntimeError, match="the derivative for '_unique2' is not implemented"):
        theirs[0].sum().backward()
    with pytest.raises(RuntimeError, match="the derivative for '_unique2' is not implemented"):
        ours[0].sum().backward()
    assert type(xt.unique(dim=0).grad_fn).__name__ == x.unique(dim=0).grad_fn.name() == "UniqueDimBackward0"
    with gx.backend("shape"), pytest.raises(DataDependentShapeError, match="number of distinct values"):
        gx.unique(gx.empty(4))


def test_unique_on_the_numpy_backend():
    xt = torch.tensor([[3, 2], [1, 2], [3, 2]])
    for kwargs in ({}, {"return_inverse": True, "return_counts": True}, {"dim": 0, "return_inverse": True},
                   {"dim": 1, "return_counts": True}):
        with gx.backend("numpy"):
            ours = gx.unique(gx.tensor(xt.tolist()), **kwargs)
        theirs = torch.unique(xt, **kwargs)
        ours, theirs = (ours, theirs) if isinstance(theirs, tuple) else ((ours,), (theirs,))
        assert [o.tolist() for o in ours] == [t.tolist() for t in theirs], kwargs


def test_sort_on_the_shape_backend_keeps_symbolic_sizes():
    with gx.backend("shape"):
        x = gx.empty(gx.SymInt(8, "B"), 5, requires_grad=True)
        values, indices = x.sort(0)
        top = x.topk(2, 1)
        kth = x.kthvalue(1, 1, keepdim=True)
    assert str(values.shape[0]) == "B" and str(indices.shape[0]) == "B"
    assert str(top.values.shape[0]) == "B" and int(top.values.shape[1]) == 2
    assert str(kth.values.shape[0]) == "B" and int(kth.values.shape[1]) == 1


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the error itself is what is compared
        return type(e).__name__, str(e)
    return None


ERRORS = {
    "sort_dim_out_of_range": lambda m, x: m.sort(x, 5),
    "sort_stable_dim_out_of_range": lambda m, x: m.sort(x, stable=True, dim=-3),
    "topk_k_too_large": lambda m, x: m.topk(x, 5),
    "topk_k_negative": lambda m, x: m.topk(x, -1),
    "topk_dim_out_of_range": lambda m, x: m.topk(x, 1, 2),
    "kthvalue_k_too_large": lambda m, x: m.kthvalue(x, 5),
    "kthvalue_k_zero": lambda m, x: m.kthvalue(x, 0, 0),
    "median_dim_out_of_range": lambda m, x: m.median(x, 2),
    "median_empty_dim": lambda m, x: m.median(x[:, :0], 1),
    "argsort_dim_out_of_range": lambda m, x: m.argsort(x, 3),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    xt = torch.randn(3, 4, dtype=torch.float64)
    expected = _error(lambda: ERRORS[name](torch, xt))
    assert expected is not None
    assert _error(lambda: ERRORS[name](gx, gx.from_torch(xt))) == expected
