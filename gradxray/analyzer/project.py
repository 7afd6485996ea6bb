"""Source index: what one file defines and imports, found with ``ast`` alone.

This layer never touches the engine (and never imports torch): it parses the
source, resolves import aliases to dotted names (``nn`` -> ``torch.nn``,
``F`` -> ``torch.nn.functional``), lists the classes (which are ``nn.Module``
subclasses, which are config dataclasses), the module-level functions and the
module-level assignments, and picks the *root* module classes (those no other
module class of the file uses as a submodule).

The second half is the *project*: which files an import names (workspace
roots, relative imports, installed packages' source files on the search path),
parsed once per content hash, with the dependents of a changed file.  Modules
are found by looking at the file system only: nothing is ever imported (not
even through ``importlib.util.find_spec``, which imports parent packages).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import os
import re
import sys
from dataclasses import dataclass, field

from .astwalk import push_children
from .gc_pause import paused_gc


@dataclass
class ClassInfo:
    name: str
    node: ast.ClassDef
    bases: list[str]                      # dotted names of the bases, imports resolved
    is_module: bool = False               # an nn.Module subclass (directly or through a class of the file)
    is_dataclass: bool = False
    is_namedtuple: bool = False
    user_bases: list[str] = field(default_factory=list)     # bases that are classes of this file
    engine_bases: list[str] = field(default_factory=list)   # bases under torch.nn (e.g. "torch.nn.Module")
    methods: dict[str, ast.FunctionDef] = field(default_factory=dict)

    @property
    def lineno(self) -> int:
        return self.node.lineno


@dataclass
class ModuleIndex:
    path: str
    tree: ast.Module
    lines: list[str]
    imports: dict[str, str] = field(default_factory=dict)          # local name -> dotted target
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    assigns: dict[str, ast.AST] = field(default_factory=dict)      # name -> value expression (last wins)
    star_imports: list[str] = field(default_factory=list)          # `from m import *`: "m", ".m", ".."

    def module_classes(self) -> list[ClassInfo]:
        return [c for c in self.classes.values() if c.is_module]

    def defines(self, name: str) -> bool:
        """Whether the module binds ``name`` itself (a definition, an assignment or an import)."""
        return name in self.classes or name in self.functions or name in self.assigns or name in self.imports

    def declared_all(self) -> list[str] | None:
        """The names of a literal ``__all__`` (what ``from m import *`` takes), None when there is none."""
        node = self.assigns.get("__all__")
        if node is None:
            return None
        try:
            names = ast.literal_eval(node)      # evaluates literals only, never code
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            return list(names)
        return None


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def resolve_dotted(name: str, imports: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    if head in imports:
        target = imports[head]
        return target + ("." + rest if rest else "")
    return name


def import_bindings(node: ast.Import | ast.ImportFrom):
    """(local name, dotted target) for each name an import statement binds.

    ``import a.b`` binds ``a`` -> ``a``; ``from .m import x as y`` binds ``y`` -> ``.m.x``;
    star imports and ``__future__`` bind nothing here."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                head = alias.name.split(".")[0]
                yield head, head
        return
    if node.module == "__future__":
        return
    base = "." * node.level + (node.module or "")
    for alias in node.names:
        if alias.name == "*":
            continue
        dotted = f"{base}.{alias.name}" if base and not base.endswith(".") else base + alias.name
        yield alias.asname or alias.name, dotted


def _collect_imports(stmts, imports: dict[str, str], star_imports: list[str]) -> None:
    for node in stmts:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(import_bindings(node))
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                star_imports.append("." * node.level + (node.module or ""))
        elif isinstance(node, (ast.If, ast.Try)):
            # `try: import x except ImportError: ...` and `if TYPE_CHECKING:` blocks
            bodies = [node.body, node.orelse]
            if isinstance(node, ast.Try):
                bodies += [h.body for h in node.handlers] + [node.finalbody]
            for body in bodies:
                _collect_imports(body, imports, star_imports)


def _is_engine_module_base(dotted: str) -> bool:
    if dotted == "torch.nn.Module":
        return True
    if dotted.startswith("torch.nn.") and not dotted.startswith("torch.nn.functional"):
        last = dotted.rsplit(".", 1)[-1]
        return last[:1].isupper() and last != "Parameter"
    return False


def _decorator_name(dec: ast.AST, imports) -> str | None:
    if isinstance(dec, ast.Call):
        dec = dec.func
    name = dotted_name(dec)
    return resolve_dotted(name, imports) if name else None


def class_info(node: ast.ClassDef, imports: dict[str, str]) -> ClassInfo:
    """What a class statement says about its class: bases (imports resolved), dataclass, methods."""
    bases = []
    for b in node.bases:
        name = dotted_name(b)
        bases.append(resolve_dotted(name, imports) if name else "<expr>")
    info = ClassInfo(name=node.name, node=node, bases=bases)
    for dec in node.decorator_list:
        if _decorator_name(dec, imports) == "dataclasses.dataclass":
            info.is_dataclass = True
    info.is_namedtuple = "typing.NamedTuple" in bases
    info.engine_bases = [b for b in bases if _is_engine_module_base(b)]
    info.is_module = bool(info.engine_bases)
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            info.methods[item.name] = item
    return info


def index_source(source: str, path: str, statements=None) -> ModuleIndex:
    """Parse and index one file.  Raises ``SyntaxError`` on bad source.  ``statements``: a
    ``statement_cache.StatementCache`` whose unchanged statements of the file's last parse are reused."""
    with paused_gc():                       # see gc_pause: about twice as fast
        tree = ast.parse(source, filename=path) if statements is None else statements.parse(source, path)
    index = ModuleIndex(path=path, tree=tree, lines=source.splitlines())
    _collect_imports(tree.body, index.imports, index.star_imports)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            index.classes[node.name] = class_info(node, index.imports)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            index.functions[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    index.assigns[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            index.assigns[node.target.id] = node.value

    # module classes: fixed point over bases that are classes of this file
    for info in index.classes.values():
        info.user_bases = [b for b in info.bases if b in index.classes]
        info.engine_bases = [b for b in info.bases if _is_engine_module_base(b)]
        if info.engine_bases:
            info.is_module = True
    propagate_class_kinds(index)
    return index


def imported_bases(info: ClassInfo, index: ModuleIndex) -> list[str]:
    """Bases of a class named by an import from another file or package (not torch, typing or the
    file itself): only resolving them tells whether the class is a module or a dataclass."""
    return [b for b in info.bases if b != "<expr>" and b not in index.classes
            and not b.startswith(("torch.", "typing", "builtins.")) and "." in b]


def propagate_class_kinds(index: ModuleIndex) -> None:
    """A class whose base (a class of this file) is a module or a dataclass is one too."""
    changed = True
    while changed:
        changed = False
        for info in index.classes.values():
            if not info.is_module and any(index.classes[b].is_module for b in info.user_bases):
                info.is_module = True
                changed = True
        for info in index.classes.values():
            if not info.is_dataclass and any(index.classes[b].is_dataclass for b in info.user_bases):
                info.is_dataclass = True
                changed = True


def _referenced_names(node: ast.AST) -> set[str]:
    """The names ``node`` reads, anywhere inside it; cached on the node (with the functions it
    defines, see defined_functions).  The same walk decides, for every function inside (``node`` too),
    whether it changes state beyond its locals (see stores_outside)."""
    cached = getattr(node, "_gx_refs", None)
    if cached is not None:
        return cached
    # this walks every class and function of the file on each analysis (see astwalk)
    out: set[str] = set()
    functions: list = []
    _scan(node, [node], None, out, functions)
    # the node itself is not in its own list: a node holding itself is a reference cycle, which leaves
    # the whole tree to the cyclic collector (see gc_pause)
    node._gx_refs, node._gx_functions = out, functions
    return out


# what a scope's body may change outside its locals with (see stores_outside)
MUTATING_METHODS = frozenset(("append", "add", "update", "setdefault", "extend", "insert", "appendleft",
                              "extendleft", "pop", "popitem", "remove", "discard", "clear", "__setitem__"))
NESTED_SCOPES = frozenset((ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
_STORE_STATEMENTS = frozenset((ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete))
_STORE_CANDIDATES = frozenset((ast.Global, ast.Nonlocal, ast.Call, *_STORE_STATEMENTS))


class _FunctionScope:
    """What a function's own body binds and the statements and calls that may store outside it."""

    __slots__ = ("local", "candidates")

    def __init__(self, fnode):
        a = fnode.args
        self.local = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if p is not None}
        self.candidates: list = []


def _scan(top, roots: list, scope: _FunctionScope | None, names: set, functions: list) -> None:
    """Walk ``roots`` (inside ``top``): names read go to ``names``, function definitions other than
    ``top`` to ``functions``; what binds a name or may store outside goes to ``scope``, the function
    whose own body this is (None outside any).  A nested function or lambda is a scope of its own: its
    body is walked with it, its header (decorators, defaults, annotations) with no scope, and its
    stores_outside flag is set on it; a class body belongs to no function."""
    stack = list(roots)
    while stack:
        n = stack.pop()
        kind = type(n)
        if kind is ast.Name:
            if type(n.ctx) is ast.Load:
                names.add(n.id)
            elif scope is not None:
                scope.local.add(n.id)
            continue
        if kind in NESTED_SCOPES:
            if kind is not ast.Lambda and scope is not None:
                scope.local.add(n.name)
            inner: list = []
            push_children(inner, n)
            if kind is ast.ClassDef:
                _scan(top, inner, None, names, functions)
                continue
            if kind is not ast.Lambda and n is not top:
                functions.append(n)
            body = [n.body] if kind is ast.Lambda else n.body
            in_body = {id(b) for b in body}
            _scan(top, [c for c in inner if id(c) not in in_body], None, names, functions)
            own = _FunctionScope(n)
            _scan(top, body, own, names, functions)
            n._gx_stores_outside = _stores_outside_of(own)
            continue
        if scope is not None and kind in _STORE_CANDIDATES:
            scope.candidates.append(n)
        push_children(stack, n)


def _stores_outside_of(scope: _FunctionScope) -> bool:
    local = scope.local

    def outside(e) -> bool:
        while isinstance(e, (ast.Attribute, ast.Subscript)):
            e = e.value
        return isinstance(e, ast.Name) and e.id not in local

    for n in scope.candidates:
        kind = type(n)
        if kind is ast.Global or kind is ast.Nonlocal:
            return True
        if kind in _STORE_STATEMENTS:
            for t in (n.targets if kind is ast.Assign or kind is ast.Delete else [n.target]):
                if isinstance(t, (ast.Attribute, ast.Subscript)) and outside(t.value):
                    return True
        else:                                                   # a call
            f = n.func
            if isinstance(f, ast.Attribute) and f.attr in MUTATING_METHODS and outside(f.value):
                return True
            if isinstance(f, ast.Name) and f.id == "setattr" and n.args and outside(n.args[0]):
                return True
    return False


def stores_outside(fnode) -> bool:
    """Whether a function's (or lambda's) own body changes state beyond its locals: a ``global`` /
    ``nonlocal`` statement, an item or attribute store into a name it does not bind (``_registry[name]
    = fn``), a mutating method call on one (``_leaf_modules.add(m)``) or ``setattr`` on one.  Cached on
    the node; set for every function a walk of _referenced_names meets."""
    flag = getattr(fnode, "_gx_stores_outside", None)
    if flag is None:
        _scan(fnode, [fnode], None, set(), [])
        flag = fnode._gx_stores_outside
    return flag


def defined_functions(node: ast.AST) -> list:
    """The function definitions inside ``node`` (itself included), at any depth."""
    _referenced_names(node)
    if type(node) is ast.FunctionDef or type(node) is ast.AsyncFunctionDef:
        return [node, *node._gx_functions]
    return node._gx_functions


def root_classes(index: ModuleIndex) -> list[ClassInfo]:
    """Module classes that no other module class of the file uses (directly, through
    module-level functions it calls, or as a base class)."""
    direct: dict[str, set[str]] = {}
    for name, info in index.classes.items():
        refs: set[str] = set()
        for item in info.node.body:
            refs |= _referenced_names(item)
        direct[name] = refs
    for name, fn in index.functions.items():
        direct[name] = _referenced_names(fn)

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(direct.get(start, ()))
        while todo:
            n = todo.pop()
            if n in seen or n == start:
                continue
            seen.add(n)
            if n in index.functions:
                todo.extend(direct.get(n, ()))
        return seen

    used: set[str] = set()
    for info in index.module_classes():
        used |= reach(info.name)
        used |= set(info.user_bases)      # a base class runs as part of its subclasses
    return [c for c in index.module_classes() if c.name not in used]


def signature_end_line(fn: ast.FunctionDef) -> int:
    """The last line of a function's signature (the line before its body; the ``def`` line for
    ``def f(x): return x``)."""
    return fn.body[0].lineno - 1 if fn.body and fn.body[0].lineno > fn.lineno else fn.lineno


def pragma_lines(index: ModuleIndex, fn: ast.FunctionDef) -> list[tuple[int, str]]:
    """(line, text) of the source lines of a function's signature (where a pragma may sit)."""
    last = min(signature_end_line(fn), len(index.lines))
    return [(ln, index.lines[ln - 1]) for ln in range(max(fn.lineno, 1), last + 1)]


def positional_params(a: ast.arguments) -> list[ast.arg]:
    return [*a.posonlyargs, *a.args]


def required_params(a: ast.arguments) -> list[ast.arg]:
    """The parameters without a default, in order: positional ones, then keyword-only ones."""
    positional = positional_params(a)
    return positional[:len(positional) - len(a.defaults)] + [
        p for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is None]


# --- the project: files, module resolution, caches ------------------------------------------------

WORKSPACE_MARKERS = ("pyproject.toml", ".git", "setup.py")

# top-level packages that are never resolved to source: the engine stands in for torch, and the
# standard library is either mapped by the interpreter (math, functools ...) or out of scope
ENGINE_BACKED = frozenset({"torch"})


def is_source_resolvable(dotted: str) -> bool:
    """Whether an absolute import target may be looked up in the project (not torch, not stdlib)."""
    top = dotted.split(".", 1)[0]
    return bool(top) and top not in ENGINE_BACKED and top not in sys.stdlib_module_names


def workspace_roots(path: str, extra_roots=()) -> list[str]:
    """The folders absolute imports of ``path`` are looked up in: its own folder and each parent up to
    the first one holding a workspace marker (only its own folder when no parent has one), then the
    configured ``extra_roots``."""
    folder = os.path.dirname(os.path.abspath(path))
    chain = []
    current = folder
    while True:
        chain.append(current)
        if any(os.path.exists(os.path.join(current, m)) for m in WORKSPACE_MARKERS):
            break
        parent = os.path.dirname(current)
        if parent == current:
            chain = [folder]
            break
        current = parent
    roots: list[str] = []
    for r in [*chain, *(os.path.abspath(r) for r in extra_roots)]:
        if r not in roots:
            roots.append(r)
    return roots


def default_search_paths(explicit=()) -> list[str]:
    """Folders that hold installed packages: ``explicit`` ones first, then the running interpreter's
    ``sys.path`` (existing folders only; zip archives and the current directory are left out)."""
    out: list[str] = []
    for p in [*explicit, *sys.path]:
        if not p:
            continue
        p = os.path.abspath(p)
        if os.path.isdir(p) and p not in out:
            out.append(p)
    return out


@dataclass(frozen=True)
class ModuleLocation:
    """Where a module's source is.  ``file`` is the ``.py`` file (``__init__.py`` for a package), None
    for a namespace package or a compiled module; ``package_dirs`` are where its submodules are."""

    name: str
    file: str | None
    package_dirs: tuple[str, ...] = ()
    compiled: bool = False


def _find_in(dirs, part: str, name: str) -> ModuleLocation | None:
    """``part`` in the first of ``dirs`` that has it, in the import system's order: a package with
    ``__init__.py``, then a compiled or source module; folders without ``__init__.py`` (namespace
    package portions) only when no folder has a module of that name."""
    portions = []
    for d in dirs:
        pkg = os.path.join(d, part)
        init = os.path.join(pkg, "__init__.py")
        if os.path.isfile(init):
            return ModuleLocation(name, init, (pkg,))
        if any(os.path.isfile(os.path.join(d, part + sfx)) for sfx in importlib.machinery.EXTENSION_SUFFIXES):
            return ModuleLocation(name, None, (), compiled=True)
        mod = os.path.join(d, part + ".py")
        if os.path.isfile(mod):
            return ModuleLocation(name, mod)
        if os.path.isdir(pkg):
            portions.append(pkg)
    if portions:
        return ModuleLocation(name, None, tuple(portions))
    return None


def split_relative(dotted: str) -> tuple[int, list[str]]:
    """``"..utils.x"`` -> (2, ["utils", "x"]); an absolute name has level 0."""
    level = len(dotted) - len(dotted.lstrip("."))
    rest = dotted[level:]
    return level, rest.split(".") if rest else []


@dataclass
class _FileEntry:
    digest: str | None                    # content hash; None for a file indexed from a given ModuleIndex
    index: ModuleIndex | None
    error: str | None                     # why it could not be parsed
    deps: set[str] = field(default_factory=set)
    has_unresolved: bool = False          # one of its imports named no file (a new file may satisfy it)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class ProjectIndex:
    """Parsed files of a project, keyed by absolute path and cached by content hash, the import graph
    between them, and module resolution over workspace roots and the search path.

    ``update(path, text)`` is what an editor calls when a file changes (``text`` None: re-read it from
    disk); it returns the files whose analysis is stale (the file and everything that imports it,
    directly or not)."""

    def __init__(self, search_paths=None):
        self.search_paths = list(default_search_paths() if search_paths is None else search_paths)
        self.parse_count = 0
        self._files: dict[str, _FileEntry] = {}
        self._overlays: dict[str, str] = {}            # unsaved editor text, by path
        self._dependents: dict[str, set[str]] = {}     # file -> files that import it
        self._found: dict[tuple, ModuleLocation | None] = {}
        self._star_scans: dict[str, tuple] = {}         # path -> (star sources, literal __all__ or None)
        self._star_origins: dict[tuple, ModuleLocation | None] = {}

    # sources and parsing --------------------------------------------------------------------------
    def source(self, path: str) -> str:
        path = os.path.abspath(path)
        if path in self._overlays:
            return self._overlays[path]
        with open(path, encoding="utf-8") as fh:
            return fh.read()

    def stamp(self, path: str) -> tuple:
        """What identifies the current content of ``path`` cheaply: the digest of its unsaved editor
        text, else its size and modification time on disk (None when it cannot be read)."""
        path = os.path.abspath(path)
        if path in self._overlays:
            return ("text", _digest(self._overlays[path]))
        try:
            st = os.stat(path)
        except OSError:
            return ("disk", None)
        return ("disk", st.st_size, st.st_mtime_ns)

    def module_index(self, path: str) -> tuple[ModuleIndex | None, str | None]:
        """(index, None), or (None, why not) for a file that cannot be read or parsed.  A file whose
        content hash did not change since it was last parsed is not parsed again."""
        path = os.path.abspath(path)
        try:
            text = self.source(path)
        except (OSError, UnicodeDecodeError) as e:
            return None, f"cannot read `{path}`: {type(e).__name__}: {e}"
        digest = _digest(text)
        entry = self._files.get(path)
        if entry is not None and entry.digest == digest:
            return entry.index, entry.error
        self._forget(path)
        self.parse_count += 1
        try:
            index, error = index_source(text, path), None
        except SyntaxError as e:
            index, error = None, f"cannot analyze `{path}`: SyntaxError: {e.msg} (line {e.lineno})"
        except (ValueError, RecursionError) as e:
            index, error = None, f"cannot analyze `{path}`: {type(e).__name__}: {e}"
        entry = _FileEntry(digest, index, error)
        self._files[path] = entry
        if index is not None:
            self._record_imports(path, index)
        return index, error

    def adopt(self, index: ModuleIndex) -> None:
        """Record the imports of a file parsed elsewhere (the analyzed file), so that it is among the
        dependents a change reports.  Its text is not known here: any update of it counts as a change."""
        path = os.path.abspath(index.path)
        entry = self._files.get(path)
        if entry is not None and entry.index is index:
            return
        self._forget(path)
        self._files[path] = _FileEntry(None, index, None)
        self._record_imports(path, index)

    # module resolution -----------------------------------------------------------------------------
    def find_module(self, dotted: str, roots) -> ModuleLocation | None:
        """An absolute module name -> its location, looked up in ``roots`` then the search path."""
        parts = dotted.split(".")
        loc = self._find_part(tuple(roots) + tuple(self.search_paths), parts[0], parts[0])
        for i, part in enumerate(parts[1:], 2):
            if loc is None or not loc.package_dirs:
                return None
            loc = self._find_part(loc.package_dirs, part, ".".join(parts[:i]))
        return loc

    def package_of(self, from_file: str, level: int) -> ModuleLocation | None:
        """The package a relative import of ``level`` dots in ``from_file`` starts from."""
        folder = os.path.dirname(os.path.abspath(from_file))
        for _ in range(level - 1):
            parent = os.path.dirname(folder)
            if parent == folder:
                return None
            folder = parent
        init = os.path.join(folder, "__init__.py")
        return ModuleLocation("." * level, init if os.path.isfile(init) else None, (folder,))

    def submodule(self, package: ModuleLocation, part: str) -> ModuleLocation | None:
        if not package.package_dirs:
            return None
        sep = "" if package.name.endswith(".") else "."
        return self._find_part(package.package_dirs, part, package.name + sep + part)

    def resolve_module(self, dotted: str, from_file: str, roots) -> ModuleLocation | None:
        """An absolute or relative module name, as written in ``from_file``, -> its location."""
        level, parts = split_relative(dotted)
        if level == 0:
            return self.find_module(dotted, roots)
        loc = self.package_of(from_file, level)
        for part in parts:
            if loc is None:
                return None
            loc = self.submodule(loc, part)
        return loc

    def _find_part(self, dirs: tuple, part: str, name: str) -> ModuleLocation | None:
        key = (dirs, part, name)
        if key not in self._found:
            self._found[key] = _find_in(dirs, part, name)
        return self._found[key]

    # star imports ----------------------------------------------------------------------------------
    def star_origin(self, path: str, name: str, roots, sources=None,
                    _active: set | None = None) -> ModuleLocation | None:
        """The module that binds ``name`` itself, reached from ``path`` through its ``from m import *``
        chain (honouring each ``m``'s ``__all__``), or None.

        Packages with lazy re-exports (``if TYPE_CHECKING: from .models import *``, hundreds of
        subpackages deep) make this chain long; so a file is read as text first (its star imports
        and a literal ``__all__`` found with regular expressions, cached) and parsed only when it
        may bind ``name``.  Results are cached per (file, name) until a file changes.  ``sources``: the
        star imports of ``path`` when the caller parsed it (an editor's unsaved text), else read here."""
        key = (path, name, tuple(roots)) if sources is None else None
        if key in self._star_origins:
            return self._star_origins[key]
        top = _active is None
        active = set() if top else _active
        active.add(path)
        result, complete = None, True
        for source in self._star_scan(path)[0] if sources is None else sources:
            level, _ = split_relative(source)
            if level == 0 and not is_source_resolvable(source):
                continue
            loc = self.resolve_module(source, path, roots)
            if loc is None or loc.file is None:
                continue
            file = os.path.abspath(loc.file)
            if file in active:
                complete = False                 # a cycle: the answer depends on the path taken
                continue
            _, exported = self._star_scan(file)
            if exported is not None and name not in exported:
                continue
            if exported is not None or self._mentions(file, name):
                index, _ = self.module_index(file)
                if index is not None and index.defines(name):
                    result = loc
                    break
            sub = self.star_origin(file, name, roots, None, active)
            if sub is not None:
                result = sub
                break
            if (file, name, tuple(roots)) not in self._star_origins:
                complete = False
        active.discard(path)
        if key is not None and (complete or top):
            self._star_origins[key] = result
        return result

    def _star_scan(self, path: str) -> tuple:
        """(star import sources, names of a literal ``__all__`` or None) of a file, from its text."""
        entry = self._star_scans.get(path)
        if entry is None:
            try:
                text = self.source(path)
            except (OSError, UnicodeDecodeError):
                text = ""
            sources = tuple(m.group(1) for m in _STAR_IMPORT.finditer(text) if m.group(1) != "__future__"
                            and _line_start(text, m.start())) if "import *" in text else ()
            exported = None
            found = [m.group(1) for m in _ALL_LITERAL.finditer(text) if _line_start(text, m.start(), False)]
            if len(found) == 1 and "__all__ +" not in text and "__all__." not in text:
                try:
                    names = ast.literal_eval(found[0])   # evaluates literals only, never code
                except (ValueError, TypeError, SyntaxError, RecursionError):
                    names = None
                if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
                    exported = frozenset(names)
            entry = (sources, exported)
            self._star_scans[path] = entry
        return entry

    def _mentions(self, path: str, name: str) -> bool:
        try:
            return name in self.source(path)
        except (OSError, UnicodeDecodeError):
            return False

    # the import graph ------------------------------------------------------------------------------
    def _record_imports(self, path: str, index: ModuleIndex) -> None:
        """The files ``path`` imports (every import statement, wherever it is, with the ``__init__.py``
        of the packages on the way), for ``dependents``; and whether a module it names is missing."""
        entry = self._files[path]
        roots = workspace_roots(path)
        for node in _statements(index.tree.body):
            if isinstance(node, ast.Import):
                modules, names = [alias.name for alias in node.names], []
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = "." * node.level + (node.module or "")
                sep = "" if base.endswith(".") else "."
                # `from m import x`: m must be a module; x may be a name in it or a submodule
                modules, names = [base], [base + sep + a.name for a in node.names if a.name != "*"]
            else:
                continue
            for target in modules + names:
                files, found = self._files_on_the_way(target, path, roots)
                entry.deps |= files
                if not found and target in modules:
                    entry.has_unresolved = True
        entry.deps.discard(path)
        for dep in entry.deps:
            self._dependents.setdefault(dep, set()).add(path)

    def _files_on_the_way(self, dotted: str, from_file: str, roots) -> tuple[set[str], bool]:
        """(source files importing ``dotted`` runs: package ``__init__``s, then the module; whether
        ``dotted`` is a module).  Torch and the standard library count as found, with no files."""
        level, parts = split_relative(dotted)
        if level == 0 and not is_source_resolvable(dotted):
            return set(), True
        files: set[str] = set()
        if level:
            loc = self.package_of(from_file, level)
        else:
            loc = self._find_part(tuple(roots) + tuple(self.search_paths), parts[0], parts[0])
            parts = parts[1:]
        for part in parts:
            if loc is None:
                break
            if loc.file:
                files.add(loc.file)
            loc = self.submodule(loc, part)
        if loc is not None and loc.file:
            files.add(loc.file)
        return files, loc is not None

    def dependents(self, path: str) -> set[str]:
        """Files that import ``path``, directly or through others."""
        out: set[str] = set()
        todo = [os.path.abspath(path)]
        while todo:
            for d in self._dependents.get(todo.pop(), ()):
                if d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    def update(self, path: str, text: str | None = None) -> set[str]:
        """A file changed (``text``: its new, possibly unsaved, content; None: re-read it from disk).
        Returns the files whose analysis is now stale: none when its content did not change, else
        the file, its dependents, and -- for a file the index did not know -- the files with an
        import that named no file (the new file may be what they import)."""
        path = os.path.abspath(path)
        if text is None:
            self._overlays.pop(path, None)
            try:
                with open(path, encoding="utf-8") as fh:
                    current = _digest(fh.read())
            except (OSError, UnicodeDecodeError):
                current = None                    # deleted or unreadable
        else:
            self._overlays[path] = text
            current = _digest(text)
        entry = self._files.get(path)
        if entry is not None and entry.digest is not None and entry.digest == current:
            return set()
        stale = {path} | self.dependents(path)
        self._star_scans.pop(path, None)
        self._star_origins.clear()
        if entry is None or current is None:
            self._found.clear()                   # a new or deleted file changes what names resolve to
        if entry is None:
            stale |= {p for p, e in self._files.items() if e.has_unresolved}
        self._forget(path)
        return stale

    def _forget(self, path: str) -> None:
        entry = self._files.pop(path, None)
        if entry is None:
            return
        for dep in entry.deps:
            users = self._dependents.get(dep)
            if users is not None:
                users.discard(path)


def _statements(body):
    """Every statement of a body, nested ones included (imports are statements: expressions need no
    walk, which makes this several times cheaper than ``ast.walk`` on large files)."""
    todo = list(reversed(body))
    while todo:
        node = todo.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            sub = getattr(node, name, None)
            if isinstance(sub, list):
                todo.extend(reversed(sub))


# patterns that start with a literal (fast to search); where a match starts is checked by _line_start
_STAR_IMPORT = re.compile(r"from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+\*")
_ALL_LITERAL = re.compile(r"__all__[ \t]*(?::[^=\n]*)?=[ \t]*(\[[^\]]*\]|\([^)]*\))")


def _line_start(text: str, pos: int, indented: bool = True) -> bool:
    """Whether only (``indented``: blanks) stand between the start of its line and ``pos``."""
    start = text.rfind("\n", 0, pos) + 1
    return start == pos or (indented and not text[start:pos].strip(" \t"))

_PROJECTS: dict[tuple[str, ...], ProjectIndex] = {}


def project_index(search_paths=()) -> ProjectIndex:
    """The process-wide ProjectIndex for a search path (``search_paths`` first, then ``sys.path``),
    so that an editor's ``update`` and later analyses share one cache."""
    paths = tuple(default_search_paths(search_paths))
    if paths not in _PROJECTS:
        _PROJECTS[paths] = ProjectIndex(paths)
    return _PROJECTS[paths]
