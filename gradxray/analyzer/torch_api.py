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

import builtins
import collections
import contextlib
import functools
import math
import operator
import types
from typing import Any

from .values import Namespace, Transparent


def _noop(*args, **kwargs):
    return None


_NULL_LOGGER = types.SimpleNamespace(**{
    n: _noop for n in ("debug", "info", "warning", "warn", "error", "exception", "critical", "log")})

# standard-library names that are pure functions of their arguments (modules or curated subsets)
SAFE_STDLIB = {
    "math": math,
    "collections": types.SimpleNamespace(OrderedDict=collections.OrderedDict, defaultdict=collections.defaultdict),
    "functools": types.SimpleNamespace(partial=functools.partial, reduce=functools.reduce,
                                       lru_cache=Transparent("functools.lru_cache"),
                                       cache=Transparent("functools.cache")),
    "operator": types.SimpleNamespace(**{n: getattr(operator, n) for n in (
        "add", "sub", "mul", "truediv", "floordiv", "mod", "neg", "matmul", "getitem", "itemgetter")}),
    # diagnostics output: no-ops (the analyzer never prints on the user's behalf)
    "warnings": types.SimpleNamespace(warn=_noop),
    "logging": types.SimpleNamespace(getLogger=lambda *a, **k: _NULL_LOGGER, **{
        n: _noop for n in ("debug", "info", "warning", "error", "exception", "critical")}),
}

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


class Runtime:
    """The engine as the interpreter sees it."""

    def __init__(self, tx, *, backend=None, source_location=None):
        self.tx = tx                                   # torch-like namespace: gradxray.engine
        self._backend = backend or contextlib.nullcontext
        self._source_location = source_location
        self.target_device = "cpu"                     # settings.device: what torch.cuda.is_available() says
        self._shims: dict | None = None
        self.Tensor = tx.Tensor
        self.Module = tx.nn.Module
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
        if self._source_location is None:
            return contextlib.nullcontext()
        return self._source_location(file, line)

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
            for part in parts[1:]:
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

            init = types.SimpleNamespace(calculate_gain=calculate_gain, **{n: init_noop for n in (
                "normal_", "uniform_", "zeros_", "ones_", "constant_", "eye_", "dirac_", "xavier_uniform_",
                "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "orthogonal_",
                "sparse_")})
            on_cuda = lambda: self.target_device == "cuda"  # noqa: E731
            cuda = types.SimpleNamespace(is_available=on_cuda, device_count=lambda: 1 if on_cuda() else 0,
                                         is_bf16_supported=lambda *a, **k: True, manual_seed=lambda seed: None,
                                         manual_seed_all=lambda seed: None)
            jit = types.SimpleNamespace(
                is_scripting=lambda: False, is_tracing=lambda: False,
                **{n: Transparent(f"torch.jit.{n}") for n in ("script", "trace", "unused", "ignore", "export")})
            compiler = types.SimpleNamespace(disable=Transparent("torch.compiler.disable"),
                                             is_compiling=lambda: False)
            self._shims = {"torch.nn.init": init, "torch.cuda": cuda, "torch.jit": jit, "torch.compiler": compiler,
                           "torch.compile": Transparent("torch.compile"),
                           "torch.manual_seed": lambda seed: None}
        return self._shims.get(dotted)

    def wrap(self, dotted: str, obj):
        if isinstance(obj, types.ModuleType):
            return Namespace(dotted, obj)
        return obj

    def namespace_attr(self, ns: Namespace, name: str):
        """``torch.X`` -> (value, reason-if-unknown)."""
        if name.startswith("_"):
            return None, f"`{ns.dotted}.{name}` is private"
        if ns.obj is self.tx and name in _ENGINE_ONLY:
            return None, f"`{ns.dotted}.{name}` is not supported by gradxray's engine"
        obj = getattr(ns.obj, name, None)
        if obj is None and ns.dotted.startswith("torch"):
            obj = self.shim(f"{ns.dotted}.{name}")
            if isinstance(obj, types.SimpleNamespace):
                return Namespace(f"{ns.dotted}.{name}", obj), None
        if obj is None:
            if ns.obj is self.tx or ns.dotted.startswith("torch"):
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

    return Runtime(gx, backend=lambda: gx.backend("shape"), source_location=gx.memory.source_location)


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
        stack.extend(n for n, _ in node.next_functions if n is not None)
    return out
