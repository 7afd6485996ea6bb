"""The numpy backend: one numpy implementation per aten kernel the engine calls, registered by aten name.

Kernels take numpy arrays where torch's take tensors (and Python scalars, lists, strings as torch's
schema has them), with the schema's argument names and defaults.  ``run`` lays the result out as
torch's kernel would (dtype decided by the engine's meta, strides by the kernel's layout rule) and
hands it to ``ops._kernel``; ``run_inplace`` writes into the target array; ``run_view`` returns a
numpy view sharing memory with its base.  A kernel with no numpy implementation raises
``NotImplementedError("numpy backend: no kernel for aten.<name> yet")``.  torch is never imported.

dtypes: bool, uint8, int8..int64, float16, float32, float64 are numpy's own; bfloat16 is
``ml_dtypes.bfloat16``.

Reduced precision (float16 / bfloat16) follows torch's CPU "opmath" rule: every kernel computes in
float32 and rounds once to the output dtype, and reductions (sum, mean, softmax, norms, matmul)
accumulate in float32, as torch's CPU kernels do.  What differs: the order of floating-point
accumulation (numpy's pairwise summation and BLAS blocking vs torch's cascade sums and vectorised
loops), so float32 results agree to ~1e-6 relative and half-precision results to about one unit in
the last place, not bit for bit; a composite kernel that torch rounds to half precision between
steps (rare) is rounded only once here.

Random numbers (randn, rand, randint, bernoulli_, uniform_, normal_, dropout) come from one numpy
``Generator`` (PCG64), seeded with a fixed default and by ``gx.manual_seed(n)``.  They are
reproducible run to run but not bit-equal to torch's generator for the same seed.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from . import CONTIGUOUS
from ..layout import iterator_strides
from .. import dtypes as _dt
from ..tensor import Tensor, device, non_overlapping_and_dense

# -- dtypes -------------------------------------------------------------------

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_NP_DTYPES = {
    "bool": np.dtype(np.bool_), "uint8": np.dtype(np.uint8), "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16), "int32": np.dtype(np.int32), "int64": np.dtype(np.int64),
    "float16": np.dtype(np.float16), "bfloat16": BFLOAT16, "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
_HALF = (np.dtype(np.float16), BFLOAT16)


def np_dtype(d) -> np.dtype:
    """numpy dtype of an engine dtype."""
    return _NP_DTYPES[d.name]


def gx_dtype(npd):
    """Engine dtype of a numpy dtype."""
    npd = np.dtype(npd)
    for name, candidate in _NP_DTYPES.items():
        if candidate == npd:
            return _dt.from_name(name)
    raise TypeError(f"numpy dtype {npd} has no engine dtype")


def is_floating(npd) -> bool:
    npd = np.dtype(npd)
    return npd in _HALF or np.issubdtype(npd, np.floating)


def opmath(npd) -> np.dtype:
    """The dtype torch's CPU kernels compute in: float32 for half types, the dtype itself otherwise."""
    npd = np.dtype(npd)
    return np.dtype(np.float32) if npd in _HALF else npd


# -- random numbers -------------------------------------------------------------

DEFAULT_SEED = 0x5EED
_rng = np.random.Generator(np.random.PCG64(DEFAULT_SEED))


def seed(n: int) -> None:
    global _rng
    _rng = np.random.Generator(np.random.PCG64(n))


def generator() -> np.random.Generator:
    return _rng


# -- output metadata and layouts ------------------------------------------------

class Out:
    """What the engine expects of a kernel's outputs: shapes, numpy dtypes and (optional) strides."""

    def __init__(self, metas):
        self.shapes = [tuple(int(s) for s in m[0]) for m in metas]
        self.dtypes = [np_dtype(m[1]) for m in metas]
        self.strides = [tuple(int(s) for s in m[2]) if len(m) > 2 and m[2] is not None else None for m in metas]

    @property
    def dtype(self) -> np.dtype:
        return self.dtypes[0]

    @property
    def shape(self) -> tuple:
        return self.shapes[0]


def out_dtype(out, *operands) -> np.dtype:
    """Output dtype: the engine's when known, else numpy's promotion of the operands."""
    if out is not None:
        return out.dtype
    return np.result_type(*[o for o in operands if o is not None])


def element_strides(a: np.ndarray) -> tuple:
    return tuple(s // a.itemsize for s in a.strides)


def contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def pointwise_strides(shape, operands) -> tuple:
    """Output strides of a TensorIterator kernel over ``operands`` (arrays and Python numbers):
    layout.iterator_strides."""
    pairs = [(o.shape, element_strides(o)) if isinstance(o, np.ndarray) else ((), ())
             for o in operands if isinstance(o, (np.ndarray, int, float, complex, np.number))]
    return iterator_strides(tuple(shape), pairs)


def like_strides(a: np.ndarray) -> tuple:
    """torch's empty_like(preserve_format): the input's strides if dense, else its dim order, densely."""
    strides = element_strides(a)
    if non_overlapping_and_dense(a.shape, strides):
        return strides
    return pointwise_strides(a.shape, [a])


def allocate(shape, dtype, strides=None) -> np.ndarray:
    """A fresh array of ``shape`` with exactly the element ``strides`` given (contiguous by default)."""
    shape = tuple(shape)
    dtype = np.dtype(dtype)
    if strides is None or tuple(strides) == contiguous_strides(shape):
        return np.empty(shape, dtype)
    numel = int(np.prod(shape, dtype=np.int64))
    span = 1 + sum((n - 1) * st for n, st in zip(shape, strides)) if numel else 0
    buffer = np.empty(max(span, numel), dtype)
    return np.lib.stride_tricks.as_strided(buffer, shape, tuple(st * dtype.itemsize for st in strides))


# -- registry -------------------------------------------------------------------

CONTIGUOUS_LAYOUT, POINTWISE, LIKE_FIRST = "contiguous", "pointwise", "like_first"


class Kernel:
    __slots__ = ("fn", "layout")

    def __init__(self, fn, layout):
        self.fn, self.layout = fn, layout


KERNELS: dict[str, Kernel] = {}
INPLACE: dict[str, object] = {}       # kernels that write their first argument themselves (random, copy_)
VIEWS: dict[str, object] = {}


def register(*names, layout=CONTIGUOUS_LAYOUT):
    """Register ``fn(out, *args, **kwargs)`` as the numpy kernel of the aten ops ``names``.  ``out`` is an
    ``Out`` (or None when called without metas); ``layout`` gives the output strides torch's kernel uses:
    CONTIGUOUS_LAYOUT, POINTWISE (TensorIterator's rule), LIKE_FIRST (empty_like of the first input), or a
    function of the output shape."""
    def deco(fn):
        for n in names:
            KERNELS[n] = Kernel(fn, layout)
        return fn
    return deco


def register_inplace(*names):
    def deco(fn):
        for n in names:
            INPLACE[n] = fn
        return fn
    return deco


def register_view(*names):
    def deco(fn):
        for n in names:
            VIEWS[n] = fn
        return fn
    return deco


def missing(name: str) -> NotImplementedError:
    return NotImplementedError(f"numpy backend: no kernel for aten.{name} yet")


def _unwrap(x):
    if isinstance(x, Tensor):
        return x.data_
    if isinstance(x, _dt.dtype):
        return np_dtype(x)
    if isinstance(x, device):
        return str(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


FOREACH = "_foreach_"


def _foreach_items(args, kwargs):
    """Per-element argument lists of a ``_foreach_*`` kernel: the lists are zipped (tensor lists and scalar
    lists alike), single scalars and tensors repeat."""
    n = len(args[0])

    def pick(v, i):
        return v[i] if isinstance(v, (list, tuple)) and len(v) == n else v
    return [([pick(a, i) for a in args], {k: pick(v, i) for k, v in kwargs.items()}) for i in range(n)]


def call(name: str, metas, args, kwargs):
    """The kernel's raw result (arrays in whatever layout numpy produced).  In-place names (``add_``,
    ``_foreach_mul_``) write their first argument and return it."""
    if name.startswith(FOREACH):
        base = name[len(FOREACH):]
        items = _foreach_items(_unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()})
        if base.endswith("_"):
            for item_args, item_kwargs in items:
                _inplace_np(base, item_args[0], item_args[1:], item_kwargs)
            return args[0]
        metas = metas or [None] * len(items)
        return [_kernel_of(base).fn(Out([m]) if m is not None else None, *a, **kw)
                for m, (a, kw) in zip(metas, items)]
    if name in VIEWS and name not in KERNELS and name != "as_strided":
        return VIEWS[name](*_unwrap(args), **kwargs)
    if name.endswith("_") and name not in KERNELS:
        target = _unwrap(args[0])
        _inplace_np(name, target, _unwrap(args[1:]), {k: _unwrap(v) for k, v in kwargs.items()})
        return target
    out = Out(metas) if metas is not None else None
    return _kernel_of(name).fn(out, *_unwrap(args), **{key: _unwrap(v) for key, v in kwargs.items()})


def _kernel_of(name: str) -> Kernel:
    k = KERNELS.get(name)
    if k is None:
        raise missing(name)
    return k


def _layout_strides(layout, shape, args):
    if callable(layout):
        return layout(shape)
    if layout == POINTWISE:
        return pointwise_strides(shape, _flat_arrays(args))
    if layout == LIKE_FIRST:
        first = next((a for a in _flat_arrays(args)), None)
        if first is not None and first.shape == tuple(shape):
            return like_strides(first)
    return contiguous_strides(shape)


def _flat_arrays(args):
    for a in args:
        if isinstance(a, np.ndarray):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _flat_arrays(a)


def run(name: str, metas, args, kwargs) -> list:
    """Run kernel ``name`` and lay each output out as torch would: the engine's dtype, the meta's strides
    when given, else the kernel's layout rule.  Outputs a kernel leaves undefined (masked) are None."""
    out = Out(metas)
    np_args = _unwrap(args)
    # IEEE results (log(0) = -inf, 0/0 = nan, nan cast to an integer) without numpy's RuntimeWarnings:
    # torch computes them silently, and a user's terminal should not fill with warnings about
    # T5's relative-position buckets
    with np.errstate(all="ignore"):
        if name.startswith(FOREACH):
            k = _kernel_of(name[len(FOREACH):])
            res = call(name, metas, args, kwargs)
        else:
            k = _kernel_of(name)
            res = k.fn(out, *np_args, **{key: _unwrap(v) for key, v in kwargs.items()})
    res = list(res) if isinstance(res, (tuple, list)) else [res]
    if len(res) != len(out.shapes):
        raise AssertionError(f"numpy kernel {name} gave {len(res)} outputs, the engine expects {len(out.shapes)}")
    laid_out = []
    for i, r in enumerate(res):
        if r is None:
            laid_out.append(None)
            continue
        r = np.asarray(r)
        shape = out.shapes[i]
        if r.shape != shape:
            raise AssertionError(f"shape inference for {name}: {shape} but the numpy kernel gives {r.shape}")
        if out.strides[i]:
            strides = out.strides[i]
        elif name.startswith(FOREACH):              # one output per list element, laid out like it
            strides = _layout_strides(LIKE_FIRST, shape, [np_args[0][i]])
        elif kwargs.get("memory_format") is CONTIGUOUS:      # clone / _to_copy asked for a contiguous result
            strides = contiguous_strides(shape)
        else:
            strides = _layout_strides(k.layout, shape, np_args)
        dst = allocate(shape, out.dtypes[i], strides)
        np.copyto(dst, r, casting="unsafe")
        laid_out.append(dst)
    return laid_out


def run_inplace(name: str, target: np.ndarray, args, kwargs) -> None:
    """Run in-place kernel ``name`` (``add_``, ``bernoulli_`` ...) writing into ``target``."""
    with np.errstate(all="ignore"):          # as run(): torch does not warn about IEEE results
        _inplace_np(name, target, _unwrap(args), {key: _unwrap(v) for key, v in kwargs.items()})


def _inplace_np(name, target, np_args, np_kwargs) -> None:
    own = INPLACE.get(name)
    if own is not None:
        own(target, *np_args, **np_kwargs)
        return
    base = KERNELS.get(name[:-1]) if name.endswith("_") else None
    if base is None:
        raise missing(name)
    out = Out([(target.shape, gx_dtype(target.dtype))])
    result = base.fn(out, target, *np_args, **np_kwargs)
    np.copyto(target, np.broadcast_to(np.asarray(result), target.shape), casting="unsafe")


def run_view(name: str, base: np.ndarray, base_offset: int, args, kwargs) -> np.ndarray:
    """A numpy view of ``base`` for view kernel ``name``; ``base_offset`` is ``base``'s storage offset
    (``as_strided`` takes absolute offsets)."""
    fn = VIEWS.get(name)
    if fn is None:
        raise missing(name)
    if name == "as_strided":
        return fn(base, base_offset, *_unwrap(args), **kwargs)
    return fn(base, *_unwrap(args), **kwargs)


def shifted(a: np.ndarray, elements: int) -> np.ndarray:
    """A 1-element view of ``a``'s memory ``elements`` items past its first element (may be negative)."""
    start = np.lib.stride_tricks.as_strided(a, (1,), (a.itemsize,))
    interface = dict(start.__array_interface__)
    interface["data"] = (interface["data"][0] + elements * a.itemsize, False)
    return np.asarray(_Holder(interface, a))


class _Holder:
    """Exposes a raw memory window to numpy while keeping its owner alive."""

    def __init__(self, interface, owner):
        self.__array_interface__ = interface
        self.owner = owner


def create(kind: str, shape, dtype, *args):
    """Data for a creation op: empty, zeros, ones, full, randn, rand, randint, arange."""
    shape = tuple(int(s) for s in shape)
    npd = np_dtype(dtype)
    if kind == "empty":
        return np.empty(shape, npd)
    if kind == "zeros":
        return np.zeros(shape, npd)
    if kind == "ones":
        return np.ones(shape, npd)
    if kind == "full":
        return np.full(shape, args[0], dtype=npd)
    if kind == "randn":
        return _rng.standard_normal(shape).astype(npd)
    if kind == "rand":
        return _rng.random(shape).astype(npd)
    if kind == "randint":
        low, high = args
        return _rng.integers(low, high, size=shape).astype(npd)
    if kind == "arange":
        start, end, step = args
        n = shape[0]
        if np.issubdtype(npd, np.integer):
            return (start + step * np.arange(n, dtype=np.int64)).astype(npd)
        return (start + step * np.arange(n, dtype=np.float64)).astype(npd)
    raise missing(kind)


# kernels live in their family modules; importing them fills the registry
from . import numpy_kernels_math, numpy_kernels_nn  # noqa: E402,F401

