"""Matrix products: mm, addmm, and the composites torch builds from them (matmul, linear)."""
from __future__ import annotations

from ..function import Function
from ..symbolic import sym_prod
from ._kernel import kernel
from . import views


def _check_mm(a, b):
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError("self must be a matrix")
    if int(a.shape[1]) != int(b.shape[0]):
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({int(a.shape[0])}x{int(a.shape[1])} and "
                           f"{int(b.shape[0])}x{int(b.shape[1])})")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")


def _column_major(x) -> bool:
    """torch's test for a column-major operand (``W.t()``): strides (1, rows), and not also row-major."""
    rows = int(x.shape[0])
    return int(x.stride()[0]) == 1 and int(x.stride()[1]) == max(rows, 1) and not x.is_contiguous()


def mm_mat1_backward(grad, mat2, mat1_column_major: bool):
    """torch's mm_mat1_backward: a column-major mat1 gets a column-major gradient."""
    if mat1_column_major:
        return views.t(mm(mat2, views.t(grad)))
    return mm(grad, views.t(mat2))


def mm_mat2_backward(grad, mat1, mat2_column_major: bool):
    """torch's mm_mat2_backward: a column-major mat2 (``W.t()``) gets a column-major gradient."""
    if mat2_column_major:
        return views.t(mm(views.t(grad), mat1))
    return mm(views.t(mat1), grad)


def _save_operands(ctx, a, b, need_a: bool, need_b: bool) -> None:
    """mm's guarded saving: a only if b needs grad, b only if a needs grad (layouts as flags)."""
    _check_mm(a, b)
    ctx.save_for_backward(a if need_b else None, b if need_a else None)
    ctx.column_major = (_column_major(a), _column_major(b))
    ctx.need = (need_a, need_b)


def _operand_grads(ctx, grad):
    a, b = ctx.saved_tensors
    ga = mm_mat1_backward(grad, b, ctx.column_major[0]) if ctx.need[0] else None
    gb = mm_mat2_backward(grad, a, ctx.column_major[1]) if ctx.need[1] else None
    return ga, gb


class Mm(Function):
    """y = a @ b (2-D).  Saves: a if b needs grad; b if a needs grad."""

    saves = ("self", "mat2")

    @staticmethod
    def forward(ctx, a, b):
        _save_operands(ctx, a, b, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return kernel("mm", ((a.shape[0], b.shape[1]), a.dtype), a, b)

    @staticmethod
    def backward(ctx, grad):
        return _operand_grads(ctx, grad)


class Addmm(Function):
    """y = bias + a @ b.  Saves: a if b needs grad; b if a needs grad (bias: sizes only)."""

    saves = ("mat1", "mat2")

    @staticmethod
    def forward(ctx, bias, a, b):
        _save_operands(ctx, a, b, ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        ctx.need_bias = ctx.needs_input_grad[0]
        return kernel("addmm", ((a.shape[0], b.shape[1]), a.dtype), bias, a, b)

    @staticmethod
    def backward(ctx, grad):
        return (grad if ctx.need_bias else None, *_operand_grads(ctx, grad))


def mm(a, b):
    return Mm.apply(a, b)


def addmm(bias, a, b):
    return Addmm.apply(bias, a, b)


def matmul(a, b):
    """torch.matmul for the cases models use: 2-D @ 2-D, N-D @ 2-D (folded into mm)."""
    if a.dim() == 2 and b.dim() == 2:
        return mm(a, b)
    if a.dim() >= 3 and b.dim() == 2:
        folded = views.reshape(a, (-1, a.shape[-1]))
        out = mm(folded, b)
        return views.UnsafeView.apply(out, tuple(a.shape[:-1]) + (b.shape[1],))
    raise NotImplementedError(f"matmul of {a.dim()}-D and {b.dim()}-D tensors is not supported yet")


def linear(x, weight, bias=None):
    """F.linear as torch decomposes it: addmm for 2-D input, flattened addmm for contiguous 3-D
    input with bias, else matmul (+ in-place bias add)."""
    wt = views.t(weight)
    if x.dim() == 2 and bias is not None:
        return addmm(bias, x, wt)
    if bias is not None and x.is_contiguous() and x.dim() == 3:
        flat = views.reshape(x, (sym_prod(x.shape[:-1]), x.shape[-1]))
        out = addmm(bias, flat, wt)
        return views.View.apply(out, tuple(x.shape[:-1]) + (out.shape[1],))
    out = matmul(x, wt)
    if bias is not None:
        from .pointwise import AddInplace
        out = AddInplace.apply(out, bias)
    return out
