"""``roots`` / ``search-paths`` in the language server's ``initializationOptions`` (no server process)."""
from __future__ import annotations

from gradxray.lsp_server.server import _settings_from_options


def test_path_options(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path)
    s = _settings_from_options({"roots": ["src"], "searchPaths": [str(tmp_path / "site")]})
    assert s.roots == [str(tmp_path / "src")] and s.search_paths == [str(tmp_path / "site")]
    assert _settings_from_options({"search-paths": "site"}).search_paths == [str(tmp_path / "site")]
    # a folder that does not exist: the paths are left out, what came before is kept
    s = _settings_from_options({"batch": 3, "roots": ["src", "gone"]})
    assert s.batch == 3 and s.roots == []
