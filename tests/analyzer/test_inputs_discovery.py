"""Input shapes from parameter annotations (jaxtyping, typing.Annotated) and from example calls in
the project's tests/ folder, with their precedence under the pragma."""
from __future__ import annotations

import textwrap

from gradxray.analyzer import analyze_source
from gradxray.analyzer.settings import Settings

from analyzer_helpers import facts, line_of, reasons

NET = """\
import torch
import torch.nn as nn
{imports}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, {params}):{pragma}
        y = {body}
        return y
"""


def _net(params: str, body: str, imports: str = "", pragma: str = "") -> str:
    return NET.format(params=params, body=body, imports=imports, pragma=f"  # gradxray: {pragma}" if pragma else "")


def _y(analysis, src):
    return facts(analysis, line_of(src, "y = "))


def test_jaxtyping_annotation_gives_the_shape_with_dim_aliases():
    src = _net('x: Float[Tensor, "batch 3 height width"]', "self.conv(x)",
               "from jaxtyping import Float\nfrom torch import Tensor")
    a = analyze_source(src, "m.py", Settings(batch=2, dims={"H": 16, "W": 16}))
    assert reasons(a) == []
    assert _y(a, src) == [("y", ("B", "4", "H", "W"), "float32")]
    assert a.classes[0].inputs == {"x": (("B", "3", "H", "W"), "float32")}


def test_jaxtyping_integer_tokens_and_fixed_dims():
    src = _net('idx: Int[torch.Tensor, "b 5"]', "self.emb(idx)", "import jaxtyping\nfrom jaxtyping import Int")
    a = analyze_source(src, "m.py", Settings(batch=3))
    assert _y(a, src) == [("y", ("B", "5", "8"), "float32")]
    assert a.classes[0].inputs == {"idx": (("B", "5"), "int64")}


def test_annotated_with_pragma_syntax_and_with_dims_string():
    src = _net('idx: Annotated[torch.Tensor, "[B, T] int64"]', "self.emb(idx)", "from typing import Annotated")
    a = analyze_source(src, "m.py", Settings(batch=2, dims={"T": 7}))
    assert _y(a, src) == [("y", ("B", "T", "8"), "float32")]
    src = _net('x: Annotated[torch.Tensor, "B 3 H W", "float64"]', "self.conv(x.float())",
               "from typing import Annotated")
    a = analyze_source(src, "m.py", Settings(batch=2, dims={"H": 8, "W": 8}))
    assert a.classes[0].inputs == {"x": (("B", "3", "H", "W"), "float64")}


def test_pragma_wins_over_annotation_and_variadic_dims_are_not_guessed():
    src = _net('x: Float[Tensor, "batch 3 height width"]', "self.conv(x)",
               "from jaxtyping import Float\nfrom torch import Tensor", pragma="x=[B, 3, 8, 8]")
    a = analyze_source(src, "m.py", Settings(batch=2))
    assert _y(a, src) == [("y", ("B", "4", "8", "8"), "float32")]
    # `*batch` has no fixed number of dims: no spec from it; the first consumer (Conv2d(3, ...)) is used
    src = _net('x: Float[Tensor, "*batch 3 h w"]', "self.conv(x)", "from jaxtyping import Float\nfrom torch import Tensor")
    a = analyze_source(src, "m.py", Settings(batch=2, dims={"H": 8, "W": 8}))
    assert a.classes[0].inputs["x"][0][1] == "3"
    assert any(d.code == "GX901" for d in a.diagnostics)


def test_example_call_in_the_projects_tests_folder(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "demo").mkdir()
    src = _net("x", "self.conv(x)")
    (tmp_path / "demo" / "net.py").write_text(src)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_other.py").write_text("def test_nothing():\n    pass\n")
    (tmp_path / "tests" / "test_net.py").write_text(textwrap.dedent("""\
        import torch
        from demo.net import Net

        def test_forward():
            out = Net()(torch.randn(2, 3, 20, 24))
            assert out.shape == (2, 4, 20, 24)
    """))
    a = analyze_source(src, str(tmp_path / "demo" / "net.py"), Settings())
    assert reasons(a) == []
    assert not any(d.code == "GX901" for d in a.diagnostics)
    assert _y(a, src) == [("y", ("2", "4", "20", "24"), "float32")]


def test_an_edited_test_file_is_read_again(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    src = _net("x", "self.conv(x)")
    (tmp_path / "net.py").write_text(src)
    (tmp_path / "tests").mkdir()
    test_file = tmp_path / "tests" / "test_net.py"
    test_file.write_text("import torch\nfrom net import Net\nNet()(torch.randn(2, 3, 20, 24))\n")
    first = analyze_source(src, str(tmp_path / "net.py"), Settings())
    test_file.write_text("import torch\nfrom net import Net\n\nNet()(torch.randn(4, 3, 8, 8))\n")
    second = analyze_source(src, str(tmp_path / "net.py"), Settings())
    assert _y(first, src) == [("y", ("2", "4", "20", "24"), "float32")]
    assert _y(second, src) == [("y", ("4", "4", "8", "8"), "float32")]
