"""Input-shape discovery: the pragma grammar, dim binding, precedence, GX901."""
from __future__ import annotations

import pytest
from analyzer_helpers import fc_net, facts, line_of

from gradxray.analyzer.inputs import InputSpec, InputSpecError, bind_dims, parse_pragma, parse_shape
from gradxray.engine.symbolic import SymInt


def test_pragma_two_inputs():
    specs = parse_pragma("idx=[B, T] int64, targets=[B, T] int64", 7)
    assert specs == [InputSpec("idx", ("B", "T"), "int64", 7), InputSpec("targets", ("B", "T"), "int64", 7)]


def test_pragma_numbers_default_dtype_and_aliases():
    [x] = parse_pragma("x=[B, 3, H, W]")
    assert x.dims == ("B", 3, "H", "W") and x.dtype == "float32"
    assert parse_pragma("x=[B,3,224,224]:float16")[0].dtype == "float16"
    assert parse_pragma("m=[B, T] bool")[0].dtype == "bool"
    assert parse_pragma("i=[B, T] long")[0].dtype == "int64"
    assert parse_pragma("x=(B, 16) bf16")[0].dtype == "bfloat16"


def test_pragma_none_and_scalar():
    specs = parse_pragma("x=[B, 4], mask=None, s=[] float32")
    assert specs[1].dims is None
    assert specs[2].dims == ()


def test_pragma_dim_arithmetic_and_torch_dtype_prefix():
    [x] = parse_pragma("x=[B*T, T // 2 + 1, 3] torch.float16")
    assert x.dims == ("B*T", "T // 2 + 1", 3) and x.dtype == "float16"
    dims = bind_dims(x, {"B": 4, "T": 10})
    assert dims == (40, 6, 3) and dims[0].expr == "B*T" and dims[1].expr == "T/2 + 1"
    with pytest.raises(InputSpecError, match="does not divide"):
        bind_dims(InputSpec("x", ("T/3",), "float32"), {"T": 10})


@pytest.mark.parametrize("text, needle", [
    ("x=[B, 3", "cannot parse the shape of `x`"),
    ("x=[B, 3] float99", "unknown dtype `float99`"),
    ("x=[B, 3**T]", "cannot parse dim `3**T`"),
    ("x=[B, len(T)]", "cannot parse dim `len(T)`"),
    ("[B, 3]", "expected `name=[dims] dtype`"),
])
def test_pragma_errors(text, needle):
    with pytest.raises(InputSpecError) as e:
        parse_pragma(text)
    assert needle in str(e.value)


def test_parse_shape_cli_form():
    assert parse_shape("[B, 3, 224, 224]:float32") == (("B", 3, 224, 224), "float32")
    assert parse_shape("None") is None


def test_bind_dims_symbolic_and_unknown():
    dims = bind_dims(InputSpec("x", ("B", 3, "T"), "float32"), {"B": 8, "T": 256})
    assert dims == (8, 3, 256)
    assert isinstance(dims[0], SymInt) and dims[0].expr == "B"
    assert not isinstance(dims[1], SymInt)
    with pytest.raises(InputSpecError) as e:
        bind_dims(InputSpec("x", ("B", "C"), "float32"), {"B": 8})
    assert "unknown dim `C`" in str(e.value) and "--dim C=" in str(e.value)


def net(pragma: str | None = None) -> str:
    """``Net`` with ``self.fc = nn.Linear(16, 4)``; ``forward(self, x)`` is ``y = self.fc(x); return y``."""
    return fc_net("y = self.fc(x)\nreturn y\n", fc="16, 4", pragma=pragma)


def test_pragma_drives_shapes(analyze):
    src = net("x=[B, T, 16] float32")
    a = analyze(src)
    assert a.diagnostics == [] and a.unresolved == []
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "T", "4"), "float32")]
    assert a.classes[0].inputs == {"x": (("B", "T", "16"), "float32")}


def test_settings_inputs_override_pragma(analyze):
    src = net("x=[B, T, 16] float32")
    a = analyze(src, inputs={"x": "[B, 16]:float32"})
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "4"), "float32")]
    # a float64 input into float32 weights fails in torch ("same dtype"): Unknown, recorded
    a = analyze(src, inputs={"x": "[B, 16]:float64"})
    assert facts(a, line_of(src, "y = self.fc")) == []
    assert [u.line for u in a.unresolved] == [line_of(src, "y = self.fc")]


def test_no_shape_single_gx901_and_inference_from_first_consumer(analyze):
    src = net()
    a = analyze(src)
    [d] = a.diagnostics
    assert d.code == "GX901" and d.severity == "information"
    assert d.span.line == line_of(src, "def forward")
    assert "Net.forward" in d.message and "x=[B, 16] float32" in d.message
    # the fix inserts the assumed pragma at the end of the signature line
    [edit] = d.fix.edits
    assert edit.content == "  # gradxray: x=[B, 16] float32"
    assert d.fix.applicability == "unsafe"
    # ... and the class was analysed with that assumption
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "4"), "float32")]


def test_no_shape_and_nothing_to_infer(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def forward(self, x):
                return x * 2
    """
    a = analyze(src)
    [d] = a.diagnostics
    assert d.code == "GX901" and "x=[B, ...] float32" in d.message and d.fix is None
    assert a.lines == {}


def test_bad_pragma_is_a_note_not_a_crash(analyze):
    src = net("x=[B, 16 float32")
    a = analyze(src)
    [d] = a.diagnostics
    assert d.code == "GX901" and "invalid input-shape pragma" in d.message
    assert d.span.line == line_of(src, "def forward")
    assert a.error is None and a.lines == {}


def test_unknown_dim_name_is_a_note(analyze):
    src = net("x=[B, C, 16] float32")
    a = analyze(src)
    [d] = a.diagnostics
    assert "unknown dim `C`" in d.message
    # bound through settings, it works
    a = analyze(src, dims={"C": 5})
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "C", "4"), "float32")]


def test_pragma_on_multiline_signature(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(
                self, x, scale=1.0,
            ):  # gradxray: x=[B, 8]
                y = self.fc(x) * scale
                return y
    """
    a = analyze(src)
    assert a.diagnostics == []
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "2"), "float32")]


def test_example_call_in_file(analyze):
    src = """\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)

            def forward(self, x):
                y = self.conv(x)
                return y

        if __name__ == "__main__":
            model = Net()
            out = model(torch.randn(2, 3, 32, 32))
    """
    a = analyze(src)
    assert a.diagnostics == []
    assert facts(a, line_of(src, "y = self.conv")) == [("y", ("2", "8", "32", "32"), "float32")]


def test_assumed_pragma_goes_on_the_last_line_of_a_multiline_signature(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(
                self, x,
            ):
                \"\"\"Docstring.\"\"\"
                return self.fc(x)
    """
    a = analyze(src)
    [d] = a.diagnostics
    [edit] = d.fix.edits
    ln = line_of(src, "    ):")
    assert (edit.span.line, edit.span.col) == (ln, len("    ):"))
    assert edit.content == "  # gradxray: x=[B, 8] float32"
