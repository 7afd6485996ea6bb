"""Rules registry, suppression, selection and GX101 on hand-built analyses (no analyzer needed)."""
from __future__ import annotations

import pytest

from gradxray.analyzer.results import Analysis, Diagnostic, GradCut, Span
from gradxray.analyzer.rules import (
    all_rules, get_rule, is_enabled, noqa_insertion, parse_suppressions, registry, run_rules,
)
from gradxray.analyzer.rules import gx101_detach_cuts_gradient as gx101
from gradxray.analyzer.settings import Settings

HEADINGS = ("What it does", "Why is this bad?", "Example", "Use instead", "References")

SRC = """\
class Head(nn.Module):
    def forward(self, x):
        h = self.proj(x).detach()
        return self.head(h)
"""


def _analysis(source: str = SRC, cuts=None, diags=None) -> Analysis:
    if cuts is None:
        col = source.splitlines()[2].index("self.proj")
        end = source.splitlines()[2].index(".detach()") + len(".detach()")
        cuts = [GradCut(kind="detach", span=Span("m.py", 3, col, 3, end),
                        cut_params=["proj.weight", "proj.bias"])]
    return Analysis(path="m.py", grad_cuts=cuts, diagnostics=list(diags or []))


def test_registry_has_documented_rules():
    rules = registry()
    assert {"GX101", "GX901"} <= set(rules)
    for rule in all_rules():
        for heading in HEADINGS:
            assert heading in rule.docs, (rule.code, heading)
        assert rule.severity in ("error", "warning", "information", "hint")
        assert rule.fix in ("safe", "unsafe", "none")
        assert rule.name and rule.message and rule.summary
    assert get_rule("gx101").name == "detach-cuts-gradient"
    assert get_rule("GX901").severity == "information"
    assert get_rule("GX000") is None


def test_gx101_message_and_fix():
    a = run_rules(_analysis(), SRC, Settings())
    [d] = a.diagnostics
    assert d.code == "GX101" and d.severity == "warning"
    assert d.message == ("`.detach()` cuts the gradient to 2 parameters that reach the output only "
                         "through it: proj.weight, proj.bias")
    assert d.fix.applicability == "unsafe"
    [edit] = d.fix.edits
    assert edit.content == "self.proj(x)"
    assert (edit.span.line, edit.span.col, edit.span.end_line) == (3, 12, 3)
    assert SRC.splitlines()[2][edit.span.col:edit.span.end_col] == "self.proj(x).detach()"


def test_gx101_singular_and_abbreviated():
    assert "1 parameter that reaches" in gx101.message(["w"])
    names = [f"p{i}" for i in range(15)]
    msg = gx101.message(names)
    assert msg.endswith("p0, p1, p2, p3, p4 … and 10 more")


def test_gx101_no_cut_params_no_warning():
    a = _analysis(cuts=[GradCut(kind="detach", span=Span("m.py", 3, 12, 3, 33), cut_params=[])])
    assert run_rules(a, SRC, Settings()).diagnostics == []


@pytest.mark.parametrize("line, expected", [
    ("y = (a + b).detach()", "(a + b)"),
    ("y = x.detach().detach()", "x.detach()"),
    ("y = x.detach( )", "x"),
    ("y = f(x)[0].detach()", "f(x)[0]"),
])
def test_gx101_fix_receivers(line, expected):
    col = line.index("=") + 2
    span = Span("m.py", 1, col, 1, len(line))
    fix = gx101.removal_fix(line + "\n", span)
    assert fix is not None and fix.edits[0].content == expected


def test_gx101_fix_multiline_and_missing_end():
    src = "y = (x\n     .detach())\n"
    fix = gx101.removal_fix(src, Span("m.py", 1, 5, 2, 14))
    assert fix.edits[0].content == "x"
    # no end given: the first `.detach()` after the start is used
    fix = gx101.removal_fix("y = x.detach() + 1\n", Span("m.py", 1, 4))
    assert fix.edits[0].content == "x"
    assert (fix.edits[0].span.end_line, fix.edits[0].span.end_col) == (1, 14)
    # a span on just `.detach()` deletes it
    fix = gx101.removal_fix("y = x.detach()\n", Span("m.py", 1, 5, 1, 14))
    assert fix.edits[0].content == ""
    # not a detach call: no fix rather than a wrong one
    assert gx101.removal_fix("y = x.clone()\n", Span("m.py", 1, 4, 1, 13)) is None


def test_gx101_fix_non_ascii_columns():
    # ast columns are UTF-8 byte offsets
    line = "é = x.detach()"
    col = len("é = ".encode())
    span = Span("m.py", 1, col, 1, len(line.encode()))
    assert gx101.removal_fix(line + "\n", span).edits[0].content == "x"


def test_noqa_line_and_file():
    src = SRC.replace(".detach()", ".detach()  # noqa: GX101")
    assert run_rules(_analysis(src), src, Settings()).diagnostics == []
    src = SRC.replace(".detach()", ".detach()  # noqa")
    assert run_rules(_analysis(src), src, Settings()).diagnostics == []
    src = SRC.replace(".detach()", ".detach()  # noqa: GX999")
    assert len(run_rules(_analysis(src), src, Settings()).diagnostics) == 1
    src = "# gradxray: noqa\n" + SRC
    cuts = [GradCut(kind="detach", span=Span("m.py", 4, 12, 4, 33), cut_params=["w"])]
    assert run_rules(_analysis(src, cuts=cuts), src, Settings()).diagnostics == []
    src = "# gradxray: noqa: GX9\n" + SRC  # GX9 is not a full code: nothing suppressed
    assert len(run_rules(_analysis(src, cuts=cuts), src, Settings()).diagnostics) == 1
    # "# noqa" inside a string is not a comment
    src = SRC.replace("return self.head(h)", "return self.head(h, '# noqa')")
    assert len(run_rules(_analysis(src), src, Settings()).diagnostics) == 1


def test_suppressions_parse():
    s = parse_suppressions("x = 1  # noqa: GX101, GX201\ny = 2  # NOQA\n# gradxray: noqa: GX901\n")
    assert s.lines == {1: {"GX101", "GX201"}, 2: None}
    assert s.file == {"GX901"}
    assert s.suppressed("GX901", 10) and s.suppressed("GX101", 1) and not s.suppressed("GX301", 1)
    assert s.suppressed("GX301", 2)


def test_noqa_insertion():
    assert noqa_insertion("h = x.detach()   ", "GX101") == (14, "  # noqa: GX101")
    line = "h = x.detach()  # noqa: GX901"
    assert noqa_insertion(line, "GX101") == (len(line), ", GX101")
    assert noqa_insertion("h = x  # NOQA:gx101 trailing", "GX101") is None
    assert noqa_insertion("h = x  # noqa", "GX101") is None        # a bare noqa covers every code


def test_select_ignore_prefixes():
    assert is_enabled("GX101")
    assert is_enabled("GX101", ["GX1"]) and not is_enabled("GX201", ["GX1"])
    assert not is_enabled("GX101", ["GX1"], ["GX101"])
    assert is_enabled("GX101", ["GX101"], ["GX1"])      # the more specific selector wins
    assert not is_enabled("GX101", ["ALL"], ["GX"])
    assert not is_enabled("GX101", [], ["GX1"])
    note = Diagnostic("GX901", "no shape", "information", Span("m.py", 2, 4))
    a = run_rules(_analysis(diags=[note]), SRC, Settings(ignore=["GX9"]))
    assert [d.code for d in a.diagnostics] == ["GX101"]
    a = run_rules(_analysis(diags=[note]), SRC, Settings(select=["GX9"]))
    assert [d.code for d in a.diagnostics] == ["GX901"]


def test_run_rules_sorts_dedupes_and_skips_errors():
    note = Diagnostic("GX901", "no shape", "information", Span("m.py", 2, 4))
    a = run_rules(_analysis(diags=[note, note]), SRC, Settings())
    assert [d.code for d in a.diagnostics] == ["GX901", "GX101"]
    bad = Analysis(path="m.py", error="SyntaxError: invalid syntax",
                   grad_cuts=[GradCut("detach", Span("m.py", 1, 0, 1, 3), ["w"])])
    assert run_rules(bad, "x = (", Settings()).diagnostics == []
    # settings=None is allowed
    assert len(run_rules(_analysis(), SRC, None).diagnostics) == 1
