"""``roots`` / ``search-paths`` in ``[tool.gradxray]`` and ``--root`` / ``--search-path`` on the command
line, and the GX902 note in every output format of ``check`` (the real CLI and analyzer)."""
from __future__ import annotations

import argparse
import json
import textwrap

import pytest

from cli_helpers import assert_clean_error
from gradxray.analyzer.config import Config, ConfigError, parse_table, settings_for_file
from gradxray.analyzer.settings import Settings
from gradxray.cli import CliError, apply_path_flags

LIB = textwrap.dedent("""\
    import torch.nn as nn


    class Proj(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.fc = nn.Linear(dim, 16)

        def forward(self, x):
            return self.fc(x)
""")

MODEL = textwrap.dedent("""\
    import torch.nn as nn
    from mylib import Proj


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = Proj(8)

        def forward(self, x):  # gradxray: x=[B, 8] float32
            return self.proj(x)
""")

UNRESOLVED = ("not traced: unresolved import `mylib`: no module of that name in the workspace or on "
              "the search path")


@pytest.fixture
def workspace(tmp_path):
    """``app/model.py`` imports ``mylib``, which lives in ``libs/`` (found only when configured)."""
    (tmp_path / "libs" / "mylib").mkdir(parents=True)
    (tmp_path / "libs" / "mylib" / "__init__.py").write_text(LIB)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "model.py").write_text(MODEL)
    (tmp_path / "pyproject.toml").write_text("[tool.gradxray]\n")
    return tmp_path


# --- configuration (unit) ---------------------------------------------------------------------------

def test_table_paths_are_relative_to_the_pyproject(workspace):
    (workspace / "site").mkdir()
    where = str(workspace / "pyproject.toml")
    cfg = parse_table({"roots": ["libs", "./libs", "app"], "search_paths": ["site"]}, where)
    assert cfg.roots == [str(workspace / "libs"), str(workspace / "app")]   # duplicates dropped
    assert cfg.search_paths == [str(workspace / "site")]
    assert parse_table({"search-paths": "site"}, where).search_paths == [str(workspace / "site")]


def test_file_settings_carry_the_folders(workspace):
    (workspace / "pyproject.toml").write_text('[tool.gradxray]\nroots = ["libs"]\n')
    s = settings_for_file(str(workspace / "app" / "model.py"))
    assert s.roots == [str(workspace / "libs")] and s.search_paths == []
    # the table's folders come before the ones of the settings it applies over
    s = Config(roots=["/a"]).settings_for(None, Settings(roots=["/b", "/a"]))
    assert s.roots == ["/a", "/b"]


@pytest.mark.parametrize("value, message", [
    ('["nope"]', "roots: no such folder: 'nope'"),
    ('["pyproject.toml"]', "roots: not a folder: 'pyproject.toml'"),
    ("[1]", "roots: expected a list of folder paths"),
    ('[""]', "roots: empty path"),
    ("{ a = 1 }", "roots: expected a list of folder paths"),
])
def test_bad_table_values(workspace, value, message):
    (workspace / "pyproject.toml").write_text(f"[tool.gradxray]\nroots = {value}\n")
    with pytest.raises(ConfigError) as exc:
        settings_for_file(str(workspace / "app" / "model.py"))
    assert str(exc.value).startswith(f"{workspace / 'pyproject.toml'}: [tool.gradxray] {message}")


def test_flags_go_before_the_configured_folders(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    args = argparse.Namespace(root=["app", "libs"], search_path=None)
    s = apply_path_flags(Settings(roots=[str(workspace / "libs"), "/elsewhere"]), args)
    assert s.roots == [str(workspace / "app"), str(workspace / "libs"), "/elsewhere"]
    with pytest.raises(CliError, match=r"^bad --search-path: no such folder: 'gone'"):
        apply_path_flags(Settings(), argparse.Namespace(root=None, search_path=["gone"]))


# --- the real CLI ------------------------------------------------------------------------------------

def test_check_reports_what_it_could_not_trace(workspace, gradxray):
    proc = gradxray("check", "app", cwd=workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr          # a note never fails `check`
    # on the name that could not be resolved, not the whole statement
    assert proc.stdout.splitlines() == [f"app/model.py:8:21: GX902 {UNRESOLVED}", "Found 1 finding."]
    assert "All checks passed!" not in proc.stdout


def test_root_from_flag_or_pyproject_resolves_the_import(workspace, gradxray):
    proc = gradxray("check", "app", "--root", "libs", cwd=workspace)
    assert (proc.returncode, proc.stdout) == (0, "All checks passed!\n"), proc.stderr
    (workspace / "pyproject.toml").write_text('[tool.gradxray]\nroots = ["libs"]\n')
    proc = gradxray("check", "app", cwd=workspace)
    assert (proc.returncode, proc.stdout) == (0, "All checks passed!\n"), proc.stderr


def test_search_path_flag_resolves_the_import(workspace, gradxray):
    proc = gradxray("check", "app/model.py", "--search-path", "libs", cwd=workspace)
    assert (proc.returncode, proc.stdout) == (0, "All checks passed!\n"), proc.stderr


def test_noqa_and_ignore_silence_the_note(workspace, gradxray):
    proc = gradxray("check", "app", "--ignore", "GX902", cwd=workspace)
    assert proc.stdout == "All checks passed!\n"
    model = workspace / "app" / "model.py"
    model.write_text(MODEL.replace("Proj(8)", "Proj(8)  # noqa: GX902"))
    assert gradxray("check", "app", cwd=workspace).stdout == "All checks passed!\n"
    model.write_text(MODEL.replace("Proj(8)", "Proj(8)  # noqa: GX101"))
    assert "GX902" in gradxray("check", "app", cwd=workspace).stdout


def test_machine_readable_outputs_carry_the_note(workspace, gradxray):
    [finding] = json.loads(gradxray("check", "app", "--output-format", "json", cwd=workspace).stdout)
    assert finding["code"] == "GX902" and finding["severity"] == "information"
    assert finding["message"] == UNRESOLVED and finding["fix"] is None
    assert finding["location"] == {"row": 8, "column": 21}          # `Proj` in `self.proj = Proj(8)`
    assert finding["end_location"] == {"row": 8, "column": 25}

    sarif = json.loads(gradxray("check", "app", "--output-format", "sarif", cwd=workspace).stdout)
    [run] = sarif["runs"]
    [result] = run["results"]
    assert (result["ruleId"], result["level"], result["message"]["text"]) == ("GX902", "note", UNRESOLVED)
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "GX902")
    assert rule["name"] == "not-traced" and rule["defaultConfiguration"]["level"] == "note"

    proc = gradxray("check", "app", "--output-format", "github", cwd=workspace)
    assert proc.returncode == 0
    [line] = proc.stdout.splitlines()
    assert line.startswith("::notice title=gradxray (GX902),file=app/model.py,line=8,col=21,"), line
    assert line.endswith(f"::app/model.py:8:21: GX902 {UNRESOLVED}"), line


def test_rule_catalogue_lists_the_note(gradxray):
    rules = json.loads(gradxray("rules", "--format", "json").stdout)
    gx902 = next(r for r in rules if r["code"] == "GX902")
    assert (gx902["name"], gx902["severity"], gx902["fix"]) == ("not-traced", "information", "none")
    assert "Use instead" in gradxray("rule", "GX902").stdout


def test_memory_takes_the_path_flags(workspace, gradxray):
    proc = gradxray("memory", "app/model.py:Net", "--root", "libs", "--format", "json", cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["params"]["count"] == 8 * 16 + 16 and report["unresolved"] == []


@pytest.mark.parametrize("argv, needle", [
    (["check", "app", "--root", "missing"], "bad --root: no such folder: 'missing'"),
    (["check", "app", "--search-path", "pyproject.toml"], "bad --search-path: not a folder: 'pyproject.toml'"),
    (["memory", "app/model.py:Net", "--root", "missing"], "bad --root: no such folder: 'missing'"),
])
def test_bad_flags_are_clean_errors(workspace, gradxray, argv, needle):
    assert_clean_error(gradxray(*argv, cwd=workspace), needle)


def test_bad_pyproject_paths_are_clean_errors(workspace, gradxray):
    (workspace / "pyproject.toml").write_text('[tool.gradxray]\nsearch-paths = ["nope"]\n')
    assert_clean_error(gradxray("check", "app", cwd=workspace),
                       "[tool.gradxray] search-paths: no such folder: 'nope'")
