"""Source positions: ``ast`` columns (UTF-8 bytes) to characters and back.

The analyzer reports columns as ``ast`` does (0-based offsets in the UTF-8
encoding of the line).  Renderers convert: the CLI prints 1-based character
columns (like ruff), the language server turns characters into UTF-16 code
units (or what the client negotiated) with pygls' position codec.  On ASCII lines all of these are the same number.
"""
from __future__ import annotations

import re

_EOL = re.compile(r"\r\n|\r|\n")


def split_lines(source: str) -> list[str]:
    """Lines without their ends, split the way ``ast`` numbers them (\\n, \\r\\n, \\r)."""
    return _EOL.split(source)


def byte_col_to_char(line_text: str, col: int) -> int:
    """An ``ast`` column (UTF-8 byte offset) to a character index in ``line_text``."""
    if col <= 0:
        return 0
    if line_text.isascii():
        return min(col, len(line_text))
    return len(line_text.encode("utf-8")[:col].decode("utf-8", errors="ignore"))


def line_text(lines: list[str], line: int) -> str:
    """1-based line; empty string when out of range."""
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return ""


def span_chars(lines: list[str], span) -> tuple[int, int, int, int]:
    """A ``Span`` as (line, char, end_line, end_char): 1-based lines, 0-based character columns.

    A span without an end runs to the end of its line's text (never before its start)."""
    line = max(1, span.line)
    char = byte_col_to_char(line_text(lines, line), span.col)
    if span.end_line is not None and span.end_col is not None:
        return line, char, span.end_line, byte_col_to_char(line_text(lines, span.end_line), span.end_col)
    return line, char, line, max(char, len(line_text(lines, line).rstrip()))


def span_text(lines: list[str], line: int, col: int, end_line: int, end_col: int) -> str:
    """The text between two ``ast`` positions (1-based lines, byte columns)."""
    if end_line < line:
        return ""
    first = line_text(lines, line)
    c0 = byte_col_to_char(first, col)
    if end_line == line:
        return first[c0:byte_col_to_char(first, end_col)]
    parts = [first[c0:]]
    for ln in range(line + 1, end_line):
        parts.append(line_text(lines, ln))
    last = line_text(lines, end_line)
    parts.append(last[:byte_col_to_char(last, end_col)])
    return "\n".join(parts)


def char_col_to_byte(line_text: str, char_col: int) -> int:
    if line_text.isascii():
        return char_col
    return len(line_text[:char_col].encode("utf-8"))
