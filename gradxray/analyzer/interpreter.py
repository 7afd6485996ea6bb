"""The abstract interpreter: evaluates a file's Python over abstract values.

It walks the ``ast`` of ``__init__``, ``forward`` and whatever they call, with
Python's own semantics where values are known (constants, containers, sizes,
engine tensors and modules) and ``Unknown`` where they are not.  Every torch
call is executed by the engine (shape backend), so the engine builds the same
autograd graph, with the same saved tensors, as PyTorch would.

Conventions
* Never raises on user code: an error in one statement makes its result
  ``Unknown`` and is recorded as ``Unresolved(file, line, reason)``.
* ``Unknown`` is recorded where it is *created*; operations on an Unknown
  propagate it silently (one record per place precision was lost).
* References: a call frame's variables are dropped when the call returns, and
  facts hold text and ints only, so the interpreter keeps tensors alive no
  longer than CPython would (the engine measures memory by reference counts).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import itertools
import operator
import os
import types
import weakref
from typing import Any

from gradxray.engine.symbolic import sym_text

from .inputs import discover_inputs, forward_params, infer_from_consumers, make_input_tensors, missing_input_note
from .line_facts import add_step_facts
from .project import ModuleIndex, import_bindings, is_source_resolvable, positional_params, required_params
from .results import Analysis, ClassSummary, GradCut, LineFact, Span, TensorFact, Unresolved
from .torch_api import Runtime, upstream_params
from .training_step import simulate_training_step
from .values import (
    BoundMethod, Builtin, FieldDefault, Marker, Namespace, SuperProxy, Transparent, Unknown, UserClass,
    UserFunction, UserInstance, first_unknown, interpreted_module_base, make_module_class,
)

MAX_LOOP = 100_000
MAX_WHILE = 10_000
MAX_DEPTH = 120
MAX_STEPS = 300_000          # statements interpreted per root (construction + forward)


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
    def __init__(self, node):
        self.node = node


class Budget(_Flow):
    """The analysis of one root ran too many statements: it stops (recorded), the rest goes on."""


class Scope:
    """Variables of one frame; ``parent`` is the enclosing function scope (closures)."""

    __slots__ = ("vars", "parent", "captured")

    def __init__(self, vars: dict | None = None, parent: "Scope | None" = None):
        self.vars = {} if vars is None else vars
        self.parent = parent
        self.captured = False       # a closure (nested def / lambda) refers to this scope


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
    def __init__(self, index: ModuleIndex, runtime: Runtime, analysis: Analysis, settings):
        self.index = index
        self.rt = runtime
        self.analysis = analysis
        self.settings = settings
        self.path = index.path
        self._globals: dict[str, Any] = {}
        self._globals_busy: set[str] = set()
        self._classes: dict[str, UserClass] = {}
        self._seen_unresolved: set[tuple] = {(u.file, u.line, u.reason) for u in analysis.unresolved}
        self.frames: list[tuple[UserFunction, Scope]] = []
        self.forward_depth = 0
        self.steps = 0
        self.cuts = CutTracker(runtime)
        self._module_base = interpreted_module_base(runtime.Module)
        runtime.target_device = settings.device

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
            self.analysis.unresolved.append(Unresolved(self.path, sp.line, reason))
        return Unknown(reason, sp)

    def record_facts(self, stmt, pairs) -> None:
        """Per-line facts for the tensors among ``pairs`` of (target expression, value).  The first run
        of a line records them (naming each by its source text), later runs count calls."""
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
        idx = self.index
        if name in idx.classes:
            val = self.user_class(name)
        elif name in idx.functions:
            val = self.make_function(idx.functions[name], None, None)
        elif name in idx.imports:
            val = self.resolve_import(idx.imports[name], node)
            if isinstance(val, Unknown):
                return val                      # not cached: each use site is recorded
        elif name in idx.assigns:
            if name in self._globals_busy:
                return self.unknown(f"`{name}` is defined in terms of itself", node)
            self._globals_busy.add(name)
            try:
                val = self.eval(idx.assigns[name], None)
            finally:
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

    def resolve_import(self, dotted: str, node):
        if dotted in _KNOWN_IMPORTS:
            return _KNOWN_IMPORTS[dotted]
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

    # ------------------------------------------------------------------------------------------
    # classes and functions

    def user_class(self, name: str) -> UserClass:
        if name in self._classes:
            return self._classes[name]
        info = self.index.classes[name]
        bases = []
        for b in info.bases:
            if b in self.index.classes and b != name:
                bases.append(self.user_class(b))
            elif b.startswith("torch.nn."):
                val, _ = self.rt.resolve_import(b)
                if isinstance(val, type):
                    bases.append(val)
        ucls = UserClass(self, info, bases)
        self._classes[name] = ucls
        if info.is_module:
            host = [b for b in ucls.host_bases() if isinstance(b, type) and issubclass(b, self.rt.Module)
                    and b is not self.rt.Module]
            ucls.py_class = make_module_class(ucls, self._module_base, host)
        return ucls

    def class_attrs(self, ucls: UserClass) -> dict:
        if ucls.attrs is not None:
            return ucls.attrs
        attrs: dict[str, Any] = {}
        ucls.attrs = attrs
        fields: list[str] = []
        for base in ucls.bases:
            if isinstance(base, UserClass):
                self.class_attrs(base)
                for f in base.fields:
                    if f not in fields:
                        fields.append(f)
        cscope = Scope(attrs, None)
        for item in ucls.info.node.body:
            try:
                with self.rt.source_location(self.path, item.lineno):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        fn = self.make_function(item, None, ucls)
                        if fn.kind != "setter":
                            attrs[item.name] = fn
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
        ucls.fields = fields
        return attrs

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
            elif dv is builtins.property:
                fn.kind = "property"
            elif isinstance(dv, Unknown):
                continue
            elif hasattr(dv, "__enter__") and hasattr(dv, "__exit__"):
                fn.context_decorators.append(dv)      # @torch.no_grad()
            elif isinstance(dv, (Marker, Transparent)):
                continue
            else:
                self.unknown(f"decorator `{ast.unparse(dec)}` is ignored", dec)
        return fn

    # ------------------------------------------------------------------------------------------
    # calls

    def call_function(self, fn: UserFunction, args: list, kwargs: dict, node, is_forward: bool = False):
        if fn.interp is not self:       # defined in another file: its names resolve (and are recorded) there
            return fn.interp.call_function(fn, args, kwargs, None, is_forward)
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
        try:
            with contextlib.ExitStack() as stack:
                for cm in fn.context_decorators:
                    stack.enter_context(cm)
                if isinstance(fnode, ast.Lambda):
                    return self.eval(fnode.body, scope)
                self.exec_block(fnode.body, scope)
                return None
        except _Return as r:
            return r.value
        except _Raise as r:
            return self.unknown(f"reached `{ast.unparse(r.node)}`", r.node)
        except (_Break, _Continue):
            return None
        finally:
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
        if fn.defaults_cache is None:
            defaults = {}
            pos_defaults = a.defaults
            for p, d in zip(positional[len(positional) - len(pos_defaults):], pos_defaults):
                defaults[p.arg] = self.eval(d, fn.scope)
            for p, d in zip(a.kwonlyargs, a.kw_defaults):
                if d is not None:
                    defaults[p.arg] = self.eval(d, fn.scope)
            fn.defaults_cache = defaults
        defaults = fn.defaults_cache
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
        if isinstance(callee, Unknown):
            return callee
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
        if isinstance(callee, Marker):
            return callee
        if isinstance(callee, UserInstance):
            _, dunder_call = callee.cls.lookup("__call__")
            if isinstance(dunder_call, UserFunction):
                return self.call_function(dunder_call, [callee, *args], kwargs, node)
        if isinstance(callee, (Namespace, UserInstance, SuperProxy)) or not callable(callee):
            text = ast.unparse(node.func) if isinstance(node, ast.Call) else repr(callee)
            return self.unknown(f"`{text}` is not callable", node)
        # a host callable: engine function, tensor method, engine module, Python builtin
        container_safe = any(callee is c for c in _CONTAINER_SAFE) or isinstance(
            getattr(callee, "__self__", None), (list, dict, set))
        if any(callee is c for c in _CONSUMERS) and any(
                isinstance(a, range) and len(a) > MAX_LOOP for a in args):
            return self.unknown(f"iterating over more than {MAX_LOOP} items is not supported", node)
        if not container_safe:
            unk = first_unknown(args)
            if unk is None:
                unk = first_unknown(kwargs.values())
            if unk is not None:
                return unk
        if method_name in ("detach", "detach_") and self.rt.is_tensor(receiver):
            key = self.cuts.record("detach", receiver, self.span(node))
            sites = self.cuts.sources([receiver]) | {key}
        else:
            sites = self.cuts.sources([receiver, *args, *kwargs.values()])
        try:
            result = callee(*args, **kwargs)
        except _Flow:
            raise
        except RecursionError:
            return self.unknown("recursion limit reached", node)
        except Exception as e:
            name = ast.unparse(node.func) if isinstance(node, ast.Call) else getattr(
                callee, "__name__", type(callee).__name__)
            return self.unknown(f"`{name}(...)` failed: {type(e).__name__}: {e}", node)
        if isinstance(result, types.ModuleType):
            return self.unknown("call returned a module", node)
        if sites:
            self.cuts.propagate(sites, result)
        return result

    def instantiate(self, ucls: UserClass, args: list, kwargs: dict, node):
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
                    if isinstance(r, Unknown):
                        return r
            return obj
        inst = UserInstance(ucls)
        self.class_attrs(ucls)                # builds ucls.fields
        owner, init = ucls.lookup("__init__")
        if isinstance(init, UserFunction):
            self.call_function(init, [inst, *args], kwargs, node)
            return inst
        if any(c.info.is_dataclass or c.info.is_namedtuple for c in ucls.mro()):
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
            _, post = ucls.lookup("__post_init__")
            if isinstance(post, UserFunction):
                self.call_function(post, [inst], {}, node)
        return inst

    def _host_super_attr(self, obj, name: str):
        """``super().name`` past the user classes: the engine base class's attribute, bound."""
        if not self.rt.is_module(obj):
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
        if isinstance(obj, Namespace):
            return self.rt.namespace_attr(obj, name)
        if name == "__class__":
            ucls = self.user_class_of(obj)
            if ucls is not None:
                return ucls, None
        if self.is_user_module(obj):
            d = obj.__dict__
            if name in d and not name.startswith("_gx"):
                return d[name], None
            try:
                return self.rt.Module.__getattr__(obj, name), None      # parameters, buffers, submodules
            except AttributeError:
                pass
            ucls = type(obj)._gx_user_class
            owner, raw = ucls.lookup(name)
            if owner is not None:
                return self._bind_class_attr(raw, obj, ucls, owner), None
            return self.rt.safe_attr(obj, name)
        if isinstance(obj, UserInstance):
            if name in obj.fields:
                return obj.fields[name], None
            owner, raw = obj.cls.lookup(name)
            if owner is not None:
                return self._bind_class_attr(raw, obj, obj.cls, owner), None
            return None, f"`{obj.cls.name}` has no attribute `{name}`"
        if isinstance(obj, UserClass):
            if name == "__name__":
                return obj.name, None
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
            host = self._host_super_attr(obj.receiver, name)
            if host is not None:
                return host, None
            return None, f"`super().{name}` is not resolved"
        if isinstance(obj, (UserFunction, BoundMethod, Builtin)):
            return None, f"attribute `{name}` of a function is not supported"
        if isinstance(obj, Marker):
            return obj, None
        return self.rt.safe_attr(obj, name)

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
        if isinstance(obj, Unknown):
            return obj
        if name == "data" and self.rt.is_tensor(obj):
            # `.data` is a detached alias of the same storage, what `.detach()` gives: a gradient cut
            key = self.cuts.record("data", obj, self.span(node))
            val = obj.detach()
            self.cuts.tag(val, self.cuts.sources([obj]) | {key})
            return val
        val, reason = self.lookup_attr(obj, name)
        if reason is not None:
            return self.unknown(reason, node)
        return val

    def set_attr(self, obj, name: str, value, node) -> None:
        if isinstance(obj, Unknown):
            return
        if name.startswith("__") and name.endswith("__"):
            self.unknown(f"setting `{name}` is not supported", node)
            return
        if isinstance(obj, UserInstance):
            obj.fields[name] = value
            return
        if isinstance(obj, UserClass):
            self.class_attrs(obj)[name] = value
            return
        if not self.is_user_module(obj) and name.startswith("_"):
            self.unknown(f"setting private attribute `{name}` is not supported", node)
            return
        if isinstance(obj, (Namespace, Marker, UserFunction, BoundMethod, Builtin, SuperProxy)):
            self.unknown(f"cannot set `{name}` here", node)
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
        method = getattr(self, "exec_" + type(stmt).__name__, None)
        if method is None:
            self.unknown(f"unsupported statement `{type(stmt).__name__}`", stmt)
            return
        try:
            with self.rt.source_location(self.path, stmt.lineno):
                method(stmt, scope)
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
        raise _Raise(stmt)

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
        it = self.eval(stmt.iter, scope)
        items = self.iterate(it, stmt.iter, lazy=True)
        if items is None:
            return
        broke = False
        n = 0
        for item in items:
            n += 1
            if n > MAX_LOOP:
                self.unknown(f"loop stopped after {MAX_LOOP} iterations", stmt)
                break
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
        with contextlib.ExitStack() as stack:
            for item in stmt.items:
                expr = item.context_expr
                cm = self.eval(expr, scope)
                entered: Any = None
                if isinstance(cm, Unknown):
                    entered = cm
                elif isinstance(cm, UserInstance) and isinstance(enter := cm.cls.lookup("__enter__")[1], UserFunction):
                    exit_ = cm.cls.lookup("__exit__")[1]
                    entered = self.call_function(enter, [cm], {}, expr)
                    if isinstance(exit_, UserFunction):
                        stack.callback(self.call_function, exit_, [cm, None, None, None], {}, expr)
                elif hasattr(cm, "__enter__") and hasattr(cm, "__exit__"):
                    try:
                        entered = stack.enter_context(cm)
                    except Exception as e:
                        entered = self.unknown(f"entering `{ast.unparse(expr)}` failed: {e}", expr)
                else:
                    entered = self.unknown(f"context manager `{ast.unparse(expr)}` is not supported", expr)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, entered, scope, stmt)
            self.exec_block(stmt.body, scope)

    exec_AsyncWith = exec_With

    def exec_Try(self, stmt, scope):
        try:
            self.exec_block(stmt.body, scope)
        except _Raise:
            if stmt.handlers:
                h = stmt.handlers[0]
                if h.name:
                    scope.vars[h.name] = self.unknown("caught exception", h)
                self.exec_block(h.body, scope)
        else:
            self.exec_block(stmt.orelse, scope)
        finally:
            self.exec_block(stmt.finalbody, scope)

    exec_TryStar = exec_Try

    def exec_FunctionDef(self, stmt, scope):
        scope.vars[stmt.name] = self.make_function(stmt, scope, None)

    exec_AsyncFunctionDef = exec_FunctionDef

    def exec_ClassDef(self, stmt, scope):
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
                if isinstance(obj, (list, dict)) and not isinstance(idx, Unknown):
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
            if isinstance(value, Unknown):
                items = None
            else:
                items = self.iterate(value, target, quiet=True)
                if items is not None:
                    items = list(items)
            star = next((i for i, e in enumerate(elts) if isinstance(e, ast.Starred)), None)
            if items is None:
                unk = value if isinstance(value, Unknown) else self.unknown(
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
        if isinstance(obj, Unknown) or isinstance(idx, Unknown):
            return
        if isinstance(obj, (UserInstance, UserClass, Namespace, UserFunction, BoundMethod)):
            self.unknown("item assignment on this value is not supported", node)
            return
        sites = self.cuts.sources([value])
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
        if isinstance(it, Unknown):
            return None
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
        if isinstance(v, Unknown):
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
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            return self.unknown(f"unsupported expression `{type(node).__name__}`", node)
        return method(node, scope)

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
        if isinstance(f, ast.Attribute):
            receiver = self.eval(f.value, scope)
            if isinstance(receiver, Unknown):
                return receiver
            method_name = f.attr
            callee = self.get_attr(receiver, f.attr, f)
        else:
            callee = self.eval(f, scope)
        if isinstance(callee, Unknown):
            return callee
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                v = self.eval(a.value, scope)
                if isinstance(v, Unknown):
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
                if isinstance(v, Unknown):
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
        if isinstance(left, Unknown):
            return left
        if isinstance(right, Unknown):
            return right
        if _too_big(op, left, right):
            return self.unknown(f"`{ast.unparse(node)}` would be too large to compute", node)
        sites = self.cuts.sources([left, right])
        try:
            result = op(left, right)
        except Exception as e:
            return self.unknown(f"`{ast.unparse(node)}` failed: {type(e).__name__}: {e}", node)
        if sites:
            self.cuts.propagate(sites, result)
        return result

    def eval_UnaryOp(self, node, scope):
        v = self.eval(node.operand, scope)
        if isinstance(v, Unknown):
            return v
        if isinstance(node.op, ast.Not):
            t = self.truth(v)
            if t is None:
                return self.unknown(f"truth value of `{ast.unparse(node.operand)}` is not known", node)
            return not t
        sites = self.cuts.sources([v])
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
                return v if isinstance(v, Unknown) else self.unknown(
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
            if isinstance(left, Unknown):
                return left
            if isinstance(right, Unknown):
                return right
            if isinstance(op, (ast.Is, ast.IsNot)):
                r = left is right
                if isinstance(op, ast.IsNot):
                    r = not r
            else:
                if isinstance(op, (ast.In, ast.NotIn)) and first_unknown([right]) is not None:
                    return first_unknown([right])
                try:
                    r = _CMPOPS[type(op)](left, right)
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
        if isinstance(obj, Unknown):
            return obj
        idx = self.eval_index(node.slice, scope)
        return self.subscript(obj, idx, node)

    def subscript(self, obj, idx, node):
        if isinstance(obj, Unknown):
            return obj
        if isinstance(idx, Unknown):
            return idx
        if isinstance(obj, Marker):
            return obj
        if isinstance(obj, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin)):
            return self.unknown(f"`{ast.unparse(node)}`: indexing this value is not supported", node)
        sites = self.cuts.sources([obj])
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
                    return v if isinstance(v, Unknown) else self.unknown(f"cannot expand `*{ast.unparse(e.value)}`", e)
                out.extend(items)
            else:
                out.append(self.eval(e, scope))
        return out

    def eval_Tuple(self, node, scope):
        out = self._elements(node.elts, scope)
        return out if isinstance(out, Unknown) else tuple(out)

    def eval_List(self, node, scope):
        return self._elements(node.elts, scope)

    def eval_Set(self, node, scope):
        out = self._elements(node.elts, scope)
        if isinstance(out, Unknown):
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
                    return d if isinstance(d, Unknown) else self.unknown(f"cannot expand `**{ast.unparse(v)}`", v)
                out.update(d)
                continue
            kv = self.eval(k, scope)
            if isinstance(kv, Unknown):
                return kv
            try:
                out[kv] = self.eval(v, scope)
            except TypeError as e:
                return self.unknown(f"dict key: {e}", k)
        return out

    def _comprehension(self, node, scope, emit):
        cscope = Scope({}, scope)

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

        ok = run(0)
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
        if isinstance(out, Unknown):
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
        if isinstance(it, Unknown):
            return it
        return self.unknown(f"cannot evaluate `{ast.unparse(node)}`", node)

    def eval_Lambda(self, node, scope):
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
            if isinstance(val, Unknown):
                return val
            if isinstance(val, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace)):
                val = repr(val)
            spec = ""
            if v.format_spec is not None:
                spec = self.eval_JoinedStr(v.format_spec, scope)
                if isinstance(spec, Unknown):
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
        return self.unknown("generators (`yield`) are not supported", node)

    eval_YieldFrom = eval_Yield


_CONSUMERS = (list, tuple, set, frozenset, dict, sorted, sum, min, max, any, all)


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
        return None
    if isinstance(cls, type):
        if isinstance(obj, (UserInstance, UserClass, UserFunction, BoundMethod, Namespace, Builtin)):
            return cls is object
        return isinstance(obj, cls)
    return None


def _bi_isinstance(it: Interpreter, node, args, kwargs):
    if len(args) != 2:
        return it.unknown("isinstance() takes 2 arguments", node)
    obj, classinfo = args
    if isinstance(obj, Unknown):
        return obj
    if isinstance(classinfo, Unknown):
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
    if isinstance(obj, Unknown):
        return obj
    if not isinstance(name, str):
        return name if isinstance(name, Unknown) else it.unknown("getattr() name must be a string", node)
    val, reason = it.lookup_attr(obj, name)
    if reason is None:
        return val
    if len(args) == 3:
        return args[2]
    return it.unknown(reason, node)


def _bi_hasattr(it: Interpreter, node, args, kwargs):
    obj, name = args[0], args[1]
    if isinstance(obj, Unknown):
        return obj
    if not isinstance(name, str):
        return it.unknown("hasattr() name must be a string", node)
    val, reason = it.lookup_attr(obj, name)
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
    if isinstance(obj, Unknown):
        return obj
    ucls = it.user_class_of(obj)
    return ucls if ucls is not None else type(obj)


def _bi_field(it: Interpreter, node, args, kwargs):
    if "default_factory" in kwargs:
        return FieldDefault(factory=kwargs["default_factory"])
    if "default" in kwargs:
        return FieldDefault(default=kwargs["default"], has_default=True)
    return FieldDefault()


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
}

_NOOP = Builtin("noop", lambda *a: None)

# non-torch import targets with a meaning at analysis time
_DATACLASS = Marker("dataclass")
_FIELD = Builtin("field", _bi_field)
_KNOWN_IMPORTS: dict[str, Any] = {
    "dataclasses": Namespace("dataclasses", types.SimpleNamespace(dataclass=_DATACLASS, field=_FIELD)),
    "dataclasses.dataclass": _DATACLASS,
    "dataclasses.field": _FIELD,
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
    for p in required_params(a):
        if p in positional[:1] or p.arg in kwargs or p.annotation is None:
            continue
        ann = p.annotation.value if isinstance(p.annotation, ast.Constant) else ast.unparse(p.annotation)
        ann = str(ann).strip("'\"")
        info = interp.index.classes.get(ann)
        if info is not None and (info.is_dataclass or info.is_namedtuple):
            kwargs[p.arg] = interp.instantiate(interp.user_class(ann), [], {}, p)
    return kwargs


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
    return model, interp.user_class_of(model) if rt.is_module(model) else None


def forward_inputs(interp: Interpreter, model, ucls: UserClass, settings):
    """(specs or None, diagnostics, forward UserFunction or None) for a user module.

    Required inputs with no pragma, setting or example call are inferred from the layer that
    first consumes them (GX901 says so, with a fix inserting the assumed pragma)."""
    _, fwd = ucls.lookup("forward")
    if not isinstance(fwd, UserFunction) or not isinstance(fwd.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None, [], None
    found = discover_inputs(interp.index, ucls.name, fwd.node, settings)
    diags = list(found.diagnostics)
    if found.fatal:
        return None, diags, fwd
    if not found.missing:
        return found.specs, diags, fwd

    def resolver_for(obj):
        def submodule(path):
            val = obj
            for attr in path:
                val, reason = interp.lookup_attr(val, attr)
                if reason is not None:
                    return None
            return val if interp.rt.is_module(val) else None
        return submodule

    def user_forward(obj):
        ucls = interp.user_class_of(obj)
        if ucls is None:
            return None
        _, f = ucls.lookup("forward")
        return (f.node, resolver_for(obj)) if isinstance(f, UserFunction) else None

    try:
        assumed = infer_from_consumers(fwd.node, found.missing, resolver_for(model), user_forward)
    except Exception:
        assumed = None
    diags.append(missing_input_note(interp.index, ucls.name, fwd.node, found.missing, assumed))
    if not assumed:
        return None, diags, fwd
    names, _, _ = forward_params(fwd.node)
    merged = {s.name: s for s in found.specs}
    merged.update({s.name: s for s in assumed})
    return [merged[n] for n in names if n in merged], diags, fwd


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
            names = _param_names(self.model)
            reach: set[int] = set()
            for t in _tensors_in(out, interp.rt):
                self.flowing |= interp.cuts.sites_of(t)
                reach |= upstream_params(t, interp.rt)
            self.reached = {names[p] for p in reach if p in names}
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
    # The trace makes many short-lived objects and no reference cycles that its results depend on
    # (storages are released by reference counting, which is what the memory numbers mirror), so the
    # cyclic collector's passes during it are pure cost: it runs again once the trace is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _analyze_root(interp, cinfo, settings)
    except Budget:
        return None
    finally:
        if collecting:
            gc.enable()


def _analyze_root(interp: Interpreter, cinfo, settings):
    rt = interp.rt
    model, ucls = prepare_root(interp, cinfo.name, settings)
    if ucls is None:
        return None
    count, nbytes = param_stats(model)
    summary = ClassSummary(name=cinfo.name, line=cinfo.lineno, params=count, param_bytes=nbytes,
                           peak_bytes=0, activations_saved_bytes=0)
    specs, diags, fwd = forward_inputs(interp, model, ucls, settings)
    interp.analysis.diagnostics.extend(diags)
    if specs is None or fwd is None:
        return summary
    with rt.source_location(interp.path, fwd.node.lineno):
        inputs = make_input_tensors(specs, settings, rt)
    summary.inputs = {s.name: (s.shape_text(), s.dtype) for s in specs if s.dims is not None}
    run_forward = ForwardRun(interp, model, inputs, fwd)
    try:
        step = simulate_training_step(model, inputs, run_forward, settings)
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
