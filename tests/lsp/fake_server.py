"""The real language server with a stand-in analyzer (hand-built Analysis objects).

Every assignment in a ``forward`` becomes a LineFact: one tensor per assigned
name, shape ``[B, T, 384]`` float32, run twice, and 2 x 4096 bytes saved by an
``Addmm`` when the value calls ``self.``; every ``.detach()`` is a gradient cut
of ``head.weight`` (``tests/support/fake_analyzer.py``); every class gets a
ClassSummary; a line ending in ``# needs-pragma`` gets a GX901 note with a safe
fix.  The rules are real.  A source holding ``# slow`` takes a second to analyse;
one holding ``# count-analyses`` adds a line to ``<file>.analyses`` per analysis.
"""
from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gradxray.analyzer.results import (  # noqa: E402
    Analysis, ClassSummary, Diagnostic, Edit, Fix, LineFact, SavedFact, Span, TensorFact,
)
from tests.support.fake_analyzer import install  # noqa: E402


def describe(a: Analysis, tree: ast.Module, source: str) -> None:
    path = a.path
    if "# slow" in source:
        time.sleep(1.0)
    if "# count-analyses" in source:
        with open(Path(path).with_suffix(".analyses"), "a") as f:
            f.write("analysed\n")
    for i, text in enumerate(source.splitlines(), 1):
        if text.rstrip().endswith("# needs-pragma"):
            end = len(text.rstrip()) - len("# needs-pragma")
            end = len(text[:end].rstrip())
            a.diagnostics.append(Diagnostic(
                "GX901", "no input shape for M.forward", "information", Span(path, i, 4, i, end),
                fix=Fix("safe", "Insert the input-shape pragma",
                        [Edit(Span(path, i, end, i, end), "  # gradxray: x=[B, T, 384] float32")])))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            a.classes.append(ClassSummary(node.name, node.lineno, 12_400_000, 49_600_000, 3 * 2**30, 2**30))
        if isinstance(node, ast.FunctionDef) and node.name == "forward":
            for stmt in ast.walk(node):
                if not isinstance(stmt, ast.Assign):
                    continue
                target = stmt.targets[0]
                names = [e.id for e in target.elts] if isinstance(target, ast.Tuple) else [getattr(target, "id", "?")]
                uses_module = "self." in ast.unparse(stmt.value)
                a.lines[stmt.lineno] = LineFact(
                    file=path, line=stmt.lineno, end_line=stmt.end_lineno, end_col=stmt.end_col_offset,
                    tensors=[TensorFact(n, ("B", "T", "384"), (8, 256, 384), "float32", True) for n in names],
                    calls=2, saved_bytes=2 * 4096 if uses_module else 0,
                    saved=[SavedFact("Addmm", "input", (2048, 384), "float32", 4096)] if uses_module else [],
                    flops_forward=1000, flops_backward=2000, grad_params=["proj.weight"])


install(["head.weight"], describe)

if __name__ == "__main__":
    from gradxray.cli import main

    sys.exit(main(["lsp"]))
