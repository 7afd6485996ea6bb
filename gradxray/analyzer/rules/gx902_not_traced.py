"""
## What it does
Notes each place the analysis could not trace: a call, a value or an import
it could not follow (an unresolved import, an undefined name, a call it has
no model for, a statement budget that ran out). The note says why, on the
line where the precision was lost. A place lost in another file the analysed
file imports is noted on the import statement that leads there, naming that
file and line.

## Why is this bad?
What gradxray cannot trace it leaves out: shapes after that point may be
unknown, and saved-for-backward bytes, FLOPs and peak memory do not count
what runs there. Without this note, `gradxray check` would say "All checks
passed!" over an analysis that silently skipped part of the model, and the
figures in the editor would look complete when they are not.

This is an analysis note (severity *information*): it never fails
`gradxray check`.

## Example
```python
from my_ops import fused_gelu   # a package gradxray cannot find

class MLP(nn.Module):
    def forward(self, x):  # gradxray: x=[B, T, 768] float32
        h = fused_gelu(self.fc(x))   # GX902: not traced: unresolved import `my_ops` ...
        return self.proj(h)
```

## Use instead
Let gradxray find the source: add the folder that holds it to
`[tool.gradxray] roots` (workspace folders) or `search-paths` (installed
packages), or pass `--root` / `--search-path`:
```toml
[tool.gradxray]
roots = ["src"]
search-paths = [".venv/lib/python3.11/site-packages"]
```
Where the code cannot be traced (a compiled extension, dynamic code), the
note documents that the figures leave it out; suppress it with
`# noqa: GX902` once that is understood.

## Fix safety
There is no fix: what to do depends on why the place was not traced.

## References
- gradxray design: *Imports across files*
- `gradxray memory` lists the same places under "not traced"
"""
from __future__ import annotations

import ast
import os
from typing import Iterable

from gradxray.analyzer.positions import char_col_to_byte, line_text, split_lines
from gradxray.analyzer.results import Analysis, Diagnostic, Span

CODE = "GX902"
NAME = "not-traced"
# fields: {reason} why the analysis lost precision there (from the analyzer)
MESSAGE = "not traced: {reason}"
# fields: {where} "file.py:LINE" of the place in an imported file, {reason} as above
IMPORTED_MESSAGE = "not traced in imported {where}: {reason}"
SEVERITY = "information"
FIX = "none"


def _statement_span(path: str, lines: list[str], line: int) -> Span:
    """From the first non-blank character of ``line`` to the end of its text (clamped to the file)."""
    line = min(max(line, 1), max(len(lines), 1))
    text = line_text(lines, line)
    indent = len(text) - len(text.lstrip())
    return Span(path, line, char_col_to_byte(text, indent))


def _display_path(file: str, analysed: str) -> str:
    """``file`` relative to the analysed file's folder when it lies under it, else as it is."""
    rel = os.path.relpath(os.path.abspath(file), os.path.dirname(os.path.abspath(analysed)))
    return file if rel.startswith("..") else rel.replace(os.sep, "/")


class _ImportLines:
    """Which import statement of the analysed file leads to another file (directly, or through the
    files it imports), resolved with the project index the analysis used."""

    def __init__(self, analysis: Analysis, source: str, settings):
        from gradxray.analyzer.project import project_index, workspace_roots

        self.path = analysis.path
        self.project = project_index(getattr(settings, "search_paths", None) or ())
        self.roots = workspace_roots(analysis.path, getattr(settings, "roots", None) or ())
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):
            tree = None
        self.imports: list[tuple[int, set[str]]] = []   # (line, files the statement names)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.append((node.lineno, self._files_named(node)))
        self.imports.sort(key=lambda item: item[0])

    def _files_named(self, node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif node.module == "__future__":
            return set()
        else:
            base = "." * node.level + (node.module or "")
            sep = "" if base.endswith(".") else "."
            targets = [base] + [base + sep + a.name for a in node.names if a.name != "*"]
        files: set[str] = set()
        for target in targets:
            level = len(target) - len(target.lstrip("."))
            parts = target[level:].split(".") if target[level:] else []
            # every package on the way runs its __init__ too
            for i in range(1 if level == 0 else 0, len(parts) + 1):
                name = "." * level + ".".join(parts[:i])
                loc = self.project.resolve_module(name, self.path, self.roots)
                if loc is not None and loc.file:
                    files.add(os.path.abspath(loc.file))
        return files

    def line_for(self, file: str) -> int:
        """The first import statement that reaches ``file``; line 1 when none is found."""
        file = os.path.abspath(file)
        reaching = {file} | self.project.dependents(file)
        for line, files in self.imports:
            if files & reaching:
                return line
        return 1


def check(analysis: Analysis, source: str, settings=None) -> Iterable[Diagnostic]:
    if not analysis.unresolved:
        return
    lines = split_lines(source)
    analysed = os.path.abspath(analysis.path)
    import_lines: _ImportLines | None = None
    for place in list(analysis.unresolved):
        if os.path.abspath(place.file) == analysed:
            span = (_statement_span(analysis.path, lines, place.line) if place.col is None or place.line > len(lines)
                    else Span(analysis.path, place.line, place.col, place.end_line, place.end_col))
            yield Diagnostic(code=CODE, message=MESSAGE.format(reason=place.reason), severity=SEVERITY, span=span)
            continue
        if import_lines is None:
            import_lines = _ImportLines(analysis, source, settings)
        where = f"{_display_path(place.file, analysis.path)}:{place.line}"
        yield Diagnostic(code=CODE, message=IMPORTED_MESSAGE.format(where=where, reason=place.reason),
                         severity=SEVERITY,
                         span=_statement_span(analysis.path, lines, import_lines.line_for(place.file)))
