"""Per-line memory and FLOP facts from a simulated training step's tracker."""
from __future__ import annotations

from .results import Analysis, LineFact, SavedFact


def _fact(analysis: Analysis, path: str, line: int) -> LineFact:
    fact = analysis.lines.get(line)
    if fact is None:
        fact = analysis.lines[line] = LineFact(file=path, line=line)
    return fact


def add_step_facts(analysis: Analysis, step, path: str) -> None:
    """Attribute saved-for-backward bytes and FLOPs to the source lines of ``path`` that caused them."""
    tracker = step.tracker
    first_call: dict[int, set[tuple[str, str]]] = {}
    for rec in tracker.saved:
        if rec.location is None or rec.location[0] != path:
            continue
        line = rec.location[1]
        fact = _fact(analysis, path, line)
        activation = rec.new_storage and rec.category not in ("param", "buffer")
        if activation:
            fact.saved_bytes += rec.nbytes
        key = (rec.op, rec.what)
        seen = first_call.setdefault(line, set())
        if key not in seen:          # one entry per op and saved value: what a single call saves
            seen.add(key)
            fact.saved.append(SavedFact(op=rec.op, what=rec.what, shape=rec.shape, dtype=rec.dtype,
                                        nbytes=rec.nbytes if activation else 0))
    for (file, line), (fwd, bwd) in tracker.flops_by_location.items():
        if file != path:
            continue
        fact = _fact(analysis, path, line)
        fact.flops_forward += fwd
        fact.flops_backward += bwd
