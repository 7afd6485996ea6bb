"""Reusing the trace of a root class between analyses of one file.

The language server analyses a file on every keystroke, and a model file holds several root
classes (a GPT, a ResNet ...), each constructed and traced through a training step.  An edit
inside one of them changes nothing the others read, so their results (summary, per-line facts,
unresolved places, gradient cuts, notes) are kept in a :class:`TraceCache` and reused.

A root's key covers everything its trace can read:

* the text and position of its class statement and of every function, class and module-level
  assignment of the file it refers to, transitively (positions too: per-line facts are keyed by
  line);
* every other top-level statement (imports, registration calls, ``if`` / ``try`` blocks), always;
* the settings; the stamps of the other files the analysis read (imported sources: their unsaved
  editor text, else their size and mtime) and of the project's test files (example calls give
  input shapes);
* the code of the roots before it whose code may write module state (a registry a later
  construction reads): what one root leaves behind is part of the next one's input.  Such a
  root has no key: it is traced every time, so that what it leaves behind is always there.

Per-line facts are per root, merged in root order exactly as one interpreter run records them:
the first run of a line keeps its shapes, later runs add calls, saved bytes and FLOPs.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from .results import Analysis, ClassSummary, Diagnostic, GradCut, LineFact, Unresolved
from .statement_cache import StatementCache


@dataclass
class RootResult:
    """What tracing one root class added to an Analysis."""

    summary: ClassSummary | None
    lines: dict[int, LineFact] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    grad_cuts: list[GradCut] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: tuple = ()              # (path, ProjectIndex.stamp) of the other files the analysis had read


class TraceCache:
    """Root results by key, least recently used first out; and the statements of the files last
    analysed, which the next parse of a file reuses where an edit left them unchanged."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, RootResult] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.statements = StatementCache()

    def get(self, key: str, project) -> RootResult | None:
        """The result stored under ``key`` if the files it read are unchanged (``project``: the
        ProjectIndex that knows their current content, unsaved editor text included)."""
        result = self._entries.get(key)
        if result is not None and all(project.stamp(p) == stamp for p, stamp in result.files):
            self._entries.move_to_end(key)
            self.hits += 1
            return result
        if result is not None:
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: str, result: RootResult) -> None:
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def file_stamps(paths, project) -> tuple:
    return tuple((p, project.stamp(p)) for p in sorted(paths))


# -- keys ------------------------------------------------------------------------------------------

def root_keys(index, roots, settings, extra: str = "") -> dict[str, str]:
    """Key of each root class (by name) whose result may be reused (see the module docstring)."""
    from .interpreter import _bound_names
    from .project import _referenced_names

    body = index.tree.body
    definitions: dict[str, list] = {}       # top-level name -> the statements binding it
    always = []                             # statements every root depends on
    expanded = []                           # ... whose references count too (they run)
    for stmt in body:
        for name in _bound_names(stmt):
            definitions.setdefault(name, []).append(stmt)
        if not isinstance(stmt, _DEFINITIONS):
            always.append(stmt)             # imports, registration calls, `if`/`try` blocks
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)) and not _is_main_guard(stmt):
                expanded.append(stmt)
    def closure(seeds) -> list:
        seen: dict[int, ast.AST] = {}
        stack = list(seeds)
        while stack:
            stmt = stack.pop()
            if id(stmt) in seen:
                continue
            seen[id(stmt)] = stmt
            for part in _parts(stmt):
                for name in _referenced_names(part):
                    stack.extend(definitions.get(name, ()))
        return sorted(seen.values(), key=lambda s: (s.lineno, s.col_offset))

    common = hashlib.blake2b(f"{index.path}\n{settings!r}\n{extra}".encode(), digest_size=16)
    for stmt in always:
        common.update(_segment(index, stmt).encode())
    keys: dict[str, str] = {}
    chain = ""
    for cinfo in roots:
        stmts = closure([cinfo.node, *expanded])
        h = common.copy()
        h.update(f"{cinfo.name}\n{chain}\n".encode())
        for stmt in stmts:
            h.update(_segment(index, stmt).encode())
        key = h.hexdigest()
        if any(_writes_outside(stmt) for stmt in stmts):
            chain += key      # traced every time (what it leaves behind is not cached); no key
        else:
            keys[cinfo.name] = key
    return keys


def _parts(stmt) -> list:
    """What of a top-level statement refers to names: a class's body items (which root_classes has
    walked already) and its header; any other statement whole."""
    if isinstance(stmt, ast.ClassDef):
        return [*stmt.body, *stmt.bases, *stmt.keywords, *stmt.decorator_list]
    return [stmt]


def _writes_outside(stmt) -> bool:
    """Whether a function a top-level statement defines may change module state when called
    (project.stores_outside); cached on the statement, which every root's key that reaches it asks."""
    flag = getattr(stmt, "_gx_writes_outside", None)
    if flag is None:
        from .project import defined_functions, stores_outside

        flag = stmt._gx_writes_outside = any(stores_outside(f) for part in _parts(stmt)
                                             for f in defined_functions(part))
    return flag


def writes_module_state(index) -> bool:
    """Whether any function of the file may change module state when called: then what tracing one
    root leaves behind can be what the next one reads, and the roots are traced one after another."""
    return any(_writes_outside(stmt) for stmt in index.tree.body)


# top-level statements that only bind what they define: part of a key when a root refers to them
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign, ast.AnnAssign, ast.AugAssign)


def _is_main_guard(stmt) -> bool:
    """``if __name__ == "__main__":`` — never run by the analysis."""
    test = getattr(stmt, "test", None)
    return (isinstance(stmt, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def _segment(index, stmt) -> str:
    """A top-level statement's text with its position (decorators included)."""
    first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
    end = stmt.end_lineno or stmt.lineno
    return f"@{first}:{stmt.col_offset}\n" + "\n".join(index.lines[first - 1:end]) + "\n"


def tests_stamp(path: str, roots, project) -> str:
    """The stamps (ProjectIndex.stamp) of the Python files in the project's test folders, as one string."""
    from .inputs import MAX_TEST_FILES, project_test_files

    out = []
    for _folder, fpath in project_test_files(path, roots):
        out.append(f"{fpath}:{project.stamp(fpath)}")
        if len(out) > MAX_TEST_FILES:
            break
    return "\n".join(out)


# -- one root's contribution -----------------------------------------------------------------------

class RootRecorder:
    """Collects what one root's trace adds to ``analysis``, with facts on a fresh line table, so that
    the result is the same whether earlier roots were traced or reused."""

    def __init__(self, analysis: Analysis, seen_unresolved: set):
        self.analysis = analysis
        self.seen = seen_unresolved
        self._lines = analysis.lines
        self._marks = (len(analysis.unresolved), len(analysis.grad_cuts), len(analysis.diagnostics))

    def __enter__(self) -> "RootRecorder":
        self.analysis.lines = {}
        self.seen.clear()                 # the root's own unresolved places, all of them
        return self

    def finish(self, summary: ClassSummary | None, files: tuple) -> RootResult:
        a = self.analysis
        n_unresolved, n_cuts, n_diags = self._marks
        result = RootResult(summary=summary, lines=a.lines, unresolved=a.unresolved[n_unresolved:],
                            grad_cuts=a.grad_cuts[n_cuts:], diagnostics=a.diagnostics[n_diags:], files=files)
        # the lists are shared with the interpreters of imported files: trimmed in place
        del a.unresolved[n_unresolved:]
        del a.grad_cuts[n_cuts:]
        del a.diagnostics[n_diags:]
        a.lines = self._lines
        return result

    def __exit__(self, *exc) -> None:
        if self.analysis.lines is not self._lines:       # an exception before finish
            self.analysis.lines = self._lines


def merge_root(analysis: Analysis, result: RootResult, seen_unresolved: set) -> None:
    """Add a root's result to ``analysis`` (copies: a cached result is never changed)."""
    have = {(u.file, u.line, u.reason) for u in analysis.unresolved}
    for u in result.unresolved:
        key = (u.file, u.line, u.reason)
        if key not in have:
            have.add(key)
            analysis.unresolved.append(u)
    seen_unresolved.clear()
    seen_unresolved.update(have)
    cuts = {(g.kind, g.span.line, g.span.col) for g in analysis.grad_cuts}
    analysis.grad_cuts.extend(g for g in result.grad_cuts if (g.kind, g.span.line, g.span.col) not in cuts)
    analysis.diagnostics.extend(result.diagnostics)
    for line, fact in result.lines.items():
        mine = analysis.lines.get(line)
        if mine is None:
            analysis.lines[line] = dataclasses.replace(fact, tensors=list(fact.tensors), saved=list(fact.saved),
                                                       grad_params=list(fact.grad_params))
            continue
        if not mine.tensors:
            mine.tensors = list(fact.tensors)
        mine.calls += fact.calls
        mine.saved_bytes += fact.saved_bytes
        mine.saved.extend(fact.saved)
        mine.flops_forward += fact.flops_forward
        mine.flops_backward += fact.flops_backward
    if result.summary is not None:
        analysis.classes.append(dataclasses.replace(result.summary, inputs=dict(result.summary.inputs)))
