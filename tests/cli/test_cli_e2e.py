"""The real ``python -m gradxray`` on real files, with the real analyzer (end to end)."""
from __future__ import annotations

import json
import textwrap

from cli_helpers import ROOT, _run, assert_clean_error

NET = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(16, 32)
            self.head = nn.Linear(32, 4)

        def forward(self, x):  # gradxray: x=[B, 16] float32
            h = self.body(x){detach}
            return self.head(h)
""")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_check_clean_file(tmp_path, gradxray):
    _write(tmp_path, "net.py", NET.format(detach=""))
    proc = gradxray("check", "net.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All checks passed!" in proc.stdout or "GX9" in proc.stdout


def test_check_bundled_examples(gradxray):
    proc = gradxray("check", "examples/gpt.py", "examples/resnet.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_detach_cut(tmp_path, gradxray):
    _write(tmp_path, "net.py", NET.format(detach=".detach()"))
    proc = gradxray("check", "net.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("net.py:12:13: GX101 `.detach()` cuts the gradient to 2 parameters"), proc.stdout
    proc = gradxray("check", "net.py", "--output-format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    [item] = [d for d in json.loads(proc.stdout) if d["code"] == "GX101"]
    assert item["filename"] == "net.py" and item["severity"] == "warning"
    assert item["location"] == {"row": 12, "column": 13}
    assert item["end_location"] == {"row": 12, "column": 34}
    assert "body.weight" in item["message"] and "body.bias" in item["message"]
    assert "head." not in item["message"]
    assert item["fix"]["applicability"] == "unsafe"
    assert item["fix"]["edits"][0]["content"] == "self.body(x)"
    # suppressed on the line
    _write(tmp_path, "net.py", NET.format(detach=".detach()  # noqa: GX101"))
    assert gradxray("check", "net.py", cwd=tmp_path).returncode == 0


def test_check_missing_file(tmp_path, gradxray):
    assert_clean_error(gradxray("check", "nope.py", cwd=tmp_path), "nope.py: No such file or directory")


def test_check_syntax_error(tmp_path, gradxray):
    _write(tmp_path, "bad.py", "def f(:\n    pass\n")
    _write(tmp_path, "net.py", NET.format(detach=".detach()"))
    proc = gradxray("check", "bad.py", "net.py", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[0].startswith("bad.py:1:7: SyntaxError: ")
    assert any(ln.startswith("net.py:12:13: GX101 ") for ln in proc.stdout.splitlines())


def test_rules_and_rule(gradxray):
    proc = gradxray("rules")
    assert proc.returncode == 0
    assert any(ln.startswith("GX101") and "detach-cuts-gradient" in ln for ln in proc.stdout.splitlines())
    assert "GX901" in proc.stdout
    proc = gradxray("rule", "GX101")
    assert proc.returncode == 0
    for heading in ("What it does", "Why is this bad?", "Example", "Use instead", "References"):
        assert heading in proc.stdout
    assert json.loads(gradxray("rules", "--format", "json").stdout)[0]["code"] == "GX101"
    assert gradxray("rule", "GX901").returncode == 0
    assert_clean_error(gradxray("rule", "GX000"), "unknown rule code")


MEMORY = ["memory", "examples/resnet.py:ResNet", "--batch", "2", "--dim", "H=32", "--dim", "W=32"]


def test_memory_json_resnet(gradxray):
    proc = gradxray(*MEMORY, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["batch"] == 2
    assert data["inputs"]["x"] == {"shape": [2, 3, 32, 32], "dtype": "float32", "source": "pragma"}
    assert data["params"]["count"] == 11_173_962
    assert data["params"]["bytes"] == 4 * 11_173_962
    assert data["outputs"][0]["shape"] == [2, 10]
    assert data["peak_bytes"] > data["params"]["bytes"] + data["activations_saved_bytes"] > 0
    assert data["flops"]["forward"] > 0 and data["flops"]["backward"] > data["flops"]["forward"]
    assert any(m["path"] == "conv1" and m["class"] == "Conv2d" and m["output_shape"] == [2, 64, 32, 32]
               for m in data["modules"])
    assert data["unresolved"] == []


def test_memory_text_resnet(gradxray):
    proc = gradxray(*MEMORY)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("examples/resnet.py:ResNet", "parameters", "11,173,962", "42.6 MiB", "gradients",
                   "activations saved", "peak", "conv1", "Conv2d", "[2, 64, 32, 32]", "[2, 10]"):
        assert needle in out, needle


def test_memory_errors(gradxray):
    assert_clean_error(gradxray("memory", "examples/resnet.py:Nope"), "Nope")
    assert_clean_error(gradxray("memory", "examples/resnet.py:ResNet", "--args", "not a dict"), "--args")
    assert_clean_error(gradxray("memory", "nothere.py:Net"), "nothere.py")
    # an optimizer outside the modelled ones is refused by the flag parser
    proc = gradxray(*MEMORY, "--optimizer", "lion")
    assert proc.returncode == 2 and "invalid choice: 'lion'" in proc.stderr and not proc.stdout
    # so are the losses that would need a target tensor
    for loss in ("mse", "cross_entropy"):
        assert_clean_error(gradxray(*MEMORY, "--loss", loss), f"examples/resnet.py:ResNet: --loss {loss}: not modelled yet")


def _imported(args: list[str]) -> set[str]:
    import sys

    proc = _run([sys.executable, "-X", "importtime", "-m", "gradxray", *args], ROOT)
    return {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}


def test_check_and_memory_never_import_torch():
    mods = _imported(["check", "examples/gpt.py"])
    assert "gradxray.cli" in mods
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}
    assert not {m for m in mods if m.startswith(("pygls", "lsprotocol"))}
    mods = _imported(MEMORY)
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}


def test_lsp_starts_without_torch():
    mods = _imported(["lsp"])          # stdin is closed: the server starts and exits at once
    assert "pygls" in mods and "gradxray.lsp_server.server" in mods
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}
