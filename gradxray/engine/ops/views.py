"""View and shape ops.  Views share storage (and version counter) with their base."""
from __future__ import annotations

from ..function import Function
from ..symbolic import SymInt, sym_prod
from ..tensor import contiguous_strides, wrap_dim
from .. import backends
from ..backends import CONTIGUOUS
from ..creation import new_zeros
from ._kernel import kernel, view
from .shapes import infer_view_shape, view_strides


class View(Function):
    """y = x.view(shape).  Saves: nothing (sizes)."""

    @staticmethod
    def forward(ctx, x, shape):
        shape = infer_view_shape(shape, x.numel())
        stride = view_strides(x.shape, x.stride(), shape)
        if stride is None:
            raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                               "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
        ctx.in_shape = x.shape
        return view(x, shape, stride, x.storage_offset(), "view", [int(s) for s in shape])

    @staticmethod
    def backward(ctx, grad):
        return reshape(grad, ctx.in_shape), None


class ReshapeAlias(View):
    """y = x.reshape(shape) as a view of a non-contiguous x (torch's _reshape_alias).  Saves: nothing."""

    node_name = "ReshapeAliasBackward0"


class AsStrided(Function):
    """y = x.as_strided(size, stride, offset) (a view of x's storage).  Saves: nothing (geometries).
    Backward: the gradient written into zeros laid out like x (torch's as_strided_backward for a
    non-overlapping input)."""

    @staticmethod
    def forward(ctx, x, size, stride, offset):
        ctx.in_geometry = (x.shape, x.stride(), x.storage_offset())
        ctx.geometry = (tuple(size), tuple(stride), offset)
        return view(x, size, stride, offset, "as_strided", [int(s) for s in size], [int(s) for s in stride],
                    int(offset))

    @staticmethod
    def backward(ctx, grad):
        return as_strided_grad(grad, ctx.in_geometry, ctx.geometry), None, None, None


def as_strided_grad(grad, in_geometry, geometry):
    """Zeros with the input's geometry, with ``grad`` copied into the strided window: differentiable,
    so higher-order gradients flow through it."""
    from .indexing import copy_
    (shape, stride, offset), (vshape, vstride, voffset) = in_geometry, geometry
    zeros = kernel("new_zeros", (shape, grad.dtype, tuple(stride)), grad, [int(s) for s in shape])
    window = AsStrided.apply(zeros, vshape, vstride, int(voffset) - int(offset))
    copy_(window, grad)
    return zeros


class UnsafeView(Function):
    """y = _unsafe_view(x, shape): the result of a copy viewed as shape.  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        shape = infer_view_shape(shape, x.numel())
        out = view(x, shape, contiguous_strides(shape), x.storage_offset(), "_unsafe_view",
                   [int(s) for s in shape])
        out._base = None        # not a view for autograd: in-place ops on it need no CopySlices (torch's contract)
        return out

    @staticmethod
    def backward(ctx, grad):
        return reshape(grad, ctx.in_shape), None


class Clone(Function):
    """y = x.clone() (contiguous).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x):
        return kernel("clone", (x.shape, x.dtype), x, memory_format=CONTIGUOUS)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Transpose(Function):
    """y = x.transpose(d0, d1) (a view).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, d0, d1):
        n = x.dim()
        d0, d1 = wrap_dim(d0, n), wrap_dim(d1, n)
        ctx.dims = (d0, d1)
        shape, stride = list(x.shape), list(x.stride())
        shape[d0], shape[d1] = shape[d1], shape[d0]
        stride[d0], stride[d1] = stride[d1], stride[d0]
        return view(x, shape, stride, x.storage_offset(), "transpose", d0, d1)

    @staticmethod
    def backward(ctx, grad):
        return transpose(grad, *ctx.dims), None, None


class T(Function):
    """y = x.t() (a view of a <= 2-D tensor).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x):
        if x.dim() > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.dim()}D")
        shape, stride = tuple(reversed(x.shape)), tuple(reversed(x.stride()))
        return view(x, shape, stride, x.storage_offset(), "t")

    @staticmethod
    def backward(ctx, grad):
        return t(grad)


class Permute(Function):
    """y = x.permute(dims) (a view).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, dims):
        n = x.dim()
        dims = [wrap_dim(d, n) for d in dims]
        ctx.dims = dims
        return view(x, [x.shape[d] for d in dims], [x.stride()[d] for d in dims], x.storage_offset(),
                    "permute", dims)

    @staticmethod
    def backward(ctx, grad):
        inv = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inv[d] = i
        return permute(grad, inv), None


class Expand(Function):
    """y = x.expand(shape) (a view with zero strides).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        shape = list(shape)
        lead = len(shape) - x.dim()
        if lead < 0:
            from ..graph import _torch_type_name
            raise RuntimeError(f"expand({_torch_type_name(x)}{{{[int(d) for d in x.shape]}}}, size={[int(d) for d in shape]}): "
                               "the number of sizes provided (%d) must be greater or equal to the number of "
                               "dimensions in the tensor (%d)" % (len(shape), x.dim()))
        out_shape, out_stride = [None] * len(shape), [None] * len(shape)
        # torch's inferExpandGeometry, from the last dim: a new leading dim of size 1 gets the
        # stride it would have in a contiguous layout (next size * next stride), a broadcast dim 0
        for i in range(len(shape) - 1, -1, -1):
            s = shape[i]
            if i < lead:
                if int(s) == -1:
                    raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                       f"non-existing dimension {i}")
                nxt = int(out_shape[i + 1]) * int(out_stride[i + 1]) if i + 1 < len(shape) else 0
                out_shape[i], out_stride[i] = s, (nxt if int(s) == 1 else 0)
                continue
            xs, xst = x.shape[i - lead], x.stride()[i - lead]
            if int(s) == -1:
                s = xs
            if int(xs) == int(s):
                out_shape[i] = s if isinstance(s, SymInt) else xs      # keep the symbolic spelling
                out_stride[i] = xst
            elif int(xs) == 1:
                out_shape[i], out_stride[i] = s, 0
            else:
                raise RuntimeError(f"The expanded size of the tensor ({int(s)}) must match the existing size "
                                   f"({int(xs)}) at non-singleton dimension {i}.  Target sizes: "
                                   f"{[int(d) for d in shape]}.  Tensor sizes: {[int(d) for d in x.shape]}")
        return view(x, out_shape, out_stride, x.storage_offset(), "expand", [int(s) for s in out_shape])

    @staticmethod
    def backward(ctx, grad):
        return sum_to(grad, ctx.in_shape), None


class Unsqueeze(Function):
    """y = x.unsqueeze(d) (a view).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, d):
        d = wrap_dim(d, x.dim() + 1)
        ctx.d = d
        shape, stride = list(x.shape), list(x.stride())
        st = int(shape[d]) * int(stride[d]) if d < x.dim() else 1
        shape.insert(d, 1)
        stride.insert(d, st)
        return view(x, shape, stride, x.storage_offset(), "unsqueeze", d)

    @staticmethod
    def backward(ctx, grad):
        return squeeze(grad, ctx.d), None


class Squeeze(Function):
    """y = x.squeeze() / squeeze(dim) / squeeze(dims) (a view).  Saves: nothing (sizes).  torch names the
    three forms' nodes SqueezeBackward0, 1 and 2."""

    @staticmethod
    def forward(ctx, x, d=None):
        ctx.in_shape = x.shape
        if d is None:
            dims, args = range(x.dim()), ()
        elif isinstance(d, (list, tuple)):
            dims = sorted({wrap_dim(i, x.dim()) for i in d})
            args = (list(dims),)
        else:
            dims = [wrap_dim(d, x.dim())]
            args = (dims[0],)
        keep = [i for i in range(x.dim()) if not (i in dims and int(x.shape[i]) == 1)]
        return view(x, [x.shape[i] for i in keep], [x.stride()[i] for i in keep], x.storage_offset(),
                    "squeeze", *args)

    @staticmethod
    def backward(ctx, grad):
        return reshape(grad, ctx.in_shape), None


class SqueezeDim(Squeeze):
    node_name = "SqueezeBackward1"


class SqueezeDims(Squeeze):
    node_name = "SqueezeBackward2"


class Split(Function):
    """xs = x.split(size, dim) (views).  Saves: nothing (sizes)."""

    @staticmethod
    def forward(ctx, x, split_size, dim=0):
        dim = wrap_dim(dim, x.dim())
        ctx.dim, ctx.in_shape = dim, x.shape
        total = int(x.shape[dim])
        if isinstance(split_size, (list, tuple)):
            sizes = list(split_size)
        else:
            sizes = []
            start = 0
            while start < total:
                sizes.append(min(split_size, total - start))
                start += int(split_size)
        ctx.sizes = sizes
        outs, off = [], 0
        datas = None
        if x.data_ is not None:
            datas = backends.aten("split_with_sizes", x, [int(s) for s in sizes], dim)
        for i, s in enumerate(sizes):
            shape = list(x.shape)
            shape[dim] = s
            outs.append(x._view(shape, x.stride(), x.storage_offset() + off * int(x.stride()[dim]),
                                datas[i] if datas is not None else None))
            off += int(s)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        filled = []
        for g, s in zip(grads, ctx.sizes):
            if g is None:
                shape = list(ctx.in_shape)
                shape[ctx.dim] = s
                g = new_zeros(next(x for x in grads if x is not None), shape)
            filled.append(g)
        return cat(filled, ctx.dim), None, None


def _legacy_empty(x) -> bool:
    """A 1-D tensor of size 0 (``torch.tensor([])``): cat skips it whatever the other inputs' shapes, as torch
    does (the idiom of caches that start empty and grow with ``cat``)."""
    return x.dim() == 1 and isinstance(x.shape[0], int) and x.shape[0] == 0


class Cat(Function):
    """y = cat(xs, dim).  Saves: nothing (sizes)."""

    @staticmethod
    def forward(ctx, xs, dim=0):
        skip = [_legacy_empty(x) for x in xs]
        kept = [x for x, s in zip(xs, skip) if not s]
        if not kept:
            kept, skip = list(xs), [False] * len(xs)
        dim = wrap_dim(dim, kept[0].dim())
        ctx.dim = dim
        ctx.sizes = [None if s else x.shape[dim] for x, s in zip(xs, skip)]
        shape = list(kept[0].shape)
        total = kept[0].shape[dim]
        for x in kept[1:]:
            total = total + x.shape[dim]
        shape[dim] = total
        from .. import dtypes as _dt
        return kernel("cat", (shape, _dt.result_type(*xs)), kept, dim)

    @staticmethod
    def backward(ctx, grad):
        outs, off = [], 0
        for s in ctx.sizes:
            if s is None:                     # a skipped empty input: a gradient of its shape, [0]
                outs.append(narrow(grad.reshape(-1), 0, 0, 0))
                continue
            outs.append(narrow(grad, ctx.dim, off, s))
            off += int(s)
        return tuple(outs), None


class Slice(Function):
    """y = x[..., start:stop:step, ...] along one dim (a view).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, dim, start, stop, step=1):
        dim = wrap_dim(dim, x.dim())
        size = int(x.shape[dim])
        start, stop, step = slice(start, stop, step).indices(size)
        length = max(0, (stop - start + step - 1) // step)
        ctx.dim, ctx.start, ctx.step, ctx.in_shape = dim, start, step, x.shape
        shape, stride = list(x.shape), list(x.stride())
        if start == 0 and length == size and step == 1:
            new_len = x.shape[dim]
        else:
            new_len = length
        shape[dim] = new_len
        stride[dim] = stride[dim] * step
        return view(x, shape, stride, x.storage_offset() + start * int(x.stride()[dim]), "slice", dim,
                    start, start + length * step, step)

    @staticmethod
    def backward(ctx, grad):
        end = ctx.start + int(grad.shape[ctx.dim]) * ctx.step
        return SliceBackward.apply(grad, ctx.in_shape, ctx.dim, ctx.start, end, ctx.step), None, None, None, None


class SliceBackward(Function):
    """grad_input = slice_backward(grad, sizes, dim, start, end, step): zeros with grad in the slice.
    Saves: nothing."""

    @staticmethod
    def forward(ctx, grad, in_shape, dim, start, end, step):
        ctx.args = (dim, start, end, step)
        return kernel("slice_backward", (in_shape, grad.dtype), grad, [int(s) for s in in_shape], dim, start, end,
                      step)

    @staticmethod
    def backward(ctx, gg):
        return (Slice.apply(gg, *ctx.args),) + (None,) * 5


class Select(Function):
    """y = x[i] along dim (a view).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, dim, index):
        dim = wrap_dim(dim, x.dim())
        size = int(x.shape[dim])
        if not -size <= index < size:
            raise IndexError(f"index {index} is out of bounds for dimension {dim} with size {size}")
        index %= size
        ctx.dim, ctx.index, ctx.in_shape = dim, index, x.shape
        shape, stride = list(x.shape), list(x.stride())
        del shape[dim]
        del stride[dim]
        return view(x, shape, stride, x.storage_offset() + index * int(x.stride()[dim]), "select", dim, index)

    @staticmethod
    def backward(ctx, grad):
        return SelectBackward.apply(grad, ctx.in_shape, ctx.dim, ctx.index), None, None


class SelectBackward(Function):
    """grad_input = select_backward(grad, sizes, dim, index): zeros with grad at the index.  Saves: nothing."""

    @staticmethod
    def forward(ctx, grad, in_shape, dim, index):
        ctx.dim, ctx.index = dim, index
        return kernel("select_backward", (in_shape, grad.dtype), grad, [int(s) for s in in_shape], dim, index)

    @staticmethod
    def backward(ctx, gg):
        return Select.apply(gg, ctx.dim, ctx.index), None, None, None


# -- functional entry points ----------------------------------------------

def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        return tuple(shape[0])
    return tuple(shape)


def view_(x, *shape):
    return View.apply(x, _shape_arg(shape))


def reshape(x, *shape):
    shape = infer_view_shape(_shape_arg(shape), x.numel())
    if view_strides(x.shape, x.stride(), shape) is not None:
        # torch: a contiguous input is viewed, a non-contiguous one that allows it goes through _reshape_alias
        return View.apply(x, shape) if x.is_contiguous() else ReshapeAlias.apply(x, shape)
    return UnsafeView.apply(Clone.apply(x), shape)


def contiguous(x):
    return x if x.is_contiguous() else Clone.apply(x)


def transpose(x, d0, d1):
    return Transpose.apply(x, d0, d1)


def t(x):
    return T.apply(x)


def permute(x, *dims):
    return Permute.apply(x, _shape_arg(dims))


def expand(x, *shape):
    return Expand.apply(x, _shape_arg(shape))


def unsqueeze(x, d):
    return Unsqueeze.apply(x, d)


def squeeze(x, d=None):
    if d is None:
        return Squeeze.apply(x)
    return (SqueezeDims if isinstance(d, (list, tuple)) else SqueezeDim).apply(x, d)


def flatten(x, start_dim=0, end_dim=-1):
    n = x.dim()
    if n == 0:
        return reshape(x, (1,))
    s, e = wrap_dim(start_dim, n), wrap_dim(end_dim, n)
    if s == e:
        return x
    shape = list(x.shape[:s]) + [sym_prod(x.shape[s:e + 1])] + list(x.shape[e + 1:])
    return reshape(x, shape)


def split(x, split_size, dim=0):
    return Split.apply(x, split_size, dim)


def chunk(x, chunks, dim=0):
    size = int(x.shape[wrap_dim(dim, x.dim())])
    each = -(-size // chunks)
    return Split.apply(x, each, dim)


def cat(xs, dim=0):
    return Cat.apply(list(xs), dim)


def narrow(x, dim, start, length):
    return Slice.apply(x, dim, start, start + int(length), 1)


def sum_to(g, shape):
    """Reduce a broadcast gradient back to ``shape`` (torch's at::sum_to)."""
    shape = tuple(shape)
    lead = g.dim() - len(shape)
    dims = list(range(lead))
    for i, s in enumerate(shape):
        if int(s) == 1 and int(g.shape[lead + i]) != 1:
            dims.append(lead + i)
    if not dims:
        return g
    from .reduce import sum as _sum          # reduce imports this module
    out = _sum(g, dims, keepdim=True)
    if lead:
        out = View.apply(out, shape)
    return out


def getitem(x, index):
    """``x[index]`` as torch evaluates it: ints, slices, None and Ellipsis as views, index tensors,
    lists and masks through ``index`` (the logic lives with the indexing ops)."""
    from .indexing import getitem as _getitem
    return _getitem(x, index)
