"""Abstract values of the interpreter.

Everything the interpreter computes is one of:

* a plain Python value (int, float, str, None, tuple, list, dict, slice, and
  ``SymInt`` sizes) or an engine object (tensor, dtype, device, engine module,
  context manager) — "host values", operated on with ordinary Python semantics;
* ``UserClass`` / ``UserInstance`` — a class of the analysed file and an
  instance of a non-module class (config dataclasses, plain objects);
* ``InterpretedModule`` instances — user ``nn.Module`` subclasses: real
  subclasses of the engine's ``Module`` whose ``forward`` runs the interpreter;
* ``UserFunction`` / ``BoundMethod`` — functions of the file (callable from
  Python too, so the engine can call them back: ``Module.apply(fn)``,
  ``checkpoint(fn, x)``);
* ``Unknown`` — anything the interpreter cannot resolve, with a reason and the
  span where precision was lost.  Contagious, never fatal.
"""
from __future__ import annotations

from typing import Any

from .results import Span


class Unknown:
    """A value the interpreter could not resolve.  Never subclassed: the interpreter tests values with
    ``type(v) is Unknown``, which costs less than isinstance on every argument of every call."""

    __slots__ = ("reason", "span")

    def __init__(self, reason: str, span: Span | None = None):
        self.reason = reason
        self.span = span

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"

    def __bool__(self):  # a guard against accidental truth tests inside the analyzer
        raise TypeError("truth value of an Unknown is not known")


def first_unknown(values) -> Unknown | None:
    """The first Unknown among values (looking one level into tuples/lists/dicts)."""
    # Unknown has no subclasses: an identity test of the type (every call's arguments pass here)
    for v in values:
        kind = type(v)
        if kind is Unknown:
            return v
        if kind is tuple or kind is list or (kind is not dict and isinstance(v, (tuple, list))):
            for x in v:
                if type(x) is Unknown:
                    return x
        elif isinstance(v, dict):
            for x in v.values():
                if type(x) is Unknown:
                    return x
    return None


class UserFunction:
    """A function (or method, or lambda) defined in the analysed source."""

    def __init__(self, interp, node, scope, owner=None, name: str | None = None):
        self.interp = interp
        self.node = node                    # ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        self.scope = scope                  # the enclosing Scope (closures; module scope at top level)
        self.owner = owner                  # the UserClass that defines it (methods), for super()
        self.name = name or getattr(node, "name", "<lambda>")
        self.kind = "function"              # "function" | "staticmethod" | "classmethod" | "property"
        self.context_decorators: list = []  # e.g. torch.no_grad() used as a decorator
        self.defaults_cache: dict | None = None     # parameter defaults, evaluated once
        self.free_names: set[str] | None = None     # names its nested functions use (kept on return)
        self.setter: "UserFunction | None" = None   # a property's `@name.setter` function
        # a source decorator's wrapper (``def wrapper(*a, **k): ... return f(*a, **k)``) that calls go
        # to, and the function as it was before that decorator (what the wrapper calls); see
        # Interpreter.call_wrapped.  ``wrapper_skipped``: the wrapper could not be followed once, so calls
        # go straight to ``inner`` since
        self.wrapper: "UserFunction | None" = None
        self.inner: "UserFunction | None" = None
        self.wrapper_skipped = False

    def __repr__(self) -> str:
        return f"<function {self.name}>"

    def __call__(self, *args, **kwargs):    # called back from engine code
        return self.interp.call_function(self, list(args), kwargs, None)

    @property
    def __name__(self):
        return self.name


class BoundMethod:
    def __init__(self, func: UserFunction, receiver):
        self.func = func
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"<bound method {self.func.name}>"

    def __call__(self, *args, **kwargs):
        return self.func.interp.call_function(self.func, [self.receiver, *args], kwargs, None)

    @property
    def __name__(self):
        return self.func.name


class UserClass:
    """A class of the analysed file."""

    def __init__(self, interp, info, bases: list):
        self.interp = interp
        self.info = info                    # project.ClassInfo
        self.name = info.name
        self.bases = bases                  # UserClass and host classes (engine module classes)
        self.attrs: dict[str, Any] | None = None    # class-body namespace, built lazily
        self.fields: list[str] = []                 # dataclass / NamedTuple fields, in order (with attrs)
        self.py_class = None                # the InterpretedModule subclass for module classes

    def __repr__(self) -> str:
        return f"<class {self.name}>"

    def __call__(self, *args, **kwargs):    # called back from host code: defaultdict(Cfg), map(Cls, ...)
        return self.interp.instantiate(self, list(args), kwargs, None)

    @property
    def __name__(self):
        return self.name

    def mro(self) -> list["UserClass"]:
        out: list[UserClass] = []
        for cls in [self] + [b for base in self.bases if isinstance(base, UserClass) for b in base.mro()]:
            if cls not in out:
                out.append(cls)
        return out

    def host_bases(self) -> list:
        out = []
        for cls in self.mro():
            for b in cls.bases:
                if not isinstance(b, UserClass) and b not in out:
                    out.append(b)
        return out

    def lookup(self, name: str, after: "UserClass | None" = None):
        """(defining class, raw attribute) along the MRO, starting after ``after``."""
        chain = self.mro()
        if after is not None and after in chain:
            chain = chain[chain.index(after) + 1:]
        for cls in chain:
            attrs = cls.interp.class_attrs(cls)
            if name in attrs:
                return cls, attrs[name]
        return None, None

    def subclass_of(self, other: "UserClass") -> bool:
        return other in self.mro()


class UserInstance:
    """An instance of a non-module class of the file (config dataclass, plain object)."""

    def __init__(self, cls: UserClass):
        self.cls = cls
        self.fields: dict[str, Any] = {}
        self.mapping: dict | None = None     # the dict an instance of a dict subclass is

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{self.cls.name}({inner})"


class SuperProxy:
    def __init__(self, cls: UserClass, receiver):
        self.cls = cls
        self.receiver = receiver


class Builtin:
    """A Python builtin the interpreter implements itself (len, isinstance, getattr ...)."""

    def __init__(self, name: str, fn):
        self.name = name
        self.fn = fn                       # fn(interp, node, args, kwargs)

    def __repr__(self) -> str:
        return f"<builtin {self.name}>"


class Partial:
    """``functools.partial(func, *args, **keywords)`` over any callable the interpreter knows (a user
    class or function as well as an engine one): calling it calls ``func`` with the stored arguments
    first, as functools does."""

    def __init__(self, func, args: tuple, keywords: dict):
        self.func = func
        self.args = tuple(args)
        self.keywords = dict(keywords)

    def __repr__(self) -> str:
        return f"<partial {self.func!r}>"

    def __call__(self, *args, **kwargs):    # called back from engine code: Module.apply(partial(init, ...))
        return self.func(*self.args, *args, **{**self.keywords, **kwargs})


def _make_partial(interp, node, args, kwargs):
    if not args:
        return interp.unknown("`partial()` needs a callable", node)
    func, *rest = args
    if isinstance(func, Partial):            # partial(partial(f, a), b) flattens, as functools does
        return Partial(func.func, (*func.args, *rest), {**func.keywords, **kwargs})
    return Partial(func, tuple(rest), kwargs)


PARTIAL = Builtin("functools.partial", _make_partial)


class GeneratorContext:
    """The call ``f(*args, **kwargs)`` of a ``@contextlib.contextmanager`` generator function ``f``, not run
    yet: a ``with`` statement runs it, with its body at ``f``'s ``yield``."""

    def __init__(self, func, args: tuple, kwargs: dict):
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    def __repr__(self) -> str:
        return f"<context {self.func!r}>"

    @property
    def function(self):
        """The generator function that runs (that of a bound method too)."""
        return self.func.func if isinstance(self.func, BoundMethod) else self.func


def _contextmanager(interp, node, args, kwargs):
    if len(args) != 1 or kwargs:
        return interp.unknown("`contextmanager` takes one function", node)
    func = args[0]
    return Builtin(f"contextmanager({getattr(func, 'name', func)!r})",
                   lambda it, node, a, k: GeneratorContext(func, tuple(a), k))


CONTEXTMANAGER = Builtin("contextlib.contextmanager", _contextmanager)


class Marker:
    """Names with a special meaning at analysis time: dataclasses.dataclass, field, typing names."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Transparent:
    """A decorator or wrapper that does not change what a model computes (``torch.compile``,
    ``torch.jit.script``, ``functools.lru_cache``): ``f(x)`` is ``x``; called with options only,
    it is itself (``@torch.compile(mode=...)``); as a decorator it is skipped."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def __call__(self, *args, **kwargs):
        return args[0] if args else self


class FieldDefault:
    """``dataclasses.field(default=..., default_factory=...)``."""

    def __init__(self, default=None, factory=None, has_default=False):
        self.default = default
        self.factory = factory
        self.has_default = has_default


class Namespace:
    """A resolved import of a host module (``torch`` -> the engine, ``math``)."""

    def __init__(self, dotted: str, obj):
        self.dotted = dotted
        self.obj = obj

    def __repr__(self) -> str:
        return f"<module {self.dotted}>"


class ProjectModule:
    """The ``obj`` of a Namespace that is a project or package module read from source: its names are
    the analysis's own state of that file (any name it binds, private ones and ``__all__`` included),
    and setting one changes that state, never a real module."""

    def gx_member(self, name: str):          # -> (value, reason-if-missing)
        raise NotImplementedError

    def gx_set(self, name: str, value) -> str | None:     # -> reason-if-refused
        raise NotImplementedError

    def gx_lines(self) -> list[str] | None:              # the file's source lines
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# user nn.Module subclasses

_BASES: dict[type, type] = {}


def interpreted_module_base(module_cls: type) -> type:
    """The InterpretedModule class for an engine (``gx.nn.Module``)."""
    if module_cls in _BASES:
        return _BASES[module_cls]

    class InterpretedModule(module_cls):
        """A user nn.Module subclass: engine Module state, interpreted methods."""

        _gx_user_class: UserClass | None = None

        def forward(self, *args, **kwargs):
            ucls = type(self)._gx_user_class
            owner, fn = ucls.lookup("forward")
            if isinstance(fn, UserFunction):
                return fn.interp.call_function(fn, [self, *args], kwargs, None, is_forward=True)
            return super().forward(*args, **kwargs)

        def extra_repr(self) -> str:
            return ""

    InterpretedModule.__name__ = "InterpretedModule"
    InterpretedModule.__qualname__ = "InterpretedModule"
    _BASES[module_cls] = InterpretedModule
    return InterpretedModule


def make_module_class(ucls: UserClass, base: type, host_bases: list) -> type:
    """A Python class named after the user's class (so module summaries show it)."""
    parents = []
    for b in ucls.bases:
        if isinstance(b, UserClass) and b.py_class is not None:
            parents.append(b.py_class)
    if not parents:
        parents.append(base)
    for hb in host_bases:
        if isinstance(hb, type) and not any(issubclass(p, hb) for p in parents):
            parents.append(hb)
    try:
        cls = type(ucls.name, tuple(parents), {"_gx_user_class": ucls, "__module__": "gradxray.user"})
    except TypeError:
        cls = type(ucls.name, (base,), {"_gx_user_class": ucls, "__module__": "gradxray.user"})
    return cls

