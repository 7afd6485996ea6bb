"""GX902 (not-traced): one note per place the analysis lost precision, on hand-built analyses (exact
messages and spans) and on real analyses across files."""
from __future__ import annotations

import textwrap

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.results import Analysis, Span, Unresolved
from gradxray.analyzer.rules import get_rule, run_rules
from gradxray.analyzer.settings import Settings

SRC = textwrap.dedent("""\
    class M(nn.Module):
        def forward(self, x):
            h = fused_gelu(x)   # a comment
            return h
""")


def _notes(analysis: Analysis, source: str = SRC, settings: Settings | None = None):
    return [(d.code, d.severity, d.message, (d.span.line, d.span.col, d.span.end_line, d.span.end_col), d.fix)
            for d in run_rules(analysis, source, settings or Settings()).diagnostics]


def test_rule_is_registered_as_an_information_note():
    rule = get_rule("GX902")
    assert (rule.name, rule.severity, rule.fix) == ("not-traced", "information", "none")
    assert rule.summary.startswith("Notes each place the analysis could not trace")


def test_one_note_per_place_on_the_statement():
    a = Analysis(path="m.py", unresolved=[
        Unresolved("m.py", 3, "undefined name `fused_gelu`"),
        Unresolved("m.py", 3, "call of an unknown value"),
    ])
    assert _notes(a) == [
        ("GX902", "information", "not traced: undefined name `fused_gelu`", (3, 8, None, None), None),
        ("GX902", "information", "not traced: call of an unknown value", (3, 8, None, None), None),
    ]


def test_span_columns_are_bytes_and_lines_are_clamped():
    src = "é = f(x)\n    y = g(é)\n"
    a = Analysis(path="m.py", unresolved=[Unresolved("m.py", 2, "r"), Unresolved("m.py", 99, "late"),
                                          Unresolved("m.py", 0, "early")])
    spans = [s for *_, s, _fix in _notes(a, src)]
    assert spans == [(1, 0, None, None), (2, 4, None, None), (3, 0, None, None)]   # 3: the empty last line


def test_no_places_no_notes_and_errors_are_left_alone():
    assert _notes(Analysis(path="m.py")) == []
    broken = Analysis(path="m.py", error="SyntaxError: invalid syntax",
                      unresolved=[Unresolved("m.py", 1, "r")])
    assert _notes(broken, "x = (") == []


def test_noqa_select_and_ignore():
    a = lambda: Analysis(path="m.py", unresolved=[Unresolved("m.py", 3, "undefined name `fused_gelu`")])  # noqa: E731
    assert _notes(a(), SRC.replace("# a comment", "# noqa: GX902")) == []
    assert _notes(a(), SRC.replace("# a comment", "# noqa")) == []
    assert len(_notes(a(), SRC.replace("# a comment", "# noqa: GX901"))) == 1
    assert _notes(a(), "# gradxray: noqa: GX902\n" + SRC) == []
    assert _notes(a(), settings=Settings(ignore=["GX9"])) == []
    assert _notes(a(), settings=Settings(select=["GX1"])) == []
    assert len(_notes(a(), settings=Settings(select=["GX1", "GX902"]))) == 1


# --- real analyses across files ------------------------------------------------------------------------

LAYERS = textwrap.dedent("""\
    import torch.nn as nn
    from missing_pkg import fused


    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.fc = nn.Linear(dim, 64)

        def forward(self, x):
            return fused(self.fc(x))
""")

MIDDLE = "from pkg.layers import Block\n"

MODEL = textwrap.dedent("""\
    import torch.nn as nn
    from pkg.{module} import Block


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block(32)

        def forward(self, x):  # gradxray: x=[B, 32] float32
            return self.block(x)
""")

MISSING = ("unresolved import `missing_pkg`: no module of that name in the workspace or on the "
           "search path")


@pytest.fixture
def pkg(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text(LAYERS)
    (pkg / "middle.py").write_text(MIDDLE)
    return pkg


def _analyze(path, text: str):
    path.write_text(text)
    return analyze_source(text, str(path), Settings())


def test_a_place_in_the_analysed_file_is_noted_where_it_is(pkg):
    # Block as the root of its own file: constructible, with its input shape stated
    src = LAYERS.replace("(self, dim)", "(self, dim=32)").replace(
        "def forward(self, x):", "def forward(self, x):  # gradxray: x=[B, 32] float32")
    a = _analyze(pkg / "layers_copy.py", src)
    line = LAYERS.splitlines().index("        return fused(self.fc(x))") + 1
    # on the expression that lost precision (`fused`), not the whole statement
    assert [(d.code, d.span.line, d.span.col, d.span.end_col, d.message) for d in a.diagnostics] == [
        ("GX902", line, 15, 20, f"not traced: {MISSING}")]


@pytest.mark.parametrize("module", ["layers", "middle"])
def test_a_place_in_an_imported_file_is_noted_on_the_import(pkg, module):
    a = _analyze(pkg / "model.py", MODEL.format(module=module))
    assert [(u.file, u.reason) for u in a.unresolved] == [(str(pkg / "layers.py"), MISSING)]
    [note] = a.diagnostics
    line = LAYERS.splitlines().index("        return fused(self.fc(x))") + 1
    assert note.code == "GX902" and note.severity == "information"
    assert note.message == f"not traced in imported layers.py:{line}: {MISSING}"
    # through `pkg.middle` too: the import statement that leads to the file
    assert (note.span.line, note.span.col) == (2, 0)


def test_an_imported_place_outside_the_folder_keeps_its_path(tmp_path, pkg):
    app = tmp_path / "app"
    app.mkdir()
    a = _analyze(app / "model.py", MODEL.format(module="layers"))
    [note] = a.diagnostics
    assert note.message.startswith(f"not traced in imported {pkg / 'layers.py'}:"), note.message
    assert note.span.line == 2


def test_fully_traced_analysis_has_no_note(pkg):
    (pkg / "layers.py").write_text(LAYERS.replace("from missing_pkg import fused\n", "")
                                   .replace("return fused(self.fc(x))", "return self.fc(x)"))
    a = _analyze(pkg / "model.py", MODEL.format(module="middle"))
    assert a.unresolved == [] and a.diagnostics == []
