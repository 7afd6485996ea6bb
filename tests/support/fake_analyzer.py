"""What the stand-in analyzers of ``tests/cli/fake_cli.py`` and ``tests/lsp/fake_server.py`` share.

:func:`install` replaces ``gradxray.analyzer.analyze_source`` with a stand-in
that never infers anything: a source that does not parse gives an ``Analysis``
with ``error``; otherwise every ``<expr>.detach()`` call becomes a gradient cut
of the given parameters, the caller's ``describe`` adds the rest, and the real
rules run.
"""
from __future__ import annotations

import ast
from typing import Callable

import gradxray.analyzer as analyzer
from gradxray.analyzer.results import Analysis, GradCut, Span
from gradxray.analyzer.rules import run_rules


def install(cut_params: list[str], describe: Callable[[Analysis, ast.Module, str], None]) -> None:
    def fake_analyze_source(source: str, path: str, settings=None, *, cache=None, jobs=None) -> Analysis:
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            return Analysis(path=path, error=f"SyntaxError: {exc.msg}")
        a = Analysis(path=path)
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "detach":
                span = Span(path, n.lineno, n.col_offset, n.end_lineno, n.end_col_offset)
                a.grad_cuts.append(GradCut("detach", span, list(cut_params)))
        describe(a, tree, source)
        return run_rules(a, source, settings)

    analyzer.analyze_source = fake_analyze_source
