"""Parsing an edited file again, reusing the top-level statements the edit did not change.

The language server analyses a document on every keystroke, and ``ast.parse`` of a 1,500-line
file takes 15-35 ms: more than the rest of an analysis that re-traces only the class an edit
touched (see ``incremental``).  A ``StatementCache`` keeps, per file, the top-level statements of
its last parse with the lines they span and the text of those lines.  The next parse of that file
reuses every statement whose lines hold the same text at the same line numbers (their nodes, with
what the analysis cached on them, see ``project._referenced_names``), and parses only the lines in
between, each run of them on its own, preceded by as many empty lines as come before it so that
every position is the one a parse of the whole text gives.

A reused statement starts a line at its first column and was complete, and each run in between
parses by itself, so both end where the tokenizer is outside any bracket, string or indented block:
the whole text's statements are theirs, in order (tests compare the result with ``ast.parse``
after edits of several kinds to the bench file, the examples and installed ``torch.nn`` sources).  When a run does not parse by itself (the edit left
a bracket or a string open, or is a syntax error) the whole text is parsed, which also gives the
error ``ast.parse`` gives.  Statements reuse only at the same lines: an edit that adds or removes a
line re-parses everything after it.
"""
from __future__ import annotations

import ast
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Group:
    """Top-level statements on lines ``first``..``last`` (statements sharing a line go together)."""

    first: int
    last: int
    text: str
    statements: list


class StatementCache:
    """The top-level statements of the files parsed last, by path (the least recently parsed of
    more than ``max_files`` forgotten)."""

    def __init__(self, max_files: int = 64):
        self.max_files = max_files
        self._files: OrderedDict[str, list[_Group]] = OrderedDict()
        self.reused = 0          # statements reused, and parsed, over this cache's life
        self.parsed = 0

    def parse(self, source: str, path: str) -> ast.Module:
        """``ast.parse(source, filename=path)``, reusing the statements of the last parse of ``path``
        that are unchanged.  Raises ``SyntaxError`` (and ``ValueError``) as ``ast.parse`` does."""
        lines = _lines(source)
        previous = self._files.pop(path, None)
        groups = self._reparse(lines, previous) if lines is not None and previous else None
        if groups is None:
            body = ast.parse(source, filename=path).body
            self.parsed += len(body)
            if lines is None:
                return ast.Module(body=body, type_ignores=[])
            groups = _groups(body, lines)
        self._files[path] = groups
        while len(self._files) > self.max_files:
            self._files.popitem(last=False)
        return ast.Module(body=[stmt for group in groups for stmt in group.statements], type_ignores=[])

    def _reparse(self, lines: list[str], previous: list[_Group]) -> list[_Group] | None:
        """The statement groups of ``lines``: unchanged groups reused, the runs of lines between them
        parsed; None when a run does not parse by itself."""
        groups: list[_Group] = []
        line = 1                                         # the first line not yet covered
        for group in previous:
            if group.last > len(lines) or "\n".join(lines[group.first - 1:group.last]) != group.text:
                continue
            if not self._parse_run(lines, line, group.first - 1, groups):
                return None
            groups.append(group)
            self.reused += len(group.statements)
            line = group.last + 1
        if not self._parse_run(lines, line, len(lines), groups):
            return None
        return groups

    def _parse_run(self, lines: list[str], first: int, last: int, groups: list[_Group]) -> bool:
        """Parse lines ``first``..``last`` by themselves at their own line numbers, appending their
        statement groups to ``groups``; False when they do not parse so."""
        if first > last:
            return True
        text = "\n" * (first - 1) + "\n".join(lines[first - 1:last])
        try:
            statements = ast.parse(text).body
        except (SyntaxError, ValueError, RecursionError):
            return False
        groups.extend(_groups(statements, lines))
        self.parsed += len(statements)
        return True

    def __len__(self) -> int:
        return len(self._files)


def _lines(source: str) -> list[str] | None:
    """The lines of ``source`` as the tokenizer counts them (``\\n``; ``\\r\\n`` lines keep their
    ``\\r``), or None for a text with a lone ``\\r``, which also ends a line for the tokenizer."""
    if "\r" in source and "\r" in source.replace("\r\n", ""):
        return None
    return source.split("\n")


def _groups(body: list, lines: list[str]) -> list[_Group]:
    """The statements of ``body`` grouped by the lines they span (a decorated definition from its
    first decorator; statements on a shared line, ``a = 1; b = 2``, in one group)."""
    groups: list[_Group] = []
    for stmt in body:
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
        last = stmt.end_lineno or stmt.lineno
        if groups and first <= groups[-1].last:
            groups[-1].last = max(groups[-1].last, last)
            groups[-1].statements.append(stmt)
        else:
            groups.append(_Group(first, last, "", [stmt]))
    for group in groups:
        group.text = "\n".join(lines[group.first - 1:group.last])
    return groups
