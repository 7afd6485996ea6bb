"""The torch surface the interpreter sees, mapped onto gradxray's engine.

User code says ``torch.X`` / ``nn.X`` / ``F.X`` / ``tensor.method(...)``; the
interpreter resolves those names here.  ``torch`` is the engine namespace
(``gradxray.engine``), whose API mirrors torch's, so ``torch.arange`` is
``gx.arange``, ``nn.Linear`` is ``gx.nn.Linear`` and so on.  A name the engine
lacks becomes ``Unknown`` (never an error).

Everything goes through a ``Runtime`` (the namespace plus its backend and
source-attribution contexts) so that the interpreter holds no direct engine
reference.  The static path never imports torch.

Safety: the interpreter never executes user code, and it must not let user
code reach arbitrary Python either (``x.__class__.__base__.__subclasses__()``).
``safe_attr`` refuses dunder and private attributes on host objects, refuses
host modules other than the mapped namespaces, and refuses a few builtins.
"""
from __future__ import annotations

import abc
import builtins
import collections
import collections.abc
import contextlib
import functools
import itertools
import logging
import math
import operator
import posixpath
import re
import sys
import types
from typing import Any

from .values import CONTEXTMANAGER, PARTIAL, Namespace, Transparent
from .exit_stack import EXIT_STACK


def _noop(*args, **kwargs):
    return None


class _NullLogger:
    """A logger (handler, stream) that records nothing: every public method is a no-op, including the
    ones packages add to ``logging.Logger`` themselves (``warning_once``)."""

    handlers = ()
    propagate = True

    def isEnabledFor(self, level):
        return False

    def getEffectiveLevel(self):
        return 30

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _noop


_NULL_LOGGER = _NullLogger()

_BOUND = 100_001          # items an infinite iterator yields here (the interpreter's loop limit + 1)

# The torch release whose semantics the engine follows (the reference facts it is built from are torch 2.11's):
# what a package's version probe (`importlib.metadata.version("torch")`) reads during an analysis.
TORCH_VERSION = "2.11.0"


class _PackageNotFoundError(ModuleNotFoundError):
    """``importlib.metadata.PackageNotFoundError`` (a ModuleNotFoundError, as in the standard library)."""


def _find_spec(name, package=None):
    """``importlib.util.find_spec``: the analysis models an environment where torch (the engine) is the only
    installed package a probe finds, so optional integrations and accelerated kernels (flash-attn, apex,
    accelerate ...) take their fallback paths: the plain PyTorch code the engine can follow.  Nothing is
    looked up on disk and nothing is imported."""
    if name == "torch":
        return types.SimpleNamespace(name="torch", origin=None, parent="", submodule_search_locations=None)
    return None


def _dist_version(name):
    """``importlib.metadata.version``: torch's is :data:`TORCH_VERSION`; any other distribution is not installed."""
    if name == "torch":
        return TORCH_VERSION
    raise _PackageNotFoundError(name)


class EngineGap(Exception):
    """Raised when analysed code instantiates a torch class the engine does not provide."""


_GAP_CLASSES: dict[str, type] = {}


def engine_gap_class(dotted: str) -> type:
    """A stand-in for a torch class the engine lacks (``torch.nn.LSTM``, ``torch.nn.attention.flex_attention
    .BlockMask``): a class no value of the analysis is an instance of, and no class it knows derives from,
    so ``isinstance(m, nn.LSTM)`` is False for every engine module and tensor (which is what torch answers
    for them).  Instantiating it raises :class:`EngineGap`, so the call becomes Unknown with the reason."""
    cls = _GAP_CLASSES.get(dotted)
    if cls is None:
        def __new__(klass, *args, **kwargs):
            raise EngineGap(f"`{dotted}` is not supported by gradxray's engine")

        cls = _GAP_CLASSES[dotted] = type(dotted.rsplit(".", 1)[-1], (), {
            "__new__": __new__, "__module__": dotted.rsplit(".", 1)[0], "__qualname__": dotted.rsplit(".", 1)[-1]})
    return cls


# a torch submodule the engine does not have (`torch.nn.attention`): its classes are engine_gap_class stand-ins,
# its other names are not supported
_ABSENT_MODULE = types.SimpleNamespace()

# standard-library names that are pure functions of their arguments (modules or curated subsets)
SAFE_STDLIB = {
    "math": math,
    "collections": types.SimpleNamespace(OrderedDict=collections.OrderedDict, defaultdict=collections.defaultdict,
                                         deque=collections.deque, namedtuple=collections.namedtuple,
                                         Counter=collections.Counter, abc=types.SimpleNamespace(**{
                                             n: getattr(collections.abc, n) for n in (
                                                 "Iterable", "Sequence", "Mapping", "MutableMapping", "Callable",
                                                 "Sized", "Container", "Iterator", "Set")})),
    "functools": types.SimpleNamespace(partial=PARTIAL, reduce=functools.reduce,
                                       lru_cache=Transparent("functools.lru_cache"),
                                       cache=Transparent("functools.cache"),
                                       # `@wraps(f)` on a wrapper: the wrapper as it is (metadata only)
                                       wraps=lambda *a, **k: Transparent("functools.wraps")),
    # itertools; the infinite iterators are bounded (a loop over more items is not analysed anyway)
    "itertools": types.SimpleNamespace(
        chain=itertools.chain, product=itertools.product, accumulate=itertools.accumulate,
        islice=itertools.islice, combinations=itertools.combinations, permutations=itertools.permutations,
        zip_longest=itertools.zip_longest, starmap=itertools.starmap, groupby=itertools.groupby,
        repeat=lambda obj, times=None: itertools.repeat(obj, _BOUND if times is None else times),
        count=lambda start=0, step=1: itertools.islice(itertools.count(start, step), _BOUND)),
    # regular expressions: pure functions of their arguments (model-name and block-string parsing)
    "re": types.SimpleNamespace(**{n: getattr(re, n) for n in (
        "split", "match", "fullmatch", "search", "sub", "subn", "findall", "compile", "escape",
        "IGNORECASE", "I", "MULTILINE", "M", "DOTALL", "S", "VERBOSE", "X")}),
    # the process environment: modelled as holding no overrides, so settings read from it take the
    # package's defaults (`os.environ.get(k, default)` -> default; `k in os.environ` -> False)
    "os": types.SimpleNamespace(environ=types.MappingProxyType({}), getenv=lambda key, default=None: default,
                                sep="/", path=types.SimpleNamespace(join=posixpath.join, basename=posixpath.basename,
                                                                    dirname=posixpath.dirname,
                                                                    splitext=posixpath.splitext)),
    "operator": types.SimpleNamespace(**{n: getattr(operator, n) for n in (
        "add", "sub", "mul", "truediv", "floordiv", "mod", "neg", "matmul", "getitem", "itemgetter")}),
    "types": types.SimpleNamespace(FunctionType=types.FunctionType, MethodType=types.MethodType,
                                   SimpleNamespace=types.SimpleNamespace),
    # diagnostics output: no-ops (the analyzer never prints on the user's behalf)
    "warnings": types.SimpleNamespace(warn=_noop),
    "logging": types.SimpleNamespace(getLogger=lambda *a, **k: _NULL_LOGGER, **{
        n: _noop for n in ("debug", "info", "warning", "error", "exception", "critical")},
        # handlers and formatters (a package configuring its own loggers): the null logger too
        **{n: (lambda *a, **k: _NULL_LOGGER) for n in ("Handler", "StreamHandler", "Formatter", "Logger")},
        **{n: getattr(logging, n) for n in ("NOTSET", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL",
                                            "FATAL")}),
    # the interpreter's own facts (version, platform, sizes); no module counts as imported (nothing is),
    # and the standard streams are sinks
    "sys": types.SimpleNamespace(version_info=sys.version_info, version=sys.version, platform=sys.platform,
                                 maxsize=sys.maxsize, byteorder=sys.byteorder, float_info=sys.float_info,
                                 modules=types.MappingProxyType({}), stderr=_NULL_LOGGER, stdout=_NULL_LOGGER,
                                 implementation=types.SimpleNamespace(name=sys.implementation.name)),
    # `@contextmanager`: a call gives a GeneratorContext, which a `with` runs (its body at the yield);
    # ExitStack: see exit_stack
    "contextlib": types.SimpleNamespace(contextmanager=CONTEXTMANAGER, ExitStack=EXIT_STACK,
                                        nullcontext=contextlib.nullcontext, suppress=contextlib.suppress,
                                        AbstractContextManager=contextlib.AbstractContextManager),
    # the analysis runs on one thread: a lock is a context manager that does nothing
    "threading": types.SimpleNamespace(Lock=contextlib.nullcontext, RLock=contextlib.nullcontext),
    # abstract base classes: `@abstractmethod` marks a method and changes nothing a call computes
    "abc": types.SimpleNamespace(abstractmethod=Transparent("abc.abstractmethod"), ABC=abc.ABC, ABCMeta=abc.ABCMeta),
    # package probes: see _find_spec / _dist_version (torch is the one installed package; nothing is imported)
    "importlib": types.SimpleNamespace(
        util=types.SimpleNamespace(find_spec=_find_spec),
        metadata=types.SimpleNamespace(version=_dist_version, PackageNotFoundError=_PackageNotFoundError)),
}

def _numpy_subset():
    """The numpy functions model code uses for sizes and schedules (``np.linspace(0, p, n).tolist()``),
    pure functions of their arguments; the ones that allocate take at most 2**20 elements."""
    import numpy as np

    limit = 1 << 20

    def bounded(fn, count):
        def run(*args, **kwargs):
            if count(*args, **kwargs) > limit:
                raise ValueError(f"more than {limit} elements")
            return fn(*args, **kwargs)
        run.__name__ = fn.__name__
        return run

    def arange_count(*args, **kwargs):
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args[:2], args[2] if len(args) > 2 else 1)
        return (stop - start) / step

    class _ArrayTypeMeta(type):
        def __instancecheck__(cls, obj):
            return isinstance(obj, np.ndarray)

        def __subclasscheck__(cls, sub):
            return isinstance(sub, type) and issubclass(sub, np.ndarray)

    class ndarray(metaclass=_ArrayTypeMeta):
        """``np.ndarray`` for isinstance checks (true of the arrays these functions give; engine tensors are
        not arrays); constructing one directly, with an arbitrary size, is not offered."""

        def __new__(cls, *args, **kwargs):
            raise TypeError("constructing `numpy.ndarray` directly is not supported")

    return types.SimpleNamespace(
        ndarray=ndarray,
        linspace=bounded(np.linspace, lambda start, stop, num=50, *a, **k: k.get("num", num)),
        arange=bounded(np.arange, arange_count),
        pi=np.pi, e=np.e, inf=np.inf,
        **{n: getattr(np, n) for n in ("prod", "cumsum", "sqrt", "log", "log2", "exp", "ceil", "floor", "round",
                                       "int32", "int64", "float32", "float64")})


class _LazyNamespace(types.SimpleNamespace):
    """A curated namespace built on first use (numpy is imported only when model code uses it)."""

    def __init__(self, build):
        super().__init__()
        object.__setattr__(self, "_build", build)

    def __getattr__(self, name):
        if name.startswith("_") or "_built" in self.__dict__:
            raise AttributeError(name)
        self.__dict__.update(vars(self._build()))
        self.__dict__["_built"] = True
        return getattr(self, name)


SAFE_STDLIB["numpy"] = _LazyNamespace(_numpy_subset)

_BLOCKED_CALLABLES = {
    id(getattr(builtins, n)) for n in (
        "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
        "breakpoint", "input", "getattr", "setattr", "delattr", "memoryview", "help", "exit", "quit",
    ) if hasattr(builtins, n)
}


# engine names that are not torch API (backend switching, interop, internals): never reachable
# from user code, which must not be able to make the engine import torch or change backends
_ENGINE_ONLY = {"backend", "backends", "from_torch", "memory", "interop", "creation", "dtypes", "graph",
                "function", "symbolic", "ops", "flops"}


def _no_location(location):
    """swap_location of a runtime that attributes nothing to source lines."""
    return None


class _Located:
    """Runtime.source_location: a location set for the duration of a ``with``."""

    __slots__ = ("swap", "location", "prev")

    def __init__(self, swap, location):
        self.swap, self.location = swap, location

    def __enter__(self):
        self.prev = self.swap(self.location)

    def __exit__(self, *exc):
        self.swap(self.prev)
        return False


class Runtime:
    """The engine as the interpreter sees it."""

    def __init__(self, tx, *, backend=None, swap_location=None):
        self.tx = tx                                   # torch-like namespace: gradxray.engine
        self._backend = backend or contextlib.nullcontext
        # swap_location((file, line)) -> the previous location: where allocations are attributed
        # (called directly once per statement, see Interpreter.exec_stmt)
        self.swap_location = swap_location or _no_location
        self.target_device = "cpu"                     # settings.device: what torch.cuda.is_available() says
        self._shims: dict | None = None
        self.data_backend = None                       # a context for small tensors of known values, or None
        self.preload_data_backend = _noop              # imports what that backend needs, ahead of its use
        self.constant_creators: set[int] = set()       # ids of the creation functions that may use it
        self.made_constants = False                    # whether such tensors exist (dropped once a model is built)
        self.Tensor = tx.Tensor
        self.Module = tx.nn.Module
        self._namespace_attrs: dict = {}               # (id(module), dotted, name) -> (module, result)
        self._allowed_modules = {id(tx)}
        for sub in ("nn", "nn.functional", "nn.init", "nn.utils", "utils", "utils.checkpoint",
                    "autograd", "amp", "optim", "cuda", "linalg", "fft", "special"):
            obj = tx
            for part in sub.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    break
            if obj is not None:
                self._allowed_modules.add(id(obj))

    # contexts ------------------------------------------------------------------------------
    def backend(self):
        return self._backend()

    def source_location(self, file: str, line: int):
        """A context attributing what runs inside to ``file:line``."""
        return _Located(self.swap_location, (file, line))

    # values --------------------------------------------------------------------------------
    def is_tensor(self, v) -> bool:
        return isinstance(v, self.Tensor)

    def is_module(self, v) -> bool:
        return isinstance(v, self.Module)

    def make_input(self, shape: tuple, dtype: str, device: str | None):
        dt = getattr(self.tx, dtype)
        try:
            return self.tx.empty(shape, dtype=dt, device=device)
        except Exception:       # e.g. device="cuda" on a data backend without CUDA: the default device
            return self.tx.empty(shape, dtype=dt)

    # namespace resolution ------------------------------------------------------------------
    def resolve_import(self, dotted: str):
        """A dotted import target -> (value, reason-if-unknown)."""
        parts = dotted.split(".")
        if parts[0] == "torch":
            val: Any = Namespace("torch", self.tx)
            for i, part in enumerate(parts[1:], 2):
                if isinstance(val, Namespace) and i < len(parts) and self._absent_submodule(val, part):
                    val = Namespace(f"{val.dotted}.{part}", _ABSENT_MODULE)
                    continue
                if isinstance(val, Namespace):
                    val, reason = self.namespace_attr(val, part)
                else:
                    val, reason = self.safe_attr(val, part)
                if reason is not None:
                    return None, reason
            return val, None
        if parts[0] in SAFE_STDLIB:
            obj = SAFE_STDLIB[parts[0]]
            for part in parts[1:]:
                if part.startswith("_") or not hasattr(obj, part):
                    return None, f"`{dotted}` is not supported"
                obj = getattr(obj, part)
            if isinstance(obj, types.SimpleNamespace):
                return Namespace(dotted, obj), None
            return self.wrap(dotted, obj), None
        return None, f"unresolved import `{dotted}`"

    def _absent_submodule(self, ns: Namespace, name: str) -> bool:
        """Whether ``ns.name``, named as a module in an import (``torch.nn.attention.flex_attention``), is a
        torch submodule the engine does not have."""
        return (name.islower() and not name.startswith("_") and ns.dotted.startswith("torch")
                and not (ns.obj is self.tx and name in _ENGINE_ONLY)
                and getattr(ns.obj, name, None) is None and self.shim(f"{ns.dotted}.{name}") is None)

    def shim(self, dotted: str):
        """Stand-ins for torch names that do not matter to shapes, memory or gradients and that
        the engine does not provide: weight initialisers, seeding, CUDA queries."""
        if self._shims is None:
            def init_noop(tensor, *args, **kwargs):
                return tensor        # initialisers only change values, which the shape backend has none of

            def calculate_gain(nonlinearity, param=None):
                gains = {"tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}
                if nonlinearity == "leaky_relu":
                    slope = 0.01 if param is None else param
                    return math.sqrt(2.0 / (1 + slope ** 2))
                return gains.get(nonlinearity, 1.0)

            def fan_in_and_fan_out(tensor):        # torch.nn.init._calculate_fan_in_and_fan_out: from the shape
                if tensor.dim() < 2:
                    raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
                receptive = math.prod(int(d) for d in tensor.shape[2:])
                return int(tensor.shape[1]) * receptive, int(tensor.shape[0]) * receptive

            init = types.SimpleNamespace(calculate_gain=calculate_gain, **{n: init_noop for n in (
                "normal_", "uniform_", "zeros_", "ones_", "constant_", "eye_", "dirac_", "xavier_uniform_",
                "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "orthogonal_",
                "sparse_")})
            on_cuda = lambda: self.target_device == "cuda"  # noqa: E731
            cuda = types.SimpleNamespace(is_available=on_cuda, device_count=lambda: 1 if on_cuda() else 0,
                                         is_bf16_supported=lambda *a, **k: True, manual_seed=lambda seed: None,
                                         manual_seed_all=lambda seed: None,
                                         # no CUDA graph is being captured while code is analysed
                                         is_current_stream_capturing=lambda: False)
            jit = types.SimpleNamespace(
                is_scripting=lambda: False, is_tracing=lambda: False,
                **{n: Transparent(f"torch.jit.{n}") for n in ("script", "trace", "unused", "ignore", "export")})
            compiler = types.SimpleNamespace(disable=Transparent("torch.compiler.disable"),
                                             allow_in_graph=Transparent("torch.compiler.allow_in_graph"),
                                             is_compiling=lambda: False, is_exporting=lambda: False)
            # torch's API-usage logging (`torch._C._log_api_usage_once`, called by torchvision's
            # constructors): inactive unless a process installs a logger, and no tensor work
            c_api = types.SimpleNamespace()
            self._shims = {"torch.nn.init": init, "torch.cuda": cuda, "torch.jit": jit, "torch.compiler": compiler,
                           "torch._C": c_api, "torch._C._log_api_usage_once": _noop,
                           # TorchScript overload declarations: the real definition follows them
                           "torch.jit._overload_method": Transparent("torch.jit._overload_method"),
                           "torch.jit._overload": Transparent("torch.jit._overload"),
                           # `torch._assert(cond, msg)`: an assert, which the analysis does not evaluate
                           "torch._assert": _noop,
                           "torch.nn.init._calculate_fan_in_and_fan_out": fan_in_and_fan_out,
                           # torch.fx: tracing markers (`torch.fx.wrap("fn")`, `@torch.fx.wrap`) change nothing
                           # when the model runs eagerly
                           "torch.fx": types.SimpleNamespace(wrap=Transparent("torch.fx.wrap")),
                           "torch.compile": Transparent("torch.compile"),
                           # the module torch.nn.Parameter is defined in
                           "torch.nn.parameter": types.SimpleNamespace(Parameter=self.tx.nn.Parameter,
                                                                       Buffer=self.tx.nn.Buffer),
                           "torch.manual_seed": lambda seed: None,
                           # pytree registration tells torch.compile / torch.export how to flatten a class;
                           # eager execution never consults it
                           "torch.utils._pytree": types.SimpleNamespace(register_pytree_node=_noop),
                           "torch.utils._pytree._dict_flatten_with_keys": _noop,
                           # the analysis targets the CPU or CUDA (settings.device): other accelerators are absent
                           "torch.xpu": types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0,
                                                              is_current_stream_capturing=lambda: False),
                           "torch.mps": types.SimpleNamespace(is_available=lambda: False),
                           "torch.backends": types.SimpleNamespace(
                               mps=types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False),
                               cuda=types.SimpleNamespace(is_built=on_cuda),
                               cudnn=types.SimpleNamespace(is_available=on_cuda)),
                           # torch.compile's fake tensors: never what the analysis computes with
                           "torch._subclasses": types.SimpleNamespace(
                               FakeTensor=engine_gap_class("torch._subclasses.FakeTensor")),
                           # no `with torch.device(...)` region is open during an analysis
                           "torch.get_default_device": lambda: self.tx.device("cpu")}
        return self._shims.get(dotted)

    def wrap(self, dotted: str, obj):
        if isinstance(obj, types.ModuleType):
            return Namespace(dotted, obj)
        return obj

    def namespace_attr(self, ns: Namespace, name: str):
        """``torch.X`` -> (value, reason-if-unknown); the same answer every time for a host module's name,
        so it is looked up once per runtime (``nn.Linear``, ``F.relu``, ``torch.cat`` are read in every
        layer a model builds or runs)."""
        key = (id(ns.obj), ns.dotted, name)
        hit = self._namespace_attrs.get(key)
        if hit is not None and hit[0] is ns.obj:
            return hit[1]
        found = self._namespace_attr(ns, name)
        self._namespace_attrs[key] = (ns.obj, found)
        return found

    def _namespace_attr(self, ns: Namespace, name: str):
        if name.startswith("_"):
            obj = self.shim(f"{ns.dotted}.{name}") if ns.dotted.startswith("torch") else None
            if obj is None:
                return None, f"`{ns.dotted}.{name}` is private"
            return (Namespace(f"{ns.dotted}.{name}", obj) if isinstance(obj, types.SimpleNamespace) else obj), None
        if ns.obj is self.tx and name in _ENGINE_ONLY:
            obj = self.shim(f"torch.{name}")          # torch's namesake (torch.backends), not the engine's module
            if isinstance(obj, types.SimpleNamespace):
                return Namespace(f"torch.{name}", obj), None
            return None, f"`{ns.dotted}.{name}` is not supported by gradxray's engine"
        obj = getattr(ns.obj, name, None)
        if obj is None and ns.dotted.startswith("torch"):
            obj = self.shim(f"{ns.dotted}.{name}")
            if isinstance(obj, types.SimpleNamespace):
                return Namespace(f"{ns.dotted}.{name}", obj), None
        if obj is None:
            if ns.obj is self.tx or ns.dotted.startswith("torch"):
                if name[:1].isupper():
                    return engine_gap_class(f"{ns.dotted}.{name}"), None
                return None, f"`{ns.dotted}.{name}` is not supported by gradxray's engine"
            return None, f"`{ns.dotted}.{name}` is not supported"
        if isinstance(obj, types.ModuleType):
            if id(obj) not in self._allowed_modules and not any(obj is m for m in SAFE_STDLIB.values()):
                return None, f"`{ns.dotted}.{name}` is not supported"
            return Namespace(f"{ns.dotted}.{name}", obj), None
        if id(obj) in _BLOCKED_CALLABLES:
            return None, f"`{ns.dotted}.{name}` is not allowed"
        return obj, None

    def safe_attr(self, obj, name: str):
        """Attribute of a host object -> (value, reason-if-refused-or-missing)."""
        if name == "__name__" and isinstance(getattr(obj, "__name__", None), str):
            return obj.__name__, None
        if name in ("__init__", "forward") and isinstance(obj, type) and issubclass(obj, self.Module):
            return obj.__dict__.get(name) or getattr(obj, name), None      # nn.Module.__init__(self)
        if name.startswith("_"):
            return None, f"attribute `{name}` is private"
        try:
            val = getattr(obj, name)
        except AttributeError:
            return None, f"`{type(obj).__name__}` has no attribute `{name}`"
        except Exception as e:  # engine property raising
            return None, f"`.{name}`: {type(e).__name__}: {e}"
        if isinstance(val, types.ModuleType):
            if id(val) in self._allowed_modules:
                return Namespace(name, val), None
            return None, f"attribute `{name}` is a module"
        if id(val) in _BLOCKED_CALLABLES:
            return None, f"attribute `{name}` is not allowed"
        return val, None


def engine_runtime() -> Runtime:
    """The runtime on gradxray's engine, shape backend (no data)."""
    import gradxray.engine as gx

    def shape_backend():
        stack = contextlib.ExitStack()
        stack.enter_context(gx.backend("shape"))
        stack.enter_context(gx.backends.shape_absorbs_data())   # constants with values meet activations
        return stack

    rt = Runtime(gx, backend=shape_backend, swap_location=gx.memory.swap_location)
    rt.data_backend = lambda: gx.backend("numpy")
    rt.preload_data_backend = lambda: gx.backends.preload("numpy")
    rt.constant_creators = {id(getattr(gx, n)) for n in CONSTANT_CREATORS}
    return rt


# creation functions whose result, when called with Python numbers (or sizes of inputs) only, is a small
# tensor of known values: they run on the numpy backend so that later `.tolist()` / `.item()` / `int(t)` /
# branches on them get their values (torch.arange(depth) * w_a + w_0 ... .tolist() in RegNet's width rule
# while a model is built; `fast_all(torch.ones(batch, length))` in an HF forward)
CONSTANT_CREATORS = ("arange", "tensor", "as_tensor", "linspace", "logspace", "ones", "zeros", "full")
MAX_CONSTANT_NUMEL = 1 << 16
_CONSTANT_CREATOR_CALL = re.compile(r"\b(?:%s)\s*\(" % "|".join(CONSTANT_CREATORS))


def may_make_constants(source: str) -> bool:
    """Whether ``source`` calls a function named like one of CONSTANT_CREATORS: its analysis may then
    need the data backend (a guess from the text, for loading that backend early)."""
    return _CONSTANT_CREATOR_CALL.search(source) is not None


# --- helpers over tensors and graphs ------------------------------------------------------------

def upstream_params(t, runtime: Runtime) -> set[int]:
    """ids of the leaf tensors that require grad (parameters) reachable backwards from t."""
    out: set[int] = set()
    if not runtime.is_tensor(t):
        return out
    if t.grad_fn is None:
        if t.requires_grad:
            out.add(id(t))
        return out
    seen: set[int] = set()
    stack = [t.grad_fn]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        var = getattr(node, "variable", None)       # AccumulateGrad: the leaf it accumulates into
        if var is not None:
            out.add(id(var))
        for edge in node.next_edges:                # next_functions without building its tuple
            if edge is not None:
                stack.append(edge[0])
    return out
