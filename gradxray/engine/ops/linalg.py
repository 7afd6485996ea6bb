"""Matrix products: mm, addmm, and the composites torch builds from them (matmul, linear)."""
from __future__ import annotations

from ..function import Function
from ..symbolic import sym_prod
from ..tensor import Storage
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


def cublas_operand_scratch(*operands) -> None:
    """cuBLAS takes a matrix only with unit stride in one dim (torch's prepare_matrix_for_cublas): any
    other operand (an expanded gradient, a strided slice) is cloned contiguous for the duration of the
    kernel.  Accounted as a transient allocation, after the output exists."""
    for t in operands:
        if t.device.type != "cuda" or t.is_non_overlapping_and_dense():
            continue
        sizes, strides = [int(s) for s in t.shape[-2:]], [int(s) for s in t.stride()[-2:]]
        if (strides[0] == 1 and strides[1] >= max(1, sizes[0])) or (strides[1] == 1 and strides[0] >= max(1, sizes[1])):
            continue
        scratch = Storage(int(t.numel()) * t.dtype.itemsize, t.device, "other")
        del scratch


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
        out = kernel("mm", ((a.shape[0], b.shape[1]), a.dtype), a, b)
        cublas_operand_scratch(a, b)
        return out

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
        out = kernel("addmm", ((a.shape[0], b.shape[1]), a.dtype), bias, a, b)
        cublas_operand_scratch(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        return (grad if ctx.need_bias else None, *_operand_grads(ctx, grad))


def mm(a, b):
    return Mm.apply(a, b)


def addmm(bias, a, b):
    return Addmm.apply(bias, a, b)


class Bmm(Function):
    """y = a @ b for batches of matrices ([B, n, m] @ [B, m, p]).  Saves: a if b needs grad; b if a needs grad."""

    saves = ("self", "mat2")

    @staticmethod
    def forward(ctx, a, b):
        if a.dim() != 3 or b.dim() != 3:
            raise RuntimeError("batch1 must be a 3D tensor" if a.dim() != 3 else "batch2 must be a 3D tensor")
        if int(a.shape[0]) != int(b.shape[0]) or int(a.shape[2]) != int(b.shape[1]):
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                               f"[{int(a.shape[0])}, {int(a.shape[2])}] but got: [{int(b.shape[0])}, {int(b.shape[1])}].")
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        out = kernel("bmm", ((a.shape[0], a.shape[1], b.shape[2]), a.dtype), a, b)
        cublas_operand_scratch(a, b)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = bmm(grad, views.transpose(b, 1, 2)) if ctx.needs_input_grad[0] else None
        gb = bmm(views.transpose(a, 1, 2), grad) if ctx.needs_input_grad[1] else None
        return ga, gb


class Baddbmm(Function):
    """y = beta * bias + alpha * (a @ b), batched.  Saves: a if b needs grad; b if a needs grad."""

    saves = ("batch1", "batch2")

    @staticmethod
    def forward(ctx, bias, a, b, beta=1, alpha=1):
        ctx.save_for_backward(a if ctx.needs_input_grad[2] else None, b if ctx.needs_input_grad[1] else None)
        ctx.beta, ctx.alpha, ctx.bias_shape = beta, alpha, bias.shape
        return kernel("baddbmm", ((a.shape[0], a.shape[1], b.shape[2]), a.dtype), bias, a, b, beta=beta,
                      alpha=alpha)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import mul
        a, b = ctx.saved_tensors
        gbias = (grad if ctx.beta == 1 else mul(grad, ctx.beta)) if ctx.needs_input_grad[0] else None
        ga = bmm(grad, views.transpose(b, 1, 2)) if ctx.needs_input_grad[1] else None
        gb = bmm(views.transpose(a, 1, 2), grad) if ctx.needs_input_grad[2] else None
        if ctx.alpha != 1:
            ga = mul(ga, ctx.alpha) if ga is not None else None
            gb = mul(gb, ctx.alpha) if gb is not None else None
        return gbias, ga, gb, None, None


class Mv(Function):
    """y = A @ v (matrix-vector).  Saves: A if v needs grad; v if A needs grad."""

    saves = ("self", "vec")

    @staticmethod
    def forward(ctx, m, v):
        if m.dim() != 2 or v.dim() != 1 or int(m.shape[1]) != int(v.shape[0]):
            raise RuntimeError(f"size mismatch, got input ({int(m.shape[0])}), mat ({int(m.shape[0])}x"
                               f"{int(m.shape[-1])}), vec ({int(v.shape[0])})")
        ctx.save_for_backward(m if ctx.needs_input_grad[1] else None, v if ctx.needs_input_grad[0] else None)
        return kernel("mv", ((m.shape[0],), m.dtype), m, v)

    @staticmethod
    def backward(ctx, grad):
        m, v = ctx.saved_tensors
        from .pointwise import mul
        gm = mul(views.unsqueeze(grad, 1), v) if ctx.needs_input_grad[0] else None      # grad.ger(vec)
        gv = mv(views.t(m), grad) if ctx.needs_input_grad[1] else None
        return gm, gv


class Dot(Function):
    """y = a . b (1-D).  Saves: a if b needs grad; b if a needs grad."""

    saves = ("self", "tensor")

    @staticmethod
    def forward(ctx, a, b):
        if a.dim() != 1 or b.dim() != 1:
            raise RuntimeError(f"1D tensors expected, but got {a.dim()}D and {b.dim()}D tensors")
        if int(a.shape[0]) != int(b.shape[0]):
            raise RuntimeError("inconsistent tensor size, expected tensor [%d] and src [%d] to have the same number "
                               "of elements, but got %d and %d elements respectively"
                               % (int(a.shape[0]), int(b.shape[0]), int(a.shape[0]), int(b.shape[0])))
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        return kernel("dot", ((), a.dtype), a, b)

    @staticmethod
    def backward(ctx, grad):
        from .pointwise import mul
        a, b = ctx.saved_tensors
        return (mul(grad, b) if ctx.needs_input_grad[0] else None,
                mul(grad, a) if ctx.needs_input_grad[1] else None)


def bmm(a, b):
    return Bmm.apply(a, b)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    return Baddbmm.apply(input, batch1, batch2, beta, alpha)


def mv(m, v):
    return Mv.apply(m, v)


def dot(a, b):
    return Dot.apply(a, b)


def _should_fold(a, b) -> bool:
    """torch's should_fold: fold the larger operand's batch into mm rows when it costs no copy
    (or when the smaller operand requires grad, to avoid a batched gradient for it)."""
    a_larger = a.dim() >= b.dim()
    big = a if a_larger else views.transpose(b, -2, -1)
    small_dim = b.dim() if a_larger else a.dim()
    if not (big.dim() >= 3 and small_dim <= 2):
        return False
    if (b if a_larger else a).requires_grad:
        return True
    if a.dim() == 2:
        return False
    if int(big.numel()) == 0:
        return True
    shape, strides = big.shape, big.stride()
    return all(int(strides[i]) == int(strides[i + 1]) * int(shape[i + 1]) for i in range(big.dim() - 2))


def matmul(a, b):
    """torch.matmul, decomposed exactly as torch's _matmul_impl (dot, mv, mm, folded mm, or expanded bmm)."""
    from .shapes import broadcast_shapes
    da, db = a.dim(), b.dim()
    if da == 0 or db == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D")
    if da == 1 and db == 1:
        return dot(a, b)
    if da == 2 and db == 1:
        return mv(a, b)
    if da == 1 and db == 2:
        return views.squeeze(mm(views.unsqueeze(a, 0), b), 0)
    if da == 2 and db == 2:
        return mm(a, b)
    if _should_fold(a, b):
        transpose = db > da
        t1 = views.transpose(b, -2, -1) if transpose else a
        t2 = (views.t(a) if da == 2 else a) if transpose else b
        out_shape = list(t1.shape[:-1])
        folded = sym_prod(out_shape)
        if t2.dim() == 2:
            out_shape.append(t2.shape[1])
        t1_folded = views.reshape(t1, (folded, t1.shape[-1]))
        if t2.dim() == 2:
            out = views.UnsafeView.apply(mm(t1_folded, t2), tuple(out_shape))
            return views.contiguous(views.transpose(out, -2, -1)) if transpose else out
        return views.UnsafeView.apply(mv(t1_folded, t2), tuple(out_shape))
    n = a.shape[-2] if da > 1 else 1
    m1 = a.shape[-1]
    m2 = b.shape[-2] if db > 1 else b.shape[0]
    p = b.shape[-1] if db > 1 else 1
    if int(m1) != int(m2):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{int(sym_prod(a.shape[:-2]) if da > 2 else 1)}, {int(m1)}] but got: "
                           f"[{int(sym_prod(b.shape[:-2]) if db > 2 else 1)}, {int(m2)}].")
    batch = tuple(broadcast_shapes(tuple(a.shape[:max(da - 2, 0)]), tuple(b.shape[:max(db - 2, 0)])))
    batch_prod = sym_prod(batch)
    a3 = views.reshape(views.expand(a, batch + (n, m1)), (batch_prod, n, m1))
    if db == 1:
        b3 = views.unsqueeze(views.reshape(views.expand(b, batch + (m2,)), (batch_prod, m2)), 2)
    else:
        b3 = views.reshape(views.expand(b, batch + (m2, p)), (batch_prod, m2, p))
    out_shape = batch + ((n,) if da > 1 else ()) + ((p,) if db > 1 else ())
    out = bmm(a3, b3)
    if db == 1:
        out = views.squeeze(out, -1)
    return views.UnsafeView.apply(out, out_shape)


def linear(x, weight, bias=None):
    """F.linear as torch decomposes it: addmm for 2-D input, one flattened addmm for a contiguous input
    with a 1-D bias (or contiguous 3-D input), else matmul (+ in-place bias add)."""
    wt = views.t(weight)
    if x.dim() == 2 and bias is not None:
        return addmm(bias, x, wt)
    if bias is not None and x.is_contiguous() and (x.dim() == 3 or bias.dim() == 1):
        # torch's _flatten_nd_linear: any contiguous input with a 1-D bias becomes one addmm
        flat = views.reshape(x, (sym_prod(x.shape[:-1]), x.shape[-1]))
        out = addmm(bias, flat, wt)
        return views.View.apply(out, tuple(x.shape[:-1]) + (out.shape[1],))
    out = matmul(x, wt)
    if bias is not None:
        from .pointwise import AddInplace
        out = AddInplace.apply(out, bias)
    return out


# -- einsum ------------------------------------------------------------------------------------

_ELLIPSIS = "..."          # an operand's ellipsis, kept as one entry among its labels


def _label_index(c: str) -> int:
    """torch's label order: 'A'-'Z' then 'a'-'z'."""
    return ord(c) - ord("A") if c.isupper() else 26 + ord(c) - ord("a")


class _EinsumLayout:
    """The parsed equation and the layout every operand is aligned to: output dims first, then the
    contraction dims.  ``label_dim[c]`` is label c's dim there; the ellipsis covers
    ``ell_start .. ell_start + ell_ndim``; the first ``out_ndim`` of ``ndim`` dims are the output's."""

    def __init__(self, op_labels, label_dim, ell_start, ell_ndim, out_ndim, ndim):
        self.op_labels, self.label_dim = op_labels, label_dim
        self.ell_start, self.ell_ndim, self.out_ndim, self.ndim = ell_start, ell_ndim, out_ndim, ndim


def _is_label(c: str) -> bool:
    return c.isascii() and c.isalpha()


def _parse_einsum(equation: str, operands) -> _EinsumLayout:
    """Parse and check the equation as torch's C++ einsum does (same errors, same order of checks).
    The output is the explicit right-hand side, or implicitly the ellipsis followed by the labels seen
    once, in label order; contraction dims follow: an ellipsis missing from the output, then the other
    labels in label order."""
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    arrow = equation.find("->")
    lhs = equation if arrow < 0 else equation[:arrow]
    op_labels = [[] for _ in operands]
    current, ellipsis_seen, i = 0, False, 0
    while i < len(lhs):
        c = lhs[i]
        if c == ".":
            if ellipsis_seen:
                raise RuntimeError(f"einsum(): found '.' for operand {current} for which an ellipsis was already found")
            if not lhs.startswith(_ELLIPSIS, i):
                raise RuntimeError(f"einsum(): found '.' for operand {current} that is not part of any ellipsis")
            op_labels[current].append(_ELLIPSIS)
            ellipsis_seen = True
            i += 2
        elif c == ",":
            current += 1
            if current >= len(operands):
                raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
            ellipsis_seen = False
        elif c != " ":
            if not _is_label(c):
                raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation string, "
                                   "subscripts must be in [a-zA-Z]")
            op_labels[current].append(c)
        i += 1
    if current != len(operands) - 1:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")

    counts: dict = {}
    ell_ndim = 0
    for k, (labels, op) in enumerate(zip(op_labels, operands)):
        has_ellipsis = _ELLIPSIS in labels
        n_labels = len(labels) - has_ellipsis
        if has_ellipsis:
            ell_ndim = max(ell_ndim, op.dim() - n_labels)
        for c in labels:
            if c != _ELLIPSIS:
                counts[c] = counts.get(c, 0) + 1
        if n_labels > op.dim() if has_ellipsis else n_labels != op.dim():
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({n_labels}) "
                               + ("is more than" if has_ellipsis else "does not match")
                               + f" the number of dimensions ({op.dim()}) for operand {k}"
                               + ("" if has_ellipsis else " and no ellipsis was given"))

    in_label_order = sorted(counts, key=_label_index)
    label_dim: dict = {}
    ell_start, ell_in_output, ndim = 0, False, 0
    if arrow < 0:
        ndim, ell_in_output = ell_ndim, True
        for c in in_label_order:
            if counts[c] == 1:
                label_dim[c] = ndim
                ndim += 1
    else:
        rhs, i = equation[arrow + 2:], 0
        while i < len(rhs):
            c = rhs[i]
            if c == ".":
                if ell_in_output:
                    raise RuntimeError("einsum(): found '.' for output but an ellipsis (...) was already found")
                if not rhs.startswith(_ELLIPSIS, i):
                    raise RuntimeError("einsum(): found '.' for output that is not part of any ellipsis (...)")
                ell_start, ell_in_output = ndim, True
                ndim += ell_ndim
                i += 2
            elif c != " ":
                if not _is_label(c):
                    raise RuntimeError(f"einsum(): invalid subscript given at index {len(lhs) + 2 + i} in the "
                                       "equation string, subscripts must be in [a-zA-Z]")
                if c not in counts or c in label_dim:
                    raise RuntimeError(f"einsum(): output subscript {c}" + (
                        " appears more than once in the output" if c in label_dim else
                        " does not appear in the equation for any input operand"))
                label_dim[c] = ndim
                ndim += 1
            i += 1
    out_ndim = ndim
    if not ell_in_output:
        ell_start = ndim
        ndim += ell_ndim
    for c in in_label_order:
        if c not in label_dim:
            label_dim[c] = ndim
            ndim += 1
    return _EinsumLayout(op_labels, label_dim, ell_start, ell_ndim, out_ndim, ndim)


def _align_operands(layout: _EinsumLayout, operands):
    """Each operand as a view in the aligned layout: sizes checked (size-1 dims broadcast), a repeated
    label taken as a diagonal moved back to the label's first position, a missing label unsqueezed.
    Also returns, per aligned dim, how many operands have it with a size other than 1."""
    from .indexing import diagonal, movedim
    label_size: dict = {}
    ell_sizes = [1] * layout.ell_ndim
    dim_counts = [0] * layout.ndim
    aligned = []
    for k, (labels, op) in enumerate(zip(layout.op_labels, operands)):
        perm = [-1] * layout.ndim
        dim = 0
        for c in labels:
            if c == _ELLIPSIS:
                # counted on the operand as given: a diagonal taken before the ellipsis removed a dim
                covered = operands[k].dim() - (len(labels) - 1)
                for j in range(layout.ell_ndim - covered, layout.ell_ndim):
                    size = op.shape[dim]
                    if int(size) != 1:
                        if int(ell_sizes[j]) != 1 and int(ell_sizes[j]) != int(size):
                            # (torch's message lacks the space before "has size")
                            raise RuntimeError(f"einsum(): dimension {dim} covered by ellipsis in operand {k}has size "
                                               f"{int(size)} which does not broadcast with previously seen ellipsis "
                                               f"with size {int(ell_sizes[j])} for the respective dimension")
                        ell_sizes[j] = size
                        dim_counts[layout.ell_start + j] += 1
                    perm[layout.ell_start + j] = dim
                    dim += 1
            elif perm[layout.label_dim[c]] == -1:
                size = op.shape[dim]
                if int(size) != 1:
                    seen = label_size.get(c, 1)
                    if int(seen) != 1 and int(seen) != int(size):
                        raise RuntimeError(f"einsum(): subscript {c} has size {int(size)} for operand {k} which does "
                                           f"not broadcast with previously seen size {int(seen)}")
                    label_size[c] = size
                    dim_counts[layout.label_dim[c]] += 1
                perm[layout.label_dim[c]] = dim
                dim += 1
            else:
                first = perm[layout.label_dim[c]]
                if int(op.shape[dim]) != int(op.shape[first]):
                    raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} but the sizes don't "
                                       f"match, {int(op.shape[dim])} != {int(op.shape[first])}")
                op = movedim(diagonal(op, 0, first, dim), -1, first)
        for d in range(layout.ndim):
            if perm[d] == -1:
                op = views.unsqueeze(op, dim)
                perm[d] = dim
                dim += 1
        aligned.append(views.permute(op, perm))
    return aligned, dim_counts


def _sublist_label(n) -> str:
    """A subscript of torch.einsum's sublist format: Ellipsis, or 0-25 for 'A'-'Z' and 26-51 for 'a'-'z'."""
    if n == Ellipsis:
        return _ELLIPSIS
    if 0 <= n < 26:
        return chr(ord("A") + n)
    if 26 <= n < 52:
        return chr(ord("a") + n - 26)
    raise ValueError("einsum(): subscript in subscript list is not within the valid range [0, 52)")


_NOT_LOOKED_UP = object()
_opt_einsum_package = _NOT_LOOKED_UP


def _opt_einsum():
    """The opt_einsum package if it is installed, else None (looked up once, as torch.backends does)."""
    global _opt_einsum_package
    if _opt_einsum_package is _NOT_LOOKED_UP:
        try:
            import opt_einsum as package
        except ImportError:
            package = None
        _opt_einsum_package = package
    return _opt_einsum_package


def _contraction_path(equation: str, operands):
    """torch.einsum's contraction order for three or more operands: opt_einsum's path for torch's
    default strategy ("auto"), flattened to [i0, j0, i1, j1, ...]; None (left to right) without it."""
    package = _opt_einsum()
    if package is None:
        return None
    pairs = package.contract_path(equation, *operands, optimize="auto")[0]
    return [index for pair in pairs for index in pair]


def einsum(*args):
    """torch.einsum: ``einsum(equation, *operands)``, ``einsum(equation, [operands])`` or the sublist
    form ``einsum(op0, subscripts0, op1, subscripts1, ..., [output subscripts])``.  Three or more
    operands are contracted in opt_einsum's order when it is installed (torch/functional.py), else
    left to right, by torch's C++ einsum (:func:`_einsum`)."""
    from ..tensor import Tensor
    if len(args) < 2:
        raise ValueError("einsum(): must specify the equation string and at least one operand, or at least one "
                         "operand and its subscripts list")
    if isinstance(args[0], Tensor):
        equation = ",".join("".join(_sublist_label(s) for s in subscripts) for subscripts in args[1::2])
        if len(args) % 2 == 1:
            equation += "->" + "".join(_sublist_label(s) for s in args[-1])
            operands = args[:-1:2]
        else:
            operands = args[::2]
    else:
        equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        return einsum(equation, *operands[0])
    path = _contraction_path(equation, operands) if len(operands) > 2 else None
    return _einsum(equation, operands, path)


def _einsum(equation: str, operands, path=None):
    """torch's C++ einsum (aten ``einsum(equation, tensors, path)``): operands aligned to [output dims,
    contraction dims] (:func:`_align_operands`), then contracted pairwise by sumproduct_pair, a dim
    summed away as soon as only one operand has it.  Without a path the pair is the first two and the
    product goes to the front; with one, path[2k], path[2k + 1] pick the pair and the product goes last."""
    from .reduce import sum as sum_
    n_operands = len(operands)
    if path is not None:
        expected = 1 if n_operands == 1 else (n_operands - 1) * 2
        if len(path) != expected:
            raise RuntimeError(f"einsum(): expected contraction path given in path parameter to have size {expected} "
                               f"but got {len(path)}")
    layout = _parse_einsum(equation, operands)
    ops, dim_counts = _align_operands(layout, operands)
    out_ndim, ndim = layout.out_ndim, layout.ndim
    pairs = iter(path or ())
    while len(ops) > 1:
        i, j = 0, 1
        if path is not None:
            i, j = next(pairs), next(pairs)
            if j < i:
                i, j = j, i
            if i == j or i < 0 or j >= len(ops):
                raise RuntimeError(f"einsum(): invalid contraction ({i}, {j})" + (
                    " cannot contract an operand with itself" if i == j else " operand index is out of bounds"))
        a, b = ops[i], ops[j]
        del ops[j], ops[i]
        sum_dims, a_only, b_only = [], [], []
        for d in range(out_ndim, ndim):
            if int(a.shape[d]) != 1 and int(b.shape[d]) != 1:
                dim_counts[d] -= 1
                if dim_counts[d] == 1:
                    sum_dims.append(d)
                    dim_counts[d] = 0
            elif dim_counts[d] == 1:
                if int(a.shape[d]) != 1:
                    a_only.append(d)
                    dim_counts[d] = 0
                elif int(b.shape[d]) != 1:
                    b_only.append(d)
                    dim_counts[d] = 0
        # dims only one operand still has are summed before the product, several in one call
        if a_only:
            a = sum_(a, a_only, True)
        if b_only:
            b = sum_(b, b_only, True)
        product = _sumproduct_pair(a, b, sum_dims)
        if path is not None:
            ops.append(product)
        else:
            ops.insert(0, product)
    result = ops[0]
    if ndim > out_ndim:
        if n_operands > 1:          # the contraction dims were all summed to size 1 on the way
            return views.view_(result, *result.shape[:out_ndim])
        return sum_(result, list(range(out_ndim, ndim)))
    return result


def _sumproduct_pair(left, right, sum_dims):
    """torch's sumproduct_pair (keepdim=True): multiply and sum over ``sum_dims`` through one bmm
    (permute, reshape, bmm, view, permute).  When every dim only the right operand has comes before
    every dim only the left has, the operands trade places so that bmm writes the output in order."""
    from .pointwise import mul
    from .reduce import sum as sum_
    if not sum_dims:
        return mul(left, right)
    dim = left.dim()
    lro, lo, ro = [], [], []
    lro_size = lo_size = ro_size = sum_size = 1
    for i in range(dim):
        sl, sr = int(left.shape[i]) != 1, int(right.shape[i]) != 1
        if i in sum_dims:
            if sl and sr:
                sum_size = sum_size * left.shape[i]
            elif sl:
                left = sum_(left, i, True)
            elif sr:
                right = sum_(right, i, True)
        elif sl and sr:
            lro.append(i)
            lro_size = lro_size * left.shape[i]
        elif sl:
            lo.append(i)
            lo_size = lo_size * left.shape[i]
        else:
            ro.append(i)
            ro_size = ro_size * right.shape[i]
    if lo and ro and ro[-1] < lo[0]:
        left, right, lo, ro, lo_size, ro_size = right, left, ro, lo, ro_size, lo_size
    out_shape = [left.shape[d] for d in lro] + [left.shape[d] for d in lo] + [1] * len(sum_dims) + \
        [right.shape[d] for d in ro]
    lperm = lro + lo + list(sum_dims) + ro
    rperm = lro + list(sum_dims) + ro + lo
    operm = [-1] * len(out_shape)
    for i, d in enumerate(lro + lo + list(sum_dims) + ro):
        operm[d] = i
    left = views.reshape(views.permute(left, lperm), (lro_size, lo_size, sum_size))
    right = views.reshape(views.permute(right, rperm), (lro_size, sum_size, ro_size))
    result = bmm(left, right)
    return views.permute(views.view_(result, *out_shape), operm)
