"""Imports across files: a name imported from another workspace file or from an installed package's
source is interpreted like a local definition of that file.

Each imported file gets its own ``FileInterpreter``: its names (and its own imports, relative ones
included) resolve in that file, its unresolved places and memory attribution name that file, while
the statement budget, call stack, gradient-cut tracking and list of unresolved places are the
analysed file's.  Files are found and parsed by the ``ProjectIndex`` (never imported); torch stays
engine-backed.
"""
from __future__ import annotations

import os
from typing import Any

from .interpreter import Interpreter
from .project import (
    ModuleIndex, ModuleLocation, ProjectIndex, is_source_resolvable, project_index, split_relative, workspace_roots,
)
from .results import Analysis
from .values import Namespace, ProjectModule

_MISSING = object()


class ModuleNamespace(ProjectModule):
    """The value of an imported project module: attribute access gives its definitions (interpreted
    in its file), then its submodules.  A missing name raises AttributeError, as a module does."""

    def __init__(self, session: "ImportSession", location: ModuleLocation):
        self._session = session
        self._location = location

    def __repr__(self) -> str:
        return f"<module {self._location.name}>"

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        val, reason = self._session.member(self._location, name)
        if reason is not None:
            raise AttributeError(reason)
        return val

    def gx_member(self, name: str):
        """``module.name`` in analysed code: what its file binds (private names and ``__all__`` too,
        and what analysed code set on it), else a submodule -> (value, reason-if-missing)."""
        loc = self._location
        if name == "__name__":
            return loc.name, None
        if name.startswith("__") and name.endswith("__") and name != "__all__":
            return None, f"`{loc.name}.{name}` is not supported"
        if loc.file is not None and not loc.compiled:
            interp, _ = self._session.interpreter_for(loc)
            if interp is not None and name in interp._globals:
                return interp._globals[name], None
        return self._session.member(loc, name)

    def gx_lines(self) -> list[str] | None:
        """The lines of the module's file (``inspect.getsource``), None without one."""
        loc = self._location
        if loc.file is None or loc.compiled:
            return None
        interp, _ = self._session.interpreter_for(loc)
        return None if interp is None else interp.index.lines

    def gx_set(self, name: str, value) -> str | None:
        """``module.name = value`` (``setattr(sys.modules[...], ...)``) in analysed code: the analysis's
        state of that file binds it; the real module is never touched.  -> reason-if-refused."""
        loc = self._location
        interp = None
        if loc.file is not None and not loc.compiled:
            interp, _ = self._session.interpreter_for(loc)
        if interp is None:
            return f"cannot set `{name}` on `{loc.name}`"
        interp._globals[name] = value
        return None


class FileInterpreter(Interpreter):
    """The interpreter of an imported file, sharing the analysed file's run state (budget, frames,
    cut tracking, unresolved places).  Line facts of its statements go to its own Analysis, so they
    never land on the analysed file's lines."""

    def __init__(self, session: "ImportSession", index: ModuleIndex):
        root = session.root
        self._root = root                    # before Interpreter.__init__: it sets the shared counters
        steps, depth = root.steps, root.forward_depth
        super().__init__(index, root.rt, Analysis(path=index.path), root.settings)
        root.steps, root.forward_depth = steps, depth
        self.session = session
        self.analysis.unresolved = root.analysis.unresolved
        self._seen_unresolved = root._seen_unresolved
        self.frames = root.frames
        self._try_stack = root._try_stack    # an exception travels to a caller's `try` in another file
        self._wrapper_calls = root._wrapper_calls
        self.cuts = root.cuts
        self.class_patches = root.class_patches
        self.module_flags = root.module_flags

    # counters of the whole analysis, not of one file
    @property
    def steps(self) -> int:
        return self._root.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self._root.steps = value

    @property
    def forward_depth(self) -> int:
        return self._root.forward_depth

    @forward_depth.setter
    def forward_depth(self, value: int) -> None:
        self._root.forward_depth = value

    def global_lookup(self, name: str, node):
        if not self.index.defines(name) and name not in self._globals:
            val = self.session.star_member(self.index, name)
            if val is not _MISSING:
                self._globals[name] = val
                return val
        return super().global_lookup(name, node)


class ImportSession:
    """The imported files of one analysis and their interpreters."""

    def __init__(self, root: Interpreter, project: ProjectIndex):
        self.root = root
        self.project = project
        self.roots = workspace_roots(root.path, root.settings.roots)
        self.interpreters: dict[str, Interpreter] = {os.path.abspath(root.path): root}
        self._active: set[tuple[str, str]] = set()     # (file, name) being resolved: import cycles
        project.adopt(root.index)

    # files --------------------------------------------------------------------------------------
    def interpreter_for(self, location: ModuleLocation) -> tuple[Interpreter | None, str | None]:
        path = os.path.abspath(location.file)
        interp = self.interpreters.get(path)
        if interp is not None:
            return interp, None
        index, error = self.project.module_index(path)
        if index is None:
            return None, error
        interp = FileInterpreter(self, index)
        self.interpreters[path] = interp
        return interp, None

    # names --------------------------------------------------------------------------------------
    def resolve(self, importer: Interpreter, dotted: str) -> tuple[Any, str | None]:
        """An import target as written in ``importer``'s file -> (value, reason-if-unresolved).
        ``import a.b`` targets are modules; ``from m import x`` targets are ``m.x``: the name ``x`` of
        module ``m``, else its submodule ``x``."""
        level, parts = split_relative(dotted)
        if level == 0 and not is_source_resolvable(dotted):
            return None, f"unresolved import `{dotted}`"
        if not parts:                                    # `from . import *` style: the package itself
            loc = self.project.package_of(importer.path, level)
            return self.module_value(loc) if loc is not None else (None, self._not_found(dotted))
        if len(parts) == 1 and level == 0:
            loc = self.project.find_module(dotted, self.roots)
            return self.module_value(loc) if loc is not None else (None, self._not_found(dotted))
        module_name = "." * level + ".".join(parts[:-1])
        loc = self.project.resolve_module(module_name, importer.path, self.roots)
        if loc is None:
            return None, self._not_found(module_name)
        return self.member(loc, parts[-1])

    def member(self, loc: ModuleLocation, name: str) -> tuple[Any, str | None]:
        """``name`` of module ``loc``: what its file binds (or re-exports with ``*``), else a submodule."""
        if loc.compiled:
            return None, self._compiled(loc)
        if loc.file is not None:
            interp, error = self.interpreter_for(loc)
            if interp is None:
                return None, error
            if (interp.index.defines(name) or interp.sequential_binding(name) is not None
                    or self.star_member(interp.index, name, probe=True) is not _MISSING):
                key = (interp.path, name)
                if key in self._active:
                    return None, f"circular import of `{name}` from `{loc.name}`"
                self._active.add(key)
                try:
                    return interp.global_lookup(name, None), None
                finally:
                    self._active.discard(key)
        sub = self.project.submodule(loc, name)
        if sub is not None:
            return self.module_value(sub)
        where = f" ({loc.file})" if loc.file else ""
        return None, f"cannot import `{name}` from `{loc.name}`{where}"

    def star_member(self, index: ModuleIndex, name: str, probe: bool = False):
        """``name`` as one of the ``from m import *`` of ``index``'s file binds it (honouring ``m``'s
        ``__all__``); ``_MISSING`` when none does.  ``probe``: only say whether one does.  The module
        that binds it is found by the project index (``star_origin``), which reads the files of a
        long star-import chain as text and parses only those that may bind the name."""
        if name.startswith("_") or not index.star_imports:
            return _MISSING
        loc = self.project.star_origin(os.path.abspath(index.path), name, self.roots, index.star_imports)
        if loc is None:
            return _MISSING
        if probe:
            return True
        key = (os.path.abspath(loc.file), "*" + name)
        if key in self._active:
            return _MISSING
        self._active.add(key)
        try:
            val, reason = self.member(loc, name)
        finally:
            self._active.discard(key)
        return val if reason is None else _MISSING

    def module_value(self, loc: ModuleLocation) -> tuple[Any, str | None]:
        """(the module as a value, None), or (None, why it cannot be analyzed)."""
        if loc.compiled:
            return None, self._compiled(loc)
        return Namespace(loc.name, ModuleNamespace(self, loc)), None

    @staticmethod
    def _compiled(loc: ModuleLocation) -> str:
        return f"`{loc.name}` is a compiled module: there is no source to analyze"

    @staticmethod
    def _not_found(module_name: str) -> str:
        if module_name.startswith("."):
            return f"unresolved import `{module_name}`: no such module next to this file"
        return f"unresolved import `{module_name}`: no module of that name in the workspace or on the search path"


def session_for(interp: Interpreter) -> ImportSession:
    """The import session of the analysis ``interp`` belongs to, created on the analysed file's
    interpreter at its first cross-file import."""
    if isinstance(interp, FileInterpreter):
        return interp.session
    session = getattr(interp, "import_session", None)
    if session is None:
        session = ImportSession(interp, project_index(interp.settings.search_paths))
        interp.import_session = session
    return session


def resolve_project_import(interp: Interpreter, dotted: str) -> tuple[Any, str | None]:
    """An import target that is neither torch nor a mapped standard-library name -> (value, reason)."""
    try:
        return session_for(interp).resolve(interp, dotted)
    except RecursionError:
        return None, f"import `{dotted}`: recursion limit reached while resolving it"
