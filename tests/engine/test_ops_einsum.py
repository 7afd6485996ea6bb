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
    "swapped_operands_transposed_output": _einsum("ik,kj->ji", (3, 4), (4, 5)),
    "swapped_operands_batched": _einsum("bik,bkj->bji", (2, 3, 4), Arg((2, 4, 5), transposed=True)),
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
    "repeated_before_ellipsis": _einsum("ii...->...i", (3, 3, 2, 4)),
    "repeated_around_ellipsis_with_operand": _einsum("i...i,...j->ij", (3, 2, 3), (2, 4)),

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
    # the swapped operands' reshape is a view of a non-contiguous tensor: torch records _reshape_alias
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
    assert torch.allclose(torch.from_numpy(gx.backends.to_numpy(results[1])), results[0], rtol=1e-10, atol=1e-12)


# -- errors: torch's type and wording --------------------------------------------------------------

def _raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - whatever torch raises is the expectation
        return type(e), str(e)
    raise AssertionError("no error raised")


def _assert_same_error(torch_call, engine_call):
    expected_type, expected_message = _raised(torch_call)
    assert not issubclass(expected_type, AssertionError), expected_message
    with pytest.raises(expected_type) as info:
        engine_call()
    assert str(info.value) == expected_message


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ij,jk", [(3, 4)]),                            # fewer operands than the equation names
    ("ij", [(3, 4), (4, 5)]),                       # more operands
    ("i.j", [(3, 4)]),                              # a lone '.'
    ("i..", [(3, 4)]),                              # '..' at the end
    ("...i...", [(3, 4)]),                          # two ellipses in one operand
    ("ij->i.", [(3, 4)]),
    ("ij->......", [(3, 4)]),
    ("i1", [(3, 4)]),                               # invalid subscript, index into the equation
    ("i j->i 1", [(3, 4)]),                         # ... counted with the spaces, on the right side too
    ("ij->ii", [(3, 4)]),
    ("ij->k", [(3, 4)]),
    ("ijk", [(3, 4)]),                              # too many subscripts, no ellipsis
    ("i", [(3, 4)]),                                # too few
    ("...ijk", [(3, 4)]),                           # too many even with an ellipsis
    ("ij,ik", [(3, 4), (4, 5)]),                    # sizes that do not broadcast
    ("ii", [(3, 4)]),                               # a repeated subscript with different sizes
    ("...i,...i", [(2, 3), (4, 3)]),                # ellipsis dims that do not broadcast
    ("", [(3,)]),
])
def test_malformed_equations_raise_torchs_error(equation, shapes):
    xs = [torch.randn(*s, dtype=torch.float64) for s in shapes]
    _assert_same_error(lambda: torch.einsum(equation, *xs), lambda: gx.einsum(equation, *map(gx.from_torch, xs)))


@pytest.mark.parametrize("call", [
    lambda lib, a, b: lib.einsum(a),                                      # no subscripts
    lambda lib, a, b: lib.einsum("ij"),                                   # no operand
    lambda lib, a, b: lib.einsum("ij", []),
    lambda lib, a, b: lib.einsum(a, [0, 52]),                             # subscript out of [0, 52)
    lambda lib, a, b: lib.einsum(a, [-1, 0]),
    lambda lib, a, b: lib.einsum(a, [0, 1], b, [1, 2], [0, 3]),           # output subscript not in the inputs
])
def test_bad_arguments_raise_torchs_error(call):
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    _assert_same_error(lambda: call(torch, a, b), lambda: call(gx, gx.from_torch(a), gx.from_torch(b)))


@pytest.mark.parametrize("path", [[0, 1], [0, 0, 0, 1], [0, 3, 0, 1], [-1, 1, 0, 1], [1, 2, 1, 1]])
def test_invalid_contraction_paths_raise_torchs_error(path):
    xs = [torch.randn(*s, dtype=torch.float64) for s in [(2, 3), (3, 4), (4, 5)]]
    _assert_same_error(lambda: torch._VF.einsum("ij,jk,kl->il", xs, path=path),
                       lambda: linalg._einsum("ij,jk,kl->il", [gx.from_torch(x) for x in xs], path))


@pytest.mark.parametrize(("shape", "args"), [
    ((3, 4, 5), (0, 0, 0)),
    ((3, 4, 5), (0, -1, 2)),                        # the same dim, spelled as given
    ((3, 4, 5), (0, 0, 3)),                         # out of range
    ((3,), ()),                                     # fewer than two dims
    ((), ()),
])
def test_diagonal_errors_match_torch(shape, args):
    x = torch.randn(shape, dtype=torch.float64)
    _assert_same_error(lambda: torch.diagonal(x, *args), lambda: gx.diagonal(gx.from_torch(x), *args))


# -- the contraction order: opt_einsum's path when it is installed ----------------------------------

def test_opt_einsum_is_asked_the_way_torch_asks():
    xs = [gx.from_torch(torch.randn(*s, dtype=torch.float64)) for s in [(2, 3), (3, 4), (4, 5)]]
    with _opt_einsum_installed(_StandInOptEinsum([(1, 2), (0, 1)])) as stand_in:
        gx.einsum("ij,jk,kl->il", *xs)
        gx.einsum("ij,jk,kl->il", xs)                           # the one-list form recurses
        gx.einsum(xs[0], [0, 1], xs[1], [1, 2], xs[2], [2, 3], [0, 3])
    assert [c[0] for c in stand_in.calls] == ["ij,jk,kl->il", "ij,jk,kl->il", "AB,BC,CD->AD"]
    assert all(c[2] == "auto" and len(c[1]) == 3 and all(a is b for a, b in zip(c[1], xs)) for c in stand_in.calls)


def test_opt_einsum_is_not_asked_for_one_or_two_operands():
    a, b = (gx.from_torch(torch.randn(3, 3, dtype=torch.float64)) for _ in range(2))
    with _opt_einsum_installed(_StandInOptEinsum([(0, 1)])) as stand_in:
        gx.einsum("ij,jk->ik", a, b)
        gx.einsum("ii", a)
    assert stand_in.calls == []


def test_without_opt_einsum_no_path_is_computed():
    """(then the order is left to right: the 3- and 4-operand CASES compare it with torch's)"""
    import importlib.util
    if importlib.util.find_spec("opt_einsum") is not None:
        pytest.skip("opt_einsum is installed: torch and the engine both use its path")
    assert linalg._opt_einsum() is None
    assert linalg._contraction_path("ij,jk,kl->il", [None] * 3) is None


# -- symbolic sizes ---------------------------------------------------------------------------------

def test_symbolic_sizes_flow_through_einsum_and_diagonal():
    batch, n = gx.SymInt(4, "B"), gx.SymInt(5, "N")
    a = gx.empty(batch, n, n, requires_grad=True)
    b = gx.empty(batch, n, 3, requires_grad=True)
    out = gx.einsum("bii,bij->bj", a, b)
    assert [gx.symbolic.sym_text(s) for s in out.shape] == ["B", "3"]
    scores = gx.einsum("...qd,...kd->...qk", b, b)
    assert [gx.symbolic.sym_text(s) for s in scores.shape] == ["B", "N", "N"]
    assert [gx.symbolic.sym_text(s) for s in gx.diagonal(a, 1, 1, 2).shape] == ["B", "N - 1"]
    (out.sum() + scores.sum()).backward()
    assert tuple(a.grad.shape) == (4, 5, 5) and tuple(b.grad.shape) == (4, 5, 3)
