"""einsum and diagonal against torch: values, saved tensors, gradients and second order, for ellipses
(broadcast, implicit, not in the output), repeated subscripts (diagonals), the sublist format,
2-4 operands, the contraction order (left to right, or a path as opt_einsum would give one), the node
chain torch records, symbolic sizes, and torch's errors for malformed equations."""
import contextlib

import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.ops import linalg  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def _einsum(eq, *specs, **check):
    """A case of ``einsum(eq, *operands)``; a spec is a shape or an :class:`Arg`."""
    args = [s if isinstance(s, Arg) else Arg(s) for s in specs]
    return (lambda *xs: torch.einsum(eq, *xs), lambda *xs: gx.einsum(eq, *xs), args, check)


class _StandInOptEinsum:
    """Plays the opt_einsum package: ``contract_path`` answers a fixed path (as a list of pairs, the
    way opt_einsum does) and records how it was called."""

    def __init__(self, pairs):
        self.pairs = [tuple(p) for p in pairs]
        self.calls = []

    def contract_path(self, equation, *operands, optimize):
        self.calls.append((equation, operands, optimize))
        return self.pairs, "path info"


@contextlib.contextmanager
def _opt_einsum_installed(package):
    """The engine sees ``package`` as the installed opt_einsum while the block runs."""
    original = linalg._opt_einsum
    linalg._opt_einsum = lambda: package
    try:
        yield package
    finally:
        linalg._opt_einsum = original


def _einsum_with_path(eq, pairs, *specs, **check):
    """torch's C++ einsum given the path opt_einsum would give (``_VF.einsum(..., path=)``, what
    torch.einsum calls when opt_einsum is installed) against the engine with a stand-in opt_einsum
    that answers that path."""
    flat = [i for pair in pairs for i in pair]

    def engine(*xs):
        with _opt_einsum_installed(_StandInOptEinsum(pairs)) as stand_in:
            out = gx.einsum(eq, *xs)
        assert len(stand_in.calls) == 1, "the engine did not ask opt_einsum for the path"
        return out

    args = [s if isinstance(s, Arg) else Arg(s) for s in specs]
    return (lambda *xs: torch._VF.einsum(eq, xs, path=flat), engine, args, check)


def _diagonal(shape, *args, transposed=False, method=False, **kwargs):
    spec = Arg(shape, transposed=transposed)
    if method:
        return (lambda x: x.diagonal(*args, **kwargs), lambda x: x.diagonal(*args, **kwargs), [spec], {})
    return (lambda x: torch.diagonal(x, *args, **kwargs), lambda x: gx.diagonal(x, *args, **kwargs), [spec], {})


CASES = {
    # -- diagonal ----------------------------------------------------------------------------------
    "diagonal_square": _diagonal((4, 4)),
    "diagonal_wide_offset": _diagonal((3, 5), 2),
    "diagonal_tall_negative_offset": _diagonal((5, 3), -1),
    "diagonal_3d_outer_dims": _diagonal((3, 4, 5), 1, 0, 2),
    "diagonal_negative_dims_reversed": _diagonal((3, 4, 5), -2, -1, 0),
    "diagonal_method_keywords": _diagonal((2, 4, 3), method=True, offset=1, dim1=1, dim2=2),
    "diagonal_transposed_input": _diagonal((4, 2, 4), 0, 0, 2, transposed=True),
    "diagonal_offset_past_the_end": _diagonal((3, 4), 7),
    "diagonal_of_intermediate": (lambda x: (x * 2).diagonal(0, 1, 2).exp(),
                                 lambda x: (x * 2).diagonal(0, 1, 2).exp(), [Arg((2, 3, 3))], {}),

    # -- two operands: the common patterns ---------------------------------------------------------
    "batch_matmul": _einsum("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    "batch_matmul_transposed_inputs": _einsum("bij,bjk->bik", Arg((2, 3, 4), transposed=True),
                                              Arg((2, 4, 5), transposed=True)),
    "batch_matmul_one_frozen": _einsum("bij,bjk->bik", (2, 3, 4), Arg((2, 4, 5), requires_grad=False)),
    "batch_matmul_label_broadcast": _einsum("bij,bjk->bik", (1, 3, 4), (2, 4, 5)),
    "attention_scores": _einsum("bhqd,bhkd->bhqk", (2, 3, 5, 4), Arg((2, 3, 6, 4), transposed=True)),
    "attention_values": _einsum("bhqk,bhkd->bqhd", (2, 3, 5, 6), (2, 3, 6, 4)),
    "outer": _einsum("i,j->ij", (3,), (4,)),
    "dot_to_scalar": _einsum("ij,ij->", (3, 4), (3, 4)),
    "elementwise_no_sum": _einsum("ij,ij->ij", (3, 4), (3, 4)),
    "sum_only_in_one_operand": _einsum("ijk,jl->il", (2, 3, 4), (3, 5)),
    "uppercase_labels": _einsum("Ab,bC->CA", (3, 4), (4, 5)),
    "spaces_in_equation": _einsum(" b i j , b j k -> b i k ", (2, 3, 4), (2, 4, 5)),
    "scalar_operand": _einsum(",i->i", (), (4,)),
    "empty_contraction": _einsum("ij,jk->ik", (3, 0), (0, 4)),

    # -- ellipsis ------------------------------------------------------------------------------------
    "ellipsis_batch_matmul": _einsum("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)),
    "ellipsis_broadcast": _einsum("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 6)),
    "ellipsis_implicit_output": _einsum("...ij,...jk", (2, 3, 4), (4, 5)),
    "ellipsis_implicit_transpose": _einsum("...ji", (2, 3, 4)),
    "ellipsis_in_the_middle": _einsum("a...b,b...c->...ac", (2, 3, 4, 5), (5, 4, 6)),
    "ellipsis_summed_out": _einsum("...ij->ij", (2, 3, 4, 5)),
    "ellipsis_all_summed_two_operands": _einsum("...i,...i->", (2, 3, 4), (3, 4)),
    "ellipsis_output_first": _einsum("i...,...j->...ij", (3, 2, 1), (5, 4)),
    "ellipsis_covering_nothing": _einsum("...ij,jk->...ik", (3, 4), (4, 5)),
    "ellipsis_of_a_scalar": _einsum("...,...->...", (), (3,)),
    "ellipsis_attention_noncontiguous": _einsum("...qd,...kd->...qk", Arg((2, 3, 5, 4), transposed=True),
                                                (2, 3, 6, 4)),

    # -- repeated subscripts (diagonals) -------------------------------------------------------------
    "trace": _einsum("ii", (4, 4)),
    "repeated_ii_i": _einsum("ii->i", (4, 4)),
    "repeated_outer_dims": _einsum("iji->j", (3, 4, 3)),
    "repeated_triple": _einsum("iii->i", (3, 3, 3)),
    "repeated_two_pairs": _einsum("ijij->ij", (2, 3, 2, 3)),
    "repeated_batched_ellipsis": _einsum("...ii->...i", (2, 3, 3)),
    "repeated_transposed_input": _einsum("bii->bi", Arg((2, 3, 3), transposed=True)),
    "repeated_then_contract": _einsum("bii,bij->bj", (2, 3, 3), (2, 3, 4)),
    "repeated_in_both_operands": _einsum("ii,jj->ij", (3, 3), (4, 4)),

    # -- sublist and list formats --------------------------------------------------------------------
    "sublist_explicit_output": (lambda a, b: torch.einsum(a, [0, 1], b, [1, 2], [0, 2]),
                                lambda a, b: gx.einsum(a, [0, 1], b, [1, 2], [0, 2]), [Arg((3, 4)), Arg((4, 5))], {}),
    "sublist_implicit_output": (lambda a, b: torch.einsum(a, [27, 26], b, [26, 51]),
                                lambda a, b: gx.einsum(a, [27, 26], b, [26, 51]), [Arg((3, 4)), Arg((4, 5))], {}),
    "sublist_ellipsis": (lambda a, b: torch.einsum(a, [..., 0, 1], b, [..., 1, 2], [..., 2, 0]),
                         lambda a, b: gx.einsum(a, [..., 0, 1], b, [..., 1, 2], [..., 2, 0]),
                         [Arg((2, 3, 4)), Arg((2, 4, 5))], {}),
    "operands_as_one_list": (lambda a, b: torch.einsum("ij,jk", [a, b]), lambda a, b: gx.einsum("ij,jk", [a, b]),
                             [Arg((3, 4)), Arg((4, 5))], {}),

    # -- three and four operands: left to right without opt_einsum (none is installed here) -----------
    "chain_of_three": _einsum("ij,jk,kl->il", (2, 3), (3, 4), (4, 5)),
    "bilinear": _einsum("bi,oij,bj->bo", (4, 3), (2, 3, 5), (4, 5)),
    "chain_of_four": _einsum("ij,jk,kl,lm->im", (2, 3), (3, 4), (4, 5), (5, 2)),
    "four_with_ellipsis_and_diagonal": _einsum("...ii,ij,...j,k->...k", (2, 3, 3), (3, 4), (2, 4), (5,)),

    # -- a contraction path, as opt_einsum would give it ----------------------------------------------
    "path_three_right_pair_first": _einsum_with_path("ij,jk,kl->il", [(1, 2), (0, 1)], (2, 3), (3, 4), (4, 5)),
    "path_bilinear_outer_pair_first": _einsum_with_path("bi,oij,bj->bo", [(0, 2), (0, 1)], (4, 3), (2, 3, 5),
                                                        (4, 5)),
    "path_four_pairs_reversed": _einsum_with_path("ij,jk,kl,lm->im", [(3, 2), (1, 0), (1, 0)], (2, 3), (3, 4),
                                                  (4, 5), (5, 2)),
    "path_four_ellipsis_diagonal": _einsum_with_path("...ii,ij,...j,k->...k", [(2, 3), (0, 1), (0, 1)], (2, 3, 3),
                                                     Arg((3, 4), transposed=True), (2, 4), (5,)),
}

# diagonal is a view: exact in any dtype; einsum reduces, so low precision is left to the float32 runs
_LOW_PRECISION = (torch.float16, torch.bfloat16)
PARAMS = [(name, dtype) for name in sorted(CASES)
          for dtype in (torch.float64, torch.float32) + (_LOW_PRECISION if name.startswith("diagonal_") else ())]


@pytest.mark.parametrize(("name", "dtype"), PARAMS)
def test_einsum_and_diagonal_match_torch(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


# -- the node chain torch records -------------------------------------------------------------------

def _chain(fn) -> list:
    """Node names, depth first from the output's grad_fn (leaf accumulators left out)."""
    names = []

    def walk(node):
        if node is None:
            return
        name = node.name()
        if "AccumulateGrad" in name:
            return
        names.append(name)
        for child, _ in node.next_functions:
            walk(child)

    walk(fn)
    return names


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iji->j", [(3, 4, 3)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ik,kj->ji", [(3, 4), (4, 5)]),
    ("i...,...j->...ij", [(3, 2, 1), (5, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
])
def test_node_chain_matches_torch(equation, shapes):
    xs = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    expected = _chain(torch.einsum(equation, *xs).grad_fn)
    ours = _chain(gx.einsum(equation, *[gx.from_torch(x, requires_grad=True) for x in xs]).grad_fn)
    assert ours == expected


def test_diagonal_is_a_view_with_torchs_geometry():
    base = torch.randn(3, 4, 5, dtype=torch.float64)
    ours_base = gx.from_torch(base)
    for args in [(0, 0, 1), (2, 0, 2), (-1, 2, 0), (-2, -1, -3), (9, 1, 2), (-9, 1, 2)]:
        theirs, ours = base.diagonal(*args), ours_base.diagonal(*args)
        assert ours._base is ours_base
        assert tuple(ours.shape) == tuple(theirs.shape)
        assert tuple(int(s) for s in ours.stride()) == theirs.stride()
        assert int(ours.storage_offset()) == theirs.storage_offset()


def test_diagonal_backward_is_differentiable_to_the_third_order():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    gx_x = gx.from_torch(x, requires_grad=True)
    results = []
    for lib, inp in ((torch, x), (gx, gx_x)):
        (first,) = lib.autograd.grad((inp.diagonal(1) ** 3).sum(), inp, create_graph=True)
        (second,) = lib.autograd.grad(first.sum(), inp, create_graph=True)
        (third,) = lib.autograd.grad(second.sum(), inp)
        results.append(third)
    assert torch.allclose(gx.backends.to_torch(results[1]) if hasattr(gx.backends, "to_torch")
                          else results[1].data_, results[0], rtol=1e-10, atol=1e-12)
