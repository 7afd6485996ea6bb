"""
## What it does
Flags a `.detach()` on the path from the model's parameters to its output
when some parameters reach the output *only* through that call, so they would
never receive a gradient.

## Why is this bad?
`.detach()` returns a tensor that shares storage with its input but is cut
out of the autograd graph. Everything computed before the cut gets no
gradient from anything computed after it. When the detached value is the
only route from some parameters to the loss, those parameters silently stop
training: `loss.backward()` leaves their `.grad` as `None`, optimizers skip
them, and under DistributedDataParallel the run fails with "Expected to have
finished reduction in the prior iteration" unless `find_unused_parameters=True`.

The warning names the parameters that are cut off, as the analyzer traced
them from the module's `forward`.

## Example
```python
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(768, 768)
        self.head = nn.Linear(768, 10)

    def forward(self, x):
        h = self.proj(x).detach()   # proj.weight and proj.bias never get a gradient
        return self.head(h)
```

## Use instead
```python
    def forward(self, x):
        h = self.proj(x)
        return self.head(h)
```
If the cut is intended (a frozen feature extractor, a target network, a
stop-gradient in a loss), make it explicit: freeze the parameters with
`requires_grad_(False)`, compute the frozen part under `torch.no_grad()`,
or suppress the warning with `# noqa: GX101`.

## Fix safety
The fix removes the `.detach()` call. It is unsafe: it changes which
parameters train, and it may be that the cut was wanted.

## References
- [`torch.Tensor.detach`](https://pytorch.org/docs/stable/generated/torch.Tensor.detach.html)
- [Autograd mechanics: excluding subgraphs from backward](https://pytorch.org/docs/stable/notes/autograd.html#locally-disabling-gradient-computation)
- [DDP `find_unused_parameters`](https://pytorch.org/docs/stable/generated/torch.nn.parallel.DistributedDataParallel.html)
"""
from __future__ import annotations

import ast
import re
from typing import Iterable

from gradxray.analyzer.positions import byte_col_to_char, char_col_to_byte, line_text, span_text, split_lines
from gradxray.analyzer.results import Analysis, Diagnostic, Edit, Fix, Span

CODE = "GX101"
NAME = "detach-cuts-gradient"
# fields: {count} number of parameters, {parameters} "parameter"/"parameters",
# {verb} "reaches"/"reach", {names} the (abbreviated) list of parameter names
MESSAGE = "`.detach()` cuts the gradient to {count} {parameters} that {verb} the output only through it: {names}"
SEVERITY = "warning"
FIX = "unsafe"

MAX_NAMES = 5

_DETACH_TAIL = re.compile(r"(?P<recv>.*)\.\s*detach\s*\(\s*\)\s*", re.S)
_DETACH_ANY = re.compile(r"\.\s*detach\s*\(\s*\)")


def format_names(names: list[str], limit: int = MAX_NAMES) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" … and {len(names) - limit} more"


def message(cut_params: list[str]) -> str:
    n = len(cut_params)
    return MESSAGE.format(count=n, parameters="parameter" if n == 1 else "parameters",
                          verb="reaches" if n == 1 else "reach", names=format_names(cut_params))


def _complete_span(lines: list[str], span: Span) -> Span | None:
    """The span with its end filled in (the end of the first `.detach()` after the start)."""
    if span.end_line is not None and span.end_col is not None:
        return span
    text = line_text(lines, span.line)
    c0 = byte_col_to_char(text, span.col)
    m = _DETACH_ANY.search(text, c0)
    if not m:
        return None
    return Span(span.file, span.line, span.col, span.line, char_col_to_byte(text, m.end()))


def removal_fix(source: str, span: Span, lines: list[str] | None = None) -> Fix | None:
    """An edit replacing the `.detach()` call with its receiver (or deleting a bare `.detach()` span).

    Text-based and cheap; returns ``None`` when the span does not hold a
    recognisable ``<expr>.detach()`` call, so a wrong edit is never offered.
    """
    lines = lines if lines is not None else split_lines(source)
    full = _complete_span(lines, span)
    if full is None:
        return None
    text = span_text(lines, full.line, full.col, full.end_line, full.end_col)
    m = _DETACH_TAIL.fullmatch(text)
    if not m:
        return None
    recv = m.group("recv").rstrip(" \t\r\n\\")
    if recv.strip():
        try:
            ast.parse("(" + recv + "\n)", mode="eval")
        except SyntaxError:
            return None
    else:
        recv = ""
    return Fix(applicability="unsafe", message="Remove `.detach()`",
               edits=[Edit(span=full, content=recv)])


def check(analysis: Analysis, source: str, settings=None) -> Iterable[Diagnostic]:
    lines: list[str] | None = None
    for cut in analysis.grad_cuts:
        if cut.kind != "detach" or not cut.cut_params:
            continue
        if lines is None:
            lines = split_lines(source)
        fix = removal_fix(source, cut.span, lines)
        span = fix.edits[0].span if fix else cut.span
        yield Diagnostic(code=CODE, message=message(list(cut.cut_params)), severity=SEVERITY,
                         span=span, fix=fix)
