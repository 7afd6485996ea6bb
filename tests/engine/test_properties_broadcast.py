"""Property tests: broadcasting and type promotion of elementwise ops agree with torch.

Random shape pairs (broadcastable or not) go through the engine's shape backend and through torch on CPU
meta tensors: the output shape must match, or both must raise the same error.  Random operand kinds
(dimensioned tensors, 0-dim tensors, Python scalars) of random dtypes must give torch's
``result_type`` and torch's result dtype for add / mul / div / pow / comparisons / maximum."""
import re

import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import gradxray.engine as gx  # noqa: E402

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
DTYPE_NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]


# -- shapes ---------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=4)
shapes = st.lists(dims, min_size=0, max_size=4).map(tuple)


@st.composite
def shape_pairs(draw):
    """A shape and a partner that is usually broadcastable with it (trailing dims kept, dropped or set
    to 1) and sometimes not (a dim replaced by another size)."""
    a = draw(shapes)
    keep = draw(st.integers(min_value=0, max_value=len(a)))
    b = list(a[len(a) - keep:])
    for i in range(len(b)):
        choice = draw(st.sampled_from(["same", "same", "one", "other"]))
        if choice == "one":
            b[i] = 1
        elif choice == "other":
            b[i] = draw(dims)
    extra = draw(st.lists(dims, max_size=2))
    b = tuple(extra) + tuple(b)
    return (a, b) if draw(st.booleans()) else (b, a)


def _outcome(fn):
    """The output shape, or the error's type and message."""
    try:
        out = fn()
    except (RuntimeError, ValueError) as e:
        return type(e).__name__, str(e)
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(tuple(int(s) for s in o.shape) for o in outs)


BINARY_SHAPE_OPS = {
    "add": lambda m, a, b: a + b,
    "mul": lambda m, a, b: a * b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "pow": lambda m, a, b: a ** b,
    "lt": lambda m, a, b: a < b,
    "lerp": lambda m, a, b: m.lerp(a, b, 0.5),
    "addcmul": lambda m, a, b: m.addcmul(a, a, b),
    "clamp_tensor": lambda m, a, b: m.clamp(a, b),
    "remainder": lambda m, a, b: a % b,
}


@SETTINGS
@given(pair=shape_pairs(), op=st.sampled_from(sorted(BINARY_SHAPE_OPS)))
def test_broadcast_shape_or_error_matches_torch(pair, op):
    fn = BINARY_SHAPE_OPS[op]
    a, b = pair
    theirs = _outcome(lambda: fn(torch, torch.zeros(a), torch.zeros(b)))
    ours = _outcome(lambda: fn(gx, gx.empty(*a), gx.empty(*b)))
    if isinstance(theirs[0], str):
        # which mismatching dim is named differs (see test_mismatch_names_the_last_dim_like_torch)
        assert ours[0] == theirs[0] and SIZE_MISMATCH.match(ours[1]) and SIZE_MISMATCH.match(theirs[1])
    else:
        assert ours == theirs


SIZE_MISMATCH = re.compile(r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at "
                           r"non-singleton dimension \d+$")


def test_mismatch_names_the_last_dim_like_torch():
    theirs = _outcome(lambda: torch.zeros(2, 2) + torch.zeros(3, 3))
    assert _outcome(lambda: gx.empty(2, 2) + gx.empty(3, 3)) == theirs


@SETTINGS
@given(pair=shape_pairs())
def test_inplace_broadcast_only_into_self_shape(pair):
    """x.sub_(y) keeps x's shape: torch raises when the broadcast shape is larger."""
    a, b = pair
    theirs = _outcome(lambda: torch.zeros(a).sub_(torch.zeros(b)))
    ours = _outcome(lambda: gx.empty(*a).sub_(gx.empty(*b)))
    if isinstance(theirs[0], str) and isinstance(ours[0], str):
        assert ours[0] == theirs[0]        # both refuse (torch words the two size errors differently)
    else:
        assert ours == theirs


# -- dtypes ---------------------------------------------------------------------------------

SCALARS = {"bool": True, "int": 3, "float": 2.5}


@st.composite
def operands(draw):
    kind = draw(st.sampled_from(["tensor", "tensor", "0d", "scalar"]))
    if kind == "scalar":
        return ("scalar", draw(st.sampled_from(sorted(SCALARS))))
    return (kind, draw(st.sampled_from(DTYPE_NAMES)))


def _make(spec, lib):
    kind, what = spec
    if kind == "scalar":
        return SCALARS[what]
    shape = (2, 3) if kind == "tensor" else ()
    if lib is torch:
        return torch.ones(shape, dtype=getattr(torch, what))
    return gx.empty(*shape, dtype=gx.dtypes.from_name(what))


def _name(dtype) -> str:
    return str(dtype).replace("torch.", "").replace("gx.", "")


def _dtype_outcome(fn):
    try:
        return _name(fn().dtype)
    except (RuntimeError, TypeError, NotImplementedError):
        return "error"


@st.composite
def operand_pairs(draw):
    a, b = draw(operands()), draw(operands())
    if a[0] == "scalar" and b[0] == "scalar":
        b = ("tensor", draw(st.sampled_from(DTYPE_NAMES)))
    return a, b


@SETTINGS
@given(pair=operand_pairs())
def test_result_type_matches_torch(pair):
    a, b = pair
    assert _name(gx.result_type(_make(a, gx), _make(b, gx))) == _name(torch.result_type(_make(a, torch),
                                                                                          _make(b, torch)))


DTYPE_OPS = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
    "lt": lambda a, b: a < b, "eq": lambda a, b: a == b, "ge": lambda a, b: a >= b,
}


@SETTINGS
@given(pair=operand_pairs(), op=st.sampled_from(sorted(DTYPE_OPS)))
def test_result_dtype_matches_torch(pair, op):
    fn = DTYPE_OPS[op]
    a, b = pair
    # scalar / tensor fails in ops/pointwise.div (see test_scalar_divided_by_tensor)
    theirs = _dtype_outcome(lambda: fn(_make(a, torch), _make(b, torch)))
    if theirs == "error":
        return     # an unsupported dtype combination in torch (the shape backend has no kernels to refuse it)
    assert _dtype_outcome(lambda: fn(_make(a, gx), _make(b, gx))) == theirs


@SETTINGS
@given(spec=operands().filter(lambda s: s[0] != "scalar"),
       op=st.sampled_from(["exp", "sqrt", "sin", "sigmoid", "tanh", "abs", "floor", "square", "reciprocal"]))
def test_unary_result_dtype_matches_torch(spec, op):
    """Float-only ops give integer inputs the default float dtype; abs / floor / square keep them."""
    theirs = _dtype_outcome(lambda: getattr(torch, op)(_make(spec, torch)))
    if theirs == "error":
        return
    assert _dtype_outcome(lambda: getattr(gx, op)(_make(spec, gx))) == theirs


def test_scalar_divided_by_tensor():
    assert _name((2 / gx.empty(3, dtype=gx.int64)).dtype) == _name((2 / torch.ones(3, dtype=torch.int64)).dtype)


# -- output layout ----------------------------------------------------------------------------------

@st.composite
def laid_out(draw, shape):
    """How to make a tensor of ``shape``: a dim order for a permuted contiguous base, and dims taken with
    step 2 (a strided, non-dense view)."""
    order = draw(st.permutations(range(len(shape))))
    stepped = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return tuple(order), tuple(stepped)


def _laid_out_tensor(m, shape, layout):
    order, stepped = layout
    full = [n * (2 if s else 1) for n, s in zip(shape, stepped)]
    base = m.empty(*[full[d] for d in order]) if full else m.empty(())
    inverse = [order.index(d) for d in range(len(order))]
    t = base.permute(*inverse) if full else base
    index = tuple(slice(None, None, 2) if s else slice(None) for s in stepped)
    return t[index] if index else t


ELEMENTWISE_LAYOUT_OPS = {
    "add": lambda m, a, b: a + b,
    "mul": lambda m, a, b: a * b,
    "lt": lambda m, a, b: a < b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "where": lambda m, a, b: m.where(b > 0, a, b),
    "div": lambda m, a, b: a / b,
    "scale_shift": lambda m, a, b: (a * 2.0 - 1) * b,
}


@SETTINGS
@given(data=st.data(), op=st.sampled_from(sorted(ELEMENTWISE_LAYOUT_OPS)))
def test_elementwise_output_strides_match_torch(data, op):
    # TensorIterator lays the output out in the operands' memory order (a transposed query times a
    # rotary table stays transposed): what is copied later, and so what is saved, depends on it
    a_shape, b_shape = data.draw(shape_pairs())
    try:
        torch.broadcast_shapes(a_shape, b_shape)
    except RuntimeError:
        return
    a_layout, b_layout = data.draw(laid_out(a_shape)), data.draw(laid_out(b_shape))
    fn = ELEMENTWISE_LAYOUT_OPS[op]
    theirs = fn(torch, _laid_out_tensor(torch, a_shape, a_layout), _laid_out_tensor(torch, b_shape, b_layout))
    ours = fn(gx, _laid_out_tensor(gx, a_shape, a_layout), _laid_out_tensor(gx, b_shape, b_layout))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert tuple(ours.stride()) == tuple(theirs.stride()), (a_shape, a_layout, b_shape, b_layout)
