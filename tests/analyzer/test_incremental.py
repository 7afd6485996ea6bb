"""Reuse of root-class traces between analyses of one file (the language server's keystrokes): a
reused result must be exactly what a full analysis gives, and every change a trace could read
(its class, a helper it calls, a module constant, a registry another root fills, an imported file,
the project's tests, the settings) must trace it again."""
from __future__ import annotations

import os
import textwrap

from gradxray.analyzer import analyze_source
from gradxray.analyzer.incremental import TraceCache
from gradxray.analyzer.settings import Settings
from tests.support.analysis_dump import dump

from analyzer_helpers import write_tree

MODEL = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    from layers import Scale

    WIDTH = 16
    _SEEN = []


    def helper(x):
        return torch.relu(x)


    class Tracked(nn.Module):
        def __init__(self):
            super().__init__()
            _SEEN.append(self)
            self.fc = nn.Linear(4, 4)

        def forward(self, x):  # gradxray: x=[B, 4]
            return self.fc(x)


    class Alpha(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, WIDTH)

        def forward(self, x):  # gradxray: x=[B, 8]
            y = self.fc(x)
            return helper(y)


    class Beta(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.scale = Scale()

        def forward(self, x):  # gradxray: x=[B, 8]
            y = self.scale(self.fc(x))
            return y * 2


    class Gamma(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, len(_SEEN) + 1)

        def forward(self, x):
            return helper(self.fc(x))
""")

LAYERS = textwrap.dedent("""\
    import torch.nn as nn


    class Scale(nn.Module):
        def forward(self, x):
            return x * 0.5
""")


class Project:
    def __init__(self, root):
        self.root = root
        self.path = str(root / "model.py")
        write_tree(root, {"model.py": MODEL, "layers.py": LAYERS})
        self.cache = TraceCache()
        self.settings = Settings(roots=[str(root)])

    def analyse(self, source: str, settings: Settings | None = None):
        """(cached analysis, full analysis, roots traced again): the two must agree."""
        settings = settings or self.settings
        misses = self.cache.misses
        cached = analyze_source(source, self.path, settings, cache=self.cache)
        traced = self.cache.misses - misses
        full = analyze_source(source, self.path, settings)
        assert dump(cached) == dump(full)
        return cached, traced


def test_an_edit_traces_again_only_the_roots_that_read_it(tmp_path):
    p = Project(tmp_path)
    first, traced = p.analyse(MODEL)
    assert [c.name for c in first.classes] == ["Tracked", "Alpha", "Beta", "Gamma"]
    assert traced == 3                                     # Tracked fills _SEEN: traced every time
    assert p.analyse(MODEL)[1] == 0                        # nothing changed: all reused

    # an edit inside Beta's forward, on a line of its own: Beta only (no line moves)
    edited = MODEL.replace("return y * 2", "return y * 3")
    assert p.analyse(edited)[1] == 1

    # the helper Alpha and Gamma call
    edited = MODEL.replace("return torch.relu(x)", "return torch.sigmoid(x)")
    assert p.analyse(edited)[1] == 2

    # a module constant Alpha reads
    edited = MODEL.replace("WIDTH = 16", "WIDTH = 32")
    result, traced = p.analyse(edited)
    assert traced == 1
    assert next(c for c in result.classes if c.name == "Alpha").params == 8 * 32 + 32


def test_a_root_that_fills_module_state_is_part_of_the_later_roots_inputs(tmp_path):
    # Tracked's constructor appends to _SEEN, which Gamma's constructor reads: Tracked is traced
    # every time (what it leaves behind is there for the roots traced after it), and an edit of it
    # traces the roots after it again, though their code did not change
    p = Project(tmp_path)
    p.analyse(MODEL)
    edited = MODEL.replace("self.fc = nn.Linear(4, 4)", "self.fc = nn.Linear(4, 5)")
    assert p.analyse(edited)[1] == 3


def test_moved_lines_trace_again_with_their_new_positions(tmp_path):
    p = Project(tmp_path)
    p.analyse(MODEL)
    edited = MODEL.replace("class Beta(nn.Module):", "# a comment line\nclass Beta(nn.Module):")
    result, traced = p.analyse(edited)
    assert traced == 2                                     # Beta and Gamma moved down a line
    line = edited.splitlines().index("        return y * 2") + 1
    assert [t.name for t in result.lines[line].tensors]


def test_an_imported_file_or_the_settings_changing_traces_again(tmp_path):
    p = Project(tmp_path)
    p.analyse(MODEL)
    layers = tmp_path / "layers.py"
    layers.write_text(LAYERS.replace("x * 0.5", "x[:, :4]"))
    st = os.stat(layers)
    os.utime(layers, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    result, traced = p.analyse(MODEL)
    # Beta read layers.py, and Gamma, traced after it; Alpha (traced before the import was followed)
    # did not
    assert traced == 2
    assert p.analyse(MODEL, Settings(roots=[str(tmp_path)], batch=3))[1] == 3


def test_an_example_call_in_the_tests_traces_again(tmp_path):
    p = Project(tmp_path)
    first, _ = p.analyse(MODEL)
    gamma = next(c for c in first.classes if c.name == "Gamma")
    assert gamma.inputs["x"][0] == ("B", "3")              # inferred from the first consumer
    write_tree(tmp_path, {"tests/test_gamma.py": """\
        import torch
        from model import Gamma

        def test_gamma():
            Gamma()(torch.randn(2, 3))
    """})
    result, traced = p.analyse(MODEL)
    assert traced == 3
    gamma = next(c for c in result.classes if c.name == "Gamma")
    assert gamma.inputs["x"][0] == ("2", "3")
