"""Re-parsing an edited file statement by statement must give exactly what ``ast.parse`` gives
(every node, every position) or raise what it raises, whatever the edit."""
from __future__ import annotations

import ast
import glob
import os
import random

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.incremental import TraceCache
from gradxray.analyzer.statement_cache import StatementCache
from tests.support.analysis_dump import dump

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LARGE = os.path.join(REPO, "bench", "fixtures", "large_model.py")


def _corpus() -> list[str]:
    """The bench file, the examples, the analyzer's own sources and installed torch.nn sources."""
    files = [LARGE, *sorted(glob.glob(os.path.join(REPO, "examples", "*.py"))),
             *sorted(glob.glob(os.path.join(REPO, "gradxray", "analyzer", "*.py")))]
    try:
        import torch.nn
        files += sorted(glob.glob(os.path.join(os.path.dirname(torch.nn.__file__), "modules", "*.py")))
    except ImportError:
        pass
    return files


def _same_as_ast_parse(cache: StatementCache, source: str, path: str = "m.py") -> None:
    try:
        expected = ast.dump(ast.parse(source, filename=path), include_attributes=True)
    except (SyntaxError, ValueError) as error:
        with pytest.raises(type(error)) as raised:
            cache.parse(source, path)
        assert (raised.value.args, getattr(raised.value, "lineno", None)) == \
            (error.args, getattr(error, "lineno", None))
        return
    assert ast.dump(cache.parse(source, path), include_attributes=True) == expected


def _edits(source: str, rng: random.Random):
    """Edits of ``source`` a user makes: a comment typed at a line's end (no line moves), a line
    added and one removed, a word changed, an unclosed bracket and string, a blank line."""
    lines = source.split("\n")
    for _ in range(3):
        i = rng.randrange(len(lines))
        typed = list(lines)
        typed[i] += "  # typed"
        yield "\n".join(typed)
    i = rng.randrange(len(lines))
    yield "\n".join(lines[:i] + ["x_added = 1"] + lines[i:])
    yield "\n".join(lines[:i] + lines[i + 1:])
    yield "\n".join(lines[:i] + [lines[i].replace("self", "this", 1)] + lines[i + 1:])
    yield "\n".join(lines[:i] + [lines[i] + " ("] + lines[i + 1:])
    yield "\n".join(lines[:i] + ['"""'] + lines[i:])
    yield "\n".join(lines[:i] + [""] + lines[i:])


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: os.path.relpath(p, REPO) if p.startswith(REPO)
                         else os.path.basename(p))
def test_reparsing_edits_gives_what_ast_parse_gives(path):
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    rng = random.Random(path)
    cache = StatementCache()
    _same_as_ast_parse(cache, source)
    for edited in _edits(source, rng):
        _same_as_ast_parse(cache, edited)
        _same_as_ast_parse(cache, source)          # and back


def test_an_edit_inside_one_statement_parses_only_that_statement():
    with open(LARGE, encoding="utf-8") as fh:
        source = fh.read()
    cache = StatementCache()
    first = cache.parse(source, LARGE)
    statements = len(first.body)
    lines = source.split("\n")
    convnext = next(s for s in first.body if isinstance(s, ast.ClassDef) and s.name == "ConvNeXt")
    lines[convnext.end_lineno - 1] += "  # an edit"
    cache.reused = cache.parsed = 0
    edited = cache.parse("\n".join(lines), LARGE)
    assert (cache.reused, cache.parsed) == (statements - 1, 1)
    assert [s is t for s, t in zip(first.body, edited.body)].count(False) == 1   # the other nodes kept
    # a line added before it: the statements after it move, so they are parsed again
    cache.reused = cache.parsed = 0
    cache.parse("\n".join(lines[:convnext.lineno - 1] + [""] + lines[convnext.lineno - 1:]), LARGE)
    assert cache.parsed >= 1 and cache.reused + cache.parsed == statements


@pytest.mark.parametrize("source, edited", [
    ("@dec\n@dec2(1)\nclass A:\n    x = 1\n\ny = 2\n", "@dec\n@dec2(1)\nclass A:\n    x = 2\n\ny = 2\n"),
    ("a = 1; b = 2\nc = (1,\n2); d = 3\ne = 4\n", "a = 1; b = 2\nc = (1,\n2); d = 3\ne = 5\n"),
    ("x = 1\r\nclass A:\r\n    pass\r\n", "x = 2\r\nclass A:\r\n    pass\r\n"),
    ("x = 1\rclass A:\r    pass\r", "x = 2\rclass A:\r    pass\r"),          # lone carriage returns
    ("x = 1\ny = 2", "x = 1\ny = 3"),                                            # no final newline
    ('"""Doc.\n\nAt column 0.\n"""\nimport os\n', '"""Doc.\n\nAt column 0, edited.\n"""\nimport os\n'),
    ("if a:\n    b = 1\nelse:\n    b = 2\nc = 3\n", "if a:\n    b = 1\nelse:\n    b = 2\nc = 4\n"),
    ("x = 1\ny = 2\n", "x = 1\ny = \\\n2\n"),                                   # a continuation line
    ("x = 1\ny = 2\n", "x = 1 +\ny = 2\n"),                                     # a syntax error
    ("x = 1\ny = 2\n", "x = 1\ny = 2\x00\n"),                                   # a null byte
])
def test_shapes_of_text_that_must_not_fool_the_reuse(source, edited):
    cache = StatementCache()
    _same_as_ast_parse(cache, source)
    _same_as_ast_parse(cache, edited)
    _same_as_ast_parse(cache, source)


def test_files_are_kept_apart_and_the_least_recent_forgotten():
    cache = StatementCache(max_files=2)
    a = cache.parse("x = 1\n", "a.py")
    cache.parse("x = 1\n", "b.py")
    assert cache.parse("x = 1\n", "a.py").body[0] is a.body[0]      # same file, same statement
    assert cache.parse("x = 1\n", "c.py").body[0] is not a.body[0]  # another file: its own nodes
    assert len(cache) == 2
    assert cache.parse("x = 1\n", "b.py").body[0] is not a.body[0]  # b was forgotten


def test_an_edited_analysis_with_reused_statements_equals_a_fresh_one():
    with open(LARGE, encoding="utf-8") as fh:
        source = fh.read()
    cache = TraceCache()
    analyze_source(source, LARGE, cache=cache, jobs=1)
    lines = source.split("\n")
    target = next(i for i, line in enumerate(lines) if "def forward" in line and i > len(lines) // 2)
    lines[target + 1] += "  # edited"
    edited = "\n".join(lines)
    again = analyze_source(edited, LARGE, cache=cache, jobs=1)
    assert cache.statements.reused > 0
    assert dump(again) == dump(analyze_source(edited, LARGE, jobs=1))
