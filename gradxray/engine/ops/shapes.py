"""Shape inference helpers shared by ops."""
from __future__ import annotations

from ..memo import remember
from ..symbolic import SymInt, sym_prod


def broadcast_shapes(*shapes):
    """The broadcast of ``shapes``, folded pairwise in order as torch's TensorIterator does (so a
    mismatch names the same operands and dimension as torch's error)."""
    if not shapes:
        return ()
    out = tuple(shapes[0])
    for s in shapes[1:]:
        out = _infer_size(out, tuple(s))
    return out


def _infer_size(a, b):
    """torch's infer_size: align from the last dimension; a size-1 dim stretches."""
    ndim = max(len(a), len(b))
    out = [None] * ndim
    for i in range(ndim - 1, -1, -1):
        offset = ndim - 1 - i
        da = a[len(a) - 1 - offset] if offset < len(a) else 1
        db = b[len(b) - 1 - offset] if offset < len(b) else 1
        if int(da) != int(db) and int(da) != 1 and int(db) != 1:
            raise RuntimeError(f"The size of tensor a ({int(da)}) must match the size of tensor b ({int(db)}) "
                               f"at non-singleton dimension {i}")
        if int(da) == 1:
            out[i] = db
        elif int(db) == 1:
            out[i] = da
        else:
            out[i] = db if isinstance(db, SymInt) and not isinstance(da, SymInt) else da   # keep a symbol
    return tuple(out)


def infer_view_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if int(s) == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if neg:
        rest = sym_prod(s for i, s in enumerate(shape) if i != neg[0])
        if int(rest) == 0 or int(numel) % int(rest) != 0:
            raise RuntimeError(f"shape '{[int(s) for s in shape]}' is invalid for input of size {int(numel)}")
        shape[neg[0]] = numel // rest
    if int(sym_prod(shape)) != int(numel):
        raise RuntimeError(f"shape '{[int(s) for s in shape]}' is invalid for input of size {int(numel)}")
    return tuple(shape)


# view_strides by (old shape, old strides, new shape) as plain ints, which is all it depends on: a
# model views the same few geometries over and over (every head split, flatten and their gradients)
_view_strides_cache: dict = {}


def view_strides(old_shape, old_stride, new_shape):
    """Strides for viewing (old_shape, old_stride) as new_shape, or None if it needs a copy
    (torch's computeStride)."""
    key = (tuple(map(int, old_shape)), tuple(map(int, old_stride)), tuple(map(int, new_shape)))
    try:
        return _view_strides_cache[key]
    except KeyError:
        pass
    return remember(_view_strides_cache, key, _compute_stride(*key))


def _compute_stride(old_shape, old_stride, new):
    old_shape, old_stride, new = list(old_shape), list(old_stride), list(new)
    numel = 1
    for s in old_shape:
        numel *= s
    if numel == 0:
        # torch's computeStride: strides are arbitrary without elements; same shape keeps them (as NumPy)
        return tuple(old_stride) if old_shape == new else tuple(_contig(new))
    if not old_shape:                       # a 0-dim tensor views as any all-ones shape with unit strides
        return tuple(1 for _ in new)
    new_stride = [0] * len(new)
    view_d = len(new) - 1
    chunk_base_stride = old_stride[-1] if old_stride else 1
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        if tensor_d == 0 or (old_shape[tensor_d - 1] != 1 and
                             old_stride[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                new_stride[view_d] = view_numel * chunk_base_stride
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_stride[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(new_stride)


def _contig(shape):
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return list(reversed(strides))


def conv_out(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
