"""The abstract interpreter: evaluates a file's Python over abstract values.

It walks the ``ast`` of ``__init__``, ``forward`` and whatever they call, with
Python's own semantics where values are known (constants, containers, sizes,
engine tensors and modules) and ``Unknown`` where they are not.  Every torch
call is executed by the engine (shape backend), so the engine builds the same
autograd graph, with the same saved tensors, as PyTorch would.

Conventions
* Never raises on user code: an error in one statement makes its result
  ``Unknown`` and is recorded as ``Unresolved(file, line, reason, col, end_line, end_col)``.
* ``Unknown`` is recorded where it is *created*; operations on an Unknown
  propagate it silently (one record per place precision was lost).
* References: a call frame's variables are dropped when the call returns, and
  facts hold text and ints only, so the interpreter keeps tensors alive no
  longer than CPython would (the engine measures memory by reference counts).
"""
from __future__ import annotations

import ast
import builtins
import collections
import contextlib
import copy
import dataclasses
import inspect
import itertools
import math
import operator
import os
import types
import weakref
from typing import Any

from gradxray.engine.memory import current_phase
from gradxray.engine.nn import NOT_REGISTERED, registered
from gradxray.engine.symbolic import SymInt, sym_text
from gradxray.engine.utils.checkpoint import RECOMPUTE_PHASE

from .astwalk import push_children
from .gc_pause import paused_gc
from .exit_stack import ExitStackValue
from .inputs import (
    ConsumerLookup, discover_inputs, forward_params, infer_from_consumers, make_input_tensors, missing_input_note,
    needed_optional_inputs,
)
from .line_facts import add_step_facts
from .project import (MUTATING_METHODS, NESTED_SCOPES, ModuleIndex, class_info, import_bindings,
                      is_source_resolvable, positional_params, required_params, stores_outside)
from .results import Analysis, ClassSummary, GradCut, LineFact, Span, TensorFact, Unresolved
from .torch_api import EngineGap, Runtime, upstream_params
from .training_step import simulate_training_step
from .values import (
    CONTEXTMANAGER, PARTIAL, BoundMethod, GeneratorContext, Builtin, FieldDefault, Marker, Namespace, Partial, ProjectModule,
    SuperProxy, Transparent, Unknown, UserClass, UserFunction, UserInstance, first_unknown, interpreted_module_base, make_module_class,
)

MAX_LOOP = 100_000
MAX_WHILE = 10_000
MAX_DEPTH = 120
MAX_STEPS = 300_000          # statements interpreted per root (construction + forward)
# iterations one run of a `for` loop may take together with the loops nested in it in the same function
# (not those of the functions it calls): a loop computing values element by element over a large product
# (TinyViT's attention-offset table, 196 x 196 pairs per layer) stops with what it computes unknown,
# instead of spending the whole analysis; construction loops iterate over blocks, a few dozen times
MAX_LOOP_ITERATIONS = 10_000


# --- control flow signals (BaseException: never caught by `except Exception`) -------------------

class _Flow(BaseException):
    pass


class _Return(_Flow):
    def __init__(self, value):
        self.value = value


class _Break(_Flow):
    pass


class _Continue(_Flow):
    pass


class _Raise(_Flow):
    """A ``raise`` statement reached; ``exc`` is the exception instance when its class is known (a host
    exception class, or a class of the analysed sources deriving from one), else None."""

    def __init__(self, node, exc=None):
        self.node = node
        self.exc = exc


class _HostError(_Raise):
    """An exception a host call raised, travelling to the ``try`` handler that catches it."""

    def __init__(self, node, error: Exception):
        super().__init__(node)
        self.error = error


class _WrapperFallback(_Flow):
    """A decorator's wrapper lost precision before calling the function it wraps: it is skipped."""

    def __init__(self, call):
        self.call = call


class _WrapperCall:
    """One running call of a decorator's wrapper (see Interpreter.call_wrapped)."""
    __slots__ = ("inner", "start", "is_forward", "state", "result", "end")

    def __init__(self, inner, start: int, is_forward: bool):
        self.inner, self.start, self.is_forward = inner, start, is_forward
        self.state = "waiting"            # -> "running" -> "done"
        self.result = None
        self.end: int | None = None       # len(unresolved) when the function returned


class Budget(_Flow):
    """The analysis of one root ran too many statements: it stops (recorded), the rest goes on."""


class Scope:
    """Variables of one frame; ``parent`` is the enclosing function scope (closures)."""

    __slots__ = ("vars", "parent", "captured", "iterations")

    def __init__(self, vars: dict | None = None, parent: "Scope | None" = None):
        self.vars = {} if vars is None else vars
        self.parent = parent
        self.captured = False       # a closure (nested def / lambda) refers to this scope
        self.iterations = 0         # `for` iterations run in this frame (see MAX_LOOP_ITERATIONS)


class ClassBodyScope(Scope):
    """The names of a class body: its own statements see them; a function, lambda or comprehension in it
    does not (Python's rule: a lambda default of a dataclass field reads the module's names, not the
    class's; a comprehension's first iterable is the exception, evaluated in the class body).  Holding
    the class body would also make a reference cycle: class attribute -> lambda -> class body."""

    __slots__ = ()


_MISSING = object()

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.MatMult: operator.matmul, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}
_IBINOPS = {
    ast.Add: operator.iadd, ast.Sub: operator.isub, ast.Mult: operator.imul, ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv, ast.Mod: operator.imod, ast.Pow: operator.ipow,
    ast.MatMult: operator.imatmul, ast.BitAnd: operator.iand, ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor, ast.LShift: operator.ilshift, ast.RShift: operator.irshift,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}

# host builtins exposed to user code as they are (pure functions of their arguments)
_HOST_BUILTINS = (
    "range", "len", "int", "float", "bool", "str", "list", "tuple", "dict", "set", "frozenset",
    "abs", "min", "max", "sum", "round", "enumerate", "zip", "reversed", "sorted", "any", "all",
    "map", "filter", "divmod", "pow", "iter", "next", "repr", "format", "slice", "callable",
    "ord", "chr", "hash", "object", "bytes", "complex",
)
# host callables that accept Unknown elements inside containers (they do not look at them)
_CONTAINER_SAFE = {list, tuple, dict, set, frozenset, enumerate, zip, reversed, iter, next, len}


_NO_CONTEXT = contextlib.nullcontext()
_NO_SITES: frozenset = frozenset()
# the analysis's own values that Interpreter.call handles itself (anything else callable is the host's)
_ANALYSIS_VALUES = (Unknown, UserFunction, BoundMethod, UserClass, Builtin, Partial, Marker, UserInstance, Namespace,
                    SuperProxy)


class CutTracker:
    """Gradient-cut sites (``.detach()`` / ``.data``) and the tensors they flow into.

    Tags live in a dict keyed by ``id(tensor)`` with a weakref callback that drops
    the entry when the tensor dies: no strong references are kept.
    """

    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.sites: dict[tuple, dict] = {}
        self._tags: dict[int, tuple] = {}

    def record(self, kind: str, t, span: Span) -> tuple:
        key = (kind, span.line, span.col)
        site = self.sites.setdefault(key, {"kind": kind, "span": span, "upstream": set()})
        site["upstream"] |= upstream_params(t, self.rt)
        return key

    def sites_of(self, t) -> frozenset:
        entry = self._tags.get(id(t))
        if entry is None:
            return frozenset()
        ref, sites = entry
        return sites if ref() is t else frozenset()

    def tag(self, t, sites: frozenset) -> None:
        if not sites:
            return
        key = id(t)
        old = self.sites_of(t)
        if sites <= old:
            return
        tags = self._tags
        ref = weakref.ref(t, lambda _r, k=key, tags=tags: tags.pop(k, None))
        tags[key] = (ref, old | sites)

    def sources(self, values) -> frozenset:
        """The cut sites the tensors among ``values`` (or inside tuples, lists, dicts of them) carry."""
        out: frozenset = frozenset()
        if not self._tags:
            return out
        for v in values:
            items = v if isinstance(v, (tuple, list)) else v.values() if isinstance(v, dict) else (v,)
            for x in items:
                if self.rt.is_tensor(x):
                    out |= self.sites_of(x)
        return out

    def record_lost(self, callee, receiver, args, kwargs, result, method_name, span_of) -> None:
        """A call on tensors that require grad whose result does not: the gradient stops here.  Kinds:
        "item" (``.item()`` / ``.tolist()``), "no_grad" (a region with grad mode off),
        "non_differentiable" (argmax, comparisons, round ...).  ``.detach()`` is recorded by the caller.
        ``span_of()`` gives the call's Span (made only for a site actually recorded: most calls are not)."""
        rt = self.rt
        if rt.is_tensor(result):
            if result.requires_grad:
                return
        elif method_name not in ("item", "tolist"):
            return
        upstream: set[int] = set()
        if rt.is_module(callee):
            upstream |= {id(p) for p in callee.parameters() if p.requires_grad}
        for v in (receiver, *args, *kwargs.values()):
            for x in (v if isinstance(v, (tuple, list)) else (v,)):
                if rt.is_tensor(x) and x.requires_grad:
                    upstream |= upstream_params(x, rt)
        if not upstream:
            return
        if method_name in ("item", "tolist") and not rt.is_tensor(result):
            kind = "item"
        else:
            kind = "non_differentiable" if rt.tx.is_grad_enabled() else "no_grad"
        span = span_of()
        key = (kind, span.line, span.col)
        site = self.sites.setdefault(key, {"kind": kind, "span": span, "upstream": set()})
        site["upstream"] |= upstream

    def propagate(self, sites: frozenset, result) -> None:
        if not sites:
            return
        if self.rt.is_tensor(result):
            self.tag(result, sites)
        elif isinstance(result, (tuple, list)):
            for x in result:
                if self.rt.is_tensor(x):
                    self.tag(x, sites)


class Interpreter:
    # node type -> the eval_/exec_ function for it (None: unsupported), per class: a subclass may
    # override some; saves building the method name and a getattr for every node interpreted
    _eval_methods: dict = {}
    _exec_methods: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._eval_methods, cls._exec_methods = {}, {}

    def __init__(self, index: ModuleIndex, runtime: Runtime, analysis: Analysis, settings):
        self.index = index
        self.rt = runtime
        self.analysis = analysis
        self.settings = settings
        self.path = index.path
        # a file without the word `yield` defines no generator function: its calls skip the body walk
        self._may_yield = any("yield" in line for line in index.lines)
        self._globals: dict[str, Any] = {}
        self._globals_busy: set[str] = set()
        self._bindings: dict[str, tuple] | None = None     # see sequential_binding
        self._effects_ran: set[int] | None = None          # see run_module_effects
        self._cut_loops: set = set()                       # `for` statements stopped by MAX_LOOP_ITERATIONS
        self._yield_sinks: list[list] = []                 # what the running generator functions yielded
        self._with_body = None                             # the with-body a @contextmanager call runs at its yield
        self._yield_at = None                              # the yield expression a generator reached last
        self._swap_location = runtime.swap_location
        # enclosing `try` blocks, innermost last: (frame scope id, caught host classes, per handler, per
        # handler as written); None marks a boundary (host code or lazily evaluated module code runs
        # between it and the entries below it, so an exception never travels past it)
        self._try_stack: list[tuple | None] = []
        self._handling: list = []                          # exceptions whose `except` bodies are running
        self._wrapper_calls: list[_WrapperCall] = []       # decorators' wrappers running, innermost last
        self._classes: dict[str, UserClass] = {}
        self._seen_unresolved: set[tuple] = {(u.file, u.line, u.reason) for u in analysis.unresolved}
        self.frames: list[tuple[UserFunction, Scope]] = []
        self.forward_depth = 0
        self.steps = 0
        self.cuts = CutTracker(runtime)
        self.class_patches: dict[tuple, Any] = {}     # (engine class, name) -> value the analysed code set
        self.module_flags: set[str] = set()             # private attribute names it set on engine modules
        self._module_base = interpreted_module_base(runtime.Module)
        self._host_types: dict[type, bool] = {}        # type -> whether its objects are host objects (lookup_attr)
        runtime.target_device = settings.device

    def release(self) -> None:
        """Drop the state of a finished analysis (its own and that of the files it imported).

        The interpreters, their classes and functions refer to one another, so without this the
        whole analysis (models, ASTs, module state) is garbage only the cyclic collector can free,
        and its full passes over that pile cost more than the analysis's own work.  Only for an
        analysis whose results are complete: nothing may use the interpreter afterwards."""
        session = self.__dict__.get("import_session")
        interps = [self] + [it for it in (session.interpreters.values() if session is not None else ())
                            if it is not self]
        for it in interps:
            for ucls in list(it.__dict__.get("_classes", {}).values()):
                ucls.__dict__.clear()
            it.__dict__.clear()

    def imported_files(self) -> list[str]:
        """The other source files this analysis has read so far (imports followed into them)."""
        session = self.__dict__.get("import_session")
        if session is None:
            return []
        own = os.path.abspath(self.path)
        return [p for p in session.interpreters if p != own]

    # ------------------------------------------------------------------------------------------
    # recording

    def span(self, node) -> Span:
        if node is None:
            return Span(self.path, 1)
        return Span(self.path, getattr(node, "lineno", 1), getattr(node, "col_offset", 0),
                    getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None))

    def unknown(self, reason: str, node) -> Unknown:
        sp = self.span(node)
        key = (self.path, sp.line, reason)
        if key not in self._seen_unresolved:
            self._seen_unresolved.add(key)
            self.analysis.unresolved.append(Unresolved(self.path, sp.line, reason, sp.col, sp.end_line, sp.end_col))
        return Unknown(reason, sp)

    def record_facts(self, stmt, pairs) -> None:
        """Per-line facts for the tensors among ``pairs`` of (target expression, value).  The first run
        of a line records them (naming each by its source text), later runs count calls."""
        if current_phase() == RECOMPUTE_PHASE:     # a checkpoint re-running the line in backward
            return
        tensors = [(expr, v) for expr, v in pairs if self.rt.is_tensor(v)]
        if not tensors:
            return
        lf = self.analysis.lines.get(stmt.lineno)
        if lf is None:
            lf = LineFact(file=self.path, line=stmt.lineno, end_col=stmt.end_col_offset or 0,
                          end_line=stmt.end_lineno)
            self.analysis.lines[stmt.lineno] = lf
        lf.calls += 1
        if not lf.tensors:
            lf.tensors = [self.tensor_fact(e.id if isinstance(e, ast.Name) else ast.unparse(e), t)
                          for e, t in tensors]

    def tensor_fact(self, name: str, t) -> TensorFact:
        shape = tuple(t.shape)
        return TensorFact(
            name=name,
            shape=tuple(sym_text(d) for d in shape),
            concrete_shape=tuple(int(d) for d in shape),
            dtype=t.dtype.name,
            requires_grad=bool(t.requires_grad),
        )

    def module_name(self) -> str:
        """The dotted module name of this file (``pkg.sub.mod``, following ``__init__.py`` files up),
        what ``__module__`` of its classes and functions says."""
        name = getattr(self, "_module_name", None)
        if name is None:
            folder, base = os.path.split(os.path.abspath(self.path))
            parts = [os.path.splitext(base)[0]]
            if parts[0] == "__init__":
                parts = []
            while os.path.isfile(os.path.join(folder, "__init__.py")):
                folder, pkg = os.path.split(folder)
                parts.insert(0, pkg)
            name = self._module_name = ".".join(parts) or "__main__"
        return name

    # ------------------------------------------------------------------------------------------
    # names

    def lookup(self, name: str, scope: Scope | None, node):
        s = scope
        while s is not None:
            v = s.vars.get(name, _MISSING)
            if v is not _MISSING:
                return v
            s = s.parent
        return self.global_lookup(name, node)

    def global_lookup(self, name: str, node):
        if name in self._globals:
            return self._globals[name]
        if self._effects_ran is None:
            self.run_module_effects()
            if name in self._globals:
                return self._globals[name]
        idx = self.index
        if name in idx.classes:
            val = self.user_class(name)
        elif name in idx.functions:
            val = self.make_function(idx.functions[name], None, None)
        elif name in idx.imports:
            val = self.resolve_import(idx.imports[name], node)
            if type(val) is Unknown:
                return val                      # not cached: each use site is recorded
        elif (span := self.sequential_binding(name)) is not None:
            return self.run_module_statements(name, span, node)
        elif name in idx.assigns:
            if name in self._globals_busy:
                return self.unknown(f"`{name}` is defined in terms of itself", node)
            self._globals_busy.add(name)
            self._try_stack.append(None)
            try:
                val = self.eval(idx.assigns[name], None)
            finally:
                self._try_stack.pop()
                self._globals_busy.discard(name)
        elif name in _BUILTINS:
            return _BUILTINS[name]
        elif name == "__name__":
            return os.path.splitext(os.path.basename(self.path))[0]
        elif name == "__file__":
            return self.path
        else:
            return self.unknown(f"undefined name `{name}`", node)
        self._globals[name] = val
        return val

    def sequential_binding(self, name: str) -> tuple[int, int] | None:
        """(first, last) indices of the top-level statements that bind a module global when one
        expression does not define it: it is bound more than once (``cfgs = {...}`` ... ``cfgs =
        build(cfgs)``) or inside a top-level ``if`` / ``try`` / ``for`` / ``with``.  Else None."""
        table = self._bindings
        if table is None:
            table = self._bindings = {}
            for i, stmt in enumerate(self.index.tree.body):
                simple = isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.AsyncFunctionDef,
                                           ast.ClassDef, ast.Import, ast.ImportFrom))
                for bound in _bound_names(stmt):
                    first, last, count, compound = table.get(bound, (i, i, 0, False))
                    table[bound] = (first, i, count + 1, compound or not simple)
        entry = table.get(name)
        if entry is None or (entry[2] == 1 and not entry[3]):
            return None
        return entry[0], entry[1]

    def run_module_effects(self) -> None:
        """Top-level expression statements calling a function written in source that changes state beyond
        its locals (``register_block('mobilevit', MobileVitBlock)`` filling another module's registry)
        run once, in order, when the module's globals are first needed, as importing it runs them.  Other
        top-level calls (logging, host functions) change nothing the analysis reads and are not run."""
        self._effects_ran = ran = set()
        tree = self.index.tree
        candidates = getattr(tree, "_gx_effects", None)
        if candidates is None:
            candidates = tree._gx_effects = [i for i, st in enumerate(tree.body) if _effect_candidate(st, self.index)]
        if not candidates:
            return
        scope = Scope(self._globals)
        self._try_stack.append(None)         # module code: the `try` of whoever looked a name up is not its caller
        try:
            for i in candidates:
                if i in ran:
                    continue
                stmt = tree.body[i]
                body = _decorator_body(self.eval(stmt.value.func, scope))
                if body is None or not stores_outside(body):
                    continue
                ran.add(i)
                self.exec_stmt(stmt, scope)
        except _Flow as f:
            if isinstance(f, Budget):
                raise
        finally:
            self._try_stack.pop()

    def run_module_statements(self, name: str, span: tuple[int, int], node):
        """A global bound by several top-level statements: they run in order, from its first binding to
        its last, in the module's namespace (skipping definitions and imports of other names, which
        resolve lazily, and statements that only rebind names already evaluated)."""
        if name in self._globals_busy:
            return self.unknown(f"`{name}` is defined in terms of itself", node)
        self._globals_busy.add(name)
        scope = Scope(self._globals)
        self._try_stack.append(None)         # module code: the `try` of whoever looked the name up is not its caller
        try:
            for i in range(span[0], span[1] + 1):
                stmt = self.index.tree.body[i]
                bound = _bound_names(stmt)
                if name not in bound:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                         ast.ImportFrom)) or (bound and bound <= self._globals.keys()):
                        continue
                    if isinstance(stmt, ast.Expr):          # a call run once, here or by run_module_effects
                        if self._effects_ran is None:
                            self._effects_ran = set()
                        if i in self._effects_ran:
                            continue
                        self._effects_ran.add(i)
                self.exec_stmt(stmt, scope)
        except _Flow as f:
            if isinstance(f, Budget):
                raise
            self.unknown(f"module-level code defining `{name}` did not complete", node)
        finally:
            self._try_stack.pop()
            self._globals_busy.discard(name)
        if name not in self._globals:
            return self.unknown(f"undefined name `{name}`", node)
        return self._globals[name]

    def resolve_import(self, dotted: str, node):
        if dotted in _KNOWN_IMPORTS:
            return _KNOWN_IMPORTS[dotted]
        if dotted == "sys.modules":
            return self.sys_modules()
        if dotted.startswith("typing.") or dotted == "typing" or dotted.startswith("typing_extensions"):
            return Marker(dotted)
        if not dotted.startswith("."):
            val, reason = self.rt.resolve_import(dotted)      # torch (the engine) and mapped stdlib names
            if reason is None:
                return val
            if not is_source_resolvable(dotted):
                return self.unknown(reason, node)
        # another workspace file or an installed package's source, found and read, never imported
        from .resolver import resolve_project_import

        val, reason = resolve_project_import(self, dotted)
        if reason is not None:
            return self.unknown(reason, node)
        return val

    def sys_modules(self) -> "_SysModules":
        mods = self.__dict__.get("_sys_modules")
        if mods is None:
            mods = self._sys_modules = _SysModules(self)
        return mods

    # ------------------------------------------------------------------------------------------
    # classes and functions

    def user_class(self, name: str) -> UserClass:
        if name in self._classes:
            return self._classes[name]
        return self._build_class(self.index.classes[name])

    def _build_class(self, info) -> UserClass:
        name = info.name
        bases = []
        for b in info.bases:
            if b in self.index.classes and b != name:
                val = self.user_class(b)
                bases.append(val)
                # a base of this file may be a module (a dataclass) through a base of another file
                info.is_module = info.is_module or val.info.is_module
                info.is_dataclass = info.is_dataclass or val.info.is_dataclass
            elif b.startswith("torch.nn."):
                val, _ = self.rt.resolve_import(b)
                if isinstance(val, type):
                    bases.append(val)
            elif b in _HOST_BASES and b not in self.index.imports:
                bases.append(_HOST_BASES[b])     # `class MyError(ValueError)`, `class classproperty(property)`
            elif b != "<expr>":
                val = self._imported_base(b)
                if isinstance(val, UserClass):
                    bases.append(val)
                    # a class of another file: what it is (module, dataclass) carries over
                    info.is_module = info.is_module or val.info.is_module
                    info.is_dataclass = info.is_dataclass or val.info.is_dataclass
                elif isinstance(val, type) and issubclass(val, self.rt.Module):
                    bases.append(val)
                    info.is_module = True
        ucls = UserClass(self, info, bases)
        if self.index.classes.get(name) is info:
            self._classes[name] = ucls
        if info.is_module:
            host = [b for b in ucls.host_bases() if isinstance(b, type) and issubclass(b, self.rt.Module)
                    and b is not self.rt.Module]
            ucls.py_class = make_module_class(ucls, self._module_base, host)
        return ucls

    def _imported_base(self, dotted: str):
        """A base class named by an import: the class from the file or package source that defines it,
        an engine class, or None.  Quiet: a base that cannot be resolved (``enum.Enum``, ``object``)
        leaves the class a plain class of this file."""
        if dotted.startswith("torch."):
            val, reason = self.rt.resolve_import(dotted)
            return val if reason is None else None
        if not dotted.startswith(".") and not is_source_resolvable(dotted):
            return None
        from .resolver import resolve_project_import

        val, reason = resolve_project_import(self, dotted)
        return val if reason is None else None

    def class_attrs(self, ucls: UserClass) -> dict:
        if ucls.attrs is not None:
            return ucls.attrs
        if ucls.interp is not self:         # a class of another file: its body evaluates there
            return ucls.interp.class_attrs(ucls)
        attrs: dict[str, Any] = {}
        ucls.attrs = attrs
        fields: list[str] = []
        for base in ucls.bases:
            if isinstance(base, UserClass):
                self.class_attrs(base)
                for f in base.fields:
                    if f not in fields:
                        fields.append(f)
        cscope = ClassBodyScope(attrs, None)
        self._try_stack.append(None)         # a class body runs apart from the code that first used the class
        try:
            self._class_body(ucls, attrs, fields, cscope)
        finally:
            self._try_stack.pop()
        ucls.fields = fields
        self._init_subclass(ucls)
        return attrs

    def _init_subclass(self, ucls: UserClass) -> None:
        """A base's ``__init_subclass__`` written in source runs for the new class, as Python runs it when
        the class statement ends (HF's configs turn their ``sub_configs_defaults`` into specs there).  It
        is run for its effects on the class: what it cannot follow (the dataclass machinery it
        re-applies, which the analysis models on its own) is not reported."""
        _owner, hook = ucls.lookup("__init_subclass__", after=ucls)
        if not isinstance(hook, UserFunction):
            return
        mark = len(self.analysis.unresolved)
        self._try_stack.append(None)
        try:
            hook.interp.call_function(hook, [ucls], {}, None)
        finally:
            self._try_stack.pop()
        self._forget_unresolved(mark)

    def _class_body(self, ucls: UserClass, attrs: dict, fields: list, cscope: Scope) -> None:
        for item in ucls.info.node.body:
            try:
                with self.rt.source_location(self.path, item.lineno):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        fn = self.make_function(item, None, ucls)
                        if fn.kind != "setter":
                            attrs[item.name] = fn
                        elif any(isinstance(d, ast.Attribute) and d.attr == "setter" for d in item.decorator_list):
                            prop = attrs.get(item.name)
                            if isinstance(prop, UserFunction) and prop.kind == "property":
                                prop.setter = fn
                    elif isinstance(item, ast.Assign):
                        val = self.eval(item.value, cscope)
                        for t in item.targets:
                            self.assign(t, val, cscope, item)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        name = item.target.id
                        ann = ast.unparse(item.annotation)
                        is_classvar = "ClassVar" in ann
                        if item.value is not None:
                            attrs[name] = self.eval(item.value, cscope)
                        if not is_classvar and name not in fields:
                            fields.append(name)
            except Budget:
                raise
            except _Flow:
                pass
            except Exception as e:  # pragma: no cover - defensive
                self.unknown(f"internal error in class body: {type(e).__name__}: {e}", item)

    def make_function(self, node, scope: Scope | None, owner: UserClass | None):
        fn = UserFunction(self, node, scope, owner)
        _mark_captured(scope)
        for dec in reversed(node.decorator_list):
            if isinstance(dec, ast.Attribute) and dec.attr in ("setter", "deleter"):
                fn.kind = "setter"
                continue
            dv = self.eval(dec, scope)
            if dv is builtins.staticmethod:
                fn.kind = "staticmethod"
            elif dv is builtins.classmethod:
                fn.kind = "classmethod"
            elif dv is builtins.property or (isinstance(dv, UserClass) and any(
                    isinstance(b, type) and issubclass(b, property) for b in dv.host_bases())):
                fn.kind = "property"          # a property subclass written in source (`classproperty`) too
            elif type(dv) is Unknown:
                continue
            elif hasattr(dv, "__enter__") and hasattr(dv, "__exit__"):
                fn.context_decorators.append(dv)      # @torch.no_grad()
            elif dv is CONTEXTMANAGER:
                fn.kind = "contextmanager"            # a call gives a GeneratorContext, run by `with`
            elif isinstance(dv, (Marker, Transparent, GeneratorContext)):
                # a @contextmanager used as a decorator wraps each call in its context; written in Python
                # source, it is taken to keep what the function computes, as other source decorators are
                continue
            elif isinstance(dv, UserFunction) and _replaces_function(dv):
                # a decorator that returns a new function which never calls the decorated one (a factory:
                # `@as_validated_field` turns a validator into a field constructor) is applied: keeping the
                # decorated function would give callers a different signature
                made = self.call(dv, [fn], {}, dec)
                if isinstance(made, (UserFunction, BoundMethod, Partial, Builtin)):
                    fn = made
            elif isinstance(dv, UserFunction) and _wraps_function(dv) and not stores_outside(dv.node):
                fn = self._apply_wrapper(dv, fn, dec)
            elif isinstance(dv, (UserFunction, BoundMethod, Partial, UserInstance, UserClass)):
                # Any other decorator written in Python source (a class instance, a factory of another
                # shape, one that also changes state: model registries, docstring helpers) is taken to
                # keep what the function computes: calls go to the undecorated function.  One that
                # changes state beyond its own locals (`@register_model` filling a registry that code
                # reads later, e.g. pretrained configs holding a model's default sizes) is still
                # applied, for those side effects: its result is discarded, and what it could not
                # trace is reported as anywhere else.  One that only rewrites the function (docstring
                # builders, argument shims) changes nothing the analysis reads and is not run.
                body = _decorator_body(dv)
                if body is not None and stores_outside(body):
                    self.call(dv, [fn], {}, dec)
                continue
            else:
                self.unknown(f"decorator `{ast.unparse(dec)}` is ignored", dec)
        return fn

    def _apply_wrapper(self, dec: UserFunction, fn: UserFunction, node) -> UserFunction:
        """Apply a source decorator that wraps the function (``def wrapper(*args, **kwargs): ... return
        f(*args, **kwargs)``): calls then run the wrapper, which may fill arguments from a config
        (``use_cache=None`` -> ``self.config.use_cache``), open a context or convert the result.  One the
        analysis cannot follow while decorating leaves the function as it was."""
        inner = copy.copy(fn)
        mark = len(self.analysis.unresolved)
        made = self.call(dec, [inner], {}, node)
        if not isinstance(made, UserFunction) or made is inner or len(self.analysis.unresolved) > mark:
            self._forget_unresolved(mark)
            return fn
        outer = copy.copy(fn)
        outer.wrapper, outer.inner = made, inner
        outer.context_decorators = []         # those written above this decorator wrap the wrapper
        return outer

    def call_wrapped(self, fn: UserFunction, args: list, kwargs: dict, node, is_forward: bool):
        """A call of a function a source decorator wraps: the wrapper runs and calls the function.

        A wrapper is followed as far as the analysis can: one that loses precision before it calls the
        function (a branch on `inspect.signature(...)`, a registry of hooks) is skipped, for this call and
        the later ones: the function runs with the caller's arguments, as if undecorated, and what was
        lost in the wrapper is not reported.  One that loses precision after the call gives the
        function's own result."""
        if fn.context_decorators:
            with contextlib.ExitStack() as stack:
                for cm in fn.context_decorators:
                    stack.enter_context(cm)
                return self._call_wrapper(fn, args, kwargs, node, is_forward)
        return self._call_wrapper(fn, args, kwargs, node, is_forward)

    def _call_wrapper(self, fn: UserFunction, args: list, kwargs: dict, node, is_forward: bool):
        if fn.wrapper_skipped:
            return self.call_function(fn.inner, args, kwargs, node, is_forward)
        unresolved = self.analysis.unresolved
        call = _WrapperCall(fn.inner, len(unresolved), is_forward)
        self._wrapper_calls.append(call)
        try:
            result = self.call_function(fn.wrapper, args, kwargs, node)
        except _WrapperFallback as fallback:
            if fallback.call is not call:
                raise
            result = _MISSING
        finally:
            self._wrapper_calls.remove(call)
        if call.state != "done":                   # the function never ran (or did not return)
            if result is not _MISSING and len(unresolved) == call.start:
                return result
            self._forget_unresolved(call.start)
            fn.wrapper_skipped = True
            return self.call_function(fn.inner, args, kwargs, node, is_forward)
        if len(unresolved) > call.end:
            self._forget_unresolved(call.end)
            fn.wrapper_skipped = True
            return call.result
        return result

    def _call_inner(self, call: "_WrapperCall", args: list, kwargs: dict, node):
        """The wrapper calling the function it wraps: the call goes on only if the wrapper lost no
        precision on the way (else the wrapper is skipped: see call_wrapped)."""
        if len(self.analysis.unresolved) > call.start:
            raise _WrapperFallback(call)
        call.state = "running"
        result = self.call_function(call.inner, args, kwargs, node, call.is_forward)
        call.result, call.end, call.state = result, len(self.analysis.unresolved), "done"
        return result

    def _forget_unresolved(self, start: int) -> None:
        """Take back the places of lost precision recorded since ``start`` (a wrapper that was skipped)."""
        unresolved = self.analysis.unresolved
        for u in unresolved[start:]:
            self._seen_unresolved.discard((u.file, u.line, u.reason))
        del unresolved[start:]

    # ------------------------------------------------------------------------------------------
    # calls

    def call_function(self, fn: UserFunction, args: list, kwargs: dict, node, is_forward: bool = False):
        if fn.interp is not self:       # defined in another file: its names resolve (and are recorded) there
            return fn.interp.call_function(fn, args, kwargs, None, is_forward)
        if fn.wrapper is not None:
            return self.call_wrapped(fn, args, kwargs, node, is_forward)
        if self._wrapper_calls:
            call = self._wrapper_calls[-1]
            if call.inner is fn and call.state == "waiting":
                return self._call_inner(call, args, kwargs, node)
        if len(self.frames) >= MAX_DEPTH:
            return self.unknown(f"call depth limit reached in `{fn.name}`", node or fn.node)
        fnode = fn.node
        scope = Scope({}, fn.scope)
        err = self.bind_args(fn, scope, args, kwargs, node)
        if err is not None:
            return err
        self.frames.append((fn, scope))
        if is_forward:
            self.forward_depth += 1
        # a generator function runs to completion when called; the call gives an iterator over what it
        # yielded (consumers see the same items; only the interleaving of side effects differs)
        sink = [] if self._may_yield and _is_generator(fnode) else None
        if sink is not None and self._with_body is not None:
            sink, self._with_body = _WithBodySink(self._with_body), None     # a @contextmanager generator
        if sink is not None:
            self._yield_sinks.append(sink)
        try:
            # no ExitStack (nor a helper's frame: each interpreted call costs Python stack) without decorators
            with contextlib.ExitStack() if fn.context_decorators else _NO_CONTEXT as stack:
                for cm in fn.context_decorators:
                    stack.enter_context(cm)
                if isinstance(fnode, ast.Lambda):
                    return self.eval(fnode.body, scope)
                self.exec_block(fnode.body, scope)
                return None if sink is None else iter(sink)
        except _Return as r:
            return r.value if sink is None else iter(sink)
        except _Raise as r:
            # an exception an enclosing `try` of an interpreted caller handles travels there, as in Python;
            # any other one ends this call: its result is Unknown, with the reason, and the caller goes on
            if self._caught_outside(r):
                raise
            if isinstance(r, _HostError):
                return self.unknown(f"`{ast.unparse(r.node)}` raised {type(r.error).__name__}: {r.error}", r.node)
            return self.unknown(f"reached `{ast.unparse(r.node)}`", r.node)
        except (_Break, _Continue):
            return None
        finally:
            if sink is not None:
                self._yield_sinks.pop()
            if is_forward:
                self.forward_depth -= 1
            self.frames.pop()
            self._release(fn, scope)

    def _release(self, fn: UserFunction, scope: Scope) -> None:
        """Drop a returning frame's variables, as CPython does; closures keep only their free names."""
        if not scope.captured:
            scope.vars.clear()
            return
        keep = fn.free_names
        if keep is None:
            keep = set()
            for sub in ast.walk(fn.node):
                if sub is not fn.node and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    keep |= {n.id for n in ast.walk(sub) if isinstance(n, ast.Name)}
            fn.free_names = keep
        for name in [n for n in scope.vars if n not in keep]:
            del scope.vars[name]

    def bind_args(self, fn: UserFunction, scope: Scope, args: list, kwargs: dict, node):
        a = fn.node.args
        positional = positional_params(a)
        defaults = fn.defaults_cache
        if defaults is None:
            defaults = self.function_defaults(fn)
        v = scope.vars
        kwargs = dict(kwargs)
        for i, p in enumerate(positional):
            if i < len(args):
                v[p.arg] = args[i]
            elif p.arg in kwargs:
                v[p.arg] = kwargs.pop(p.arg)
            elif p.arg in defaults:
                v[p.arg] = defaults[p.arg]
            else:
                v[p.arg] = self.unknown(f"`{fn.name}()` called without argument `{p.arg}`", node or fn.node)
        extra = args[len(positional):]
        if a.vararg is not None:
            v[a.vararg.arg] = tuple(extra)
        elif extra:
            return self.unknown(f"`{fn.name}()` takes {len(positional)} positional arguments, got {len(args)}",
                                node or fn.node)
        for p in a.kwonlyargs:
            if p.arg in kwargs:
                v[p.arg] = kwargs.pop(p.arg)
            elif p.arg in defaults:
                v[p.arg] = defaults[p.arg]
            else:
                v[p.arg] = self.unknown(f"`{fn.name}()` called without argument `{p.arg}`", node or fn.node)
        if a.kwarg is not None:
            v[a.kwarg.arg] = kwargs
        elif kwargs:
            return self.unknown(f"`{fn.name}()` got unexpected keyword argument `{next(iter(kwargs))}`",
                                node or fn.node)
        return None

    def function_defaults(self, fn: UserFunction) -> dict:
        """Parameter name -> default value of a function of this file, evaluated once."""
        if fn.defaults_cache is None:
            a = fn.node.args
            positional = positional_params(a)
            defaults = {}
            pos_defaults = a.defaults
            for p, d in zip(positional[len(positional) - len(pos_defaults):], pos_defaults):
                defaults[p.arg] = self.eval(d, fn.scope)
            for p, d in zip(a.kwonlyargs, a.kw_defaults):
                if d is not None:
                    defaults[p.arg] = self.eval(d, fn.scope)
            fn.defaults_cache = defaults
        return fn.defaults_cache

    def is_user_module(self, v) -> bool:
        return isinstance(v, self._module_base)

    def user_class_of(self, v) -> UserClass | None:
        """The class of the file that ``v`` is an instance of (a user module or a UserInstance), else None."""
        if isinstance(v, UserInstance):
            return v.cls
        if isinstance(v, self._module_base):
            return type(v)._gx_user_class
        return None

    def call(self, callee, args: list, kwargs: dict, node, receiver=None, method_name: str | None = None):
        if isinstance(callee, _ANALYSIS_VALUES):         # one check sends host callables past these
            if type(callee) is Unknown:
                return callee
            if isinstance(callee, (UserFunction, BoundMethod)) and (
                    callee.kind if isinstance(callee, UserFunction) else callee.func.kind) == "contextmanager":
                return GeneratorContext(callee, tuple(args), kwargs)
            if isinstance(callee, UserFunction):
                if callee.kind == "classmethod" and receiver is None:
                    return self.call_function(callee, [callee.owner, *args], kwargs, node)
                return self.call_function(callee, args, kwargs, node)
            if isinstance(callee, BoundMethod):
                return self.call_function(callee.func, [callee.receiver, *args], kwargs, node)
            if isinstance(callee, UserClass):
                return self.instantiate(callee, args, kwargs, node)
            if isinstance(callee, Builtin):
                return callee.fn(self, node, args, kwargs)
            if isinstance(callee, Partial):
                return self.call(callee.func, [*callee.args, *args], {**callee.keywords, **kwargs}, node)
            if isinstance(callee, Marker):
                if callee.name in ("typing.cast", "typing_extensions.cast") and len(args) == 2:
                    return args[1]                  # cast(T, v) is v at run time
                return callee
            if isinstance(callee, UserInstance):
                _, dunder_call = callee.cls.lookup("__call__")
                if isinstance(dunder_call, UserFunction):
                    return self.call_function(dunder_call, [callee, *args], kwargs, node)
            # a namespace, an instance without __call__, a super() proxy
            text = ast.unparse(node.func) if isinstance(node, ast.Call) else repr(callee)
            return self.unknown(f"`{text}` is not callable", node)
        if not callable(callee):
            text = ast.unparse(node.func) if isinstance(node, ast.Call) else repr(callee)
            return self.unknown(f"`{text}` is not callable", node)
        # a host callable: engine function, tensor method, engine module, Python builtin
        if callee is len and len(args) == 1 and isinstance(args[0], UserInstance):
            dunder_len = self._dunder(args[0], "__len__")          # `len(self)` in a sequence class
            if dunder_len is not None:
                return self.call_function(dunder_len, [args[0]], {}, node)
            if args[0].mapping is not None:
                return len(args[0].mapping)
        if id(callee) in _ITERATING_IDS and any(isinstance(a, UserInstance) for a in args):
            # `zip(cfg.per_layer, ...)`: an instance of an analysed iterable class, iterated as Python would
            args = [(self.iterate(a, node) or a) if isinstance(a, UserInstance) else a for a in args]
        # a list's, dict's or set's own method (bound methods only are asked: `getattr` on an engine
        # module would raise and catch an AttributeError on every module call)
        container_safe = id(callee) in _CONTAINER_SAFE_IDS or (
            type(callee) in _BOUND_METHOD_TYPES and isinstance(callee.__self__, (list, dict, set)))
        if id(callee) in _CONSUMER_IDS and any(
                isinstance(a, range) and len(a) > MAX_LOOP for a in args):
            return self.unknown(f"iterating over more than {MAX_LOOP} items is not supported", node)
        if not container_safe:
            unk = first_unknown(args)
            if unk is None:
                unk = first_unknown(kwargs.values())
            if unk is not None:
                return unk
        else:                                   # `len(x)` of an unknown x: unknown (items may be unknown)
            for a in args:
                if type(a) is Unknown:
                    return a
        cuts = self.cuts
        if method_name in ("detach", "detach_") and self.rt.is_tensor(receiver):
            key = cuts.record("detach", receiver, self.span(node))
            sites = cuts.sources([receiver]) | {key}
        else:
            sites = cuts.sources([receiver, *args, *kwargs.values()]) if cuts._tags else _NO_SITES
        boundary = bool(self._try_stack)     # interpreted code the host calls back raises no further
        if boundary:
            self._try_stack.append(None)
        try:
            try:
                if id(callee) in self.rt.constant_creators:
                    result = self._constant_tensor(callee, args, kwargs)
                else:
                    result = callee(*args, **kwargs)
            finally:
                if boundary:
                    self._try_stack.pop()
        except _Flow:
            raise
        except RecursionError:
            return self.unknown("recursion limit reached", node)
        except Exception as e:
            if isinstance(e, EngineGap):           # a torch class the engine lacks, instantiated
                return self.unknown(str(e), node)
            if self._try_stack:
                self._raise_if_caught(e, node)
            name = ast.unparse(node.func) if isinstance(node, ast.Call) else getattr(
                callee, "__name__", type(callee).__name__)
            if method_name in ("item", "tolist"):     # no value without data, but the gradient stops here
                self.cuts.record_lost(callee, receiver, args, kwargs, None, method_name,
                                      lambda: self.span(node))
            return self.unknown(f"`{name}(...)` failed: {type(e).__name__}: {e}", node)
        if isinstance(result, types.ModuleType):
            return self.unknown("call returned a module", node)
        if sites:
            cuts.propagate(sites, result)
        # a call on tensors that require grad whose result does not (see record_lost): the result a tensor
        # that does not require grad, or the value of .item() / .tolist()
        if (method_name in ("item", "tolist") or
                (self.rt.is_tensor(result) and not result.requires_grad and method_name not in ("detach", "detach_"))):
            cuts.record_lost(callee, receiver, args, kwargs, result, method_name, lambda: self.span(node))
        return result

    def _constant_tensor(self, creator, args: list, kwargs: dict):
        """``torch.arange(n)`` / ``torch.tensor([...])`` / ``torch.ones(b, t)`` ... called with Python numbers
        (sizes of inputs too): a small tensor of known values (the data backend), so that code computing
        layer sizes with torch (``.tolist()``, ``.item()``) or branching on a mask it built gets them.
        Anything else runs on the shape backend as usual; so do these on a device the data backend
        lacks (a CUDA analysis)."""
        from .torch_api import MAX_CONSTANT_NUMEL

        if _plain_numbers(args) and _plain_numbers(kwargs.values()) and \
                _creation_numel(creator.__name__, args, kwargs) <= MAX_CONSTANT_NUMEL:
            try:
                with self.rt.data_backend():
                    out = creator(*args, **kwargs)
                self.rt.made_constants = True
                return out
            except Exception:
                pass                             # e.g. a device the data backend lacks: no values
        return creator(*args, **kwargs)

    def enum_lookup(self, ucls: UserClass, args: list, kwargs: dict, node):
        """``Color(value)`` on an ``enum.Enum`` subclass: its member with that value.  Members are held as
        their values (the class attributes as written), so the member is that attribute."""
        if len(args) != 1 or kwargs:
            return self.unknown(f"`{ucls.name}(...)`: only the value lookup of an Enum is supported", node)
        value = args[0]
        if type(value) is Unknown:
            return value
        for cls in ucls.mro():
            for name, member in cls.interp.class_attrs(cls).items():
                if name.startswith("_") or isinstance(member, (UserFunction, BoundMethod, Builtin)):
                    continue
                try:
                    if member is value or member == value:
                        return member
                except Exception:
                    continue
        return self.unknown(f"{value!r} is not a valid `{ucls.name}`", node)

    def instantiate(self, ucls: UserClass, args: list, kwargs: dict, node):
        if any(b.startswith("enum.") for c in ucls.mro() for b in c.info.bases):
            return self.enum_lookup(ucls, args, kwargs, node)
        if ucls.info.is_module:
            py = ucls.py_class
            obj = py.__new__(py)
            try:
                self.rt.Module.__init__(obj)
            except Exception as e:
                return self.unknown(f"cannot create `{ucls.name}`: {type(e).__name__}: {e}", node)
            owner, init = ucls.lookup("__init__")
            if isinstance(init, UserFunction):
                self.call_function(init, [obj, *args], kwargs, node)
            else:
                host_init = self._host_super_attr(obj, "__init__")
                if host_init is not None:
                    r = self.call(host_init, args, kwargs, node)
                    if type(r) is Unknown:
                        return r
            return obj
        inst = UserInstance(ucls)
        self.class_attrs(ucls)                # builds ucls.fields
        is_dict = _is_dict_class(ucls)
        if is_dict:
            inst.mapping = {}                 # a dict subclass: the dict it is (fields are its __dict__)
        owner, init = ucls.lookup("__init__")
        dc = next((c for c in ucls.mro() if c.info.is_dataclass or c.info.is_namedtuple), None)
        # a dataclass's generated __init__ overrides one its bases define (ModelOutput(OrderedDict).__init__
        # under an @dataclass output class); one the class itself or a subclass defines is kept
        if isinstance(init, UserFunction) and (dc is None or owner is dc or owner not in dc.mro()):
            self.call_function(init, [inst, *args], kwargs, node)
            return inst
        if dc is not None:
            err = self._dataclass_init(ucls, inst, args, kwargs, node)
            if err is not None:
                return err
        elif is_dict:
            try:
                inst.mapping.update(*args, **kwargs)
            except Exception as e:
                return self.unknown(f"`{ucls.name}(...)` failed: {type(e).__name__}: {e}", node)
        return inst

    def _dataclass_init(self, ucls: UserClass, inst: UserInstance, args: list, kwargs: dict, node):
        """The ``__init__`` a dataclass (or NamedTuple) ``ucls`` generates, run on ``inst``: None, or an
        Unknown for a call that does not fit its fields."""
        self.class_attrs(ucls)                # builds ucls.fields
        fields = ucls.fields
        kwargs = dict(kwargs)
        if len(args) > len(fields):
            return self.unknown(f"`{ucls.name}()` takes {len(fields)} positional arguments", node)
        for i, f in enumerate(fields):
            if i < len(args):
                inst.fields[f] = args[i]
            elif f in kwargs:
                inst.fields[f] = kwargs.pop(f)
            else:
                owner, default = ucls.lookup(f)
                if isinstance(default, FieldDefault):
                    if default.factory is not None:
                        default = self.call(default.factory, [], {}, node)
                    elif default.has_default:
                        default = default.default
                    else:
                        owner = None
                if owner is None:
                    default = self.unknown(f"`{ucls.name}()` called without field `{f}`", node)
                inst.fields[f] = default
        if kwargs:
            return self.unknown(f"`{ucls.name}()` got unexpected keyword argument `{next(iter(kwargs))}`", node)
        _, post = inst.cls.lookup("__post_init__")
        if isinstance(post, UserFunction):
            self.call_function(post, [inst], {}, node)
        return None

    def _host_super_attr(self, obj, name: str):
        """``super().name`` past the user classes: the engine base class's attribute, bound."""
        if not self.rt.is_module(obj):
            if isinstance(obj, UserInstance) and name == "__getattribute__":     # object.__getattribute__
                return Builtin("object.__getattribute__", lambda it, node, args, kwargs: it._default_attr(
                    obj, args[0] if args else None, node))
            mapping = getattr(obj, "mapping", None)
            if mapping is not None and hasattr(dict, name) and name not in _OBJECT_ONLY:  # dict's own methods
                return (Builtin("dict.__init__", lambda it, node, args, kwargs: mapping.update(*args, **kwargs))
                        if name == "__init__" else getattr(mapping, name))
            if isinstance(obj, UserInstance) and name == "__setattr__":          # object.__setattr__
                return Builtin("object.__setattr__", lambda it, node, args, kwargs: it._object_setattr(
                    obj, *args, node) if len(args) == 2 and isinstance(args[0], str) else it.unknown(
                    "`__setattr__` needs a name and a value", node))
            if isinstance(obj, UserInstance) and name in _MAPPING_MIXINS and _is_mapping_class(obj.cls):
                # `super().get(k, d)` in a Mapping subclass: collections.abc.Mapping's method
                return Builtin(f"Mapping.{name}", lambda it, node, args, kwargs:
                               it._mapping_method(obj, name, args, node))
            return _NOOP if name == "__init__" else None
        for klass in type(obj).__mro__:
            if "_gx_user_class" in klass.__dict__ or klass is self._module_base:
                continue
            if name in klass.__dict__:
                if klass is self.rt.Module and name == "__init__":
                    return _NOOP                        # Module state exists already
                attr = klass.__dict__[name]
                if hasattr(attr, "__get__"):
                    return attr.__get__(obj, type(obj))
                return attr
        return None

    # ------------------------------------------------------------------------------------------
    # attributes

    def lookup_attr(self, obj, name: str):
        """(value, None) or (None, reason)."""
        if name[0] != "_" and not self.class_patches and not self.module_flags:
            kind = type(obj)
            host = self._host_types.get(kind)
            if host is None:
                host = self._host_types[kind] = not issubclass(kind, (*_ANALYSIS_VALUES, ExitStackValue,
                                                                       self._module_base))
            if host:
                return self.rt.safe_attr(obj, name)    # a host object's public attribute (a tensor's, a list's)
        if isinstance(obj, ExitStackValue):
            return obj.member(name)
        if isinstance(obj, Namespace):
            if isinstance(obj.obj, ProjectModule):
                return obj.obj.gx_member(name)
            if name == "modules" and obj.dotted == "sys":
                return self.sys_modules(), None
            return self.rt.namespace_attr(obj, name)
        if name == "__class__":
            ucls = self.user_class_of(obj)
            if ucls is not None:
                return ucls, None
            if isinstance(obj, (UserFunction, BoundMethod)):
                return (types.FunctionType if isinstance(obj, UserFunction) else types.MethodType), None
            if self.rt.is_module(obj):
                # an engine module's class (`module.__class__.__name__`): a torch.nn class, reachable as such
                # anyway; other host objects keep `__class__` private (the sandbox)
                return type(obj), None
        if name == "__module__":
            definer = _defining_interp(self, obj)
            if definer is not None:
                return definer.module_name(), None
        if self.is_user_module(obj):
            d = obj.__dict__
            if name in d and not name.startswith("_gx"):
                return d[name], None
            member = registered(obj, name)        # parameters, buffers, submodules (Module.__getattr__,
            if member is not NOT_REGISTERED:      # without raising for the methods looked up next)
                return member, None
            ucls = type(obj)._gx_user_class
            owner, raw = ucls.lookup(name)
            if owner is not None:
                return self._bind_class_attr(raw, obj, ucls, owner), None
            if self.class_patches:
                patched = self._patched(type(obj), name)
                if patched is not _MISSING:
                    return self._bind_class_attr(patched, obj, ucls, ucls), None
            return self.rt.safe_attr(obj, name)
        if isinstance(obj, UserInstance):
            hook = self._dunder(obj, "__getattribute__")
            if hook is not None:                    # a class that redirects attribute reads (alias maps)
                val = self.call_function(hook, [obj, name], {}, None)
                return (None, val.reason) if type(val) is Unknown else (val, None)
            return self._instance_attr(obj, name)
        if isinstance(obj, UserClass):
            if name == "__name__":
                return obj.name, None
            if name == "__dict__":                  # the class's own attributes (not its bases')
                return dict(obj.interp.class_attrs(obj)), None
            if name == "__bases__":
                return tuple(obj.bases) or (object,), None
            owner, raw = obj.lookup(name)
            if owner is not None:
                if isinstance(raw, UserFunction) and raw.kind == "classmethod":
                    return BoundMethod(raw, obj), None
                return raw, None
            for hb in obj.host_bases():
                if hasattr(hb, name) and not name.startswith("_"):
                    return getattr(hb, name), None
            return None, f"class `{obj.name}` has no attribute `{name}`"
        if isinstance(obj, SuperProxy):
            rcls = self.user_class_of(obj.receiver) or obj.cls
            owner, raw = rcls.lookup(name, after=obj.cls)
            if owner is not None:
                return self._bind_class_attr(raw, obj.receiver, rcls, owner), None
            if name == "__init__" and isinstance(obj.receiver, UserInstance):
                # the __init__ a dataclass base generates (`super().__init__(*fields)` in a subclass)
                mro = rcls.mro()
                after = mro[mro.index(obj.cls) + 1:] if obj.cls in mro else []
                dc = next((c for c in after if c.info.is_dataclass or c.info.is_namedtuple), None)
                if dc is not None:
                    recv = obj.receiver
                    return Builtin(f"{dc.name}.__init__", lambda it, node, args, kwargs:
                                   self._dataclass_init(dc, recv, args, kwargs, node)), None
            host = self._host_super_attr(obj.receiver, name)
            if host is not None:
                return host, None
            return None, f"`super().{name}` is not resolved"
        if isinstance(obj, Partial) and name in ("func", "args", "keywords"):
            return getattr(obj, name), None
        if isinstance(obj, (UserFunction, BoundMethod)) and name in ("__name__", "__qualname__"):
            return obj.func.name if isinstance(obj, BoundMethod) else obj.name, None
        if isinstance(obj, UserFunction) and name == "__code__":
            return _code_info(obj.node), None            # `f.__code__.co_varnames` in argument shims
        if isinstance(obj, UserFunction) and name == "__wrapped__" and obj.inner is not None:
            return obj.inner, None
        if isinstance(obj, (UserFunction, BoundMethod, Builtin, Partial)):
            return None, f"attribute `{name}` of a function is not supported"
        if self.class_patches and isinstance(obj, type):
            patched = self._patched(obj, name)
            if patched is not _MISSING:
                return patched, None
        if self.module_flags and name in self.module_flags and self.rt.is_module(obj) and name in obj.__dict__:
            return obj.__dict__[name], None
        if self.rt.is_module(obj) and self.class_patches:
            patched = self._patched(type(obj), name)
            if isinstance(patched, UserFunction):
                return BoundMethod(patched, obj), None
        if isinstance(obj, Marker):
            if obj.name in ("typing", "typing_extensions"):
                return Marker(f"{obj.name}.{name}"), None       # typing.cast, typing.Optional ...
            return obj, None
        return self.rt.safe_attr(obj, name)

    def _patched(self, cls: type, name: str):
        """An attribute the analysed code set on an engine class (or a base of it), else _MISSING."""
        for klass in cls.__mro__:
            val = self.class_patches.get((klass, name), _MISSING)
            if val is not _MISSING:
                return val
        return _MISSING

    def _instance_attr(self, obj: UserInstance, name: str):
        """``object.__getattribute__`` of an instance (its fields, then its class), then the class's
        ``__getattr__``, then the methods ``collections.abc.Mapping`` gives a mapping class."""
        if name in obj.fields:
            return obj.fields[name], None
        if name == "__dict__":
            return obj.fields, None
        owner, raw = obj.cls.lookup(name)
        if owner is not None:
            return self._bind_class_attr(raw, obj, obj.cls, owner), None
        fallback = self._dunder(obj, "__getattr__")
        if fallback is not None and not name.startswith("__"):
            val = self.call_function(fallback, [obj, name], {}, None)
            return (None, val.reason) if type(val) is Unknown else (val, None)
        mapping = getattr(obj, "mapping", None)
        if mapping is not None and not name.startswith("_") and hasattr(dict, name):
            return getattr(mapping, name), None
        if name in _MAPPING_MIXINS and _is_mapping_class(obj.cls):
            return Builtin(f"{obj.cls.name}.{name}", lambda it, node, args, kwargs:
                           it._mapping_method(obj, name, args, node)), None
        return None, f"`{obj.cls.name}` has no attribute `{name}`"

    def _object_setattr(self, obj: UserInstance, name: str, value, node) -> None:
        """``object.__setattr__``: a property of the class runs its setter (a property without one refuses,
        as Python does); any other name is an instance field."""
        owner, raw = obj.cls.lookup(name)
        if isinstance(raw, UserFunction) and raw.kind == "property":
            if raw.setter is None:
                self.unknown(f"property `{name}` of `{obj.cls.name}` has no setter", node)
            else:
                self.call_function(raw.setter, [obj, value], {}, node)
            return
        obj.fields[name] = value

    def _dunder(self, obj: UserInstance, name: str):
        """The method ``name`` (a special method) a user instance's class defines in source, else None."""
        hooks = obj.cls.__dict__.setdefault("_gx_dunders", {})
        if name not in hooks:
            _, fn = obj.cls.lookup(name)
            hooks[name] = fn if isinstance(fn, UserFunction) else None
        return hooks[name]

    def _mapping_method(self, obj: UserInstance, name: str, args: list, node):
        """``keys/items/values/get/__contains__`` of a ``Mapping`` subclass, from its ``__iter__`` and
        ``__getitem__``, as ``collections.abc.Mapping`` defines them."""
        keys = self.iterate(obj, node)
        if keys is None:
            return self.unknown(f"cannot iterate over `{obj.cls.name}`", node)
        if name == "keys":
            return keys
        if name == "__contains__":
            return args[0] in keys if args else self.unknown("`__contains__` needs a key", node)
        if name == "get":
            if not args:
                return self.unknown("`get` needs a key", node)
            return self.subscript(obj, args[0], node) if args[0] in keys else (args[1] if len(args) > 1 else None)
        values = [self.subscript(obj, k, node) for k in keys]
        return values if name == "values" else list(zip(keys, values))

    def _default_attr(self, obj: UserInstance, name, node):
        if not isinstance(name, str):
            return self.unknown("`__getattribute__` needs a name", node)
        val, reason = self._instance_attr(obj, name)
        # a missing attribute (AttributeError) is not recorded here: `getattr(o, k, d)` and `hasattr` take
        # it as an answer; a plain read records it where the hook returns it
        return Unknown(reason, self.span(node)) if reason is not None else val

    def _user_compare(self, op, left, right, node):
        """``left <op> right`` through the rich comparison a class of the source defines (``__lt__`` ...,
        then the reflected one of the right operand), as Python does."""
        name, reflected = _CMP_DUNDERS[type(op)]
        for a, b, meth in ((left, right, name), (right, left, reflected)):
            if isinstance(a, UserInstance):
                fn = self._dunder(a, meth)
                if fn is not None:
                    r = self.call_function(fn, [a, b], {}, node)
                    if r is not NotImplemented:
                        return r
        if isinstance(op, (ast.Eq, ast.NotEq)):
            return (left is right) == isinstance(op, ast.Eq)
        return self.unknown(f"`{ast.unparse(node)}`: no comparison defined", node)

    def _contains_view(self, obj: UserInstance, node):
        """What ``x in obj`` tests against: the class's ``__contains__`` (as a one-item answer), else
        its iteration."""
        contains = self._dunder(obj, "__contains__")
        if contains is not None:
            return _ContainsBy(lambda x: self.call_function(contains, [obj, x], {}, node))
        if getattr(obj, "mapping", None) is not None:
            return obj.mapping
        items = self.iterate(obj, node)
        return items if items is not None else self.unknown(f"`in` over `{obj.cls.name}` is not known", node)

    def _bind_class_attr(self, raw, receiver, ucls, owner):
        if isinstance(raw, UserFunction):
            if raw.kind == "staticmethod":
                return raw
            if raw.kind == "classmethod":
                return BoundMethod(raw, ucls)
            if raw.kind == "property":
                return self.call_function(raw, [receiver], {}, None)
            return BoundMethod(raw, receiver)
        return raw

    def get_attr(self, obj, name: str, node):
        if type(obj) is Unknown:
            return obj
        if name == "data" and self.rt.is_tensor(obj):
            # `.data` is a detached alias of the same storage, what `.detach()` gives: a gradient cut
            key = self.cuts.record("data", obj, self.span(node))
            val = obj.detach()
            self.cuts.tag(val, self.cuts.sources([obj]) | {key})
            return val
        val, reason = self.lookup_attr(obj, name)
        if reason is not None:
            if self._try_stack and isinstance(obj, UserInstance) and reason.endswith(f"has no attribute `{name}`"):
                # an AttributeError, as Python raises it: a `try` (or a `getattr(o, k, default)` / `hasattr`
                # further up, e.g. around a property whose getter reads an unset field) may handle it
                self._raise_if_caught(AttributeError(reason), node)
            return self.unknown(reason, node)
        return val

    def set_attr(self, obj, name: str, value, node) -> None:
        if type(obj) is Unknown:
            return
        if isinstance(obj, Namespace) and isinstance(obj.obj, ProjectModule):
            reason = obj.obj.gx_set(name, value)          # the analysis's state of that file, see gx_set
            if reason is not None:
                self.unknown(reason, node)
            return
        if name.startswith("__") and name.endswith("__"):
            self.unknown(f"setting `{name}` is not supported", node)
            return
        if isinstance(obj, UserInstance):
            hook = self._dunder(obj, "__setattr__")
            if hook is not None:                    # a class that redirects attribute writes
                self.call_function(hook, [obj, name, value], {}, node)
                return
            self._object_setattr(obj, name, value, node)
            return
        if isinstance(obj, UserClass):
            self.class_attrs(obj)[name] = value
            return
        if not self.is_user_module(obj) and name.startswith("_"):
            if self.rt.is_module(obj) and not name.startswith("_gx") and not hasattr(obj, name):
                # a new private flag on an engine module (`module._is_hf_initialized = True`): the
                # analysed code's own attribute, readable back; engine internals stay out of reach
                obj.__dict__[name] = value
                self.module_flags.add(name)
                return
            self.unknown(f"setting private attribute `{name}` is not supported", node)
            return
        if isinstance(obj, (Namespace, Marker, UserFunction, BoundMethod, Builtin, SuperProxy)):
            self.unknown(f"cannot set `{name}` here", node)
            return
        if isinstance(obj, type):
            # a package patching an engine class (`setattr(nn.Module, "smart_apply", f)`): the patch is the
            # analysis's own, never a change of the engine's class
            self.class_patches[(obj, name)] = value
            return
        try:
            setattr(obj, name, value)
        except Exception as e:
            self.unknown(f"setting `.{name}` failed: {type(e).__name__}: {e}", node)

    # ------------------------------------------------------------------------------------------
    # statements

    def exec_block(self, stmts, scope: Scope) -> None:
        for stmt in stmts:
            self.exec_stmt(stmt, scope)

    def exec_stmt(self, stmt, scope: Scope) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.unknown(f"analysis stopped after {MAX_STEPS} statements", stmt)
            raise Budget()
        kind = type(stmt)
        table = type(self)._exec_methods
        method = table.get(kind, False)
        if method is False:
            method = table[kind] = getattr(type(self), "exec_" + kind.__name__, None)
        if method is None:
            self.unknown(f"unsupported statement `{type(stmt).__name__}`", stmt)
            return
        swap = self._swap_location
        try:
            prev = swap((self.path, stmt.lineno))       # rt.source_location without a context object
            try:
                method(self, stmt, scope)
            finally:
                swap(prev)
        except _Flow:
            raise
        except RecursionError:
            self.unknown("recursion limit reached", stmt)
        except Exception as e:
            self.unknown(f"internal error: {type(e).__name__}: {e}", stmt)

    def exec_Expr(self, stmt, scope):
        v = stmt.value
        if isinstance(v, (ast.Constant, ast.JoinedStr)):
            return
        self.eval(v, scope)

    def exec_Pass(self, stmt, scope):
        pass

    def exec_Assert(self, stmt, scope):
        pass

    def exec_Global(self, stmt, scope):
        pass

    exec_Nonlocal = exec_Global

    def exec_Break(self, stmt, scope):
        raise _Break()

    def exec_Continue(self, stmt, scope):
        raise _Continue()

    def exec_Raise(self, stmt, scope):
        node = stmt.exc
        if node is None:                     # bare `raise` in an `except` body: the exception it handles
            exc = self._handling[-1] if self._handling else None
        elif isinstance(node, ast.Call):
            # only the class matters to the handlers; the message (often an f-string of names the
            # analysis does not know) is not evaluated
            exc = _exception_instance(self.eval(node.func, scope))
        else:
            exc = _exception_instance(self.eval(node, scope))
        raise _Raise(stmt, exc)

    def exec_Return(self, stmt, scope):
        value = self.eval(stmt.value, scope) if stmt.value is not None else None
        if self.forward_depth > 0 and stmt.value is not None:
            if isinstance(stmt.value, ast.Tuple) and isinstance(value, tuple) and len(value) == len(stmt.value.elts):
                self.record_facts(stmt, list(zip(stmt.value.elts, value)))
            else:
                self.record_facts(stmt, [(stmt.value, value)])
        raise _Return(value)

    def exec_Assign(self, stmt, scope):
        value = self.eval(stmt.value, scope)
        pairs = [] if self.forward_depth > 0 else None
        for target in stmt.targets:
            self.assign(target, value, scope, stmt, pairs)
        if pairs:
            self.record_facts(stmt, pairs)

    def exec_AnnAssign(self, stmt, scope):
        if stmt.value is None:
            return
        value = self.eval(stmt.value, scope)
        pairs = [] if self.forward_depth > 0 else None
        self.assign(stmt.target, value, scope, stmt, pairs)
        if pairs:
            self.record_facts(stmt, pairs)

    def exec_AugAssign(self, stmt, scope):
        t = stmt.target
        op = _IBINOPS.get(type(stmt.op))
        rhs = self.eval(stmt.value, scope)
        if isinstance(t, ast.Name):
            cur = self.lookup(t.id, scope, t)
        elif isinstance(t, ast.Attribute):
            obj = self.eval(t.value, scope)
            cur = self.get_attr(obj, t.attr, t)
        elif isinstance(t, ast.Subscript):
            obj = self.eval(t.value, scope)
            idx = self.eval_index(t.slice, scope)
            cur = self.subscript(obj, idx, t)
        else:
            self.unknown("unsupported augmented assignment target", stmt)
            return
        new = self.binop(op, cur, rhs, stmt)
        if isinstance(t, ast.Name):
            scope.vars[t.id] = new
        elif isinstance(t, ast.Attribute):
            self.set_attr(obj, t.attr, new, t)
        else:
            self.setitem(obj, idx, new, t)
        if self.forward_depth > 0:
            self.record_facts(stmt, [(t, new)])

    def exec_If(self, stmt, scope):
        cond = self.eval(stmt.test, scope)
        truth = self.truth(cond)
        if truth is None:
            body_raises = bool(stmt.body) and isinstance(stmt.body[-1], ast.Raise)
            else_raises = bool(stmt.orelse) and isinstance(stmt.orelse[-1], ast.Raise)
            take_body = not (body_raises and not else_raises)
            self.unknown(f"condition `{ast.unparse(stmt.test)}` could not be evaluated; "
                         f"assumed {'true' if take_body else 'false'}", stmt.test)
            truth = take_body
        self.exec_block(stmt.body if truth else stmt.orelse, scope)

    def exec_For(self, stmt, scope):
        if stmt in self._cut_loops:             # stopped before: see _cut_loop
            self._cut_loop(stmt, scope)
            return
        it = self.eval(stmt.iter, scope)
        items = self.iterate(it, stmt.iter, lazy=True)
        if items is None:
            return
        broke = False
        n = 0
        start = scope.iterations
        for item in items:
            n += 1
            if n > MAX_LOOP:
                self.unknown(f"loop stopped after {MAX_LOOP} iterations", stmt)
                break
            scope.iterations += 1
            if scope.iterations - start > MAX_LOOP_ITERATIONS:
                self._cut_loops.add(stmt)
                self._cut_loop(stmt, scope)
                return
            self.assign(stmt.target, item, scope, stmt)
            try:
                self.exec_block(stmt.body, scope)
            except _Break:
                broke = True
                break
            except _Continue:
                continue
        if not broke:
            self.exec_block(stmt.orelse, scope)

    exec_AsyncFor = exec_For

    def _cut_loop(self, stmt, scope) -> None:
        """A ``for`` loop stopped after MAX_LOOP_ITERATIONS (with its nested loops): the variables it assigns
        or fills (``idxs.append(...)``, ``table[k] = v``) become Unknown, so nothing downstream takes a
        partial result for a whole one.  Later runs of the same loop stop at once."""
        reason = (f"loop stopped after {MAX_LOOP_ITERATIONS} iterations (with its nested loops): what it "
                  "computes is unknown")
        self.unknown(reason, stmt)
        names = _loop_written_names(stmt)
        for name in names:
            s = scope
            while s is not None and name not in s.vars:
                s = s.parent
            (s or scope).vars[name] = Unknown(reason, self.span(stmt))

    def exec_While(self, stmt, scope):
        n = 0
        while True:
            cond = self.truth(self.eval(stmt.test, scope))
            if cond is None:
                self.unknown(f"loop condition `{ast.unparse(stmt.test)}` could not be evaluated", stmt.test)
                return
            if not cond:
                break
            n += 1
            if n > MAX_WHILE:
                self.unknown(f"loop stopped after {MAX_WHILE} iterations", stmt)
                return
            try:
                self.exec_block(stmt.body, scope)
            except _Break:
                return
            except _Continue:
                continue
        self.exec_block(stmt.orelse, scope)

    def exec_With(self, stmt, scope):
        self._with_items(stmt, stmt.items, scope)

    def _with_items(self, stmt, items, scope) -> None:
        """Enter ``items`` (the first ones already entered are outside), then run the with-body."""
        with contextlib.ExitStack() as stack:
            for k, item in enumerate(items):
                expr = item.context_expr
                cm = self.eval(expr, scope)
                if isinstance(cm, GeneratorContext):
                    # the items after it are entered inside it, at its yield (`with a, b:` is `with a: with b:`)
                    self._run_generator_context(cm, stmt, item, scope, items[k + 1:])
                    return
                entered, leave = self.enter_context(cm, expr)
                if leave is not None:
                    stack.push(leave)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, entered, scope, stmt)
            self.exec_block(stmt.body, scope)

    exec_AsyncWith = exec_With

    def enter_context(self, cm, node):
        """Enter a context manager other than a ``@contextmanager`` generator (those run around their
        body, see _run_generator_context): (the value ``as`` binds, the exit to run when leaving --
        called with the exception triple, as ``ExitStack.push`` calls it -- or None)."""
        if type(cm) is Unknown:
            return cm, None
        if isinstance(cm, UserInstance) and isinstance(enter := cm.cls.lookup("__enter__")[1], UserFunction):
            exit_ = cm.cls.lookup("__exit__")[1]
            value = self.call_function(enter, [cm], {}, node)
            if not isinstance(exit_, UserFunction):
                return value, None

            def leave(*exc):         # gives None: an analysed __exit__ never suppresses a host exception
                self.call_function(exit_, [cm, None, None, None], {}, node)
            return value, leave
        if hasattr(cm, "__enter__") and hasattr(cm, "__exit__"):
            kind = type(cm)
            try:
                value = kind.__enter__(cm)
            except Exception as e:
                return self.unknown(f"entering `{ast.unparse(node)}` failed: {e}", node), None
            return value, lambda *exc: kind.__exit__(cm, *exc)
        return self.unknown(f"context manager `{ast.unparse(node)}` is not supported", node), None

    def _run_generator_context(self, cm: "GeneratorContext", stmt, item, scope, rest=()) -> None:
        """``with f(...) as v: body`` for a ``@contextmanager`` generator ``f``: ``f`` runs, and at its
        ``yield`` the with-body runs (``v`` bound to the yielded value; the with-items after this one
        entered first), inside whatever regions ``f`` opened (``torch.no_grad()`` ...), as Python
        interleaves them."""
        flow: list = []

        def body(value):
            if item.optional_vars is not None:
                self.assign(item.optional_vars, value, scope, stmt)
            try:
                if rest:
                    self._with_items(stmt, rest, scope)
                else:
                    self.exec_block(stmt.body, scope)
            except _Flow as f:           # return/break/continue of the with-body: after the generator ends
                flow.append(f)

        if not self._run_generator(cm, item.context_expr, body):
            self.unknown(f"`{ast.unparse(item.context_expr)}` did not run as a generator", item.context_expr)
            body(None)
        if flow:
            raise flow[0]

    def run_generator_context(self, cm: "GeneratorContext", node):
        """Enter ``cm`` without a with-body (``ExitStack.enter_context``): its generator runs whole.
        Returns (the value its first ``yield`` gave, that ``yield`` expression), or (Unknown, None)."""
        got: list = []
        runs_in = self._generator_interp(cm)
        if not self._run_generator(cm, node, lambda value: got.append((value, runs_in._yield_at))) or not got:
            return self.unknown(f"`{ast.unparse(node)}` did not run as a generator", node), None
        return got[0]

    def _generator_interp(self, cm: "GeneratorContext") -> "Interpreter":
        """The interpreter that runs ``cm``'s generator function: that of the file defining it."""
        func = cm.function
        return func.interp if isinstance(func, UserFunction) else self

    def _run_generator(self, cm: "GeneratorContext", node, body) -> bool:
        """Run ``cm``'s generator function with ``body(value)`` at its first ``yield``; whether it yielded."""
        runs_in = self._generator_interp(cm)
        runs_in._with_body = body
        func, args = cm.func, list(cm.args)
        if isinstance(func, BoundMethod):
            func, args = func.func, [func.receiver, *args]
        try:
            if isinstance(func, UserFunction):
                self.call_function(func, args, dict(cm.kwargs), node)
            else:
                self.call(func, args, dict(cm.kwargs), node)
        finally:
            ran = runs_in._with_body is None
            runs_in._with_body = None
        return ran

    def _raise_if_caught(self, error: Exception, node) -> None:
        """A host call (engine, builtin) raised ``error``: when an enclosing ``try`` (of the running frame
        or of an interpreted caller) has a handler naming a specific exception class it matches
        (``except TypeError:``), the handler runs, as in Python.  Catch-alls (``except:`` / ``except
        Exception:``) are not taken: there the failure may be a limitation of the engine rather than what
        torch would do, so it stays an unresolved place."""
        for entry in reversed(self._try_stack):
            if entry is None:
                return
            if entry[1] and isinstance(error, entry[1]):
                raise _HostError(node, error)

    def _caught_outside(self, r: _Raise) -> bool:
        """Whether an enclosing ``try`` (up to the nearest boundary) has a handler for ``r``."""
        if r.exc is None and not isinstance(r, _HostError):
            return False
        for entry in reversed(self._try_stack):
            if entry is None:
                return False
            if _handler_for(entry, r) is not None:
                return True
        return False

    def exec_Try(self, stmt, scope):
        entry = None
        if stmt.handlers:
            per_handler, written = [], []
            for h in stmt.handlers:
                t = self.eval(h.type, scope) if h.type is not None else None
                t = t if isinstance(t, tuple) else (t,)
                written.append(t if h.type is not None else None)
                per_handler.append(tuple(c for c in t if isinstance(c, type) and issubclass(c, Exception)
                                         and c is not Exception))
            entry = (id(scope), tuple(c for cs in per_handler for c in cs), per_handler, written)
            self._try_stack.append(entry)
        try:
            try:
                self.exec_block(stmt.body, scope)
            finally:
                if entry is not None:
                    self._try_stack.pop()
        except _Raise as r:
            # the first handler matching the exception's class runs; none matching: it travels on (after
            # `finally`), as in Python.  A raise of a class the analysis does not know is taken by the first
            # handler.
            if entry is None:
                raise
            i = _handler_for(entry, r)
            if i is None:
                if isinstance(r, _HostError) or r.exc is not None:
                    raise
                i = 0
            h = stmt.handlers[i]
            exc = r.error if isinstance(r, _HostError) else r.exc
            if h.name:
                scope.vars[h.name] = exc if exc is not None else self.unknown("caught exception", h)
            self._handling.append(exc)
            try:
                self.exec_block(h.body, scope)
            finally:
                self._handling.pop()
        else:
            self.exec_block(stmt.orelse, scope)
        finally:
            self.exec_block(stmt.finalbody, scope)

    exec_TryStar = exec_Try

    def exec_FunctionDef(self, stmt, scope):
        scope.vars[stmt.name] = self.make_function(stmt, scope, None)

    exec_AsyncFunctionDef = exec_FunctionDef

    def exec_ClassDef(self, stmt, scope):
        if scope.vars is self._globals:
            # a class defined in module-level code under `if` / `try` (a fallback stub when an optional
            # package is missing), run when a name it binds is looked up: a class of the file like the others
            info = self.index.classes.get(stmt.name)
            if info is None or info.node is not stmt:
                info = class_info(stmt, self.index.imports)
            scope.vars[stmt.name] = self._build_class(info)
            return
        scope.vars[stmt.name] = self.unknown("classes defined inside functions are not supported", stmt)

    def exec_Import(self, stmt, scope):
        for local, dotted in import_bindings(stmt):
            scope.vars[local] = self.resolve_import(dotted, stmt)

    exec_ImportFrom = exec_Import

    def exec_Delete(self, stmt, scope):
        for t in stmt.targets:
            if isinstance(t, ast.Name):
                s = scope
                while s is not None and t.id not in s.vars:
                    s = s.parent
                if s is not None:
                    del s.vars[t.id]
            elif isinstance(t, ast.Attribute):
                obj = self.eval(t.value, scope)
                if self.is_user_module(obj) and not t.attr.startswith("__"):
                    try:
                        delattr(obj, t.attr)
                    except Exception as e:
                        self.unknown(f"`del {ast.unparse(t)}` failed: {e}", t)
                elif isinstance(obj, UserInstance):
                    obj.fields.pop(t.attr, None)
            elif isinstance(t, ast.Subscript):
                obj = self.eval(t.value, scope)
                idx = self.eval_index(t.slice, scope)
                if isinstance(obj, (list, dict)) and type(idx) is not Unknown:
                    try:
                        del obj[idx]
                    except Exception as e:
                        self.unknown(f"`del {ast.unparse(t)}` failed: {e}", t)

    def exec_Match(self, stmt, scope):
        self.unknown("`match` statements are not supported", stmt)

    # --- assignment ---------------------------------------------------------------------------

    def assign(self, target, value, scope: Scope, stmt, pairs: list | None = None) -> None:
        if isinstance(target, ast.Name):
            scope.vars[target.id] = value
            if pairs is not None:
                pairs.append((target, value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = target.elts
            if type(value) is Unknown:
                items = None
            else:
                items = self.iterate(value, target, quiet=True)
                if items is not None:
                    items = list(items)
            star = next((i for i, e in enumerate(elts) if isinstance(e, ast.Starred)), None)
            if items is None:
                unk = value if type(value) is Unknown else self.unknown(
                    f"cannot unpack `{type(value).__name__}`", target)
                for e in elts:
                    self.assign(e.value if isinstance(e, ast.Starred) else e, unk, scope, stmt, pairs)
                return
            if star is None:
                if len(items) != len(elts):
                    unk = self.unknown(f"cannot unpack {len(items)} values into {len(elts)} targets", target)
                    for e in elts:
                        self.assign(e, unk, scope, stmt, pairs)
                    return
                for e, v in zip(elts, items):
                    self.assign(e, v, scope, stmt, pairs)
            else:
                n_after = len(elts) - star - 1
                if len(items) < len(elts) - 1:
                    unk = self.unknown(f"cannot unpack {len(items)} values into {len(elts)} targets", target)
                    for e in elts:
                        self.assign(e.value if isinstance(e, ast.Starred) else e, unk, scope, stmt, pairs)
                    return
                for e, v in zip(elts[:star], items[:star]):
                    self.assign(e, v, scope, stmt, pairs)
                self.assign(elts[star].value, list(items[star:len(items) - n_after]), scope, stmt, pairs)
                for e, v in zip(elts[star + 1:], items[len(items) - n_after:]):
                    self.assign(e, v, scope, stmt, pairs)
        elif isinstance(target, ast.Attribute):
            obj = self.eval(target.value, scope)
            self.set_attr(obj, target.attr, value, target)
            if pairs is not None:
                pairs.append((target, value))
        elif isinstance(target, ast.Subscript):
            obj = self.eval(target.value, scope)
            idx = self.eval_index(target.slice, scope)
            self.setitem(obj, idx, value, target)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, value, scope, stmt, pairs)
        else:
            self.unknown(f"unsupported assignment target `{ast.unparse(target)}`", target)

    def setitem(self, obj, idx, value, node) -> None:
        if type(obj) is Unknown or type(idx) is Unknown:
            return
        if isinstance(obj, UserInstance) and (setitem := self._dunder(obj, "__setitem__")) is not None:
            self.call_function(setitem, [obj, idx, value], {}, node)
            return
        if isinstance(obj, UserInstance) and getattr(obj, "mapping", None) is not None:
            obj = obj.mapping
        if isinstance(obj, (UserInstance, UserClass, Namespace, UserFunction, BoundMethod)):
            self.unknown("item assignment on this value is not supported", node)
            return
        sites = self.cuts.sources([value]) if self.cuts._tags else _NO_SITES
        try:
            obj[idx] = value
        except Exception as e:
            self.unknown(f"`{ast.unparse(node)} = ...` failed: {type(e).__name__}: {e}", node)
            return
        if sites:
            self.cuts.propagate(sites, obj)

    def iterate(self, it, node, quiet: bool = False, lazy: bool = False):
        """The items of a value (a list of at most MAX_LOOP + 1 items; an iterator when ``lazy``),
        or None (recorded) if unknown."""
        if type(it) is Unknown:
            return None
        if isinstance(it, UserInstance) and (dunder_iter := self._dunder(it, "__iter__")) is not None:
            it = self.call_function(dunder_iter, [it], {}, node)
            if type(it) is Unknown:
                return None
        elif isinstance(it, UserInstance) and getattr(it, "mapping", None) is not None:
            it = it.mapping
        elif isinstance(it, UserInstance) and (getitem := self._dunder(it, "__getitem__")) is not None and (
                length := self._dunder(it, "__len__")) is not None:
            # a sequence class without __iter__ (`collections.abc.Sequence`): items 0 .. len-1, as its
            # mixin __iter__ (and Python's __getitem__ protocol) give them
            n = self.call_function(length, [it], {}, node)
            if not isinstance(n, int) or isinstance(n, bool):
                if not quiet:
                    self.unknown(f"cannot iterate over `{ast.unparse(node)}`: its length is not known", node)
                return None
            it = [self.call_function(getitem, [it, i], {}, node) for i in range(min(n, MAX_LOOP + 1))]
        if isinstance(it, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin, Marker)):
            if quiet:
                return None
            self.unknown(f"cannot iterate over `{ast.unparse(node)}`", node)
            return None
        try:
            items = itertools.islice(iter(it), MAX_LOOP + 1)
            return items if lazy else list(items)
        except Exception as e:
            if quiet:
                return None
            self.unknown(f"cannot iterate over `{ast.unparse(node)}`: {type(e).__name__}: {e}", node)
            return None

    def truth(self, v) -> bool | None:
        if type(v) is Unknown:
            return None
        if isinstance(v, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin, SuperProxy)):
            return True
        if isinstance(v, Marker):
            return None
        try:
            return bool(v)
        except Exception:
            return None

    # ------------------------------------------------------------------------------------------
    # expressions

    def eval(self, node, scope: Scope | None):
        kind = type(node)
        table = type(self)._eval_methods
        method = table.get(kind, False)
        if method is False:
            method = table[kind] = getattr(type(self), "eval_" + kind.__name__, None)
        if method is None:
            return self.unknown(f"unsupported expression `{type(node).__name__}`", node)
        return method(self, node, scope)

    def eval_Constant(self, node, scope):
        return node.value

    def eval_Name(self, node, scope):
        return self.lookup(node.id, scope, node)

    def eval_Attribute(self, node, scope):
        obj = self.eval(node.value, scope)
        return self.get_attr(obj, node.attr, node)

    def eval_Call(self, node, scope):
        f = node.func
        receiver = None
        method_name = None
        if type(f) is ast.Attribute:
            receiver = self.eval(f.value, scope)
            if type(receiver) is Unknown:
                return receiver
            method_name = f.attr
            callee = self.get_attr(receiver, f.attr, f)
        else:
            callee = self.eval(f, scope)
        if type(callee) is Unknown:
            return callee
        args = []
        for a in node.args:
            if type(a) is ast.Starred:
                v = self.eval(a.value, scope)
                if type(v) is Unknown:
                    return v
                items = self.iterate(v, a.value)
                if items is None:
                    return self.unknown(f"cannot expand `*{ast.unparse(a.value)}`", a)
                args.extend(items)
            else:
                args.append(self.eval(a, scope))
        kwargs = {}
        for kw in node.keywords:
            v = self.eval(kw.value, scope)
            if kw.arg is None:
                if type(v) is Unknown:
                    return v
                if isinstance(v, UserInstance):
                    v = dict(v.fields)
                if not isinstance(v, dict):
                    return self.unknown(f"cannot expand `**{ast.unparse(kw.value)}`", kw)
                kwargs.update(v)
            else:
                kwargs[kw.arg] = v
        return self.call(callee, args, kwargs, node, receiver=receiver, method_name=method_name)

    def eval_BinOp(self, node, scope):
        left = self.eval(node.left, scope)
        right = self.eval(node.right, scope)
        return self.binop(_BINOPS[type(node.op)], left, right, node)

    def binop(self, op, left, right, node):
        if type(left) is Unknown:
            return left
        if type(right) is Unknown:
            return right
        if _too_big(op, left, right):
            return self.unknown(f"`{ast.unparse(node)}` would be too large to compute", node)
        sites = self.cuts.sources([left, right]) if self.cuts._tags else _NO_SITES
        try:
            result = op(left, right)
        except Exception as e:
            return self.unknown(f"`{ast.unparse(node)}` failed: {type(e).__name__}: {e}", node)
        if sites:
            self.cuts.propagate(sites, result)
        return result

    def eval_UnaryOp(self, node, scope):
        v = self.eval(node.operand, scope)
        if type(v) is Unknown:
            return v
        if isinstance(node.op, ast.Not):
            t = self.truth(v)
            if t is None:
                return self.unknown(f"truth value of `{ast.unparse(node.operand)}` is not known", node)
            return not t
        sites = self.cuts.sources([v]) if self.cuts._tags else _NO_SITES
        try:
            result = _UNARY[type(node.op)](v)
        except Exception as e:
            return self.unknown(f"`{ast.unparse(node)}` failed: {type(e).__name__}: {e}", node)
        if sites:
            self.cuts.propagate(sites, result)
        return result

    def eval_BoolOp(self, node, scope):
        is_and = isinstance(node.op, ast.And)
        v = None
        for sub in node.values:
            v = self.eval(sub, scope)
            t = self.truth(v)
            if t is None:
                return v if type(v) is Unknown else self.unknown(
                    f"truth value of `{ast.unparse(sub)}` is not known", sub)
            if is_and and not t:
                return v
            if not is_and and t:
                return v
        return v

    def eval_Compare(self, node, scope):
        left = self.eval(node.left, scope)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators):
            right = self.eval(comp, scope)
            if type(left) is Unknown:
                return left
            if type(right) is Unknown:
                return right
            if isinstance(op, (ast.Is, ast.IsNot)):
                r = left is right
                if isinstance(op, ast.IsNot):
                    r = not r
            else:
                if isinstance(op, (ast.In, ast.NotIn)) and not isinstance(right, dict):
                    # a dict's membership reads its keys only: its values, Unknown or not, do not matter
                    # (and a scan of them per test makes a loop filling the dict quadratic)
                    unk = first_unknown([right])
                    if unk is not None:
                        return unk
                container = right
                if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, UserInstance):
                    container = self._contains_view(right, node)
                    if type(container) is Unknown:
                        return container
                if type(op) in _CMP_DUNDERS and (isinstance(left, UserInstance) or isinstance(right, UserInstance)):
                    r = self._user_compare(op, left, right, node)
                    if type(r) is Unknown:
                        return r
                else:
                    try:
                        r = _CMPOPS[type(op)](left, container)
                    except Exception as e:
                        return self.unknown(f"`{ast.unparse(node)}` failed: {type(e).__name__}: {e}", node)
            if len(node.ops) == 1:
                return r
            t = self.truth(r)
            if t is None:
                return self.unknown(f"truth value of `{ast.unparse(node)}` is not known", node)
            if not t:
                return r
            result = r
            left = right
        return result

    def eval_IfExp(self, node, scope):
        cond = self.eval(node.test, scope)
        t = self.truth(cond)
        if t is None:
            self.unknown(f"condition `{ast.unparse(node.test)}` could not be evaluated; assumed true", node.test)
            t = True
        return self.eval(node.body if t else node.orelse, scope)

    def eval_index(self, node, scope):
        if isinstance(node, ast.Slice):
            parts = [self.eval(p, scope) if p is not None else None for p in (node.lower, node.upper, node.step)]
            unk = first_unknown(parts)
            if unk is not None:
                return unk
            return slice(*parts)
        if isinstance(node, ast.Tuple):
            items = [self.eval_index(e, scope) for e in node.elts]
            unk = first_unknown(items)
            if unk is not None:
                return unk
            return tuple(items)
        return self.eval(node, scope)

    def eval_Subscript(self, node, scope):
        obj = self.eval(node.value, scope)
        if type(obj) is Unknown:
            return obj
        idx = self.eval_index(node.slice, scope)
        return self.subscript(obj, idx, node)

    def subscript(self, obj, idx, node):
        if isinstance(obj, _ANALYSIS_VALUES):
            if type(obj) is Unknown:
                return obj
            if type(idx) is Unknown:
                return idx
            if isinstance(obj, Marker):
                return obj
            if isinstance(obj, UserInstance) and (getitem := self._dunder(obj, "__getitem__")) is not None:
                return self.call_function(getitem, [obj, idx], {}, node)
            if isinstance(obj, UserInstance) and getattr(obj, "mapping", None) is not None:
                obj = obj.mapping
            if isinstance(obj, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin)):
                return self.unknown(f"`{ast.unparse(node)}`: indexing this value is not supported", node)
        elif type(idx) is Unknown:
            return idx
        sites = self.cuts.sources([obj]) if self.cuts._tags else _NO_SITES
        try:
            result = obj[idx]
        except Exception as e:
            return self.unknown(f"`{ast.unparse(node)}` failed: {type(e).__name__}: {e}", node)
        if sites:
            self.cuts.propagate(sites, result)
        return result

    def eval_Slice(self, node, scope):
        return self.eval_index(node, scope)

    def _elements(self, elts, scope):
        out = []
        for e in elts:
            if isinstance(e, ast.Starred):
                v = self.eval(e.value, scope)
                items = self.iterate(v, e.value)
                if items is None:
                    return v if type(v) is Unknown else self.unknown(f"cannot expand `*{ast.unparse(e.value)}`", e)
                out.extend(items)
            else:
                out.append(self.eval(e, scope))
        return out

    def eval_Tuple(self, node, scope):
        out = self._elements(node.elts, scope)
        return out if type(out) is Unknown else tuple(out)

    def eval_List(self, node, scope):
        return self._elements(node.elts, scope)

    def eval_Set(self, node, scope):
        out = self._elements(node.elts, scope)
        if type(out) is Unknown:
            return out
        try:
            return set(out)
        except Exception as e:
            return self.unknown(f"set: {e}", node)

    def eval_Dict(self, node, scope):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                d = self.eval(v, scope)
                if isinstance(d, UserInstance):
                    d = d.fields
                if not isinstance(d, dict):
                    return d if type(d) is Unknown else self.unknown(f"cannot expand `**{ast.unparse(v)}`", v)
                out.update(d)
                continue
            kv = self.eval(k, scope)
            if type(kv) is Unknown:
                return kv
            try:
                out[kv] = self.eval(v, scope)
            except TypeError as e:
                return self.unknown(f"dict key: {e}", k)
        return out

    def _comprehension(self, node, scope, emit):
        # its own scope: in a class body it sees the module's names, not the class's (the first iterable,
        # evaluated in the enclosing scope, does see them)
        cscope = Scope({}, scope.parent if type(scope) is ClassBodyScope else scope)

        def run(i):
            if i == len(node.generators):
                emit(cscope)
                return True
            gen = node.generators[i]
            it = self.eval(gen.iter, cscope if i else scope)
            items = self.iterate(it, gen.iter)
            if items is None:
                return False
            for n, item in enumerate(items):
                if n >= MAX_LOOP:
                    self.unknown(f"comprehension stopped after {MAX_LOOP} items", gen.iter)
                    break
                self.assign(gen.target, item, cscope, node)
                ok = True
                for cond in gen.ifs:
                    t = self.truth(self.eval(cond, cscope))
                    if t is None:
                        self.unknown(f"condition `{ast.unparse(cond)}` could not be evaluated; assumed true", cond)
                        t = True
                    if not t:
                        ok = False
                        break
                if ok and not run(i + 1):
                    return False
            return True

        try:
            ok = run(0)
        finally:
            # `run` refers to itself (a reference cycle): left alone, it and what it holds (the result
            # list through `emit`) would wait for the cyclic collector, which is off during a trace
            run = None
        if not cscope.captured:
            cscope.vars.clear()
        return ok

    def eval_ListComp(self, node, scope):
        out: list = []
        if not self._comprehension(node, scope, lambda s: out.append(self.eval(node.elt, s))):
            return self._comp_unknown(node, scope)
        return out

    eval_GeneratorExp = eval_ListComp

    def eval_SetComp(self, node, scope):
        out = self.eval_ListComp(node, scope)
        if type(out) is Unknown:
            return out
        try:
            return set(out)
        except Exception as e:
            return self.unknown(f"set: {e}", node)

    def eval_DictComp(self, node, scope):
        out: dict = {}

        def emit(s):
            k = self.eval(node.key, s)
            out[k] = self.eval(node.value, s)

        if not self._comprehension(node, scope, emit):
            return self._comp_unknown(node, scope)
        return out

    def _comp_unknown(self, node, scope):
        it = self.eval(node.generators[0].iter, scope)
        if type(it) is Unknown:
            return it
        return self.unknown(f"cannot evaluate `{ast.unparse(node)}`", node)

    def eval_Lambda(self, node, scope):
        if type(scope) is ClassBodyScope:
            scope = scope.parent
        _mark_captured(scope)
        return UserFunction(self, node, scope, None, "<lambda>")

    def eval_NamedExpr(self, node, scope):
        v = self.eval(node.value, scope)
        self.assign(node.target, v, scope if scope is not None else Scope(), node)
        return v

    def eval_JoinedStr(self, node, scope):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
                continue
            val = self.eval(v.value, scope)
            if type(val) is Unknown:
                return val
            if isinstance(val, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace)):
                val = repr(val)
            spec = ""
            if v.format_spec is not None:
                spec = self.eval_JoinedStr(v.format_spec, scope)
                if type(spec) is Unknown:
                    return spec
            try:
                if v.conversion == ord("r"):
                    val = repr(val)
                elif v.conversion == ord("s"):
                    val = str(val)
                elif v.conversion == ord("a"):
                    val = ascii(val)
                parts.append(format(val, spec))
            except Exception as e:
                return self.unknown(f"f-string: {e}", v)
        return "".join(parts)

    def eval_Starred(self, node, scope):
        return self.unknown("starred expression here is not supported", node)

    def eval_Await(self, node, scope):
        return self.unknown("`await` is not supported", node)

    def eval_Yield(self, node, scope):
        if not self._yield_sinks:
            return self.unknown("`yield` outside a generator function", node)
        value = self.eval(node.value, scope) if node.value is not None else None
        self._yield_at = node                # which yield a @contextmanager generator reached
        self._yield_sinks[-1].append(value)
        return None                         # what `.send()` would pass in: nothing

    def eval_YieldFrom(self, node, scope):
        if not self._yield_sinks:
            return self.unknown("`yield from` outside a generator function", node)
        sink = self._yield_sinks[-1]
        items = self.iterate(self.eval(node.value, scope), node.value)
        if items is None:
            sink.append(self.unknown(f"cannot iterate over `{ast.unparse(node.value)}`", node))
        else:
            sink.extend(items)
        return None


_CONSUMERS = (list, tuple, set, frozenset, dict, sorted, sum, min, max, any, all)
# by identity (builtins live as long as the process): a set lookup per host call instead of a scan
_CONSUMER_IDS = frozenset(id(c) for c in _CONSUMERS)
# builtins that iterate over their arguments
_ITERATING_IDS = frozenset(id(c) for c in (list, tuple, set, frozenset, sorted, sum, min, max, any, all, zip,
                                           enumerate, reversed, iter))
_CONTAINER_SAFE_IDS = frozenset(id(c) for c in _CONTAINER_SAFE)
_BOUND_METHOD_TYPES = (types.BuiltinMethodType, types.MethodWrapperType, types.MethodType)

class _WithBodySink(list):
    """The yield sink of a ``@contextmanager`` generator run by a ``with``: its first ``yield`` runs the
    with-body."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def append(self, value):
        super().append(value)
        if len(self) == 1:
            self.body(value)


_CMP_DUNDERS = {ast.Lt: ("__lt__", "__gt__"), ast.LtE: ("__le__", "__ge__"), ast.Gt: ("__gt__", "__lt__"),
                ast.GtE: ("__ge__", "__le__"), ast.Eq: ("__eq__", "__eq__"), ast.NotEq: ("__ne__", "__ne__")}
_MAPPING_MIXINS = frozenset({"keys", "items", "values", "get", "__contains__"})
_DICT_BASES = frozenset({"dict", "collections.OrderedDict", "typing.OrderedDict", "typing.Dict"})


# builtin classes a class of the analysed code may derive from and keep as a host base: exceptions (what
# `except` clauses match) and property (descriptor classes such as `classproperty`)
_HOST_BASES = {n: v for n, v in vars(builtins).items()
               if isinstance(v, type) and (issubclass(v, BaseException) or v is property)}

# what a dict subclass's `super().<name>` takes from `object`, not from `dict` (dict does not define them)
_OBJECT_ONLY = frozenset({"__setattr__", "__delattr__"})
def _exception_instance(v):
    """The exception a ``raise v`` raises, when ``v`` is a known exception class or instance, else None.
    A class is instantiated without running its ``__init__``: handlers only look at the class."""
    if isinstance(v, type) and issubclass(v, BaseException):
        return v.__new__(v)
    if isinstance(v, BaseException):
        return v
    cls = v if isinstance(v, UserClass) else v.cls if isinstance(v, UserInstance) else None
    if cls is not None and any(isinstance(b, type) and issubclass(b, BaseException) for b in cls.host_bases()):
        return UserInstance(cls) if v is cls else v
    return None


def _handler_takes(written, exc) -> bool:
    """Whether an ``except`` clause whose evaluated types are ``written`` (None: a bare ``except:``) takes ``exc``."""
    if written is None:
        return True
    for h in written:
        if isinstance(exc, UserInstance):
            if isinstance(h, UserClass) and exc.cls.subclass_of(h):
                return True
            if isinstance(h, type) and any(isinstance(b, type) and issubclass(b, h) for b in exc.cls.host_bases()):
                return True
        elif isinstance(h, type) and isinstance(exc, h):
            return True
    return False


def _handler_for(entry, r) -> int | None:
    """The index of the handler of ``try`` entry ``entry`` that takes the travelling ``r``, else None."""
    if isinstance(r, _HostError):
        for i, cs in enumerate(entry[2]):
            if cs and isinstance(r.error, cs):
                return i
        return None
    if r.exc is None:
        return None
    for i, written in enumerate(entry[3]):
        if _handler_takes(written, r.exc):
            return i
    return None


def _is_dict_class(ucls: UserClass) -> bool:
    """Whether a class derives from ``dict`` (or ``OrderedDict``): its instances are dicts."""
    return any(b in _DICT_BASES for c in ucls.mro() for b in c.info.bases)


def _is_mapping_class(ucls: UserClass) -> bool:
    """Whether a class derives from ``collections.abc.Mapping`` (or ``MutableMapping``, or typing's)."""
    return any(b.rsplit(".", 1)[-1] in ("Mapping", "MutableMapping") and b.split(".", 1)[0] in ("collections", "typing")
               for c in ucls.mro() for b in c.info.bases)


class _ContainsBy:
    """The right operand of ``in`` for a class with ``__contains__``."""

    def __init__(self, fn):
        self.fn = fn

    def __contains__(self, x):
        r = self.fn(x)
        if type(r) is Unknown:
            raise TypeError(r.reason)
        return bool(r)


def _too_big(op, left, right) -> bool:
    """Python operations whose cost the user's numbers control: huge repetition or powers."""
    if op in (operator.mul, operator.imul):
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (list, tuple, str, bytes)) and isinstance(n, int) and len(seq) * int(n) > 10 * MAX_LOOP:
                return True
    if op in (operator.pow, operator.ipow) and isinstance(left, int) and isinstance(right, int):
        return abs(int(right)) > 4096 and abs(int(left)) > 1
    if op in (operator.lshift, operator.ilshift) and isinstance(right, int):
        return int(right) > 65536
    return False


_PLAIN = (int, float, bool, str, type(None))


def _plain_numbers(values, depth: int = 0) -> bool:
    """Whether ``values`` are Python numbers (sizes from input dims too), strings, None, engine dtypes or
    devices, possibly in nested lists."""
    for v in values:
        if type(v) in _PLAIN or type(v) is SymInt:
            continue
        if isinstance(v, (list, tuple)) and depth < 4:
            if not _plain_numbers(v, depth + 1):
                return False
        elif type(v).__name__ not in ("dtype", "device"):
            return False
    return True


def _creation_numel(name: str, args: list, kwargs: dict) -> float:
    """The element count a creation call with plain arguments asks for (an upper bound; inf if unclear)."""
    try:
        if name == "arange":
            nums = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            start, end, step = (0, nums[0], 1) if len(nums) == 1 else (*nums[:2], nums[2] if len(nums) > 2 else 1)
            start, end, step = kwargs.get("start", start), kwargs.get("end", end), kwargs.get("step", step)
            return max(0.0, (end - start) / step)
        if name in ("linspace", "logspace"):
            return float(args[2] if len(args) > 2 else kwargs["steps"])
        if name in ("ones", "zeros", "full"):
            # ones(2, 3) / ones((2, 3)) / ones(size=(2, 3)); full(size, fill_value)
            sizes = kwargs.get("size", args[0] if name == "full" or isinstance(args[0], (list, tuple)) else args)
            return float(math.prod(int(n) for n in sizes))
        return 0.0                               # tensor / as_tensor: as many as the literal data holds
    except Exception:
        return float("inf")


def _defining_interp(it: Interpreter, obj) -> Interpreter | None:
    """The interpreter of the file that defines a user class, function or instance, else None."""
    if isinstance(obj, BoundMethod):
        obj = obj.func
    if isinstance(obj, (UserClass, UserFunction)):
        return obj.interp
    ucls = it.user_class_of(obj)
    return ucls.interp if ucls is not None else None


def _decorator_shape(dec: UserFunction) -> str:
    """How decorator ``dec`` (one parameter ``f``, returning a function it defines) treats ``f``: "wraps"
    (the function it returns calls ``f``), "replaces" (it never does) or "" (another shape).  Decided
    from its source, once (cached on its node)."""
    node = dec.node
    shape = getattr(node, "_gx_decorator_shape", None)
    if shape is None:
        shape = ""
        a = getattr(node, "args", None)
        body = getattr(node, "body", None)
        if (isinstance(body, list) and a is not None and len(positional_params(a)) == 1 and not a.vararg
                and not a.kwonlyargs and isinstance(body[-1], ast.Return) and isinstance(body[-1].value, ast.Name)):
            param, ret = positional_params(a)[0].arg, body[-1].value.id
            inner = next((st for st in body if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef))
                          and st.name == ret), None)
            if inner is not None:
                calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == param
                            for n in ast.walk(inner))
                shape = "wraps" if calls else "replaces"
        node._gx_decorator_shape = shape
    return shape


def _code_info(fnode) -> types.SimpleNamespace:
    """What a function's ``__code__`` tells of its names, from its source: ``co_varnames`` (the parameters
    in CPython's order, then the local names the body binds), ``co_argcount``, ``co_name``."""
    info = getattr(fnode, "_gx_code", None)
    if info is None:
        a = fnode.args
        positional = [p.arg for p in (*a.posonlyargs, *a.args)]
        names = [*positional, *(p.arg for p in a.kwonlyargs), *(p.arg for p in (a.vararg, a.kwarg) if p is not None)]
        seen = set(names)
        stack = list(reversed(fnode.body)) if not isinstance(fnode, ast.Lambda) else []
        while stack:
            n = stack.pop()
            if type(n) in NESTED_SCOPES:
                if not isinstance(n, ast.Lambda) and n.name not in seen:
                    seen.add(n.name)
                    names.append(n.name)
                continue
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and n.id not in seen:
                seen.add(n.id)
                names.append(n.id)
            stack.extend(reversed(list(ast.iter_child_nodes(n))))
        info = types.SimpleNamespace(co_varnames=tuple(names), co_argcount=len(positional),
                                     co_name=getattr(fnode, "name", "<lambda>"))
        fnode._gx_code = info
    return info


def _replaces_function(dec: UserFunction) -> bool:
    """A decorator that returns a new function which never calls the decorated one (a factory)."""
    return _decorator_shape(dec) == "replaces"


def _wraps_function(dec: UserFunction) -> bool:
    """A decorator that returns a wrapper calling the decorated function."""
    return _decorator_shape(dec) == "wraps"


def _is_generator(fnode) -> bool:
    """Whether a function's own body (not nested functions or classes) contains ``yield``; cached on the node."""
    flag = getattr(fnode, "_gx_generator", None)
    if flag is None:
        flag = False
        if not isinstance(fnode, ast.Lambda):
            stack = list(fnode.body)
            while stack and not flag:
                n = stack.pop()
                kind = type(n)
                if kind is ast.Yield or kind is ast.YieldFrom:
                    flag = True
                elif kind not in NESTED_SCOPES:
                    push_children(stack, n)
        fnode._gx_generator = flag
    return flag


def _loop_written_names(stmt) -> set[str]:
    """The names a loop statement binds (its target, assignments in its body) or fills in place (a
    mutating method call or an item / attribute store on them), not counting nested functions; cached."""
    names = getattr(stmt, "_gx_written", None)
    if names is not None:
        return names
    names = set()
    stack = [stmt.target, *stmt.body, *stmt.orelse]
    while stack:
        n = stack.pop()
        kind = type(n)
        if kind in NESTED_SCOPES:
            continue
        if kind is ast.Name and not isinstance(n.ctx, ast.Load):
            names.add(n.id)
        elif kind in (ast.Subscript, ast.Attribute) and not isinstance(n.ctx, ast.Load):
            root = n.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
        elif kind is ast.Call and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATING_METHODS:
            root = n.func.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
        push_children(stack, n)
    stmt._gx_written = names
    return names


def _effect_candidate(stmt, index) -> bool:
    """A registration-shaped top-level call, what run_module_effects checks: ``f(...)`` / ``obj.f(...)``
    with the callee named by a class or function of this file or an import from source (never torch or
    a standard-library module), and arguments that are literals or such names (``register_block('mobilevit',
    MobileVitBlock)``).  A call on values the file computes (``train(model)`` in a script) is not one."""
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return False
    call = stmt.value

    def definition(name: str) -> bool:
        if name in index.classes or name in index.functions:
            return True
        target = index.imports.get(name)
        return target is not None and (target.startswith(".") or is_source_resolvable(target))

    def plain(e) -> bool:
        if isinstance(e, ast.Constant):
            return True
        if isinstance(e, ast.Name):
            return definition(e.id)
        if isinstance(e, ast.Attribute):
            return plain(e.value)
        if isinstance(e, (ast.Tuple, ast.List)):
            return all(plain(x) for x in e.elts)
        if isinstance(e, ast.Dict):
            return all(k is not None and plain(k) for k in e.keys) and all(plain(v) for v in e.values)
        return False

    root = call.func
    while isinstance(root, ast.Attribute):
        root = root.value
    return (isinstance(root, ast.Name) and definition(root.id) and all(plain(a) for a in call.args)
            and all(k.arg is not None and plain(k.value) for k in call.keywords))


def _decorator_body(dv):
    """The function node a source decorator runs when applied (its own, its ``__call__``'s or, for a
    class, its ``__init__``'s), or None."""
    if isinstance(dv, Partial):
        dv = dv.func
    if isinstance(dv, BoundMethod):
        dv = dv.func
    elif isinstance(dv, UserInstance):
        dv = dv.cls.lookup("__call__")[1]
    elif isinstance(dv, UserClass):
        dv = dv.lookup("__init__")[1]
    return dv.node if isinstance(dv, UserFunction) else None


def _bound_names(stmt) -> set[str]:
    """The names a top-level statement binds (in nested ``if`` / ``try`` / ``for`` / ``with`` blocks too)."""
    out: set[str] = set()

    def targets(t):
        if isinstance(t, ast.Name):
            out.add(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                targets(e)
        elif isinstance(t, ast.Starred):
            targets(t.value)

    def visit(st):
        if isinstance(st, ast.Assign):
            for t in st.targets:
                targets(t)
        elif isinstance(st, (ast.AnnAssign, ast.AugAssign)):
            if not isinstance(st, ast.AnnAssign) or st.value is not None:
                targets(st.target)
        elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(st.name)
        elif isinstance(st, (ast.Import, ast.ImportFrom)):
            out.update(local for local, _ in import_bindings(st))
        elif isinstance(st, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)):
            if isinstance(st, (ast.For, ast.AsyncFor)):
                targets(st.target)
            if isinstance(st, (ast.With, ast.AsyncWith)):
                for item in st.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
            for block in (getattr(st, "body", []), getattr(st, "orelse", []), getattr(st, "finalbody", [])):
                for sub in block:
                    visit(sub)
            for h in getattr(st, "handlers", []):
                for sub in h.body:
                    visit(sub)

    visit(stmt)
    targets = visit = None      # both refer to themselves: break the cycles, no cyclic collection needed
    return out


def _mark_captured(scope: Scope | None) -> None:
    while scope is not None:
        scope.captured = True
        scope = scope.parent


def _tensors_in(v, rt, depth=0):
    if depth > 4:
        return
    if rt.is_tensor(v):
        yield v
    elif isinstance(v, (tuple, list)):
        for x in v:
            yield from _tensors_in(x, rt, depth + 1)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _tensors_in(x, rt, depth + 1)
    elif isinstance(v, UserInstance):
        for x in v.fields.values():
            yield from _tensors_in(x, rt, depth + 1)


# --- builtins -----------------------------------------------------------------------------------

def _isinstance_one(it: Interpreter, obj, cls):
    if isinstance(cls, UserClass):
        ucls = it.user_class_of(obj)
        return ucls is not None and ucls.subclass_of(cls)
    if isinstance(cls, Marker):
        abc = _TYPING_ABC.get(cls.name.rsplit(".", 1)[-1]) if cls.name.startswith("typing") else None
        if abc is None:
            return None
        if isinstance(obj, (UserFunction, BoundMethod, UserClass, Builtin, Partial)):
            return abc is collections.abc.Callable
        if isinstance(obj, UserInstance):
            return abc is collections.abc.Callable and obj.cls.lookup("__call__")[0] is not None
        return isinstance(obj, abc)
    if cls is PARTIAL:                      # isinstance(f, functools.partial)
        return isinstance(obj, Partial)
    if isinstance(cls, type):
        if isinstance(obj, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin)):
            if cls is collections.abc.Callable:
                return not isinstance(obj, (UserInstance, Namespace)) or (
                    isinstance(obj, UserInstance) and obj.cls.lookup("__call__")[0] is not None)
            if cls is types.FunctionType:
                return isinstance(obj, UserFunction)
            if cls is types.MethodType:
                return isinstance(obj, BoundMethod)
            if isinstance(obj, UserInstance):     # a builtin base it keeps (`class NotSupported(ValueError)`)
                return cls is object or any(isinstance(b, type) and issubclass(b, cls) for b in obj.cls.host_bases())
            return cls is object
        return isinstance(obj, cls)
    return None


class _SysModules:
    """``sys.modules`` as analysed code sees it, read-only: the dotted name of a module read from source
    (the project's or an installed package's) gives that module as the analysis binds it (what
    ``register_model``-style registries look up by ``fn.__module__``); no other module counts as
    imported (none is)."""

    def __init__(self, interp: Interpreter):
        self._interp = interp

    def _find(self, name):
        if not isinstance(name, str) or not is_source_resolvable(name):
            return None
        from .resolver import session_for

        session = session_for(self._interp)
        loc = session.project.find_module(name, session.roots)
        if loc is None or loc.compiled:
            return None
        val, reason = session.module_value(loc)
        return val if reason is None else None

    def __getitem__(self, name):
        val = self._find(name)
        if val is None:
            raise KeyError(name)
        return val

    def __contains__(self, name) -> bool:
        return self._find(name) is not None

    def get(self, name, default=None):
        val = self._find(name)
        return default if val is None else val


# typing aliases of the collections.abc classes, as isinstance() sees them
_TYPING_ABC = {n: getattr(collections.abc, n) for n in (
    "Sequence", "Mapping", "MutableMapping", "Callable", "Iterable", "Iterator", "Collection", "Sized",
    "MutableSequence", "Set", "MutableSet", "Container")}
_TYPING_ABC.update(List=list, Dict=dict, Tuple=tuple, FrozenSet=frozenset)


def _bi_isinstance(it: Interpreter, node, args, kwargs):
    if len(args) != 2:
        return it.unknown("isinstance() takes 2 arguments", node)
    obj, classinfo = args
    if type(obj) is Unknown:
        return obj
    if type(classinfo) is Unknown:
        return classinfo
    options = classinfo if isinstance(classinfo, tuple) else (classinfo,)
    for c in options:
        r = _isinstance_one(it, obj, c)
        if r is None:
            return it.unknown(f"isinstance with `{c!r}` is not known", node)
        if r:
            return True
    return False


def _bi_issubclass(it: Interpreter, node, args, kwargs):
    if len(args) != 2:
        return it.unknown("issubclass() takes 2 arguments", node)
    a, b = args
    if isinstance(a, UserClass) and isinstance(b, UserClass):
        return a.subclass_of(b)
    if isinstance(a, type) and isinstance(b, type):
        return issubclass(a, b)
    if isinstance(a, UserClass) and isinstance(b, type):
        return any(isinstance(h, type) and issubclass(h, b) for h in a.host_bases())
    return it.unknown("issubclass on these values is not known", node)


def _bi_getattr(it: Interpreter, node, args, kwargs):
    if len(args) not in (2, 3):
        return it.unknown("getattr() takes 2 or 3 arguments", node)
    obj, name = args[0], args[1]
    if type(obj) is Unknown:
        return obj
    if not isinstance(name, str):
        return name if type(name) is Unknown else it.unknown("getattr() name must be a string", node)
    if len(args) == 3:
        val, reason = _lookup_or_attribute_error(it, obj, name)
        return args[2] if reason is not None else val
    val, reason = it.lookup_attr(obj, name)
    if reason is None:
        return val
    return it.unknown(reason, node)


_ATTRIBUTE_ERROR_ENTRY = (None, (AttributeError,), [(AttributeError,)], [(AttributeError,)])


def _lookup_or_attribute_error(it: Interpreter, obj, name: str):
    """``lookup_attr`` as ``getattr(o, k, default)`` / ``hasattr`` see it: an AttributeError raised while
    resolving it (inside a property's getter too) makes the attribute missing, as in Python."""
    it._try_stack.append(_ATTRIBUTE_ERROR_ENTRY)
    try:
        return it.lookup_attr(obj, name)
    except _HostError as e:
        if not isinstance(e.error, AttributeError):
            raise
        return None, str(e.error)
    finally:
        it._try_stack.pop()


def _bi_hasattr(it: Interpreter, node, args, kwargs):
    obj, name = args[0], args[1]
    if type(obj) is Unknown:
        return obj
    if not isinstance(name, str):
        return it.unknown("hasattr() name must be a string", node)
    val, reason = _lookup_or_attribute_error(it, obj, name)
    return reason is None


def _bi_setattr(it: Interpreter, node, args, kwargs):
    obj, name, value = args
    if not isinstance(name, str):
        return it.unknown("setattr() name must be a string", node)
    it.set_attr(obj, name, value, node)
    return None


def _bi_super(it: Interpreter, node, args, kwargs):
    if len(args) == 2:
        cls, recv = args
        if isinstance(cls, UserClass):
            return SuperProxy(cls, recv)
        return it.unknown("super() with this class is not supported", node)
    if not it.frames:
        return it.unknown("super() outside a method", node)
    fn, scope = it.frames[-1]
    if fn.owner is None:
        return it.unknown("super() outside a method", node)
    params = positional_params(fn.node.args)
    if not params:
        return it.unknown("super() in a method without `self`", node)
    recv = scope.vars.get(params[0].arg)
    return SuperProxy(fn.owner, recv)


def _bi_type(it: Interpreter, node, args, kwargs):
    if len(args) != 1:
        return it.unknown("type() with 3 arguments is not supported", node)
    obj = args[0]
    if type(obj) is Unknown:
        return obj
    ucls = it.user_class_of(obj)
    return ucls if ucls is not None else type(obj)


def _bi_field(it: Interpreter, node, args, kwargs):
    if kwargs.get("default_factory", dataclasses.MISSING) is not dataclasses.MISSING:
        return FieldDefault(factory=kwargs["default_factory"])
    if kwargs.get("default", dataclasses.MISSING) is not dataclasses.MISSING:
        return FieldDefault(default=kwargs["default"], has_default=True)
    return FieldDefault()


def _bi_dir(it: Interpreter, node, args, kwargs):
    """``dir(obj)``: the public names (private ones are never reachable from analysed code)."""
    if len(args) != 1:
        return it.unknown("dir() without an argument is not supported", node)
    obj = args[0]
    if type(obj) is Unknown:
        return obj
    if isinstance(obj, (UserInstance, UserClass)):
        ucls = obj if isinstance(obj, UserClass) else obj.cls
        names = set(obj.fields) if isinstance(obj, UserInstance) else set()
        for c in ucls.mro():
            names.update(c.interp.class_attrs(c))
    elif isinstance(obj, Namespace):
        names = set(dir(obj.obj))
    elif isinstance(obj, (UserFunction, BoundMethod, Builtin, Partial, SuperProxy, Marker)):
        return it.unknown("dir() of this value is not supported", node)
    else:
        names = set(dir(obj))
    return sorted(n for n in names if not n.startswith("_"))


def _dataclass_of(obj) -> UserClass | None:
    ucls = obj if isinstance(obj, UserClass) else obj.cls if isinstance(obj, UserInstance) else None
    if ucls is None or not any(c.info.is_dataclass for c in ucls.mro()):
        return None
    ucls.interp.class_attrs(ucls)           # builds ucls.fields
    return ucls


def _bi_dc_replace(it: Interpreter, node, args, kwargs):
    """``dataclasses.replace(obj, **changes)``: a new instance built from obj's fields and the changes
    (``__init__`` and ``__post_init__`` run again, as in Python)."""
    if len(args) != 1:
        return it.unknown("replace() takes one positional argument", node)
    obj = args[0]
    if type(obj) is Unknown:
        return obj
    ucls = _dataclass_of(obj)
    if ucls is None or not isinstance(obj, UserInstance):
        return it.unknown("replace() of a value that is not a dataclass instance", node)
    init = {f: obj.fields[f] for f in ucls.fields if f in obj.fields}
    init.update(kwargs)
    return it.instantiate(ucls, [], init, node)


def _asdict_value(v):
    if isinstance(v, UserInstance) and _dataclass_of(v) is not None:
        return {f: _asdict_value(v.fields.get(f)) for f in v.cls.fields}
    if isinstance(v, list):
        return [_asdict_value(x) for x in v]
    if isinstance(v, tuple) and not hasattr(v, "_fields"):
        return tuple(_asdict_value(x) for x in v)
    if isinstance(v, dict):
        return type(v)((k, _asdict_value(x)) for k, x in v.items()) if type(v) is dict else {
            k: _asdict_value(x) for k, x in v.items()}
    return v


def _bi_dc_asdict(it: Interpreter, node, args, kwargs):
    obj = args[0] if len(args) == 1 else None
    if type(obj) is Unknown:
        return obj
    if not isinstance(obj, UserInstance) or _dataclass_of(obj) is None:
        return it.unknown("asdict() of a value that is not a dataclass instance", node)
    return _asdict_value(obj)


def _bi_dc_fields(it: Interpreter, node, args, kwargs):
    obj = args[0] if len(args) == 1 else None
    if type(obj) is Unknown:
        return obj
    ucls = _dataclass_of(obj) if obj is not None else None
    if ucls is None:
        return it.unknown("fields() of a value that is not a dataclass", node)
    out = []
    for f in ucls.fields:                 # name, default and default_factory (MISSING when there is none)
        owner, raw = ucls.lookup(f)
        default = factory = dataclasses.MISSING
        if isinstance(raw, FieldDefault):
            if raw.factory is not None:
                factory = raw.factory
            elif raw.has_default:
                default = raw.default
        elif owner is not None:
            default = raw
        out.append(types.SimpleNamespace(name=f, default=default, default_factory=factory))
    return tuple(out)


def _bi_dc_is_dataclass(it: Interpreter, node, args, kwargs):
    obj = args[0] if len(args) == 1 else None
    if type(obj) is Unknown:
        return obj
    return _dataclass_of(obj) is not None


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, slice, frozenset, type)


def _copy_value(it: Interpreter, v, memo: dict | None):
    """``copy.copy`` (memo None) / ``copy.deepcopy`` of an abstract value; raises TypeError where the
    copy is not modelled (tensors, modules: their copies would be new storages and parameters)."""
    if memo is not None and id(v) in memo:
        return memo[id(v)]
    deep = memo is not None

    def sub(x):
        return _copy_value(it, x, memo) if deep else x

    if isinstance(v, _IMMUTABLE) or isinstance(v, (UserFunction, BoundMethod, UserClass, Builtin, Namespace,
                                                   Marker, Transparent)):
        return v                              # functions, classes and modules are copied by reference
    if isinstance(v, UserInstance):
        new = UserInstance(v.cls)
        if deep:
            memo[id(v)] = new
        new.fields = {k: sub(x) for k, x in v.fields.items()}
        return new
    if isinstance(v, Partial):
        return Partial(v.func, tuple(sub(x) for x in v.args), {k: sub(x) for k, x in v.keywords.items()})
    if isinstance(v, (list, dict, set, collections.deque)):
        new = copy.copy(v)                    # keeps the container type (defaultdict factory, deque maxlen)
        if deep:
            memo[id(v)] = new
            if isinstance(v, dict):
                new.clear()
                new.update((k, sub(x)) for k, x in v.items())
            elif isinstance(v, set):
                new = type(v)(sub(x) for x in v)
            else:
                new.clear()
                new.extend(sub(x) for x in v)
        return new
    if isinstance(v, tuple):
        items = tuple(sub(x) for x in v)
        return type(v)(*items) if hasattr(v, "_fields") else items
    if it.rt.is_tensor(v) or it.rt.is_module(v):
        raise TypeError("copying a tensor or module is not supported")
    return copy.deepcopy(v) if deep else copy.copy(v)


def _bi_deepcopy(it: Interpreter, node, args, kwargs):
    if len(args) != 1:
        return it.unknown("deepcopy() with a memo is not supported", node)
    if first_unknown(args) is not None:
        return first_unknown(args)
    try:
        return _copy_value(it, args[0], {})
    except Exception as e:
        return it.unknown(f"deepcopy: {e}", node)


def _bi_copy(it: Interpreter, node, args, kwargs):
    if len(args) != 1:
        return it.unknown("copy() takes one argument", node)
    if type(args[0]) is Unknown:
        return args[0]
    try:
        return _copy_value(it, args[0], None)
    except Exception as e:
        return it.unknown(f"copy: {e}", node)


# Python's builtins as user code sees them: pure host functions and exception classes as they are,
# the rest implemented above
_BUILTINS: dict[str, Any] = {
    **{n: getattr(builtins, n) for n in _HOST_BUILTINS},
    **{n: v for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)},
    "staticmethod": staticmethod, "classmethod": classmethod, "property": property,
    "NotImplemented": NotImplemented, "Ellipsis": Ellipsis,
    "print": Builtin("print", lambda it, node, args, kwargs: None),
    "isinstance": Builtin("isinstance", _bi_isinstance),
    "issubclass": Builtin("issubclass", _bi_issubclass),
    "getattr": Builtin("getattr", _bi_getattr),
    "hasattr": Builtin("hasattr", _bi_hasattr),
    "setattr": Builtin("setattr", _bi_setattr),
    "super": Builtin("super", _bi_super),
    "type": Builtin("type", _bi_type),
    "dir": Builtin("dir", _bi_dir),
}

_NOOP = Builtin("noop", lambda *a: None)

# non-torch import targets with a meaning at analysis time
_DATACLASS = Marker("dataclass")
_FIELD = Builtin("field", _bi_field)
_DATACLASS_NAMES: dict[str, Any] = {
    "dataclass": _DATACLASS, "field": _FIELD, "replace": Builtin("replace", _bi_dc_replace), "MISSING": dataclasses.MISSING,
    "asdict": Builtin("asdict", _bi_dc_asdict), "fields": Builtin("fields", _bi_dc_fields),
    "is_dataclass": Builtin("is_dataclass", _bi_dc_is_dataclass),
}
def _bi_signature(it: Interpreter, node, args, kwargs):
    """``inspect.signature(f)`` of a function defined in source (a bound method without its first
    parameter): an ``inspect.Signature`` with the parameters' names, kinds and defaults."""
    fn, skip = (args[0] if args else None), 0
    if isinstance(fn, BoundMethod):
        fn, skip = fn.func, 1
    if not isinstance(fn, UserFunction):
        return fn if type(fn) is Unknown else it.unknown("`inspect.signature` of this value is not supported", node)
    a = fn.node.args
    defaults = fn.interp.function_defaults(fn)
    P = inspect.Parameter
    params = [P(p.arg, P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD,
                default=defaults.get(p.arg, P.empty)) for i, p in enumerate(positional_params(a))][skip:]
    if a.vararg is not None:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    params += [P(p.arg, P.KEYWORD_ONLY, default=defaults.get(p.arg, P.empty)) for p in a.kwonlyargs]
    if a.kwarg is not None:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


def _bi_getsource(it: Interpreter, node, args, kwargs):
    """``inspect.getsource(x)`` of a module, class or function read from source: its text (the file
    is read, as the analysis reads it, never imported)."""
    obj = args[0] if args else None
    if type(obj) is Unknown:
        return obj
    lines = start = end = None
    if isinstance(obj, Namespace) and isinstance(obj.obj, ProjectModule):
        lines = obj.obj.gx_lines()
    elif isinstance(obj, (UserClass, UserFunction, BoundMethod)):
        fn = obj.func if isinstance(obj, BoundMethod) else obj
        src = fn.info.node if isinstance(fn, UserClass) else fn.node
        lines = fn.interp.index.lines
        first = min([src.lineno] + [d.lineno for d in getattr(src, "decorator_list", ())])
        start, end = first - 1, src.end_lineno
    if lines is None:
        return it.unknown("`inspect.getsource` of this value is not supported", node)
    return "".join(line + "\n" for line in lines[start:end])


_INSPECT_NAMES: dict[str, Any] = {"signature": Builtin("signature", _bi_signature), "Parameter": inspect.Parameter,
                                  "getsource": Builtin("getsource", _bi_getsource)}
_COPY_NAMES: dict[str, Any] = {"deepcopy": Builtin("deepcopy", _bi_deepcopy), "copy": Builtin("copy", _bi_copy)}
_KNOWN_IMPORTS: dict[str, Any] = {
    "dataclasses": Namespace("dataclasses", types.SimpleNamespace(**_DATACLASS_NAMES)),
    **{f"dataclasses.{n}": v for n, v in _DATACLASS_NAMES.items()},
    "copy": Namespace("copy", types.SimpleNamespace(**_COPY_NAMES)),
    "inspect": Namespace("inspect", types.SimpleNamespace(**_INSPECT_NAMES)),
    **{f"inspect.{n}": v for n, v in _INSPECT_NAMES.items()},
    **{f"copy.{n}": v for n, v in _COPY_NAMES.items()},
    "typing.TYPE_CHECKING": False,
}


# --- roots: construct, run a training step, summarise ---------------------------------------------

def _param_names(model) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def param_stats(model) -> tuple[int, int]:
    """(parameter count, parameter bytes), a tied parameter counted once."""
    params = [p for _, p in model.named_parameters()]
    return sum(int(p.numel()) for p in params), sum(int(p.numel()) * p.element_size() for p in params)


def constructor_kwargs(interp: Interpreter, ucls: UserClass, settings) -> dict:
    """Keyword arguments for constructing a root: ``settings.args`` where they fit, and a default
    instance of the file's config dataclass for a required parameter annotated with it."""
    args = dict(settings.args or {})
    _, init = ucls.lookup("__init__")
    if not isinstance(init, UserFunction):
        return args
    a = init.node.args
    positional = positional_params(a)
    params = {p.arg for p in positional[1:] + a.kwonlyargs}
    kwargs = args if args and (a.kwarg is not None or set(args) <= params) else {}
    if args and not kwargs:
        kwargs = _args_through_config(interp, ucls, positional[1:] + a.kwonlyargs, args)
    for p in required_params(a):
        if p in positional[:1] or p.arg in kwargs or p.annotation is None:
            continue
        ann = p.annotation.value if isinstance(p.annotation, ast.Constant) else ast.unparse(p.annotation)
        ann = str(ann).strip("'\"")
        info = interp.index.classes.get(ann)
        if info is not None and (info.is_dataclass or info.is_namedtuple):
            kwargs[p.arg] = interp.instantiate(interp.user_class(ann), [], {}, p)
    return kwargs


_CONFIG_PARAMS = ("config", "cfg", "conf", "args", "hparams", "params", "model_config")


def _args_through_config(interp: Interpreter, ucls: UserClass, params: list, args: dict) -> dict:
    """``--args`` naming fields of the file's config class rather than constructor parameters
    (``GPT(config)`` with ``--args '{"n_layer": 4}'``): the config built with them, passed to the
    parameter that takes it.  Arguments that fit neither are an error, never silently dropped."""
    for p in params:
        ann = p.annotation
        ann_name = (ann.value if isinstance(ann, ast.Constant) else ast.unparse(ann)).strip("'\"") if ann else None
        candidates = [ann_name] if ann_name in interp.index.classes else (
            [n for n, c in interp.index.classes.items() if c.is_dataclass or c.is_namedtuple]
            if p.arg in _CONFIG_PARAMS else [])
        for cname in candidates:
            ucls_cfg = interp.user_class(cname)
            interp.class_attrs(ucls_cfg)
            if ucls_cfg.fields and set(args) <= set(ucls_cfg.fields):
                return {p.arg: interp.instantiate(ucls_cfg, [], dict(args), p)}
    names = ", ".join(p.arg for p in params) or "none"
    raise ValueError(f"--args {', '.join(sorted(args))}: not parameters of {ucls.name}.__init__ ({names}) "
                     f"nor fields of a config class it takes")


def prepare_root(interp: Interpreter, name: str, settings):
    """Construct the module named ``name`` (a module class, or a factory function returning one).

    Returns (model or Unknown, user class of the model or None)."""
    index = interp.index
    rt = interp.rt
    if name in index.classes and index.classes[name].is_module:
        ucls = interp.user_class(name)
        cinfo = index.classes[name]
        with rt.source_location(interp.path, cinfo.lineno):
            model = interp.instantiate(ucls, [], constructor_kwargs(interp, ucls, settings), cinfo.node)
    elif name in index.functions:
        node = index.functions[name]
        fn = interp.global_lookup(name, node)
        with rt.source_location(interp.path, node.lineno):
            model = interp.call(fn, [], dict(settings.args or {}), None)
    else:
        raise LookupError(f"{interp.path}: no nn.Module class or function named `{name}`")
    if getattr(rt, "made_constants", False) and rt.is_module(model):
        _drop_constant_values(model, rt)
    return model, interp.user_class_of(model) if rt.is_module(model) else None


def _drop_constant_values(model, rt) -> None:
    """Values of constant tensors serve building the model (sizes computed with torch); the built model
    holds shape-only tensors, as it would without them, so its forward, backward and device moves never
    meet data (parameters, buffers and tensor attributes, in lists and tuples too)."""
    rt.made_constants = False
    tensor = rt.Tensor
    for m in model.modules():
        for store in (m._parameters, m._buffers):
            for t in store.values():
                if t is not None and t.data_ is not None:
                    t.data_ = None
        for v in m.__dict__.values():          # a module's every attribute: checks inlined
            kind = type(v)
            if kind is list or kind is tuple:
                for x in v:
                    if isinstance(x, tensor) and x.data_ is not None:
                        x.data_ = None
            elif isinstance(v, tensor) and v.data_ is not None:
                v.data_ = None


def forward_inputs(interp: Interpreter, model, ucls: UserClass, settings, target: str | None = None):
    """(specs or None, diagnostics, forward UserFunction or None) for a user module.

    Required inputs with no pragma, setting or example call are inferred from the layer that
    first consumes them (GX901 says so, with a fix inserting the assumed pragma); so is the first
    input of a forward whose inputs all default to None (``forward(self, input_ids=None, ...)``),
    which otherwise runs with none.  ``target``: the class or factory function of the analysed file
    that gave ``model``, where the pragma may also sit (and the note goes) when the forward is
    defined in another file."""
    _, fwd = ucls.lookup("forward")
    if not isinstance(fwd, UserFunction) or not isinstance(fwd.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None, [], None
    fn_index = fwd.interp.index
    anchor = None
    if fn_index is not interp.index and target is not None:
        anchor = interp.index.classes[target].node if target in interp.index.classes else \
            interp.index.functions.get(target)
    found = discover_inputs(interp.index, ucls.name, fwd.node, settings, fn_index, anchor)
    diags = list(found.diagnostics)
    if found.fatal:
        return None, diags, fwd
    if not found.missing:
        return found.specs, diags, fwd
    lookup = _ConsumerLookup(interp)
    try:
        assumed = infer_from_consumers(fwd.node, found.missing, model, lookup)
    except Exception:                           # a guess that fails is no guess (GX901 says so)
        assumed = None
    if assumed and found.optional:              # the other inputs it raises without (a decoder's ids)
        try:
            assumed += needed_optional_inputs(fwd.node, [s.name for s in assumed], model, lookup)
        except Exception:
            pass
    note_index = interp.index if anchor is not None else fn_index
    missing = found.missing + [s.name for s in assumed or () if s.name not in found.missing]
    diags.append(missing_input_note(note_index, ucls.name, fwd.node, missing, assumed, anchor))
    if not assumed:
        return (found.specs if found.optional else None), diags, fwd
    names, _, _ = forward_params(fwd.node)
    merged = {s.name: s for s in found.specs}
    merged.update({s.name: s for s in assumed})
    return [merged[n] for n in names if n in merged], diags, fwd


class _ConsumerLookup(ConsumerLookup):
    """The built model, as inference from the first consumer sees it."""

    def __init__(self, interp: Interpreter):
        self.interp = interp

    def submodule(self, owner, path: list[str]):
        val = owner
        for attr in path:
            val, reason = self.interp.lookup_attr(val, attr)
            if reason is not None:
                return None
        return val if self.interp.rt.is_module(val) else None

    def method(self, owner, name: str):
        ucls = self.interp.user_class_of(owner)
        if ucls is None:
            return None
        _, f = ucls.lookup(name)
        if isinstance(f, UserFunction) and f.kind == "function" and \
                isinstance(f.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return f.node
        return None


class ForwardRun:
    """``run_forward(inputs)``: ``model(**inputs)`` under the interpreter (facts, cut tracking).

    After a run, ``flowing`` holds the cut sites that reach the output and ``reached`` the
    parameter names the output depends on; ``finish(reached_names)`` turns them into GradCuts."""

    def __init__(self, interp: Interpreter, model, inputs: dict, fwd: UserFunction):
        self.interp = interp
        self.model = model
        self.inputs = inputs
        self.fwd = fwd
        self.flowing: set = set()
        self.reached: set[str] | None = None

    def __call__(self, inputs: dict | None = None, **kwargs):
        interp = self.interp
        if inputs is None and not kwargs:
            kwargs = dict(self.inputs)
        elif inputs is not None:
            kwargs = {**inputs, **kwargs}
        try:
            with interp.rt.source_location(interp.path, self.fwd.node.lineno):
                out = interp.call(self.model, [], kwargs, self.fwd.node)
        except Budget:
            out = Unknown("analysis budget exhausted")
        del kwargs
        if interp.cuts.sites:
            outputs = list(_tensors_in(out, interp.rt))
            for t in outputs:
                self.flowing |= interp.cuts.sites_of(t)
            if self.flowing:        # else finish has nothing to report: no walk of the whole graph
                names = _param_names(self.model)
                reach: set[int] = set()
                for t in outputs:
                    reach |= upstream_params(t, interp.rt)
                self.reached = {names[p] for p in reach if p in names}
            del outputs
        return out

    def finish(self, reached_names: set[str] | None = None) -> None:
        """GradCuts for the cut sites that flowed into the output."""
        interp = self.interp
        if not self.flowing:
            return
        reached = reached_names if reached_names is not None else (self.reached or set())
        names = _param_names(self.model)
        order = {n: i for i, n in enumerate(names.values())}
        existing = {(g.kind, g.span.line, g.span.col) for g in interp.analysis.grad_cuts}
        for key in sorted(self.flowing, key=lambda k: (k[1], k[2])):
            site = interp.cuts.sites[key]
            cut = sorted({names[p] for p in site["upstream"] if p in names and names[p] not in reached},
                         key=order.__getitem__)
            if cut and key not in existing:
                interp.analysis.grad_cuts.append(GradCut(kind=site["kind"], span=site["span"], cut_params=cut))


def analyze_root(interp: Interpreter, cinfo, settings):
    """Construct one root class, run its forward (in a training step), return its ClassSummary."""
    interp.steps = 0
    try:
        with paused_gc():
            return _analyze_root(interp, cinfo, settings)
    except Budget:
        return None


def _analyze_root(interp: Interpreter, cinfo, settings):
    rt = interp.rt
    model, ucls = prepare_root(interp, cinfo.name, settings)
    if ucls is None:
        return None
    count, nbytes = param_stats(model)
    summary = ClassSummary(name=cinfo.name, line=cinfo.lineno, params=count, param_bytes=nbytes,
                           peak_bytes=0, activations_saved_bytes=0)
    specs, diags, fwd = forward_inputs(interp, model, ucls, settings, cinfo.name)
    interp.analysis.diagnostics.extend(diags)
    if specs is None or fwd is None:
        return summary
    with rt.source_location(interp.path, fwd.node.lineno):
        inputs = make_input_tensors(specs, settings, rt)
    summary.inputs = {s.name: (s.shape_text(), s.dtype) for s in specs if s.dims is not None}
    run_forward = ForwardRun(interp, model, inputs, fwd)
    try:
        # the analysis reports totals, peaks and per-line facts: no allocation timeline (plots need it)
        step = simulate_training_step(model, inputs, run_forward, settings, timeline=False)
    except Exception as e:
        interp.unknown(f"training step failed: {type(e).__name__}: {e}", fwd.node)
        step = None
    del inputs
    run_forward.inputs = None
    run_forward.finish(step.reached_params if step is not None else None)
    if step is not None:
        add_step_facts(interp.analysis, step, interp.path)
        summary.peak_bytes = int(step.peak_bytes)
        summary.activations_saved_bytes = int(step.activations_saved_bytes)
    return summary
