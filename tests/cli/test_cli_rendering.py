"""The real CLI process, with a stand-in analyzer: output formats, exit codes, suppression, config, fixes."""
from __future__ import annotations

import json
import textwrap

from cli_helpers import assert_clean_error

DETACH = textwrap.dedent("""\
    import torch.nn as nn


    class Head(nn.Module):
        def forward(self, x):
            h = self.proj(x).detach()
            return self.head(h)
""")
CLEAN = "import torch\n\n\ndef f(x):\n    return x * 2\n"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_text_output_and_exit_codes(tmp_path, fake_gradxray):
    _write(tmp_path, "clean.py", CLEAN)
    proc = fake_gradxray("check", "clean.py", cwd=tmp_path)
    assert proc.returncode == 0 and "All checks passed!" in proc.stdout
    _write(tmp_path, "pkg/head.py", DETACH)
    proc = fake_gradxray("check", ".", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first == ("pkg/head.py:6:13: GX101 `.detach()` cuts the gradient to 2 parameters that reach "
                     "the output only through it: head.weight, head.bias")
    assert "Found 1 finding." in proc.stdout
    assert "--unsafe-fixes" in proc.stdout
    assert fake_gradxray("check", ".", "--exit-zero", cwd=tmp_path).returncode == 0


def test_json_output(tmp_path, fake_gradxray):
    _write(tmp_path, "head.py", DETACH)
    proc = fake_gradxray("check", "head.py", "--output-format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    [item] = json.loads(proc.stdout)
    assert item["code"] == "GX101" and item["severity"] == "warning" and item["filename"] == "head.py"
    assert item["location"] == {"row": 6, "column": 13}
    assert item["end_location"] == {"row": 6, "column": 34}
    assert item["fix"]["applicability"] == "unsafe"
    assert item["fix"]["edits"] == [{"content": "self.proj(x)", "location": {"row": 6, "column": 13},
                                     "end_location": {"row": 6, "column": 34}}]


def test_sarif_github_statistics(tmp_path, fake_gradxray):
    _write(tmp_path, "head.py", DETACH)
    sarif = json.loads(fake_gradxray("check", "head.py", "--output-format", "sarif", cwd=tmp_path).stdout)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "gradxray"
    assert any(r["id"] == "GX101" for r in run["tool"]["driver"]["rules"])
    [res] = run["results"]
    assert res["ruleId"] == "GX101" and res["level"] == "warning"
    assert res["locations"][0]["physicalLocation"]["region"]["startLine"] == 6
    gh = fake_gradxray("check", "head.py", "--output-format", "github", cwd=tmp_path).stdout.splitlines()
    assert gh[0].startswith("::warning title=gradxray (GX101),file=head.py,line=6,col=13,endLine=6,endColumn=34::")
    stats = fake_gradxray("check", "head.py", "--statistics", cwd=tmp_path)
    assert stats.returncode == 1 and stats.stdout.split() == ["1", "GX101", "[", "]", "detach-cuts-gradient"]
    js = json.loads(fake_gradxray("check", "head.py", "--statistics", "--output-format", "json", cwd=tmp_path).stdout)
    assert js == [{"code": "GX101", "name": "detach-cuts-gradient", "count": 1, "fixable": False}]


def test_select_ignore_noqa(tmp_path, fake_gradxray):
    _write(tmp_path, "head.py", DETACH)
    assert fake_gradxray("check", "head.py", "--ignore", "GX1", cwd=tmp_path).returncode == 0
    assert fake_gradxray("check", "head.py", "--select", "GX9", cwd=tmp_path).returncode == 0
    assert fake_gradxray("check", "head.py", "--select", "GX101", cwd=tmp_path).returncode == 1
    _write(tmp_path, "noqa.py", DETACH.replace(".detach()", ".detach()  # noqa: GX101"))
    assert fake_gradxray("check", "noqa.py", cwd=tmp_path).returncode == 0
    _write(tmp_path, "filenoqa.py", "# gradxray: noqa\n" + DETACH)
    assert fake_gradxray("check", "filenoqa.py", cwd=tmp_path).returncode == 0
    assert_clean_error(fake_gradxray("check", "head.py", "--select", "E501", cwd=tmp_path), "E501")


def test_information_notes_do_not_fail(tmp_path, fake_gradxray):
    _write(tmp_path, "note.py", "def forward_unknown(x):\n    return x\n")
    proc = fake_gradxray("check", "note.py", cwd=tmp_path)
    assert proc.returncode == 0 and "note.py:1:1: GX901 " in proc.stdout


def test_config_from_pyproject(tmp_path, fake_gradxray):
    _write(tmp_path, "pyproject.toml", '[tool.gradxray]\nper-file-ignores = { "legacy/*" = ["GX101"] }\n')
    _write(tmp_path, "legacy/head.py", DETACH)
    _write(tmp_path, "new/head.py", DETACH)
    proc = fake_gradxray("check", ".", "--output-format", "json", cwd=tmp_path)
    assert [d["filename"] for d in json.loads(proc.stdout)] == ["new/head.py"]
    _write(tmp_path, "pyproject.toml", "[tool.gradxray]\nbatch-size = -1\n")
    assert_clean_error(fake_gradxray("check", ".", cwd=tmp_path), "batch-size")


def test_syntax_error_is_reported_and_checking_continues(tmp_path, fake_gradxray):
    _write(tmp_path, "a_bad.py", "def f(:\n    pass\n")
    _write(tmp_path, "b_head.py", DETACH)
    proc = fake_gradxray("check", ".", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("a_bad.py:1:7: SyntaxError: ")
    assert lines[1].startswith("b_head.py:6:13: GX101 ")
    data = json.loads(fake_gradxray("check", "a_bad.py", "--output-format", "json", cwd=tmp_path).stdout)
    assert data[0]["code"] is None and data[0]["message"].startswith("SyntaxError")


def test_fix_unsafe(tmp_path, fake_gradxray):
    p = _write(tmp_path, "head.py", DETACH)
    proc = fake_gradxray("check", "head.py", "--fix", cwd=tmp_path)
    assert proc.returncode == 1 and p.read_text() == DETACH     # unsafe fixes need --unsafe-fixes
    proc = fake_gradxray("check", "head.py", "--fix", "--unsafe-fixes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "h = self.proj(x)\n" in p.read_text()


def test_memory_text_and_json_rendering(fake_gradxray):
    proc = fake_gradxray("memory", "examples/resnet.py:ResNet", "--batch", "2", "--dim", "H=32", "--dim", "W=32",
                         "--format", "json", "--args", "{'num_classes': 10}", "--input", "x=[B,3,H,W]:float32",
                         "--optimizer", "adamw")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["batch"] == 2
    assert data["settings"]["dims"]["H"] == 32 and data["settings"]["args"] == {"num_classes": 10}
    assert data["settings"]["inputs"] == {"x": "[B, 3, H, W]:float32"}
    assert data["settings"]["optimizer"] == "adamw"
    proc = fake_gradxray("memory", "examples/resnet.py:ResNet", "--batch", "2")
    out = proc.stdout
    assert proc.returncode == 0
    assert "parameters" in out and "11,173,962" in out and "42.6 MiB" in out
    assert "peak" in out and "(during backward)" in out
    assert "conv1" in out and "Conv2d" in out and "[2, 64, 32, 32]" in out and "24.0 KiB" in out
    assert "forward fully traced." in out


def test_memory_flags_over_pyproject(tmp_path, fake_gradxray):
    _write(tmp_path, "pyproject.toml", '[tool.gradxray]\nbatch-size = 4\ndims = { T = 128, H = 64 }\n'
                                       'device = "cuda"\ninputs = { x = "[B, T] int64" }\n')
    _write(tmp_path, "net.py", "class Net:\n    pass\n")

    def settings(*flags):
        proc = fake_gradxray("memory", "net.py:Net", "--format", "json", *flags, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        return data["batch"], data["settings"]

    batch, s = settings()
    assert batch == 4 and s["dims"] == {"T": 128, "H": 64, "W": 224} and s["device"] == "cuda"
    assert s["inputs"] == {"x": "[B, T]:int64"} and s["args"] == {} and s["optimizer"] == "none"
    batch, s = settings("--dim", "T=32", "--dim", "B=6", "--device", "cpu", "--input", "y=[B]:bool")
    assert batch == 6 and s["dims"] == {"T": 32, "H": 64, "W": 224} and s["device"] == "cpu"
    assert s["inputs"] == {"x": "[B, T]:int64", "y": "[B]:bool"}
    assert settings("--dim", "B=6", "--batch", "3")[0] == 3      # --batch wins over --dim B=


def test_memory_errors(fake_gradxray, tmp_path):
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py:Nope"), "no class or function named 'Nope'")
    assert_clean_error(fake_gradxray("memory", "missing.py:Net"), "missing.py: No such file")
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py"), "expected path.py:Name")
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py:ResNet", "--args", "{'a': foo}"), "--args")
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py:ResNet", "--args", "[1, 2]"), "dict")
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py:ResNet", "--dim", "T=x"), "--dim")
    assert_clean_error(fake_gradxray("memory", "examples/resnet.py:ResNet", "--input", "x=3,4"), "--input")
    _write(tmp_path, "boom.py", "class Boom:\n    pass\n")
    # an exception from the memory report becomes one line, exit 2
    assert_clean_error(fake_gradxray("memory", "boom.py:Boom", cwd=tmp_path),
                       "gradxray: error: boom.py:Boom: cannot construct Boom: missing argument 'dim'")
    assert_clean_error(fake_gradxray("memory", "boom.py:Boom", "--batch", "0", cwd=tmp_path), "--batch 0")
    _write(tmp_path, "pyproject.toml", "[tool.gradxray]\nbatch-size = -1\n")
    assert_clean_error(fake_gradxray("memory", "boom.py:Boom", cwd=tmp_path), "batch-size")
