"""Matrix products against torch: every matmul case (dot, mv, mm, folded mm, broadcast bmm) with the
decomposition torch picks (the saved tensors prove it), bmm/baddbmm/mv/dot, second order included."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def _matmul(a_spec, b_spec):
    return (torch.matmul, gx.matmul, [a_spec, b_spec], {})


CASES = {
    "matmul_1d_1d": _matmul(Arg((5,)), Arg((5,))),
    "matmul_2d_1d": _matmul(Arg((3, 5)), Arg((5,))),
    "matmul_1d_2d": _matmul(Arg((5,)), Arg((5, 4))),
    "matmul_2d_2d": _matmul(Arg((3, 5)), Arg((5, 4))),
    "matmul_3d_2d_fold": _matmul(Arg((2, 3, 5)), Arg((5, 4))),
    "matmul_3d_2d_weight_frozen": _matmul(Arg((2, 3, 5)), Arg((5, 4), requires_grad=False)),
    "matmul_3d_2d_noncontiguous_frozen": _matmul(Arg((5, 3, 2), transposed=True), Arg((2, 4), requires_grad=False)),
    "matmul_3d_1d": _matmul(Arg((2, 3, 5)), Arg((5,))),
    "matmul_1d_3d": _matmul(Arg((5,)), Arg((2, 5, 4))),
    "matmul_2d_3d": _matmul(Arg((3, 5)), Arg((2, 5, 4))),
    "matmul_2d_3d_frozen_left": _matmul(Arg((3, 5), requires_grad=False), Arg((2, 5, 4))),
    "matmul_4d_4d": _matmul(Arg((2, 3, 4, 5)), Arg((2, 3, 5, 6))),
    "matmul_4d_4d_broadcast": _matmul(Arg((2, 1, 4, 5)), Arg((1, 3, 5, 6))),
    "matmul_4d_3d_broadcast": _matmul(Arg((2, 3, 4, 5)), Arg((3, 5, 2))),
    "matmul_4d_transposed": _matmul(Arg((2, 3, 4, 5), transposed=True), Arg((2, 3, 5, 6))),
    "bmm": (torch.bmm, gx.bmm, [Arg((3, 4, 5)), Arg((3, 5, 2))], {}),
    "bmm_one_frozen": (torch.bmm, gx.bmm, [Arg((3, 4, 5)), Arg((3, 5, 2), requires_grad=False)], {}),
    "baddbmm": (lambda c, a, b: torch.baddbmm(c, a, b, beta=0.5, alpha=2.0),
                lambda c, a, b: gx.baddbmm(c, a, b, beta=0.5, alpha=2.0), [Arg((4, 2)), Arg((3, 4, 5)),
                                                                            Arg((3, 5, 2))], {}),
    "mv": (torch.mv, gx.mv, [Arg((4, 5)), Arg((5,))], {}),
    "dot": (torch.dot, gx.dot, [Arg((5,)), Arg((5,))], {}),
    "mm_column_major": (torch.mm, gx.mm, [Arg((3, 5)), Arg((5, 4), transposed=True)], {}),
    "addmm": (torch.addmm, gx.addmm, [Arg((4,)), Arg((3, 5)), Arg((5, 4))], {}),
}


def _einsum(eq, *shapes, **arg_kwargs):
    return (lambda *xs: torch.einsum(eq, *xs), lambda *xs: gx.einsum(eq, *xs),
            [Arg(s, **arg_kwargs) for s in shapes], {})


CASES.update({
    "einsum_batched_matmul": _einsum("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    "einsum_matvec": _einsum("ij,j->i", (3, 4), (4,)),
    "einsum_attention_scores": _einsum("bhqd,bhkd->bhqk", (2, 3, 5, 4), (2, 3, 6, 4)),
    "einsum_outer": _einsum("i,j->ij", (3,), (4,)),
    "einsum_total_sum": _einsum("ij->", (3, 4)),
    "einsum_transpose": _einsum("ij->ji", (3, 4)),
    "einsum_implicit_output": _einsum("ij,kj", (3, 4), (5, 4)),
    "einsum_three_operands": _einsum("ij,jk,kl->il", (2, 3), (3, 4), (4, 5)),
    "einsum_sum_only_in_one": _einsum("ijk,jl->il", (2, 3, 4), (3, 5)),
    "einsum_broadcast_batch": _einsum("bij,jk->bik", (2, 3, 4), (4, 5)),
    "einsum_noncontiguous": _einsum("bij,bjk->bik", (2, 3, 4), (2, 4, 5), transposed=True),
})


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_linalg_matches_torch(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **kwargs)


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (4, 5)), ((2, 3, 4), (2, 5, 6))])
def test_matmul_shape_errors_match_torch(shapes):
    a, b = (torch.randn(*s) for s in shapes)
    with pytest.raises(RuntimeError):
        torch.matmul(a, b)
    with pytest.raises(RuntimeError):
        gx.matmul(gx.empty(*shapes[0]), gx.empty(*shapes[1]))
