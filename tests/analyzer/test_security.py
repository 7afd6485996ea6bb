"""Static analysis never imports or executes the analysed code or the packages it imports.

The fixture files would leave traces if imported (a marker file, an environment variable, an
exception, ``sys.exit``); a model importing from them is analysed and must resolve them from source
alone, leaving no trace."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "sideeffects"
ENV_FLAG = "GRADXRAY_FIXTURE_IMPORTED"


@pytest.fixture
def side_effect_tree(tmp_path):
    """A private copy of the fixture (so any marker file would appear under tmp_path)."""
    shutil.copytree(FIXTURE, tmp_path / "sideeffects")
    return tmp_path / "sideeffects"


def _markers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(("IMPORTED_", "SETUP_RAN", "BLOCKS_RAN")))


def test_analysis_resolves_without_importing(side_effect_tree, monkeypatch):
    monkeypatch.delenv(ENV_FLAG, raising=False)
    monkeypatch.chdir(side_effect_tree)              # where a stray `os.system("touch ...")` would write
    site = side_effect_tree / "site"
    monkeypatch.syspath_prepend(str(site))           # the fake package is installed for this interpreter
    model = side_effect_tree / "workspace" / "model.py"
    modules_before = set(sys.modules)

    analysis = analyze_source(model.read_text(), str(model), Settings())

    new_modules = set(sys.modules) - modules_before
    assert not {m for m in new_modules if m.split(".")[0] in ("lib", "evilpkg", "model", "setup")}
    assert all(m.startswith("gradxray") or m.split(".")[0] in sys.stdlib_module_names for m in new_modules), \
        new_modules
    assert _markers(side_effect_tree) == []
    assert ENV_FLAG not in os.environ
    assert analysis.error is None

    # what can be resolved is: Projection (24 -> 24) and Doubler (24 -> 48) from their sources
    [net] = analysis.classes
    assert net.params == (24 * 24 + 24) + (24 * 48 + 48)
    ret_line = model.read_text().splitlines().index("        y = self.double(self.proj(x))") + 1
    assert [(t.name, t.shape) for t in analysis.lines[ret_line].tensors] == [("y", ("B", "48"))]
    # and what cannot, is said so, where it is used
    missing = [u for u in analysis.unresolved if "lib.missing" in u.reason]
    use_line = model.read_text().splitlines().index("        self.unused = Nothing()") + 1
    assert [(Path(u.file).name, u.line) for u in missing] == [("model.py", use_line)]
    assert not [u for u in analysis.unresolved if "internal error" in u.reason]


def test_search_paths_setting_is_read_not_imported(side_effect_tree, monkeypatch):
    monkeypatch.delenv(ENV_FLAG, raising=False)
    model = side_effect_tree / "workspace" / "model.py"
    settings = Settings(search_paths=[str(side_effect_tree / "site")])
    analysis = analyze_source(model.read_text(), str(model), settings)
    assert [c.params for c in analysis.classes] == [(24 * 24 + 24) + (24 * 48 + 48)]
    assert str(side_effect_tree / "site") not in sys.path
    assert "evilpkg" not in sys.modules
    assert _markers(side_effect_tree) == []
    assert ENV_FLAG not in os.environ
