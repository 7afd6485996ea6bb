"""`gradxray memory` what-ifs through the real CLI: --optimizer, --amp, batch scaling and --budget,
progress output, the per-parameter gradient flow and the module table's --depth."""
from __future__ import annotations

import json
import textwrap

import pytest
from cli_helpers import assert_clean_error, gradxray  # noqa: F401  (fixture)

MODEL = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Sequential(nn.Linear(64, 64), nn.Tanh()))
        self.head = nn.Linear(64, 8)

    def forward(self, x):  # gradxray: x=[B, 32] float32
        return self.head(self.body(x))


class Cuts(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.c = nn.Linear(16, 16)
        self.d = nn.Linear(16, 16)
        self.e = nn.Linear(16, 16)
        self.f = nn.Linear(16, 16)
        self.g = nn.Linear(16, 16)
        self.out = nn.Linear(16, 16)

    def forward(self, x):  # gradxray: x=[B, 16] float32
        h = self.out(x)
        h = h + self.a(x).detach()
        h = h + self.b(x).data
        scale = self.c(x).sum().item()
        with torch.no_grad():
            frozen = self.d(x)
        idx = self.e(x).argmax(dim=-1, keepdim=True)
        _ = self.f(x)
        return h + frozen + idx
'''


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(MODEL))
    return path


def _json(gradxray, *args, cwd=None):
    proc = gradxray("memory", *args, "--format", "json", **({"cwd": cwd} if cwd else {}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc


def test_per_sample_bytes_is_the_slope_of_the_peak(gradxray, model_file):
    at2, _ = _json(gradxray, f"{model_file}:Net", "--batch", "2")
    at5, _ = _json(gradxray, f"{model_file}:Net", "--batch", "5")
    assert at2["per_sample_bytes"] > 0
    assert at2["per_sample_bytes"] == at5["per_sample_bytes"]
    assert at5["peak_bytes"] - at2["peak_bytes"] == 3 * at2["per_sample_bytes"]
    assert at2["batch_scaling"]["linear"] is True and at2["batch_scaling"]["batches"] == [2, 4, 6]
    assert at2["max_batch"] is None and at2["budget_bytes"] is None


def test_budget_gives_the_largest_batch_that_fits(gradxray, model_file):
    base, _ = _json(gradxray, f"{model_file}:Net", "--batch", "4", "--optimizer", "adamw")
    budget = base["peak_bytes"] + 10 * base["per_sample_bytes"] + base["per_sample_bytes"] // 2
    report, _ = _json(gradxray, f"{model_file}:Net", "--batch", "4", "--optimizer", "adamw", "--budget", str(budget))
    assert report["budget_bytes"] == budget
    assert report["max_batch"] == 14
    fits, _ = _json(gradxray, f"{model_file}:Net", "--batch", "14", "--optimizer", "adamw")
    over, _ = _json(gradxray, f"{model_file}:Net", "--batch", "15", "--optimizer", "adamw")
    assert fits["peak_bytes"] <= budget < over["peak_bytes"]


def test_budget_units_and_a_budget_nothing_fits(gradxray, model_file):
    report, _ = _json(gradxray, f"{model_file}:Net", "--budget", "1KiB")
    assert report["budget_bytes"] == 1024 and report["max_batch"] == 0
    big, _ = _json(gradxray, f"{model_file}:Net", "--budget", "1GB")
    assert big["budget_bytes"] == 10**9 and big["max_batch"] > 1000
    text = gradxray("memory", f"{model_file}:Net", "--budget", "1KiB")
    assert text.returncode == 0 and "nothing fits" in text.stdout


@pytest.mark.parametrize("bad", ["lots", "12Q", "-5GiB", "0", "24G"])
def test_bad_budget_is_a_clean_error(gradxray, model_file, bad):
    assert_clean_error(gradxray("memory", f"{model_file}:Net", f"--budget={bad}"), "--budget")


def test_progress_goes_to_stderr_only_when_asked(gradxray, model_file):
    report, quiet = _json(gradxray, f"{model_file}:Net", "--budget", "1MiB")
    assert quiet.stderr == ""
    report2, loud = _json(gradxray, f"{model_file}:Net", "--budget", "1MiB", "--progress")
    assert report2 == report                       # stdout stays the JSON alone
    lines = loud.stderr.splitlines()
    assert lines[0].startswith("analysing ") and "B=8" in lines[0]
    assert "analysing at B=16 ..." in lines


def test_optimizer_and_amp_in_text_and_json(gradxray, model_file):
    report, _ = _json(gradxray, f"{model_file}:Net", "--optimizer", "adamw", "--amp", "bf16")
    assert report["optimizer"] == "adamw" and report["amp"] == "bf16"
    assert report["optimizer_bytes"] == 2 * report["params"]["bytes"] + 6 * 4
    text = gradxray("memory", f"{model_file}:Net", "--optimizer", "adamw", "--amp", "bf16")
    assert text.returncode == 0
    assert "AdamW · AMP bf16" in text.stdout
    assert "optimizer state" in text.stdout and "per extra sample" in text.stdout


def test_config_file_sets_optimizer_and_amp(gradxray, model_file):
    (model_file.parent / "pyproject.toml").write_text('[tool.gradxray]\noptimizer = "sgd-momentum"\namp = "bf16"\n')
    report, _ = _json(gradxray, f"{model_file}:Net", cwd=model_file.parent)
    assert report["optimizer"] == "sgd-momentum" and report["amp"] == "bf16"
    assert report["optimizer_bytes"] == report["params"]["bytes"]
    flag, _ = _json(gradxray, f"{model_file}:Net", "--amp", "off", cwd=model_file.parent)
    assert flag["amp"] == "off"


def test_gradient_flow_names_each_cut(gradxray, model_file):
    report, _ = _json(gradxray, f"{model_file}:Cuts", "--batch", "4")
    flow = report["gradient_flow"]
    got = {e["param"]: (e["reason"], e.get("line")) for e in flow["not_reached"]}
    expected = {"a": ("detach", 30), "b": (".data", 31), "c": (".item()", 32), "d": ("no_grad region", 34),
                "e": ("non-differentiable op", 35), "f": ("does not reach the loss", None),
                "g": ("unused in forward", None)}
    assert got == {f"{m}.{p}": v for m, v in expected.items() for p in ("weight", "bias")}
    assert flow["reached"] == 2 and flow["frozen"] == 0
    assert all(e["file"].endswith("net.py") for e in flow["not_reached"] if "line" in e)
    text = gradxray("memory", f"{model_file}:Cuts", "--batch", "4").stdout
    assert "gradient flow: 2 parameter tensors reached, 14 not reached:" in text
    assert "d.weight: no_grad region at " in text and text.count("unused in forward") == 2


def test_gradient_flow_agrees_with_torch(gradxray, model_file):
    torch = pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location("_whatif_net", model_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.Cuts()
    model(torch.randn(4, 16)).sum().backward()
    unreached = {n for n, p in model.named_parameters() if p.grad is None}
    report, _ = _json(gradxray, f"{model_file}:Cuts", "--batch", "4")
    assert {e["param"] for e in report["gradient_flow"]["not_reached"]} == unreached


def test_depth_collapses_the_module_table(gradxray, model_file):
    shallow = gradxray("memory", f"{model_file}:Net", "--depth", "1").stdout
    default = gradxray("memory", f"{model_file}:Net").stdout
    deep = gradxray("memory", f"{model_file}:Net", "--depth", "3").stdout
    def rows(text):
        return {line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()}
    assert "body.0" not in rows(shallow) and "body" in rows(shallow) and "deeper modules not shown" in shallow
    assert "body.0" in rows(default) and "body.2.0" not in rows(default)
    assert "body.2.0" in rows(deep) and "not shown" not in deep
    assert_clean_error(gradxray("memory", f"{model_file}:Net", "--depth", "-1"), "--depth")
