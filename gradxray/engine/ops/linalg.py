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


def cublas_operand_scratch(*operands) -> None:
    """cuBLAS takes a matrix only with unit stride in one dim (torch's prepare_matrix_for_cublas): any
    other operand (an expanded gradient, a strided slice) is cloned contiguous for the duration of the
    kernel.  Accounted as a transient allocation, after the output exists."""
    from ..tensor import Storage
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


# -- einsum ------------------------------------------------------------------------------------

def _label_index(c: str) -> int:
    """torch's label order: 'A'-'Z' then 'a'-'z'."""
    return ord(c) - ord("A") if c.isupper() else 26 + ord(c) - ord("a")


def _parse_einsum(equation: str, operands):
    eq = equation.replace(" ", "")
    if "." in eq:
        raise NotImplementedError("einsum with an ellipsis ('...') is not supported yet")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation" if len(operands) >
                           len(terms) else "einsum(): fewer operands were provided than specified in the equation")
    for term, op in zip(terms, operands):
        if not all(c.isalpha() for c in term):
            raise RuntimeError(f"einsum(): invalid subscript given at index {lhs.index(term)} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
        if len(term) != op.dim():
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(term)}) does not match the "
                               f"number of dimensions ({op.dim()}) for operand {terms.index(term)} and no ellipsis "
                               "was given")
    if arrow:
        out = rhs
    else:
        counts = {}
        for c in "".join(terms):
            counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted((c for c, n in counts.items() if n == 1), key=_label_index))
    return terms, out


def einsum(equation, *operands):
    """torch.einsum as torch's C++ implementation runs it (no opt_einsum path): each operand is
    unsqueezed and permuted to [output labels, contraction labels in label order], then contracted
    left to right by sumproduct_pair (permute, reshape, bmm, view, permute)."""
    from .reduce import sum as sum_
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    terms, out = _parse_einsum(equation, operands)
    perm_index = {c: i for i, c in enumerate(out)}
    out_size = len(out)
    for c in sorted({c for t in terms for c in t}, key=_label_index):
        if c not in perm_index:
            perm_index[c] = len(perm_index)
    n = len(perm_index)
    permuted = []
    for term, op in zip(terms, operands):
        if len(set(term)) != len(term):
            raise NotImplementedError("einsum with a repeated subscript in one operand (a diagonal) is not supported "
                                      "yet")
        perm = [-1] * n
        j = 0
        for c in term:
            perm[perm_index[c]] = j
            j += 1
        for k in range(n):
            if perm[k] == -1:
                op = views.unsqueeze(op, -1)
                perm[k] = j
                j += 1
        permuted.append(views.permute(op, perm))
    if len(permuted) == 1:
        contraction = list(range(out_size, n))
        return sum_(permuted[0], contraction) if contraction else permuted[0]
    counts = [sum(1 for p in permuted if int(p.shape[d]) != 1) for d in range(n)]
    ops = list(permuted)
    while len(ops) > 1:
        a, b = ops.pop(0), ops.pop(0)
        sum_dims, a_sum, b_sum = [], [], []
        for d in range(out_size, n):
            if int(a.shape[d]) != 1 and int(b.shape[d]) != 1:
                counts[d] -= 1
                if counts[d] == 1:
                    sum_dims.append(d)
                    counts[d] = 0
            elif counts[d] == 1:
                if int(a.shape[d]) != 1:
                    a_sum.append(d)
                    counts[d] = 0
                elif int(b.shape[d]) != 1:
                    b_sum.append(d)
                    counts[d] = 0
        if a_sum:
            a = sum_(a, a_sum, True)
        if b_sum:
            b = sum_(b, b_sum, True)
        ops.insert(0, _sumproduct_pair(a, b, sum_dims))
    result = ops[0]
    if n > out_size:
        return views.view_(result, *result.shape[:out_size])
    return result


def _sumproduct_pair(left, right, sum_dims):
    """torch's sumproduct_pair (keepdim=True): multiply and sum over ``sum_dims`` through one bmm."""
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
