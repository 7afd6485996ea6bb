"""Creation ops on every backend (shape, numpy, torch) against torch: values where deterministic, dtype and
device defaults, shapes and strides; *_like and Tensor.new_* defaults; the in-place random initialisers
(ranges, zero gradient, node names, leaf errors); torch's errors for bad arguments."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402

BACKENDS = ["shape", "numpy", "torch"]


def _values(t):
    """Engine tensor data as a torch tensor (numpy or torch backend)."""
    return t.data_ if isinstance(t.data_, torch.Tensor) else torch.from_numpy(np.asarray(gx.backends.to_numpy(t)))


def _torch_dtype(t):
    return getattr(torch, t.dtype.name)


def _check_like_torch(ours, theirs, backend, exact=True):
    """Same shape, dtype, device and requires_grad; same values (exactly, or to the last place; None: values
    unspecified) unless on the shape backend."""
    assert tuple(int(s) for s in ours.shape) == tuple(theirs.shape)
    assert _torch_dtype(ours) == theirs.dtype
    assert str(ours.device) == str(theirs.device)
    assert bool(ours.requires_grad) == theirs.requires_grad
    if backend == "shape":
        assert ours.data_ is None
        return
    got = _values(ours)
    assert got.dtype == theirs.dtype
    if exact is None:
        return
    if exact:
        assert torch.equal(got, theirs.detach()), f"{got} != {theirs}"
    else:
        assert torch.allclose(got.double(), theirs.detach().double(), rtol=1e-6, atol=1e-7)


# (call on torch or gx, exact values?) over every backend.  Floating ranges agree to the last place, not
# bit for bit: torch's vectorised kernel rounds some points differently from its scalar formula.
DETERMINISTIC = {
    "linspace": (lambda m: m.linspace(-1, 2, 7), False),
    "linspace_float64": (lambda m: m.linspace(0.5, -3.25, 11, dtype=m.float64), False),
    "linspace_int64": (lambda m: m.linspace(0, 10, 4, dtype=m.int64), True),
    "linspace_even_steps": (lambda m: m.linspace(0, 1, 10), False),
    "linspace_many_steps_float64": (lambda m: m.linspace(-3, 7, 1000, dtype=m.float64), False),
    "linspace_one_step": (lambda m: m.linspace(3, 5, 1), True),
    "linspace_zero_steps": (lambda m: m.linspace(3, 5, 0), True),
    "linspace_requires_grad": (lambda m: m.linspace(0, 1, 3, requires_grad=True), True),
    "logspace": (lambda m: m.logspace(0, 2, 5), False),
    "logspace_base2_float64": (lambda m: m.logspace(-2, 3, 6, base=2, dtype=m.float64), False),
    "eye": (lambda m: m.eye(3), True),
    "eye_rectangular_int": (lambda m: m.eye(2, 4, dtype=m.int32), True),
    "eye_bool": (lambda m: m.eye(3, 2, dtype=m.bool), True),
    "tril_indices": (lambda m: m.tril_indices(3, 4), True),
    "tril_indices_offset": (lambda m: m.tril_indices(4, 3, 1), True),
    "tril_indices_negative_offset": (lambda m: m.tril_indices(4, 4, -2, dtype=m.int32), True),
    "triu_indices": (lambda m: m.triu_indices(3, 4), True),
    "triu_indices_negative_offset": (lambda m: m.triu_indices(4, 3, -1), True),
    "triu_indices_empty": (lambda m: m.triu_indices(2, 2, 5), True),
    "full_like_dtype": (lambda m: m.full_like(m.ones(2, 3), 7, dtype=m.int64), True),
    "zeros_like_requires_grad": (lambda m: m.zeros_like(m.ones(2, 3, dtype=m.float64), requires_grad=True), True),
    "ones_like_dtype": (lambda m: m.ones_like(m.zeros(4), dtype=m.float16), True),
    "zeros_size_keyword": (lambda m: m.zeros(size=(2, 3), dtype=m.int64), True),
    "ones_size_keyword_list": (lambda m: m.ones(size=[4]), True),
    "empty_size_keyword_shape": (lambda m: m.empty(size=(3, 1)).zero_(), True),
}


def _torch_call(fn):
    return fn(torch)


def _engine_call(fn, backend):
    with gx.backend(backend):
        return fn(gx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_creation_matches_torch(name, backend):
    fn, exact = DETERMINISTIC[name]
    _check_like_torch(_engine_call(fn, backend), _torch_call(fn), backend, exact)


def test_size_keyword_and_positional_sizes_clash_as_in_torch():
    for m in (torch, gx):
        with pytest.raises(TypeError):
            m.zeros(2, size=(3,))


def test_dtype_limits_match_torch():
    assert gx.get_default_dtype() is gx.float32 and torch.get_default_dtype() is torch.float32
    for name in ("float16", "bfloat16", "float32", "float64"):
        ours, theirs = gx.finfo(getattr(gx, name)), torch.finfo(getattr(torch, name))
        for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
            assert getattr(ours, attr) == getattr(theirs, attr), (name, attr)
    assert gx.finfo().bits == torch.finfo().bits == 32
    for name in ("uint8", "int8", "int16", "int32", "int64"):
        ours, theirs = gx.iinfo(getattr(gx, name)), torch.iinfo(getattr(torch, name))
        assert (ours.bits, ours.min, ours.max, ours.dtype) == (theirs.bits, theirs.min, theirs.max, theirs.dtype)
    for m, bad in ((torch, torch.int32), (gx, gx.int32)):
        with pytest.raises(TypeError, match="requires a floating point input type"):
            m.finfo(bad)
    for m, bad in ((torch, torch.bool), (gx, gx.bool)):
        with pytest.raises(TypeError, match="is not supported by torch.iinfo"):
            m.iinfo(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_strided_has_the_requested_geometry(backend):
    with gx.backend(backend):
        t = gx.empty_strided((2, 3), (1, 2), dtype=gx.float64)
        padded = gx.empty_strided((2, 2), (4, 1))
    assert tuple(t.shape) == (2, 3) and tuple(t.stride()) == (1, 2) and t.dtype is gx.float64
    assert not t.is_contiguous()
    assert tuple(padded.stride()) == (4, 1) and padded.dtype is gx.float32
    if backend != "shape":
        assert tuple(int(s) for s in _values(t).stride()) == (1, 2)


RANDOM_LIKE = {
    "rand_like": (lambda m, x: m.rand_like(x), (0.0, 1.0)),
    "rand_like_float64": (lambda m, x: m.rand_like(x, dtype=m.float64), (0.0, 1.0)),
    "randn_like_requires_grad": (lambda m, x: m.randn_like(x, requires_grad=True), None),
    "randint_like_high": (lambda m, x: m.randint_like(x, 5), (0, 4)),
    "randint_like_low_high_int": (lambda m, x: m.randint_like(x, 3, 7, dtype=m.int64), (3, 6)),
    "empty_like_dtype": (lambda m, x: m.empty_like(x, dtype=m.int16), None),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(RANDOM_LIKE))
def test_random_like_defaults_match_torch(name, backend):
    fn, bounds = RANDOM_LIKE[name]
    expected = fn(torch, torch.ones(40, 30))
    with gx.backend(backend):
        ours = fn(gx, gx.ones(40, 30))
    assert tuple(ours.shape) == tuple(expected.shape) and _torch_dtype(ours) == expected.dtype
    assert bool(ours.requires_grad) == expected.requires_grad
    if bounds is not None and backend != "shape":
        values = _values(ours)
        assert bounds[0] <= values.min().item() and values.max().item() <= bounds[1]
        assert values.unique().numel() > 1


NEW_METHODS = {
    "new_zeros_varargs": lambda x: x.new_zeros(2, 3),
    "new_zeros_tuple_dtype": lambda x: x.new_zeros((4,), dtype=x.int().dtype),
    "new_ones_requires_grad": lambda x: x.new_ones([2, 2], requires_grad=True),
    "new_full": lambda x: x.new_full((3, 1), 2.5),
    "new_full_int_fill_keeps_dtype": lambda x: x.new_full((2,), 4),
    "new_empty_scalar_shape": lambda x: x.new_empty(()),
    "new_tensor": lambda x: x.new_tensor([[1, 2], [3, 4]]),
    "new_tensor_requires_grad": lambda x: x.new_tensor([1.5, 2.5], requires_grad=True),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(NEW_METHODS))
def test_tensor_new_methods_default_to_selfs_dtype(name, backend):
    fn = NEW_METHODS[name]
    expected = fn(torch.ones(3, dtype=torch.float64))
    with gx.backend(backend):
        ours = fn(gx.ones(3, dtype=gx.float64))
    exact = None if name.startswith("new_empty") else True
    _check_like_torch(ours, expected, backend, exact)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_new_methods_stay_on_selfs_backend(backend):
    with gx.backend(backend):
        x = gx.ones(2)
    made = [x.new_zeros(2), x.new_ones(2), x.new_full((2,), 1.0), x.new_empty(2), x.new_tensor([1.0])]
    assert all(gx.backends.data_kind(t) == backend for t in made)


def test_as_tensor_follows_torch():
    xt = torch.randn(2, 3, requires_grad=True)
    x = gx.from_torch(xt)
    assert gx.as_tensor(x) is x and torch.as_tensor(xt) is xt
    converted = gx.as_tensor(x, dtype=gx.float64)
    assert converted.dtype is gx.float64
    assert converted.grad_fn.name() == type(torch.as_tensor(xt, dtype=torch.float64).grad_fn).__name__
    array = np.arange(6.0).reshape(2, 3)
    for backend in ("numpy", "torch"):
        with gx.backend(backend):
            shared = gx.as_tensor(array)
            copied = gx.as_tensor([[1, 2]], dtype=gx.float16)
        assert gx.backends.data_kind(shared) == backend and shared.dtype is gx.float64
        assert np.shares_memory(np.asarray(gx.backends.to_numpy(shared)), array)
        assert copied.dtype is gx.float16 and tuple(copied.shape) == (1, 2)


# -- in-place random initialisers -------------------------------------------------------------------

INITIALISERS = {
    "uniform_": (lambda x: x.uniform_(-2, 3), (-2, 3), "UniformBackward0"),
    "normal_": (lambda x: x.normal_(1.0, 0.5), None, "NormalBackward0"),
    "bernoulli_": (lambda x: x.bernoulli_(0.3), (0, 1), "BernoulliBackward2"),
    "exponential_": (lambda x: x.exponential_(2.0), (0, float("inf")), "ExponentialBackward0"),
    "random_from_to": (lambda x: x.random_(3, 9), (3, 8), "RandomBackward0"),
    "random_to": (lambda x: x.random_(5), (0, 4), "RandomBackward1"),
    "random_full": (lambda x: x.random_(), (0, 2 ** 53), "RandomBackward2"),     # float64: [0, 2^53]
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_initialisers_fill_in_place_with_zero_gradient(name, backend):
    fill, bounds, node_name = INITIALISERS[name]
    with gx.backend(backend):
        leaf = gx.ones(200, 5, dtype=gx.float64, requires_grad=True)
        x = leaf * 2
        version = x._version
        out = fill(x)
        assert out is x and x._version == version + 1 and x.grad_fn.name() == node_name
        (x * 3).sum().backward()
    expected_leaf = torch.ones(200, 5, dtype=torch.float64, requires_grad=True)
    expected = expected_leaf * 2
    fill(expected)
    assert type(expected.grad_fn).__name__ == node_name
    if backend == "shape":
        return
    assert not _values(leaf.grad).any()                   # torch: zeros_like(grad)
    values = _values(x).detach()
    if bounds is not None:
        assert bounds[0] <= values.min().item() and values.max().item() <= bounds[1]
    assert values.unique().numel() > 1


def test_initialisers_refuse_a_leaf_that_requires_grad_like_torch():
    leaf_t = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError) as torch_error:
        leaf_t.uniform_()
    leaf = gx.from_torch(leaf_t)
    with pytest.raises(RuntimeError) as ours:
        leaf.uniform_()
    assert str(ours.value) == str(torch_error.value)
    with gx.no_grad():                         # torch's usual initialisation path
        assert leaf.normal_() is leaf


def test_initialisers_on_the_shape_backend_keep_metadata():
    with gx.backend("shape"):
        x = gx.empty(gx.SymInt(3, "B"), 4)
        for fill in (lambda t: t.uniform_(), lambda t: t.normal_(), lambda t: t.bernoulli_(), lambda t: t.random_(7),
                     lambda t: t.exponential_()):
            assert fill(x) is x
    assert str(x.shape[0]) == "B" and x.data_ is None


def test_seeded_torch_backend_draws_torchs_numbers():
    torch.manual_seed(11)
    expected = torch.empty(4, 3).uniform_(-1, 1)
    with gx.backend("torch"):
        torch.manual_seed(11)
        ours = gx.empty(4, 3).uniform_(-1, 1)
    assert torch.equal(ours.data_, expected)


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the error itself is what is compared
        return type(e).__name__, str(e)
    return None


ERRORS = {
    "linspace_negative_steps": lambda m: m.linspace(0, 1, -1),
    "logspace_negative_steps": lambda m: m.logspace(0, 1, -2),
    "eye_negative_n": lambda m: m.eye(-1),
    "eye_negative_m": lambda m: m.eye(2, -1),
    "tril_indices_negative_row": lambda m: m.tril_indices(-1, 2),
    "triu_indices_negative_col": lambda m: m.triu_indices(2, -3),
    "empty_strided_rank_mismatch": lambda m: m.empty_strided((2, 3), (1,)),
    "uniform_reversed_range": lambda m: m.empty(3).uniform_(2, 1),
    "normal_negative_std": lambda m: m.empty(3).normal_(0, -1),
    "bernoulli_p_above_one": lambda m: m.empty(3).bernoulli_(2.0),
    "exponential_zero_lambda": lambda m: m.empty(3).exponential_(0),
    "random_empty_range": lambda m: m.empty(3).random_(5, 2),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name, backend):
    expected = _error(lambda: ERRORS[name](torch))
    assert expected is not None
    with gx.backend(backend):
        assert _error(lambda: ERRORS[name](gx)) == expected
