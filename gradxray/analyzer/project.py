"""Source index: what one file defines and imports, found with ``ast`` alone.

This layer never touches the engine (and never imports torch): it parses the
source, resolves import aliases to dotted names (``nn`` -> ``torch.nn``,
``F`` -> ``torch.nn.functional``), lists the classes (which are ``nn.Module``
subclasses, which are config dataclasses), the module-level functions and the
module-level assignments, and picks the *root* module classes (those no other
module class of the file uses as a submodule).

Single file for now; cross-file resolution comes later.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field


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

    def module_classes(self) -> list[ClassInfo]:
        return [c for c in self.classes.values() if c.is_module]


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


def _collect_imports(stmts, imports: dict[str, str]) -> None:
    for node in stmts:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(import_bindings(node))
        elif isinstance(node, (ast.If, ast.Try)):
            # `try: import x except ImportError: ...` and `if TYPE_CHECKING:` blocks
            bodies = [node.body, node.orelse]
            if isinstance(node, ast.Try):
                bodies += [h.body for h in node.handlers] + [node.finalbody]
            for body in bodies:
                _collect_imports(body, imports)


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


def index_source(source: str, path: str) -> ModuleIndex:
    """Parse and index one file.  Raises ``SyntaxError`` on bad source."""
    tree = ast.parse(source, filename=path)
    index = ModuleIndex(path=path, tree=tree, lines=source.splitlines())
    _collect_imports(tree.body, index.imports)
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = []
            for b in node.bases:
                name = dotted_name(b)
                bases.append(resolve_dotted(name, index.imports) if name else "<expr>")
            info = ClassInfo(name=node.name, node=node, bases=bases)
            for dec in node.decorator_list:
                if _decorator_name(dec, index.imports) == "dataclasses.dataclass":
                    info.is_dataclass = True
            info.is_namedtuple = "typing.NamedTuple" in bases
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    info.methods[item.name] = item
            index.classes[node.name] = info
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
    return index


def _referenced_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


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
