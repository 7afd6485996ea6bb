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


def source_line(src: str, line: int) -> str:
    """The text of 1-based ``line`` of dedented ``src``."""
    return textwrap.dedent(src).splitlines()[line - 1]


def reasons(analysis) -> list[str]:
    return [u.reason for u in analysis.unresolved]


_FC_NET = """\
import torch
import torch.nn as nn
{imports}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear({fc})

    def forward(self, x):{pragma}
{body}"""


def fc_net(forward: str, *, fc: str = "4, 4", pragma: str | None = "x=[B, 4]", imports: str = "") -> str:
    """Source of a file (``torch`` and ``torch.nn as nn`` imported, then ``imports``) defining one
    module ``Net``: ``self.fc = nn.Linear(<fc>)``, and ``forward(self, x)`` with the input pragma
    ``# gradxray: <pragma>`` (none when None) and the body ``forward``."""
    return _FC_NET.format(imports=imports, fc=fc, pragma=f"  # gradxray: {pragma}" if pragma is not None else "",
                          body=textwrap.indent(textwrap.dedent(forward), " " * 8))


def first_shape(analysis, src: str, needle: str) -> tuple[str, ...]:
    """The shape of the first tensor bound on the line of ``src`` containing ``needle``."""
    return facts(analysis, line_of(src, needle))[0][1]


def write_tree(root, files: dict[str, str]) -> None:
    """Write ``{relative path: dedented text}`` under ``root`` (a pathlib.Path), creating folders."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def analyze_in_tree(root, name: str):
    """``analyze_source`` of ``root/name`` with ``root`` as a workspace root."""
    from gradxray.analyzer import analyze_source
    from gradxray.analyzer.settings import Settings

    path = root / name
    return analyze_source(path.read_text(), str(path), Settings(roots=[str(root)]))
