"""Sorting and order statistics: sort, argsort, msort, topk, kthvalue, median.

The value-returning ones save only their int64 ``indices`` and route the gradient back through torch's
``value_selecting_reduction_backward`` (zeros of the input's shape, ``scatter_`` of the gradient at the
selected positions), written with engine ops so that it is differentiable again.  ``median()`` over all
elements is the exception: it saves ``self`` and ``result`` and shares the gradient among ties
(``evenly_distribute_backward``), as torch does."""
from __future__ import annotations

from collections import namedtuple

from .. import dtypes as _dt
from ..function import Function
from ..tensor import wrap_dim
from ._kernel import kernel
from .reduce import _evenly_distribute_backward, _value_selecting_backward

SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])
KthvalueResult = namedtuple("kthvalue", ["values", "indices"])
MedianResult = namedtuple("median", ["values", "indices"])


def _reduced_shape(x, dim, keepdim):
    """``x``'s shape without ``dim`` (or with it as 1 under keepdim); a 0-dim input stays 0-dim."""
    if x.dim() == 0:
        return ()
    return tuple(1 if i == dim else s for i, s in enumerate(x.shape)) if keepdim else \
        tuple(s for i, s in enumerate(x.shape) if i != dim)


def _size_along(x, dim):
    return x.shape[dim] if x.dim() > 0 else 1


class _SelectingFunction(Function):
    """Base of the (values, indices) ops whose backward scatters the gradient at ``indices``.
    Subclasses set ``ctx.dim``, ``ctx.keepdim`` and ``ctx.in_shape`` and save the indices."""

    saves = ("indices",)

    @staticmethod
    def backward(ctx, grad, _grad_indices=None):
        (indices,) = ctx.saved_tensors
        grad_in = None
        if grad is not None:
            grad_in = _value_selecting_backward(grad, ctx.dim, indices, ctx.in_shape, ctx.keepdim)
        return (grad_in,) + (None,) * ctx.n_args


class Sort(_SelectingFunction):
    """(values, indices) = sort(x, dim, descending): values in order along ``dim``.  Saves: indices."""

    @staticmethod
    def forward(ctx, x, dim, descending):
        return _sort(ctx, x, dim, descending, stable=None)


class SortStable(_SelectingFunction):
    """(values, indices) = sort(x, *, stable, dim, descending) (aten sort.stable: ties keep their input
    order when ``stable``).  Saves: indices."""

    node_name = "SortBackward1"

    @staticmethod
    def forward(ctx, x, dim, descending, stable):
        return _sort(ctx, x, dim, descending, stable)


def _sort(ctx, x, dim, descending, stable):
    dim = wrap_dim(dim, x.dim())
    metas = [(x.shape, x.dtype), (x.shape, _dt.int64)]
    if stable is None:
        values, indices = kernel("sort", metas, x, dim, descending)
    else:
        values, indices = kernel("sort", metas, x, stable=stable, dim=dim, descending=descending)
    ctx.save_for_backward(indices)
    ctx.mark_non_differentiable(indices)
    ctx.dim, ctx.keepdim, ctx.in_shape = dim, True, x.shape
    ctx.n_args = 2 if stable is None else 3          # the arguments after x
    return values, indices


class Topk(_SelectingFunction):
    """(values, indices) = topk(x, k, dim, largest, sorted): the k largest (smallest) along ``dim``.
    Saves: indices."""

    @staticmethod
    def forward(ctx, x, k, dim, largest, sorted):  # noqa: A002 - torch's argument name
        dim = wrap_dim(dim, x.dim())
        if not 0 <= k <= _size_along(x, dim):
            raise RuntimeError("selected index k out of range")
        shape = tuple(k if i == dim else s for i, s in enumerate(x.shape))
        values, indices = kernel("topk", [(shape, x.dtype), (shape, _dt.int64)], x, k, dim, largest, sorted)
        ctx.save_for_backward(indices)
        ctx.mark_non_differentiable(indices)
        ctx.dim, ctx.keepdim, ctx.in_shape, ctx.n_args = dim, True, x.shape, 4
        return values, indices


class Kthvalue(_SelectingFunction):
    """(values, indices) = kthvalue(x, k, dim, keepdim): the k-th smallest along ``dim``.  Saves: indices."""

    @staticmethod
    def forward(ctx, x, k, dim, keepdim):
        dim = wrap_dim(dim, x.dim())
        if not 1 <= k <= _size_along(x, dim):
            raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
        shape = _reduced_shape(x, dim, keepdim)
        values, indices = kernel("kthvalue", [(shape, x.dtype), (shape, _dt.int64)], x, k, dim, keepdim)
        ctx.save_for_backward(indices)
        ctx.mark_non_differentiable(indices)
        ctx.dim, ctx.keepdim, ctx.in_shape, ctx.n_args = dim, keepdim, x.shape, 3
        return values, indices


class MedianDim(_SelectingFunction):
    """(values, indices) = median(x, dim, keepdim): the lower median along ``dim``.  Saves: indices."""

    node_name = "MedianBackward1"

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        dim = wrap_dim(dim, x.dim())
        if x.dim() > 0 and int(x.shape[dim]) == 0:
            raise IndexError(f"median(): Expected reduction dim {dim} to have non-zero size.")
        shape = _reduced_shape(x, dim, keepdim)
        values, indices = kernel("median", [(shape, x.dtype), (shape, _dt.int64)], x, dim, keepdim)
        ctx.save_for_backward(indices)
        ctx.mark_non_differentiable(indices)
        ctx.dim, ctx.keepdim, ctx.in_shape, ctx.n_args = dim, keepdim, x.shape, 2
        return values, indices


class Median(Function):
    """y = median(x): the lower median of all elements; ties share the gradient.  Saves: self, result."""

    saves = ("self", "result")

    @staticmethod
    def forward(ctx, x):
        y = kernel("median", ((), x.dtype), x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return _evenly_distribute_backward(grad, x, y)


def _distinct_count(x, dim) -> int:
    """The number of distinct values of ``x`` (``dim`` None) or of its slices along ``dim``: the size of
    unique's output, which depends on the values (the shape backend raises DataDependentShapeError)."""
    from .indexing import DataDependentShapeError

    data = x.data_
    if data is None:
        raise DataDependentShapeError(
            "unique: the output size is the number of distinct values, which depends on the tensor's values; "
            "the shape backend has no data to count them")
    if hasattr(data, "unique"):                       # torch data
        return int(data.reshape(-1).unique().numel()) if dim is None else int(data.unique(dim=dim).shape[dim])
    import numpy as np

    return int(np.unique(data).size) if dim is None else int(np.unique(data, axis=dim).shape[dim])


class Unique2(Function):
    """(values, inverse, counts) = _unique2(x, sorted, return_inverse, return_counts): the distinct
    values in ascending order (torch's kernels sort whatever ``sorted`` says), each element's position
    among them (x's shape; empty unless asked) and each value's count (empty unless asked).  Saves:
    nothing; torch has no derivative for it (backward raises), inverse and counts are integers."""

    node_name = "Unique2Backward0"

    @staticmethod
    def forward(ctx, x, sorted, return_inverse, return_counts):  # noqa: A002 - torch's argument name
        k = _distinct_count(x, None)
        metas = [((k,), x.dtype), (x.shape if return_inverse else (0,), _dt.int64),
                 ((k,) if return_counts else (0,), _dt.int64)]
        values, inverse, counts = kernel("_unique2", metas, x, sorted, return_inverse, return_counts)
        ctx.mark_non_differentiable(inverse, counts)
        return values, inverse, counts

    @staticmethod
    def backward(ctx, grad, _grad_inverse=None, _grad_counts=None):
        raise RuntimeError("the derivative for '_unique2' is not implemented.")


class UniqueDim(Function):
    """(values, inverse, counts) = unique_dim(x, dim, sorted, return_inverse, return_counts): the distinct
    slices along ``dim`` in lexicographic order, each slice's position among them and their counts (both
    always computed).  Saves: nothing; no derivative in torch (backward raises)."""

    node_name = "UniqueDimBackward0"

    @staticmethod
    def forward(ctx, x, dim, sorted, return_inverse, return_counts):  # noqa: A002 - torch's argument name
        dim = wrap_dim(dim, x.dim())
        k = _distinct_count(x, dim)
        shape = tuple(k if i == dim else s for i, s in enumerate(x.shape))
        strides = [1] * len(shape)          # torch builds it with ``dim`` first, then moves that axis back
        acc = 1
        for i in reversed([dim] + [i for i in range(len(shape)) if i != dim]):
            strides[i] = acc
            acc = acc * shape[i] if int(shape[i]) > 1 else acc
        metas = [(shape, x.dtype, tuple(strides)), ((x.shape[dim],), _dt.int64), ((k,), _dt.int64)]
        values, inverse, counts = kernel("unique_dim", metas, x, dim, sorted, return_inverse, return_counts)
        ctx.mark_non_differentiable(inverse, counts)
        return values, inverse, counts

    @staticmethod
    def backward(ctx, grad, _grad_inverse=None, _grad_counts=None):
        raise RuntimeError("the derivative for 'unique_dim' is not implemented.")


# -- entry points (torch's signatures) -------------------------------------------

def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """torch.unique: the distinct values (or slices along ``dim``), with the inverse indices and the
    counts when asked; a tensor alone, else a tuple, as torch returns them."""
    if dim is None:
        values, inverse, counts = Unique2.apply(input, sorted, return_inverse, return_counts)
    else:
        values, inverse, counts = UniqueDim.apply(input, dim, sorted, return_inverse, return_counts)
    out = (values,) + ((inverse,) if return_inverse else ()) + ((counts,) if return_counts else ())
    return out[0] if len(out) == 1 else out


def sort(input, dim=-1, descending=False, *, stable=None):
    """torch.sort; passing ``stable`` (even False) selects aten's sort.stable, as torch's binding does."""
    if stable is None:
        return SortResult(*Sort.apply(input, dim, descending))
    return SortResult(*SortStable.apply(input, dim, descending, bool(stable)))


def argsort(input, dim=-1, descending=False, stable=False):
    """torch.argsort is sort(...).indices: the sort node is recorded (and saves its indices) as in torch."""
    return sort(input, dim, descending, stable=stable).indices


def msort(input):
    return sort(input, 0).values


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's argument name
    return TopkResult(*Topk.apply(input, k, dim, largest, sorted))


def kthvalue(input, k, dim=-1, keepdim=False):
    return KthvalueResult(*Kthvalue.apply(input, k, dim, keepdim))


def median(input, dim=None, keepdim=False):
    if dim is None:
        return Median.apply(input)
    return MedianResult(*MedianDim.apply(input, dim, keepdim))


TENSOR_METHODS: dict = {
    "sort": lambda self, dim=-1, descending=False, *, stable=None: sort(self, dim, descending, stable=stable),
    "argsort": lambda self, dim=-1, descending=False, stable=False: argsort(self, dim, descending, stable),
    "msort": msort,
    "topk": lambda self, k, dim=-1, largest=True, sorted=True: topk(self, k, dim, largest, sorted),
    "kthvalue": lambda self, k, dim=-1, keepdim=False: kthvalue(self, k, dim, keepdim),
    "median": lambda self, dim=None, keepdim=False: median(self, dim, keepdim),
    "unique": unique,
}
TORCH_FUNCTIONS: dict = {"sort": sort, "argsort": argsort, "msort": msort, "topk": topk, "kthvalue": kthvalue,
                         "median": median, "unique": unique}
FUNCTIONAL: dict = {}
