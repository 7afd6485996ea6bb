"""Helpers shared by the analyzer tests."""
from __future__ import annotations

import textwrap


def facts(analysis, line: int) -> list[tuple[str, tuple[str, ...], str]]:
    lf = analysis.lines.get(line)
    return [] if lf is None else [(t.name, t.shape, t.dtype) for t in lf.tensors]


def line_of(src: str, needle: str) -> int:
    """1-based line of the first line of dedented ``src`` that contains ``needle``."""
    for i, text in enumerate(textwrap.dedent(src).splitlines(), 1):
        if needle in text:
            return i
    raise AssertionError(f"{needle!r} not in source")


def reasons(analysis) -> list[str]:
    return [u.reason for u in analysis.unresolved]
