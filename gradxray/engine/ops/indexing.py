"""Advanced indexing, index assignment, gather/scatter, masks, where, and the shape ops built on them
(stack, repeat, roll, flip, pad, tril/triu, interpolate).

Python indexing follows torch's ``THPVariable_getitem`` / ``setitem``: ints, slices, None and Ellipsis
become views first (select, slice, unsqueeze), then the index tensors left over go to one ``index``
(or ``index_put_``) call with None for the dims they skip.  Boolean masks make the output size depend
on data: the shape backend raises :class:`DataDependentShapeError` for them rather than guess.
"""
from __future__ import annotations

import math

from .. import backends
from .. import dtypes as _dt
from ..creation import _filled, _like, new_zeros, zeros_like
from ..function import Function
from ..symbolic import sym_prod
from ..tensor import Tensor, wrap_dim
from ._kernel import inplace, kernel, view
from .misc import to_dtype
from .pointwise import _check_inplace, mul
from .reduce import sum as _sum
from .shapes import broadcast_shapes
from .views import (Clone, Select, Slice, Unsqueeze, View, cat, expand, flatten, permute, reshape, squeeze,
                    transpose, unsqueeze, view_)


class DataDependentShapeError(RuntimeError):
    """An output size that depends on tensor values (a mask's count of True), unknown without data."""


# torch's ScalarType names, as its error messages spell dtypes
_SCALAR_TYPE = {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16",
                "int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
# the C++ type names torch's masked_fill_ message uses
_CPP_TYPE = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
             "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char"}

_MASK_DTYPES = (_dt.bool_, _dt.uint8)
_INDEX_DTYPES = (_dt.int64, _dt.int32, _dt.uint8, _dt.bool_)
# torch saves the whole index list (one entry per indexed dim; at most one per dim of a tensor)
_INDICES_NAMES = ("indices",) * 64


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _count_true(mask: Tensor, op: str) -> int:
    if mask.data_ is None:
        raise DataDependentShapeError(
            f"{op}: the output size is the number of True elements of a boolean mask, which depends on its values; "
            "the shape backend has no data to count them")
    return int((mask.data_ != 0).sum())


def _int_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


# -- advanced indexing: index / index_put ---------------------------------------

def _index_shape(x: Tensor, indices) -> list:
    """Result shape of ``aten.index(x, indices)`` (torch's expandTensors + index shape rule)."""
    per_dim = []                # per indexed dim: None (kept whole) or the shape of its index
    for idx in indices:
        if idx is None:
            per_dim.append(None)
            continue
        if idx.dtype not in _INDEX_DTYPES:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        if idx.dtype in _MASK_DTYPES:
            first = len(per_dim)
            for j in range(idx.dim()):
                if first + j >= x.dim() or int(idx.shape[j]) != int(x.shape[first + j]):
                    raise IndexError(f"The shape of the mask {_shape_text(idx.shape)} at index {j} does not match "
                                     f"the shape of the indexed tensor {_shape_text(x.shape)} at index {first + j}")
            count = _count_true(idx, "boolean mask indexing")
            per_dim.extend([(count,)] * idx.dim())     # a mask is its nonzero() coordinates, one per dim
        else:
            per_dim.append(tuple(idx.shape))
    if len(per_dim) > x.dim():
        raise IndexError(f"too many indices for tensor of dimension {x.dim()} (got {len(per_dim)})")
    indexed = [i for i, s in enumerate(per_dim) if s is not None]
    if not indexed:
        return list(x.shape)
    try:
        joint = list(broadcast_shapes(*(per_dim[i] for i in indexed)))
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(_shape_text(per_dim[i]) for i in indexed)) from None
    if indexed == list(range(indexed[0], indexed[-1] + 1)):
        # adjacent index tensors: their joint shape replaces the indexed dims in place
        return list(x.shape[:indexed[0]]) + joint + list(x.shape[indexed[-1] + 1:])
    # separated by a kept dim: the joint shape goes first, the kept dims follow in order
    return joint + [s for i, s in enumerate(x.shape) if i >= len(per_dim) or per_dim[i] is None]


class Index(Function):
    """y = x[indices]: advanced indexing with one index tensor (or None) per leading dim of x.
    Saves: indices (x only as its sizes)."""

    saves = _INDICES_NAMES

    @staticmethod
    def forward(ctx, x, indices):
        indices = list(indices)
        shape = _index_shape(x, indices)
        ctx.save_for_backward(*indices)
        ctx.self_shape = x.shape
        return kernel("index", (shape, x.dtype), x, indices)

    @staticmethod
    def backward(ctx, grad):
        # index_backward: accumulate grad into zeros of x's size with _index_put_impl_
        zeros = new_zeros(grad, ctx.self_shape)
        return IndexPutImpl.apply(zeros, list(ctx.saved_tensors), grad, True, True), None


def _check_index_put(x, indices, values):
    if values.dtype is not x.dtype:
        raise RuntimeError("Index put requires the source and destination dtypes match, got "
                           f"{_SCALAR_TYPE[x.dtype.name]} for the destination and "
                           f"{_SCALAR_TYPE[values.dtype.name]} for the source.")
    try:
        target = _index_shape(x, indices)
    except DataDependentShapeError:
        return              # the mask's count is unknown here; torch's kernel checks it with data
    joint = None
    try:
        joint = broadcast_shapes(values.shape, target)
    except RuntimeError:
        pass
    if joint is None or [int(s) for s in joint] != [int(s) for s in target]:
        raise RuntimeError(f"shape mismatch: value tensor of shape {_shape_text(values.shape)} cannot be broadcast "
                           f"to indexing result of shape {_shape_text(target)}")


class _IndexPutFamily(Function):
    """Shared backward of index_put / index_put_ / _index_put_impl_ (derivatives.yaml):
    self gets grad (accumulate) or grad with the written places zeroed; values get grad[indices]."""

    saves = _INDICES_NAMES

    @staticmethod
    def _prepare(ctx, x, indices, values, accumulate):
        indices = list(indices)
        _check_index_put(x, indices, values)
        ctx.accumulate = accumulate
        ctx.values_meta = (values.shape, values.dtype)    # zeros_like(values) needs only sizes and dtype
        ctx.save_for_backward(*indices)
        return indices

    @staticmethod
    def backward(ctx, grad):
        indices = list(ctx.saved_tensors)
        g_self = g_values = None
        if ctx.needs_input_grad[0]:
            g_self = grad if ctx.accumulate else IndexPut.apply(grad, indices, new_zeros(grad, *ctx.values_meta),
                                                                 False)
        if ctx.needs_input_grad[2]:
            g_values = Index.apply(grad, indices)      # summed to values' shape by the engine (broadcast values)
        return g_self, None, g_values, None, None


class IndexPut(_IndexPutFamily):
    """y = x.index_put(indices, values, accumulate) (a copy of x).  Saves: indices."""

    @staticmethod
    def forward(ctx, x, indices, values, accumulate=False):
        indices = _IndexPutFamily._prepare(ctx, x, indices, values, accumulate)
        return kernel("index_put", (x.shape, x.dtype), x, indices, values, accumulate)


class IndexPutInplace(_IndexPutFamily):
    """x.index_put_(indices, values, accumulate) (in place): ``x[idx] = v``.  Saves: indices."""

    node_name = "IndexPutBackward0"

    @staticmethod
    def forward(ctx, x, indices, values, accumulate=False):
        indices = _IndexPutFamily._prepare(ctx, x, indices, values, accumulate)
        ctx.mark_dirty(x)
        return inplace("index_put_", x, indices, values, accumulate)


class IndexPutImpl(_IndexPutFamily):
    """x._index_put_impl_(indices, values, accumulate, unsafe) (in place): the kernel of index's backward.
    Saves: indices."""

    @staticmethod
    def forward(ctx, x, indices, values, accumulate=False, unsafe=False):
        indices = _IndexPutFamily._prepare(ctx, x, indices, values, accumulate)
        ctx.mark_dirty(x)
        return inplace("_index_put_impl_", x, indices, values, accumulate, unsafe)


# -- copy_ and fill_ (what assignment to a basic-indexed view runs) ------------------

class Copy(Function):
    """x.copy_(src): src broadcast to x's shape and converted to x's dtype (in place).  Saves: nothing.
    Backward: zeros for x (all of it is overwritten), grad cast to src's dtype (summed to its shape) for src."""

    node_name = "CopyBackwards"

    @staticmethod
    def forward(ctx, x, src, non_blocking=False):
        _check_inplace(x, src)
        ctx.src_dtype = src.dtype
        ctx.mark_dirty(x)
        return inplace("copy_", x, src, non_blocking)

    @staticmethod
    def backward(ctx, grad):
        g_self = zeros_like(grad) if ctx.needs_input_grad[0] else None
        g_src = to_dtype(grad, ctx.src_dtype) if ctx.needs_input_grad[1] else None
        return g_self, g_src, None


class FillTensorInplace(Function):
    """x.fill_(value) with a 0-dim value tensor (in place).  Saves: nothing."""

    node_name = "FillBackward1"

    @staticmethod
    def forward(ctx, x, value):
        ctx.mark_dirty(x)
        return inplace("fill_", x, value)

    @staticmethod
    def backward(ctx, grad):
        g_self = zeros_like(grad) if ctx.needs_input_grad[0] else None
        g_value = _sum(grad) if ctx.needs_input_grad[1] else None
        return g_self, g_value


def copy_(self, src, non_blocking=False):
    return Copy.apply(self, src, non_blocking)


# -- Python indexing --------------------------------------------------------------

class Alias(Function):
    """y = alias(x): a new view of all of x (``x[...]``, ``movedim`` of a 0-dim tensor).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x):
        return view(x, x.shape, x.stride(), x.storage_offset(), "alias")

    @staticmethod
    def backward(ctx, grad):
        return grad


def _treat_sequence_as_tuple(index) -> bool:
    """torch's (NumPy's legacy) rule: a short list holding a slice, None, Ellipsis, a tensor or a
    sequence is a tuple of indices, not one index."""
    if not isinstance(index, list) or len(index) >= 32:
        return False
    return any(isinstance(o, (Tensor, list, tuple, slice)) or o is None or o is Ellipsis for o in index)


def _nested_shape(seq):
    shape, level = [], seq
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    return shape


def _flat_values(seq):
    if isinstance(seq, (list, tuple)):
        for v in seq:
            yield from _flat_values(v)
    else:
        yield seq


def _sequence_to_index(seq, like: Tensor) -> Tensor:
    """A Python list used as an index, as torch converts it: a bool tensor if all entries are bools,
    else int64 (a new tensor on ``like``'s backend and device)."""
    values = list(_flat_values(seq))
    if values and all(isinstance(v, bool) for v in values):
        dtype = _dt.bool_
    elif all(isinstance(v, int) for v in values):
        dtype = _dt.int64
    else:
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    shape = tuple(_nested_shape(seq))
    data = None
    kind = backends.data_kind(like)
    if kind == "torch":
        data = backends.torch().tensor(seq, dtype=backends.torch_dtype(dtype), device=str(like.device))
    elif kind == "numpy":
        import numpy as np
        from ..backends import numpy_kernels
        data = np.array(seq, dtype=numpy_kernels.np_dtype(dtype)).reshape(shape)
    return Tensor._new(shape, dtype, like.device, data=data)


def _bool_as_index(value: bool, like: Tensor) -> Tensor:
    """torch's boolToIndexingTensor: True is the index [0], False the empty index."""
    return _like(_filled("zeros"), like, dtype=_dt.int64, shape=(1,) if value else (0,))


def _specified_dims(index) -> int:
    count = 0
    for obj in index:
        if isinstance(obj, Tensor):
            count += obj.dim() if obj.dtype in _MASK_DTYPES else 1
        elif obj is None or obj is Ellipsis or isinstance(obj, bool):
            continue
        else:
            count += 1
    return count


def _apply_slicing(x: Tensor, index: tuple):
    """torch's applySlicing: ints/slices/None become views of x; index tensors are collected,
    each at the dim it indexes.  Returns the view and the index list (None where a dim is kept)."""
    specified = _specified_dims(index)
    if specified > x.dim():
        raise IndexError(f"too many indices for tensor of dimension {x.dim()}")
    result, dim = x, 0
    indices: list = []
    mask_extra_dims = 0        # a k-dim mask is one entry of the index list but covers k dims

    def record(t):
        nonlocal dim, mask_extra_dims
        position = dim - mask_extra_dims
        indices.extend([None] * (position + 1 - len(indices)))
        indices[position] = t
        covered = t.dim() if t.dtype in _MASK_DTYPES else 1
        dim += covered
        mask_extra_dims += covered - 1

    for obj in index:
        if obj is Ellipsis:
            dim += x.dim() - specified
        elif obj is None:
            result = Unsqueeze.apply(result, dim)
            dim += 1
        elif isinstance(obj, bool):
            result = Unsqueeze.apply(result, dim)
            record(_bool_as_index(obj, x))
        elif isinstance(obj, int):
            result = Select.apply(result, dim, obj)
        elif isinstance(obj, slice):
            full = obj.start is None and obj.stop is None and obj.step in (None, 1)
            if not full:
                if obj.step is not None and obj.step <= 0:
                    raise ValueError("step must be greater than zero")
                result = Slice.apply(result, dim, obj.start, obj.stop, obj.step or 1)
            dim += 1
        elif isinstance(obj, Tensor):
            if obj.dim() == 0 and obj.dtype not in _MASK_DTYPES and not obj.dtype.is_floating_point:
                # a 0-dim integer tensor is an int index: select, a view.  Without data its value is
                # unknown; the view's shape and strides are still exact (its offset is taken at index 0).
                result = Select.apply(result, dim, int(obj.item()) if obj.data_ is not None else 0)
            elif obj.dim() == 0 and obj.dtype in _MASK_DTYPES:
                result = Unsqueeze.apply(result, dim)
                record(_bool_as_index(bool(obj.item()) if obj.data_ is not None else True, x))
            else:
                record(obj)
        elif isinstance(obj, (list, tuple)):
            record(_sequence_to_index(obj, x))
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
                             "valid indices (got " + type(obj).__name__ + ")")
    return result, indices


def _as_index_tuple(index) -> tuple:
    if isinstance(index, tuple):
        return index
    if _treat_sequence_as_tuple(index):
        return tuple(index)
    return (index,)


def getitem(x: Tensor, index):
    """``x[index]`` as torch evaluates it (views for basic indices, one ``index`` for tensors)."""
    if index is None:
        return Unsqueeze.apply(x, 0)
    if isinstance(index, slice):
        # a lone slice is always a slice view in torch, even a full one
        if index.step is not None and index.step <= 0:
            raise ValueError("step must be greater than zero")
        return Slice.apply(x, 0, index.start, index.stop, index.step or 1)
    result, indices = _apply_slicing(x, _as_index_tuple(index))
    if not indices:
        return Alias.apply(x) if result is x else result
    return Index.apply(result, indices)


def _strip_leading_ones(t: Tensor) -> Tensor:
    """torch's slicePrefix1sSize: an assigned value loses its leading size-1 dims (a view)."""
    lead = 0
    while lead < t.dim() and int(t.shape[lead]) == 1:
        lead += 1
    return View.apply(t, tuple(t.shape[lead:])) if lead else t


def _copy_to(dst: Tensor, src: Tensor, src_is_scalar: bool) -> None:
    """torch's copy_to: same sizes copy, a CPU (or Python) scalar fills, anything else broadcasts."""
    if [int(s) for s in dst.shape] == [int(s) for s in src.shape]:
        Copy.apply(dst, src)
    elif src.dim() == 0 and (src_is_scalar or src.device.type == "cpu"):
        FillTensorInplace.apply(dst, src)
    else:
        src = _strip_leading_ones(src)
        if [int(s) for s in dst.shape] != [int(s) for s in src.shape]:
            src = expand(src, dst.shape)
        Copy.apply(dst, src)


def setitem(x: Tensor, index, value) -> None:
    """``x[index] = value`` as torch runs it: copy_/fill_ into a view, or index_put_ for index tensors."""
    is_scalar = not isinstance(value, Tensor)
    if is_scalar:
        # a Python number becomes a 0-dim tensor of x's dtype (a small new allocation, as in torch)
        value = _like(_filled("full", value), x, shape=())
    if index is False:
        return
    if index is None or index is True:
        _copy_to(Unsqueeze.apply(x, 0), value, is_scalar)
        return
    if index is Ellipsis:
        _copy_to(x, value, is_scalar)
        return
    if isinstance(index, slice):
        full = index.start is None and index.stop is None and index.step in (None, 1)
        _copy_to(x if full else Slice.apply(x, 0, index.start, index.stop, index.step or 1), value, is_scalar)
        return
    sliced, indices = _apply_slicing(x, _as_index_tuple(index))
    if not indices:
        _copy_to(sliced, value, is_scalar)
        return
    IndexPutInplace.apply(sliced, indices, _strip_leading_ones(value), False)


def index_put_(self, indices, values, accumulate=False):
    return IndexPutInplace.apply(self, list(indices), values, accumulate)


def index_put(input, indices, values, accumulate=False):
    return IndexPut.apply(input, list(indices), values, accumulate)


# -- gather / scatter ---------------------------------------------------------

def _check_gather_like(op, x, dim, index, src=None):
    dim = wrap_dim(dim, x.dim())
    if index.dtype not in (_dt.int64, _dt.int32) and op == "gather":
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    if index.dtype is not _dt.int64 and op != "gather":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index")
    if src is not None and src.dtype is not x.dtype:
        raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype")
    if max(index.dim(), 1) != max(x.dim(), 1):
        what = "input" if op == "gather" else "self"
        raise RuntimeError(f"Index tensor must have the same number of dimensions as {what} tensor")
    for d in range(index.dim()):
        too_big_for_self = d != dim and int(index.shape[d]) > int(x.shape[d])
        too_big_for_src = src is not None and int(index.shape[d]) > int(src.shape[d])
        if op == "gather" and too_big_for_self:
            raise RuntimeError(f"Size does not match at dimension {d} expected index {_shape_text(index.shape)} to "
                               f"be no larger than self {_shape_text(x.shape)} apart from dimension {dim}")
        if op != "gather" and (too_big_for_self or too_big_for_src):
            raise RuntimeError(f"Expected index {_shape_text(index.shape)} to be no larger than self "
                               f"{_shape_text(x.shape)} apart from dimension {dim}"
                               + (f" and to be no larger size than src {_shape_text(src.shape)}" if src is not None
                                  else ""))
    return dim


class Gather(Function):
    """y = x.gather(dim, index).  Saves: self (torch's gather_backward takes it, for its sizes), index."""

    saves = ("self", "index")

    @staticmethod
    def forward(ctx, x, dim, index, sparse_grad=False):
        if sparse_grad:
            raise NotImplementedError("gather(sparse_grad=True) is not supported: the engine has no sparse tensors")
        dim = _check_gather_like("gather", x, dim, index)
        ctx.save_for_backward(x, index)
        ctx.dim = dim
        return kernel("gather", (index.shape, x.dtype), x, dim, index)

    @staticmethod
    def backward(ctx, grad):
        x, index = ctx.saved_tensors
        # gather_backward: zeros of self's size, then scatter_add_ of grad
        zeros = new_zeros(grad, x.shape)
        return ScatterAddInplace.apply(zeros, ctx.dim, index, grad), None, None, None


class _ScatterFamily(Function):
    saves = ("index",)

    @staticmethod
    def _prepare(ctx, op, x, dim, index, src):
        """Checks, then what every scatter backward needs: dim, whether it adds, the index."""
        dim = _check_gather_like(op, x, dim, index, src if isinstance(src, Tensor) else None)
        ctx.dim, ctx.adds = dim, op == "scatter_add"
        ctx.save_for_backward(index)
        return dim

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        g_self = g_src = None
        if ctx.needs_input_grad[0]:
            g_self = grad if ctx.adds else ScatterValue.apply(grad, ctx.dim, index, 0)
        if len(ctx.needs_input_grad) > 3 and ctx.needs_input_grad[3]:
            g_src = Gather.apply(grad, ctx.dim, index)
        return g_self, None, None, g_src


def _no_reduce(reduce):
    if reduce is not None:
        raise NotImplementedError("scatter with reduce= is not supported (torch deprecates it for scatter_reduce)")


class Scatter(_ScatterFamily):
    """y = x.scatter(dim, index, src).  Saves: index.  Backward: grad with the written places zeroed
    for x; grad gathered at index for src."""


    @staticmethod
    def forward(ctx, x, dim, index, src):
        dim = _ScatterFamily._prepare(ctx, "scatter", x, dim, index, src)
        return kernel("scatter", (x.shape, x.dtype), x, dim, index, src)


class ScatterValue(_ScatterFamily):
    """y = x.scatter(dim, index, value) for a scalar value.  Saves: index."""

    node_name = "ScatterBackward1"

    @staticmethod
    def forward(ctx, x, dim, index, value):
        dim = _ScatterFamily._prepare(ctx, "scatter", x, dim, index, None)
        return kernel("scatter", (x.shape, x.dtype), x, dim, index, value)


class ScatterInplace(_ScatterFamily):
    """x.scatter_(dim, index, src) (in place).  Saves: index."""

    node_name = "ScatterBackward0"

    @staticmethod
    def forward(ctx, x, dim, index, src):
        dim = _ScatterFamily._prepare(ctx, "scatter", x, dim, index, src)
        ctx.mark_dirty(x)
        return inplace("scatter_", x, dim, index, src)


class ScatterValueInplace(_ScatterFamily):
    """x.scatter_(dim, index, value) for a scalar value (in place).  Saves: index."""

    node_name = "ScatterBackward1"

    @staticmethod
    def forward(ctx, x, dim, index, value):
        dim = _ScatterFamily._prepare(ctx, "scatter", x, dim, index, None)
        ctx.mark_dirty(x)
        return inplace("scatter_", x, dim, index, value)


class ScatterAdd(_ScatterFamily):
    """y = x.scatter_add(dim, index, src).  Saves: index.  Backward: grad for x, grad gathered at index
    for src."""


    @staticmethod
    def forward(ctx, x, dim, index, src):
        dim = _ScatterFamily._prepare(ctx, "scatter_add", x, dim, index, src)
        return kernel("scatter_add", (x.shape, x.dtype), x, dim, index, src)


class ScatterAddInplace(_ScatterFamily):
    """x.scatter_add_(dim, index, src) (in place; gather's backward kernel).  Saves: index."""

    node_name = "ScatterAddBackward0"

    @staticmethod
    def forward(ctx, x, dim, index, src):
        dim = _ScatterFamily._prepare(ctx, "scatter_add", x, dim, index, src)
        ctx.mark_dirty(x)
        return inplace("scatter_add_", x, dim, index, src)


def gather(input, dim, index, *, sparse_grad=False):
    return Gather.apply(input, dim, index, sparse_grad)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    _no_reduce(reduce)
    if isinstance(src, Tensor):
        return Scatter.apply(input, dim, index, src)
    return ScatterValue.apply(input, dim, index, value if src is None else src)


def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    _no_reduce(reduce)
    if isinstance(src, Tensor):
        return ScatterInplace.apply(self, dim, index, src)
    return ScatterValueInplace.apply(self, dim, index, value if src is None else src)


def scatter_add(input, dim, index, src):
    return ScatterAdd.apply(input, dim, index, src)


def scatter_add_(self, dim, index, src):
    return ScatterAddInplace.apply(self, dim, index, src)


def take_along_dim(input, indices, dim=None):
    """torch's take_along_dim: both sides broadcast (expand) to each other's sizes, then gather
    (without dim: of the flattened input)."""
    if dim is None:
        return gather(view_(input, -1), 0, view_(indices, -1))
    if input.dim() != indices.dim():
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {input.dim()} dimensions for input, and {indices.dim()} dimensions for indices")
    if indices.dtype is not _dt.int64:
        raise RuntimeError("torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{_SCALAR_TYPE[indices.dtype.name]}")
    dim = wrap_dim(dim, input.dim())
    self_sizes = list(input.shape)
    self_sizes[dim] = indices.shape[dim]
    indices_b = expand(indices, broadcast_shapes(self_sizes, indices.shape))
    index_sizes = list(indices.shape)
    index_sizes[dim] = input.shape[dim]
    input_b = expand(input, broadcast_shapes(index_sizes, input.shape))
    # negative indices count from the end: torch wraps the broadcast indices (a new int64 tensor)
    indices_b = where(indices_b < 0, indices_b + input.shape[dim], indices_b)
    return gather(input_b, dim, indices_b)


# -- index_select / index_add ---------------------------------------------------

class IndexSelect(Function):
    """y = x.index_select(dim, index).  Saves: index.  Backward: index_add_ of grad into zeros."""

    saves = ("index",)

    @staticmethod
    def forward(ctx, x, dim, index):
        dim = wrap_dim(dim, x.dim())
        if index.dim() > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        if index.dtype not in (_dt.int64, _dt.int32):
            raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
        shape = list(x.shape)
        if shape:
            shape[dim] = index.numel()
        ctx.dim, ctx.self_shape = dim, x.shape
        ctx.save_for_backward(index)
        return kernel("index_select", (shape, x.dtype), x, dim, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        zeros = new_zeros(grad, ctx.self_shape)
        return IndexAddInplace.apply(zeros, ctx.dim, index, grad), None, None


class _IndexAddFamily(Function):
    """Shared by index_add / index_add_.  Saves: index and source when source needs grad (torch's
    formula reads source's dims and expands to it)."""

    saves = ("index", "source")

    @staticmethod
    def _prepare(ctx, x, dim, index, source, alpha):
        dim = wrap_dim(dim, x.dim())
        if index.dim() > 1:
            raise IndexError("index_add_(): Index is supposed to be a vector")
        if index.dtype not in (_dt.int64, _dt.int32):
            raise RuntimeError("index_add_(): Expected dtype int32/int64 for index")
        n = int(index.numel())
        src_len = int(source.shape[dim]) if source.dim() > 0 else 1
        if n != src_len:
            raise RuntimeError(f"index_add_(): Number of indices ({n}) should be equal to source.size(dim): "
                               f"({src_len}), for dim: {dim}")
        if source.dim() > 0 and [int(s) for d, s in enumerate(x.shape) if d != dim] != \
                [int(s) for d, s in enumerate(source.shape) if d != dim]:
            raise RuntimeError("source tensor shape must match self tensor shape, excluding the specified dimension. "
                               f"Got self.shape = {_shape_text(x.shape)} source.shape = {_shape_text(source.shape)}")
        need_source = ctx.needs_input_grad[3] if ctx.needs_input_grad else False
        ctx.dim, ctx.alpha = dim, alpha
        ctx.save_for_backward(index if need_source else None, source if need_source else None)
        return dim

    @staticmethod
    def backward(ctx, grad):
        index, source = ctx.saved_tensors
        g_source = None
        if ctx.needs_input_grad[3]:
            if source.dim() > 0:
                g_source = expand(IndexSelect.apply(grad, ctx.dim, index), source.shape)
            else:
                g_source = IndexSelect.apply(grad, ctx.dim, squeeze(index, 0))
            if ctx.alpha != 1:
                g_source = mul(g_source, ctx.alpha)
        return grad if ctx.needs_input_grad[0] else None, None, None, g_source, None


class IndexAdd(_IndexAddFamily):
    """y = x.index_add(dim, index, source, alpha=alpha)."""

    @staticmethod
    def forward(ctx, x, dim, index, source, alpha=1):
        dim = _IndexAddFamily._prepare(ctx, x, dim, index, source, alpha)
        return kernel("index_add", (x.shape, x.dtype), x, dim, index, source, alpha=alpha)


class IndexAddInplace(_IndexAddFamily):
    """x.index_add_(dim, index, source, alpha=alpha) (in place; index_select's backward kernel)."""

    node_name = "IndexAddBackward0"

    @staticmethod
    def forward(ctx, x, dim, index, source, alpha=1):
        dim = _IndexAddFamily._prepare(ctx, x, dim, index, source, alpha)
        ctx.mark_dirty(x)
        return inplace("index_add_", x, dim, index, source, alpha=alpha)


def index_select(input, dim, index):
    return IndexSelect.apply(input, dim, index)


def index_add(input, dim, index, source, *, alpha=1):
    return IndexAdd.apply(input, dim, index, source, alpha)


def index_add_(self, dim, index, source, *, alpha=1):
    return IndexAddInplace.apply(self, dim, index, source, alpha)


# -- masks ------------------------------------------------------------------------

def _check_mask(mask, op):
    if mask.dtype is not _dt.bool_:
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype "
                           f"{_CPP_TYPE.get(mask.dtype.name, mask.dtype.name)}")


def _check_fill_value(value):
    if isinstance(value, Tensor) and value.dim() != 0:
        raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.dim()} dimension(s).")


class _MaskedFillFamily(Function):
    """Shared backward: grad with the filled places zeroed for x; for a tensor value, the sum of grad
    over the filled places (torch's masked_fill_backward: masked_select, then sum)."""

    saves = ("mask",)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        g_self = MaskedFill.apply(grad, mask, 0) if ctx.needs_input_grad[0] else None
        g_value = None
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            g_value = _sum(MaskedSelect.apply(grad, mask))
        return g_self, None, g_value


class MaskedFill(_MaskedFillFamily):
    """y = x.masked_fill(mask, value): x and mask broadcast together.  Saves: mask."""

    @staticmethod
    def forward(ctx, x, mask, value):
        _check_mask(mask, "masked_fill_")
        _check_fill_value(value)
        ctx.save_for_backward(mask)
        shape = broadcast_shapes(mask.shape, x.shape)
        return kernel("masked_fill", (shape, x.dtype), x, mask, value)


class MaskedFillInplace(_MaskedFillFamily):
    """x.masked_fill_(mask, value) (in place; mask broadcasts to x).  Saves: mask."""

    node_name = "MaskedFillBackward0"

    @staticmethod
    def forward(ctx, x, mask, value):
        _check_mask(mask, "masked_fill_")
        _check_fill_value(value)
        _check_inplace(x, mask)
        ctx.save_for_backward(mask)
        ctx.mark_dirty(x)
        return inplace("masked_fill_", x, mask, value)


class MaskedFillTensor(MaskedFill):
    """y = x.masked_fill(mask, value) with a 0-dim value tensor.  Saves: mask."""

    node_name = "MaskedFillBackward1"


class MaskedFillTensorInplace(MaskedFillInplace):
    """x.masked_fill_(mask, value) with a 0-dim value tensor (in place).  Saves: mask."""

    node_name = "MaskedFillBackward1"


def masked_fill(input, mask, value):
    if isinstance(value, Tensor):
        return MaskedFillTensor.apply(input, mask, value)
    return MaskedFill.apply(input, mask, value)


def masked_fill_(self, mask, value):
    if isinstance(value, Tensor):
        return MaskedFillTensorInplace.apply(self, mask, value)
    return MaskedFillInplace.apply(self, mask, value)


class MaskedSelect(Function):
    """y = x.masked_select(mask): the elements where (broadcast) mask is True, as a 1-D tensor.
    Saves: mask, self.  Backward: masked_scatter_ of grad into zeros of the broadcast size."""

    saves = ("mask", "self")

    @staticmethod
    def forward(ctx, x, mask):
        if mask.dtype is not _dt.bool_:
            raise RuntimeError("masked_select: expected BoolTensor for mask")
        shape = broadcast_shapes(mask.shape, x.shape)
        if [int(s) for s in mask.shape] != [int(s) for s in shape]:
            mask_b = expand(mask, shape)
        else:
            mask_b = mask
        count = _count_true(mask_b, "masked_select")
        ctx.save_for_backward(mask, x)
        ctx.shape = shape
        return kernel("masked_select", ((count,), x.dtype), x, mask)

    @staticmethod
    def backward(ctx, grad):
        mask, x = ctx.saved_tensors
        zeros = new_zeros(grad, ctx.shape, x.dtype)
        return MaskedScatterInplace.apply(zeros, mask, grad), None


class _MaskedScatterFamily(Function):
    """Shared backward of masked_scatter(_): grad with the written places zeroed for x; for source,
    the masked elements of grad laid out in source's shape (masked_scatter_backward)."""

    saves = ("mask",)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        g_self = MaskedFill.apply(grad, mask, 0) if ctx.needs_input_grad[0] else None
        g_source = MaskedScatterBackward.apply(grad, mask, ctx.source_shape) if ctx.needs_input_grad[2] else None
        return g_self, None, g_source


class MaskedScatter(_MaskedScatterFamily):
    """y = x.masked_scatter(mask, source).  Saves: mask."""

    @staticmethod
    def forward(ctx, x, mask, source):
        _check_mask(mask, "masked_scatter_")
        ctx.save_for_backward(mask)
        ctx.source_shape = source.shape
        shape = broadcast_shapes(mask.shape, x.shape)
        return kernel("masked_scatter", (shape, x.dtype), x, mask, source)


class MaskedScatterInplace(_MaskedScatterFamily):
    """x.masked_scatter_(mask, source) (in place; masked_select's backward kernel).  Saves: mask."""

    node_name = "MaskedScatterBackward0"

    @staticmethod
    def forward(ctx, x, mask, source):
        _check_mask(mask, "masked_scatter_")
        _check_inplace(x, mask)
        ctx.save_for_backward(mask)
        ctx.source_shape = source.shape
        ctx.mark_dirty(x)
        return inplace("masked_scatter_", x, mask, source)


class MaskedScatterBackward(Function):
    """g = masked_scatter_backward(grad, mask, sizes): grad's masked elements, zero-padded, viewed as
    sizes.  Saves: mask.  Derivative: zeros_like(grad).masked_scatter(mask, gg)."""

    saves = ("mask",)

    @staticmethod
    def forward(ctx, grad, mask, sizes):
        ctx.save_for_backward(mask)
        ctx.grad_meta = (grad.shape, grad.dtype)
        return kernel("masked_scatter_backward", (sizes, grad.dtype), grad, mask, [int(s) for s in sizes])

    @staticmethod
    def backward(ctx, gg):
        (mask,) = ctx.saved_tensors
        return MaskedScatter.apply(new_zeros(gg, *ctx.grad_meta), mask, gg), None, None


def masked_select(input, mask):
    return MaskedSelect.apply(input, mask)


def masked_scatter(input, mask, source):
    return MaskedScatter.apply(input, mask, source)


def masked_scatter_(self, mask, source):
    return MaskedScatterInplace.apply(self, mask, source)


# -- where / nonzero -----------------------------------------------------------------

def nonzero(input, *, as_tuple=False):
    """Coordinates of the nonzero elements (int64, (count, ndim)); data-dependent, never differentiable."""
    count = _count_true(input, "nonzero")
    if as_tuple:
        source = unsqueeze(input, 0) if input.dim() == 0 else input
        return unbind(nonzero(source), 1)
    return kernel("nonzero", ((count, input.dim()), _dt.int64), input)


def where(condition, input=None, other=None):
    """torch.where: ``where(c)`` is ``nonzero(c, as_tuple=True)``; ``where(c, x, y)`` selects, with
    x and y tensors or Python scalars (broadcasting and type promotion as in torch)."""
    from .elementwise import SelectWhere
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if condition.dtype is not _dt.bool_:
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_SCALAR_TYPE[condition.dtype.name]}")
    return SelectWhere.apply(condition, input, other)


# -- triangular parts, roll, flip --------------------------------------------------------------

class _Triangle(Function):
    """y = tril/triu(x, diagonal).  Saves: nothing.  Backward: the same part of grad."""

    aten = ""

    @classmethod
    def forward(cls, ctx, x, diagonal=0):
        if x.dim() < 2:
            raise RuntimeError(f"{cls.aten}: input tensor must have at least 2 dimensions")
        ctx.diagonal = diagonal
        return kernel(cls.aten, (x.shape, x.dtype), x, diagonal)

    @classmethod
    def backward(cls, ctx, grad):
        return cls.apply(grad, ctx.diagonal), None


class Tril(_Triangle):
    aten = "tril"


class Triu(_Triangle):
    aten = "triu"


class _TriangleInplace(Function):
    """x.tril_/triu_(diagonal) (in place).  Saves: nothing."""

    aten = ""
    outplace = _Triangle

    @classmethod
    def forward(cls, ctx, x, diagonal=0):
        if x.dim() < 2:
            raise RuntimeError(f"{cls.aten[:-1]}: input tensor must have at least 2 dimensions")
        ctx.diagonal = diagonal
        ctx.mark_dirty(x)
        return inplace(cls.aten, x, diagonal)

    @classmethod
    def backward(cls, ctx, grad):
        return cls.outplace.apply(grad, ctx.diagonal), None


class TrilInplace(_TriangleInplace):
    node_name = "TrilBackward0"
    aten, outplace = "tril_", Tril


class TriuInplace(_TriangleInplace):
    node_name = "TriuBackward0"
    aten, outplace = "triu_", Triu


class Roll(Function):
    """y = x.roll(shifts, dims) (no dims: over the flattened tensor).  Saves: nothing.
    Backward: grad rolled back (shifts negated, both lists reversed)."""

    @staticmethod
    def forward(ctx, x, shifts, dims=()):
        shifts, dims = _int_list(shifts), _int_list(dims) if dims is not None else []
        if not dims and len(shifts) != 1:
            raise RuntimeError(f"`shifts` required to be of size 1 when `dims` is empty, but got {len(shifts)}")
        if dims and len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
        dims = [wrap_dim(d, x.dim()) for d in dims]
        ctx.shifts, ctx.dims = shifts, dims
        return kernel("roll", (x.shape, x.dtype), x, shifts, dims)

    @staticmethod
    def backward(ctx, grad):
        return Roll.apply(grad, [-s for s in reversed(ctx.shifts)], list(reversed(ctx.dims))), None, None


class Flip(Function):
    """y = x.flip(dims).  Saves: nothing.  Backward: grad flipped."""

    @staticmethod
    def forward(ctx, x, dims):
        dims = [wrap_dim(d, x.dim()) for d in _int_list(dims)]
        for d in dims:
            if dims.count(d) > 1:
                raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        ctx.dims = dims
        return kernel("flip", (x.shape, x.dtype), x, dims)

    @staticmethod
    def backward(ctx, grad):
        return Flip.apply(grad, ctx.dims), None


def _varargs(sizes):
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
        return list(sizes[0])
    return list(sizes)


def roll(input, shifts, dims=None):
    return Roll.apply(input, shifts, dims)


def flip(input, *dims):
    return Flip.apply(input, _varargs(dims))


# -- repeat, tile, repeat_interleave ------------------------------------------------------------

class Repeat(Function):
    """y = x.repeat(repeats).  Saves: nothing.  Backward: repeat_backward (view as (repeat, size)
    pairs, then sum over the repeats)."""

    @staticmethod
    def forward(ctx, x, repeats):
        repeats = list(repeats)
        if len(repeats) < x.dim():
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                               "of tensor")
        padded = [1] * (len(repeats) - x.dim()) + list(x.shape)
        shape = [s * r for s, r in zip(padded, repeats)]
        if any(int(s) < 0 for s in shape):
            bad = next(int(s) for s in shape if int(s) < 0)
            raise RuntimeError(f"Trying to create tensor with negative dimension {bad}: {_shape_text(shape)}")
        ctx.repeats, ctx.in_shape = repeats, x.shape
        return kernel("repeat", (shape, x.dtype), x, [int(r) for r in repeats])

    @staticmethod
    def backward(ctx, grad):
        repeats, in_shape = ctx.repeats, list(ctx.in_shape)
        if any(int(r) == 0 for r in repeats):
            return new_zeros(grad, in_shape), None
        for _ in range(grad.dim() - len(in_shape)):
            grad = _sum(grad, 0)
        lead = len(repeats) - len(in_shape)
        grad_size, sum_dims = [], []
        for d, size in enumerate(in_shape):
            r = repeats[d + lead]
            if int(r) != 1:
                grad_size.append(r)
                sum_dims.append(len(grad_size) - 1)
            grad_size.append(size)
        if sum_dims:
            grad = _sum(reshape(grad, grad_size), sum_dims)
        return grad, None


def repeat(self, *sizes):
    return Repeat.apply(self, _varargs(sizes))


def tile(input, dims):
    dims = _int_list(dims)
    if input.dim() > len(dims):
        dims = [1] * (input.dim() - len(dims)) + dims
    return Repeat.apply(input, dims)


def repeat_interleave(input, repeats, dim=None, *, output_size=None):
    """torch's repeat_interleave for an int repeat count: unsqueeze, expand, a contiguous clone, flatten."""
    if isinstance(repeats, Tensor):
        raise NotImplementedError("repeat_interleave with a tensor of repeats is not supported (its output size "
                                  "depends on the tensor's values)")
    if repeats < 0:
        raise RuntimeError("Repeats must be non-negative")
    source = input if dim is not None else flatten(input)
    d = wrap_dim(dim if dim is not None else 0, input.dim())
    source = unsqueeze(source, d + 1)
    shape = list(source.shape)
    shape[d + 1] = repeats
    if output_size is not None and int(output_size) != int(shape[d]) * int(repeats):
        raise RuntimeError("repeat_interleave: Invalid output_size, expected output_size to be "
                           f"{int(shape[d]) * int(repeats)} but got {output_size}")
    return flatten(Clone.apply(expand(source, shape)), d, d + 1)


# -- stack, unbind and the shape ops built on views -----------------------------------------

class Stack(Function):
    """y = stack(tensors, dim).  Saves: nothing.  Backward: one select of grad per input."""

    @staticmethod
    def forward(ctx, tensors, dim=0):
        tensors = list(tensors)
        if not tensors:
            raise RuntimeError("stack expects a non-empty TensorList")
        first = tensors[0]
        for i, t in enumerate(tensors[1:], 1):
            if [int(s) for s in t.shape] != [int(s) for s in first.shape]:
                raise RuntimeError(f"stack expects each tensor to be equal size, but got {_shape_text(first.shape)} "
                                   f"at entry 0 and {_shape_text(t.shape)} at entry {i}")
        dim = wrap_dim(dim, first.dim() + 1)
        ctx.dim, ctx.count = dim, len(tensors)
        shape = list(first.shape)
        shape.insert(dim, len(tensors))
        return kernel("stack", (shape, _dt.result_type(*tensors)), tensors, dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(Select.apply(grad, ctx.dim, i) for i in range(ctx.count)), None


class Unbind(Function):
    """xs = x.unbind(dim): one view per index along dim.  Saves: nothing.
    Backward: stack of the incoming gradients (zeros where one is undefined)."""

    @staticmethod
    def forward(ctx, x, dim=0):
        if x.dim() == 0:
            raise IndexError("Dimension specified as 0 but tensor has no dimensions")
        dim = wrap_dim(dim, x.dim())
        ctx.dim = dim
        shape = [s for d, s in enumerate(x.shape) if d != dim]
        stride = [s for d, s in enumerate(x.stride()) if d != dim]
        step = int(x.stride()[dim])
        return tuple(view(x, shape, stride, x.storage_offset() + i * step, "select", dim, i)
                     for i in range(int(x.shape[dim])))

    @staticmethod
    def backward(ctx, *grads):
        ref = next(g for g in grads if g is not None)
        filled = [g if g is not None else expand(new_zeros(ref, ()), ref.shape) for g in grads]
        return Stack.apply(filled, ctx.dim), None


def stack(tensors, dim=0):
    return Stack.apply(list(tensors), dim)


def unbind(input, dim=0):
    return Unbind.apply(input, dim)


def _atleast_1d(t):
    return reshape(t, (1,)) if t.dim() == 0 else t


def _atleast_2d(t):
    if t.dim() == 0:
        return reshape(t, (1, 1))
    return unsqueeze(t, 0) if t.dim() == 1 else t


def hstack(tensors):
    tensors = [_atleast_1d(t) for t in tensors]
    return cat(tensors, 0 if tensors[0].dim() == 1 else 1)


def vstack(tensors):
    return cat([_atleast_2d(t) for t in tensors], 0)


def unflatten(input, dim, sizes):
    dim = wrap_dim(dim, input.dim())
    sizes = list(sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    size = input.shape[dim]
    inferred = [i for i, s in enumerate(sizes) if int(s) == -1]
    known = sym_prod(s for s in sizes if int(s) != -1)
    if len(inferred) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if inferred and int(known) != 0 and int(size) % int(known) == 0:
        sizes[inferred[0]] = size // known
    if inferred and int(sizes[inferred[0]]) == -1 or int(sym_prod(sizes)) != int(size):
        raise RuntimeError(f"unflatten: Provided sizes {_shape_text(sizes)} don't multiply up to the size of dim "
                           f"{dim} ({int(size)}) in the input tensor")
    return View.apply(input, tuple(input.shape[:dim]) + tuple(sizes) + tuple(input.shape[dim + 1:]))


def movedim(input, source, destination):
    source, destination = _int_list(source), _int_list(destination)
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({source} dims) should contain the "
                           f"same number of dims as destination ({destination} dims)")
    n = input.dim()
    src = [wrap_dim(d, n) for d in source]
    dst = [wrap_dim(d, n) for d in destination]
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({source})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({destination})")
    if n == 0:
        return Alias.apply(input)
    order = [None] * n
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(n) if d not in src)
    order = [o if o is not None else next(rest) for o in order]
    return permute(input, order)


# -- padding ---------------------------------------------------------------------------------

def _padded_shape(x, pad):
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        d = x.dim() - 1 - i
        shape[d] = shape[d] + pad[2 * i] + pad[2 * i + 1]
    return shape


class ConstantPadNd(Function):
    """y = constant_pad_nd(x, pad, value) (negative pads crop).  Saves: nothing.
    Backward: constant_pad_nd of grad with the pads negated."""

    @staticmethod
    def forward(ctx, x, pad, value=0):
        pad = list(pad)
        if len(pad) % 2:
            raise RuntimeError("Length of pad must be even but instead it equals " + str(len(pad)))
        if len(pad) > 2 * x.dim():
            raise RuntimeError("Length of pad should be no more than twice the number of dimensions of the input. "
                               f"Pad length is {len(pad)} while the input has {x.dim()} dimensions.")
        shape = _padded_shape(x, pad)
        for i in range(len(pad) // 2):
            d = x.dim() - 1 - i
            if int(shape[d]) < 0:
                raise RuntimeError(f"The input size {int(x.shape[d])}, plus negative padding {pad[2 * i]} and "
                                   f"{pad[2 * i + 1]} resulted in a negative output size, which is invalid. "
                                   f"Check dimension {d} of your input.")
        ctx.pad = pad
        return kernel("constant_pad_nd", (shape, x.dtype), x, [int(p) for p in pad], value)

    @staticmethod
    def backward(ctx, grad):
        return ConstantPadNd.apply(grad, [-p for p in ctx.pad], 0), None, None


class _BoundaryPad(Function):
    """y = reflection_pad{1,2,3}d / replication_pad{1,2,3}d(x, padding).  Saves: self.
    Backward: the matching ``*_backward`` kernel (an op of its own, for double backward)."""

    saves = ("self",)
    aten = ""
    backward_fn = None

    @classmethod
    def forward(cls, ctx, x, padding):
        padding = list(padding)
        if cls.aten.startswith("reflection"):
            for i in range(len(padding) // 2):
                d = x.dim() - 1 - i
                left, right = padding[2 * i], padding[2 * i + 1]
                if left >= int(x.shape[d]) or right >= int(x.shape[d]):
                    raise RuntimeError(f"Argument #{4 + 2 * i}: Padding size should be less than the corresponding "
                                       f"input dimension, but got: padding ({left}, {right}) at dimension {d} of "
                                       f"input {_shape_text(x.shape)}")
        ctx.save_for_backward(x)
        ctx.padding = padding
        return kernel(cls.aten, (_padded_shape(x, padding), x.dtype), x, [int(p) for p in padding])

    @classmethod
    def backward(cls, ctx, grad):
        (x,) = ctx.saved_tensors
        return cls.backward_fn.apply(grad, x, ctx.padding), None


class _BoundaryPadBackward(Function):
    """grad_input = *_pad*d_backward(grad, self, padding): padded-area gradients folded back.
    Saves: self.  Derivative: the forward pad of gg (and zeros for self)."""

    saves = ("self",)
    aten = ""
    forward_fn = None

    @classmethod
    def forward(cls, ctx, grad, x, padding):
        ctx.save_for_backward(x)
        ctx.padding = list(padding)
        return kernel(cls.aten, (x.shape, grad.dtype), grad, x, [int(p) for p in padding])

    @classmethod
    def backward(cls, ctx, gg):
        (x,) = ctx.saved_tensors
        g_grad = cls.forward_fn.apply(gg, ctx.padding) if ctx.needs_input_grad[0] else None
        g_self = zeros_like(x) if ctx.needs_input_grad[1] else None
        return g_grad, g_self, None


def _pad_pair(nd, kind):
    """The forward and backward Function classes of one boundary pad kernel, wired to each other."""
    stem = f"{kind}_pad{nd}d"
    title = ("Reflection" if kind == "reflection" else "Replication") + f"Pad{nd}D"
    fwd = type(title, (_BoundaryPad,), {"aten": stem, "__doc__": _BoundaryPad.__doc__, "__module__": __name__})
    bwd = type(title + "Backward", (_BoundaryPadBackward,),
               {"aten": stem + "_backward", "__doc__": _BoundaryPadBackward.__doc__, "__module__": __name__})
    fwd.backward_fn, bwd.forward_fn = bwd, fwd
    return fwd


_BOUNDARY_PADS = {(kind, nd): _pad_pair(nd, kind) for kind in ("reflection", "replication") for nd in (1, 2, 3)}
_PAD_MODES = {"constant": "constant", "reflect": "reflection", "replicate": "replication", "circular": "circular"}


def _pad_circular(x, pad):
    """torch's _pad_circular: an empty output, x copied into its middle, then the wrapped borders
    copied from the output itself (slice views + copy_, as torch does)."""
    n, k = x.dim(), len(pad) // 2
    out_shape = list(x.shape[:n - k])
    for i in range(k):
        size = x.shape[n - k + i]
        left, right = pad[2 * (k - i - 1)], pad[2 * (k - i - 1) + 1]
        if left > int(size) or right > int(size):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        out_shape.append(size + left + right)
        if int(out_shape[-1]) < 0:
            raise RuntimeError("Negative padding value is resulting in an empty dimension")
    out = _like(_filled("empty"), x, shape=tuple(out_shape))
    out_slice, in_slice = out, x
    for i in range(k):
        d = n - i - 1
        left, right = pad[2 * i], pad[2 * i + 1]
        out_slice = Slice.apply(out_slice, d, max(left, 0), int(out_shape[d]) - max(right, 0))
        in_slice = Slice.apply(in_slice, d, max(-left, 0), int(x.shape[d]) - max(-right, 0))
    Copy.apply(out_slice, in_slice)
    for i in range(k):
        d = n - i - 1
        left, right = pad[2 * i], pad[2 * i + 1]
        size = int(out_shape[d])
        if left > 0:
            Copy.apply(Slice.apply(out, d, 0, left), Slice.apply(out, d, size - left - max(right, 0),
                                                                  size - max(right, 0)))
        if right > 0:
            Copy.apply(Slice.apply(out, d, size - right, size), Slice.apply(out, d, max(left, 0),
                                                                            max(left, 0) + right))
    return out


def pad(input, pad, mode="constant", value=None):
    """F.pad: constant_pad_nd for any number of dims; reflect / replicate / circular for the last
    1-3 dims of a (batched) 2-5-D input."""
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    pad = list(pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) > 2 * input.dim():
        raise RuntimeError("Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.dim()}")
    if mode == "constant":
        return ConstantPadNd.apply(input, pad, 0.0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    nd = len(pad) // 2
    if not (1 <= nd <= 3 and input.dim() in (nd + 1, nd + 2)):
        raise NotImplementedError(f"Padding size {len(pad)} is not supported for {input.dim()}D input tensor.")
    if mode == "circular":
        return _pad_circular(input, pad)
    return _BOUNDARY_PADS[(_PAD_MODES[mode], nd)].apply(input, pad)


# -- interpolate (nearest, bilinear) -------------------------------------------------------------

class _Upsample(Function):
    """y = upsample_*(x, output_size, [align_corners,] scales...).  Saves: nothing (sizes only).
    Backward: the ``*_backward`` kernel, an op of its own (its derivative is the forward again)."""

    aten = ""
    backward_fn = None
    linear = False

    @classmethod
    def forward(cls, ctx, x, output_size, align_corners, scales):
        ctx.output_size, ctx.in_shape = list(output_size), x.shape
        ctx.align_corners, ctx.scales = align_corners, list(scales)
        mode_args = (align_corners,) if cls.linear else ()
        shape = list(x.shape[:2]) + list(output_size)
        return kernel(cls.aten, (shape, x.dtype), x, [int(s) for s in output_size], *mode_args, *scales)

    @classmethod
    def backward(cls, ctx, grad):
        return cls.backward_fn.apply(grad, ctx.output_size, ctx.in_shape, ctx.align_corners, ctx.scales), \
            None, None, None


class _UpsampleBackward(Function):
    """grad_input = upsample_*_backward(grad, output_size, input_size, ...).  Saves: nothing.
    Derivative: the forward upsample of gg."""

    aten = ""
    forward_fn = None
    linear = False

    @classmethod
    def forward(cls, ctx, grad, output_size, in_shape, align_corners, scales):
        ctx.output_size, ctx.align_corners, ctx.scales = list(output_size), align_corners, list(scales)
        mode_args = (align_corners,) if cls.linear else ()
        return kernel(cls.aten, (in_shape, grad.dtype), grad, [int(s) for s in output_size],
                      [int(s) for s in in_shape], *mode_args, *scales)

    @classmethod
    def backward(cls, ctx, gg):
        return cls.forward_fn.apply(gg, ctx.output_size, ctx.align_corners, ctx.scales), None, None, None, None


def _upsample_pair(title, aten, linear):
    fwd = type(title, (_Upsample,), {"aten": aten, "linear": linear, "__doc__": _Upsample.__doc__,
                                     "__module__": __name__})
    bwd = type(title + "Backward", (_UpsampleBackward,), {"aten": aten + "_backward", "linear": linear,
                                                          "__doc__": _UpsampleBackward.__doc__,
                                                          "__module__": __name__})
    fwd.backward_fn, bwd.forward_fn = bwd, fwd
    return fwd


_UPSAMPLERS = {
    ("nearest", 3): _upsample_pair("UpsampleNearest1D", "upsample_nearest1d", False),
    ("nearest", 4): _upsample_pair("UpsampleNearest2D", "upsample_nearest2d", False),
    ("nearest", 5): _upsample_pair("UpsampleNearest3D", "upsample_nearest3d", False),
    ("bilinear", 4): _upsample_pair("UpsampleBilinear2D", "upsample_bilinear2d", True),
}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """F.interpolate for mode nearest (3-5-D) and bilinear (4-D), with torch's size / scale rules."""
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dim = input.dim() - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        scale_factors = None
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but got input with spatial "
                    f"dimensions of {[int(s) for s in input.shape[2:]]} and output size of {size}. Please provide "
                    "input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) format.")
            output_size = list(size)
        else:
            output_size = [size] * dim
    elif scale_factor is not None:
        output_size = None
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, but got input with "
                    f"spatial dimensions of {[int(s) for s in input.shape[2:]]} and scale_factor of shape "
                    f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                    "scale_factor in (s1, s2, ...,sK) format.")
            scale_factors = [float(s) for s in scale_factor]
        else:
            scale_factors = [float(scale_factor)] * dim
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if recompute_scale_factor:
        output_size = [math.floor(int(input.shape[i + 2]) * scale_factors[i]) for i in range(dim)]
        scale_factors = None
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    fn = _UPSAMPLERS.get((mode, input.dim()))
    if fn is None:
        raise NotImplementedError(f"interpolate: mode {mode!r} on a {input.dim()}-D input is not supported "
                                  "(supported: nearest on 3-D/4-D/5-D, bilinear on 4-D)")
    if output_size is None:
        # the .vec overloads: size = int(input_size * scale) (truncation), and the scales go to the kernel
        output_size = [int(int(input.shape[i + 2]) * scale_factors[i]) for i in range(dim)]
        scales = scale_factors
    else:
        scales = [None] * dim
    return fn.apply(input, output_size, align_corners, scales)


def one_hot(tensor, num_classes=-1):
    """F.one_hot: int64 (..., num_classes); never differentiable.  num_classes=-1 reads the data."""
    if tensor.dtype is not _dt.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if tensor.data_ is None:
            raise DataDependentShapeError("one_hot: num_classes=-1 makes the output size the largest class value "
                                          "plus one, which depends on the values; the shape backend has no data")
        num_classes = int(tensor.data_.max()) + 1 if int(tensor.numel()) else 0
    return kernel("one_hot", (tuple(tensor.shape) + (num_classes,), _dt.int64), tensor, num_classes)


# -- diagonal --------------------------------------------------------------------------------

class Diagonal(Function):
    """y = x.diagonal(offset, dim1, dim2): a view of the diagonal of the (dim1, dim2) planes, dims
    dim1 and dim2 removed and the diagonal appended as the last dim (torch's geometry: the step
    is stride(dim1) + stride(dim2)).  Saves: nothing (sizes)."""

    @staticmethod
    def forward(ctx, x, offset=0, dim1=0, dim2=1):
        n = x.dim()
        d1, d2 = wrap_dim(dim1, n), wrap_dim(dim2, n)
        if d1 == d2:
            raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
        size1, size2 = x.shape[d1], x.shape[d2]
        stride1, stride2 = x.stride()[d1], x.stride()[d2]
        if offset >= 0:
            diag_size = max(min(size1, size2 - offset), 0)
        else:
            diag_size = max(min(size1 + offset, size2), 0)
        start = x.storage_offset()
        # an empty diagonal keeps the storage offset (torch avoids pointing past the end)
        if int(diag_size) != 0:
            start = start + offset * stride2 if offset >= 0 else start - offset * stride1
        keep = [d for d in range(n) if d not in (d1, d2)]
        shape = [x.shape[d] for d in keep] + [diag_size]
        stride = [x.stride()[d] for d in keep] + [stride1 + stride2]
        ctx.in_shape, ctx.args = x.shape, (offset, d1, d2)
        return view(x, shape, stride, start, "diagonal", offset, d1, d2)

    @staticmethod
    def backward(ctx, grad):
        return DiagonalBackward.apply(grad, ctx.in_shape, *ctx.args), None, None, None


class DiagonalBackward(Function):
    """g = diagonal_backward(grad, input_sizes, offset, dim1, dim2): zeros of the input's sizes with
    grad written on the diagonal.  Saves: nothing.  Its own gradient is the diagonal again."""

    @staticmethod
    def forward(ctx, grad, input_sizes, offset, dim1, dim2):
        ctx.args = (offset, dim1, dim2)
        return kernel("diagonal_backward", (tuple(input_sizes), grad.dtype), grad, [int(s) for s in input_sizes],
                      offset, dim1, dim2)

    @staticmethod
    def backward(ctx, gg):
        return Diagonal.apply(gg, *ctx.args), None, None, None, None


def diagonal(input, offset=0, dim1=0, dim2=1):
    return Diagonal.apply(input, offset, dim1, dim2)


# -- registration ---------------------------------------------------------------------------

def _flip_method(self, *dims):
    return Flip.apply(self, _varargs(dims))


def _tril(input, diagonal=0):
    return Tril.apply(input, diagonal)


def _triu(input, diagonal=0):
    return Triu.apply(input, diagonal)


TENSOR_METHODS: dict = {
    "__setitem__": setitem,
    "index_put": index_put, "index_put_": index_put_,
    "copy_": copy_,
    "gather": lambda self, dim, index, *, sparse_grad=False: gather(self, dim, index, sparse_grad=sparse_grad),
    "scatter": scatter, "scatter_": scatter_, "scatter_add": scatter_add, "scatter_add_": scatter_add_,
    "take_along_dim": take_along_dim,
    "index_select": index_select, "index_add": index_add, "index_add_": index_add_,
    "masked_fill": masked_fill, "masked_fill_": masked_fill_, "masked_select": masked_select,
    "masked_scatter": masked_scatter, "masked_scatter_": masked_scatter_,
    "where": lambda self, condition, other: where(condition, self, other),
    "nonzero": nonzero,
    "tril": _tril, "triu": _triu,
    "tril_": lambda self, diagonal=0: TrilInplace.apply(self, diagonal),
    "triu_": lambda self, diagonal=0: TriuInplace.apply(self, diagonal),
    "roll": roll, "flip": _flip_method,
    "repeat": repeat, "tile": lambda self, *dims: tile(self, _varargs(dims)),
    "repeat_interleave": repeat_interleave,
    "unbind": unbind, "unflatten": unflatten,
    "movedim": movedim, "moveaxis": movedim,
    "swapaxes": transpose, "swapdims": transpose,
    "expand_as": lambda self, other: expand(self, other.shape),
    "view_as": lambda self, other: view_(self, tuple(other.shape)),
    "reshape_as": lambda self, other: reshape(self, tuple(other.shape)),
    "diagonal": diagonal,
}

TORCH_FUNCTIONS: dict = {
    "gather": gather, "scatter": scatter, "scatter_add": scatter_add, "take_along_dim": take_along_dim,
    "index_select": index_select, "index_add": index_add, "index_put": index_put,
    "masked_fill": masked_fill, "masked_select": masked_select, "masked_scatter": masked_scatter,
    "where": where, "nonzero": nonzero,
    "tril": _tril, "triu": _triu, "roll": roll, "flip": lambda input, dims: Flip.apply(input, dims),
    "tile": tile, "repeat_interleave": repeat_interleave,
    "stack": stack, "hstack": hstack, "vstack": vstack, "unbind": unbind, "unflatten": unflatten,
    "movedim": movedim, "moveaxis": movedim, "swapaxes": transpose, "swapdims": transpose,
    "diagonal": diagonal,
}

FUNCTIONAL: dict = {"pad": pad, "interpolate": interpolate, "one_hot": one_hot}
