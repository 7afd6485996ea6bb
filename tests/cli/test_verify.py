"""`gradxray verify TARGET` through the real CLI: the estimate (`gradxray memory`) next to a real torch run.

Each row is checked against an independent measurement made here: the estimate from
`gradxray memory --format json` and the measured values from `tests.support.torch_truth`'s own
training step, so the error percentages and the exit status can be recomputed.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import ROOT, _run, assert_clean_error

torch = pytest.importorskip("torch")

from gradxray.measure import LiveStorageTracker as ProductTracker  # noqa: E402
from gradxray.measure import measure_step  # noqa: E402
from gradxray.verify import compare, relative_error_pct  # noqa: E402
from tests.support.loading import load_module  # noqa: E402
from tests.support.torch_truth import LiveStorageTracker, measure_training_step  # noqa: E402

NOTICE = "gradxray verify: importing and running"
GPT = ["examples/gpt.py:GPT", "--batch", "2", "--dim", "T=32"]
RESNET = ["examples/resnet.py:resnet18", "--batch", "2", "--dim", "H=32", "--dim", "W=32"]
ROW_FIELDS = {   # verify's category -> the estimate's value in the `memory` report, the measured field
    "params.count": (lambda r: r["params"]["count"], "param_count"),
    "params.bytes": (lambda r: r["params"]["bytes"], "param_bytes"),
    "buffers_bytes": (lambda r: r["buffers_bytes"], "buffer_bytes"),
    "grads_bytes": (lambda r: r["grads_bytes"], "grads_bytes"),
    "activations_saved_bytes": (lambda r: r["activations_saved_bytes"], "activations_saved_bytes"),
    "peak_bytes": (lambda r: r["peak_bytes"], "peak_bytes"),
}


def cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "gradxray", *args], cwd)



def _estimate(target_args: list[str]) -> dict:
    proc = cli("memory", *target_args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _expected_rows(report: dict, measured) -> dict[str, tuple[int, int, float]]:
    out = {}
    for category, (estimate_of, field) in ROW_FIELDS.items():
        est, meas = estimate_of(report), getattr(measured, field)
        out[category] = (est, meas, 100.0 * (est - meas) / meas if meas else 0.0)
    return out


@pytest.fixture(scope="module")
def gpt_run():
    proc = cli("verify", *GPT, "--format", "json")
    report = _estimate(GPT)
    mod = load_module(ROOT / "examples" / "gpt.py", "_verify_test_gpt")
    torch.manual_seed(0)
    model = mod.GPT()
    inputs = {"idx": torch.randint(0, 50304, (2, 32)), "targets": torch.randint(0, 50304, (2, 32))}
    return proc, report, measure_training_step(model, inputs)


@pytest.fixture(scope="module")
def resnet_run():
    proc = cli("verify", *RESNET)
    report = _estimate(RESNET)
    mod = load_module(ROOT / "examples" / "resnet.py", "_verify_test_resnet")
    torch.manual_seed(0)
    return proc, report, measure_training_step(mod.resnet18(), {"x": torch.randn(2, 3, 32, 32)})


def test_gpt_json_rows_are_estimate_and_independent_measurement(gpt_run):
    proc, report, measured = gpt_run
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["target"] == "examples/gpt.py:GPT" and result["device"] == "cpu" and result["batch"] == 2
    assert result["inputs"] == report["inputs"] == {"idx": {"shape": [2, 32], "dtype": "int64", "source": "pragma"},
                                                    "targets": {"shape": [2, 32], "dtype": "int64", "source": "pragma"}}
    assert result["tolerance_pct"] == {"peak": 5.0, "counts": 0.0}
    rows = {r["category"]: r for r in result["rows"]}
    assert list(rows) == list(ROW_FIELDS)                 # no optimizer row without --optimizer
    for category, (est, meas, error) in _expected_rows(report, measured).items():
        row = rows[category]
        assert (row["estimate"], row["measured"]) == (est, meas), category
        assert row["error_pct"] == pytest.approx(error, abs=1e-5), category
        assert row["within"] == (abs(error) <= row["tolerance_pct"] + 1e-9), category
    assert rows["peak_bytes"]["tolerance_pct"] == 5.0 and rows["activations_saved_bytes"]["tolerance_pct"] == 0.0
    assert result["peak_phase"] == {"estimate": report["peak_phase"], "measured": measured.peak_phase}
    assert result["ok"] is all(r["within"] for r in rows.values()) is True
    assert result["unresolved"] == []


def test_trust_notice_on_stderr_and_stdout_is_pure_json(gpt_run):
    proc, _report, _measured = gpt_run
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(NOTICE), proc.stderr
    assert "examples/gpt.py" in lines[0] and "executes its code" in lines[0]
    json.loads(proc.stdout)


def test_resnet_text_table_shows_the_percentages(resnet_run):
    proc, report, measured = resnet_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(NOTICE)
    out = proc.stdout
    assert out.splitlines()[0] == "examples/resnet.py:resnet18: estimate vs measured"
    table = {ln.split("  ")[1].strip(): ln for ln in out.splitlines() if ln.startswith("  ") and "%" in ln}
    expected = _expected_rows(report, measured)
    labels = {"params.count": "parameters", "params.bytes": "parameter bytes", "buffers_bytes": "buffers",
              "grads_bytes": "gradients", "activations_saved_bytes": "activations saved", "peak_bytes": "peak"}
    for category, label in labels.items():
        est, meas, error = expected[category]
        line = table[label]
        shown = "0.00 %" if est == meas else f"{error:+.2f} %"
        assert shown in line, (line, shown)
        assert f"{meas:,}" in line and f"{est:,}" in line, line
        assert line.rstrip().endswith("ok"), line
    assert "±5 %" in table["peak"] and "±0 %" in table["activations saved"]
    assert "all 6 within tolerance." in out


def test_optimizer_and_autocast_steady_state(resnet_run):
    args = [*RESNET, "--optimizer", "adamw", "--amp", "bf16"]
    proc = cli("verify", *args, "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert proc.returncode == (0 if result["ok"] else 1)
    assert (result["optimizer"], result["amp"]) == ("adamw", "bf16")
    report = _estimate(args)
    rows = {r["category"]: r for r in result["rows"]}
    assert rows["optimizer_bytes"]["estimate"] == report["optimizer_bytes"]
    # AdamW on the CPU keeps exp_avg and exp_avg_sq per parameter and a 4-byte float32 step count
    mod = load_module(ROOT / "examples" / "resnet.py", "_verify_test_resnet_opt")
    params = list(mod.resnet18().parameters())
    state = 2 * sum(p.numel() * p.element_size() for p in params) + 4 * len(params)
    assert rows["optimizer_bytes"]["measured"] == state
    for row in rows.values():
        assert row["error_pct"] == pytest.approx(relative_error_pct(row["estimate"], row["measured"]), abs=1e-5)
    # autocast ran: what forward saves is not what the float32 run saved
    _proc, _report, fp32 = resnet_run
    assert rows["activations_saved_bytes"]["measured"] != fp32.activations_saved_bytes
    assert result["peak_phase"]["measured"] in ("forward", "loss", "backward", "optimizer")


PACKAGE_MODEL = '''\
import torch
import torch.nn as nn

from .layers import projection


class Hidden(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.fc1 = projection(16, hidden)
        self.fc2 = nn.Linear(hidden, 4)

    def forward(self, x):  # gradxray: x=[B, 16] float32
        h = self.fc1(x)
        h = eval("torch.sigmoid")(h)   # the static analysis cannot follow eval
        return self.fc2(h)
'''


@pytest.fixture
def hidden_model(tmp_path):
    """A model in a package (relative import) whose forward hides an op from the static analysis,
    so the estimate leaves part of the step out."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("import torch.nn as nn\n\n\ndef projection(width, hidden):\n"
                                   "    return nn.Linear(width, hidden)\n")
    (pkg / "model.py").write_text(PACKAGE_MODEL)
    return pkg / "model.py"


def test_estimate_outside_tolerance_exits_1_and_tolerances_widen_it(hidden_model):
    target = f"{hidden_model}:Hidden"
    args = ["--batch", "4", "--args", "{'hidden': 32}", "--format", "json"]
    proc = cli("verify", target, *args)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    rows = {r["category"]: r for r in result["rows"]}
    # the constructor arguments reached the real model: 16*32+32 + 32*4+4 parameters
    assert rows["params.count"]["measured"] == rows["params.count"]["estimate"] == 676
    # measured independently: the whole step, sigmoid and fc2 included
    sys.path.insert(0, str(hidden_model.parent.parent))
    try:
        from pkg.model import Hidden
        measured = measure_training_step(Hidden(hidden=32), {"x": torch.randn(4, 16)})
    finally:
        sys.path.remove(str(hidden_model.parent.parent))
        for name in ("pkg", "pkg.model", "pkg.layers"):
            sys.modules.pop(name, None)
    assert rows["activations_saved_bytes"]["measured"] == measured.activations_saved_bytes
    assert rows["peak_bytes"]["measured"] == measured.peak_bytes
    assert rows["grads_bytes"]["measured"] == measured.grads_bytes == 676 * 4
    outside = {c for c, r in rows.items() if not r["within"]}
    assert outside == {"grads_bytes", "activations_saved_bytes", "peak_bytes"}
    assert rows["grads_bytes"]["error_pct"] == -100.0
    for r in rows.values():
        assert r["error_pct"] == pytest.approx(relative_error_pct(r["estimate"], r["measured"]), abs=1e-5)
    assert result["ok"] is False
    assert [u["line"] for u in result["unresolved"]] == [15]

    # wide enough tolerances accept the same numbers
    wide = cli("verify", target, *args, "--tolerance", "60%", "--count-tolerance", "100")
    assert wide.returncode == 0, wide.stderr
    assert json.loads(wide.stdout)["tolerance_pct"] == {"peak": 60.0, "counts": 100.0}

    text = cli("verify", target, "--batch", "4", "--args", "{'hidden': 32}")
    assert text.returncode == 1
    assert "3 of 6 outside tolerance: gradients, activations saved, peak." in text.stdout
    assert "the estimate is partial: 1 place(s) not traced" in text.stdout
    assert "OUTSIDE" in [ln for ln in text.stdout.splitlines() if ln.lstrip().startswith("peak ")][0]


def test_missing_torch_is_a_clear_error():
    code = ("import sys; sys.modules['torch'] = None; from gradxray.cli import main; "
            "sys.exit(main(['verify', 'examples/gpt.py:GPT', '--dim', 'T=32']))")
    proc = _run([sys.executable, "-c", code], ROOT)
    assert_clean_error(proc, "gradxray verify needs torch: pip install 'gradxray[torch]'")


def test_syntax_error_and_missing_targets_exit_2_without_running_anything(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch.nn as nn\n\nclass Net(nn.Module:\n    pass\n")
    assert_clean_error(cli("verify", f"{bad}:Net"), "bad.py:3:")
    assert "SyntaxError" in cli("verify", f"{bad}:Net").stderr
    assert_clean_error(cli("verify", f"{tmp_path}/nowhere.py:Net"), "nowhere.py: No such file or directory")
    assert_clean_error(cli("verify", "examples/gpt.py:NoSuchModel"), "has no class or function named 'NoSuchModel'")
    assert_clean_error(cli("verify", "examples/gpt.py"), "bad target")
    proc = cli("verify", "examples/gpt.py:GPT", "--tolerance", "lots")
    assert proc.returncode == 2 and "expected a percentage" in proc.stderr


def test_import_failure_after_the_notice_exits_2(tmp_path):
    boom = tmp_path / "boom.py"
    boom.write_text("import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n"
                    "    def forward(self, x):  # gradxray: x=[B, 4] float32\n        return self.fc(x)\n\n\n"
                    "raise RuntimeError('boom at import')\n")
    proc = cli("verify", f"{boom}:Net")
    assert proc.returncode == 2 and not proc.stdout and "Traceback" not in proc.stderr
    notice, error = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert notice.startswith(NOTICE)
    assert error == f"gradxray: error: {boom}: importing it failed: RuntimeError: boom at import"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cuda_requested_without_cuda(tmp_path):
    assert_clean_error(cli("verify", *RESNET, "--device", "cuda"), "--device cuda: CUDA is not available")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_comes_from_the_allocator():
    proc = cli("verify", *GPT, "--device", "cuda", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert proc.returncode == (0 if result["ok"] else 1)
    report = _estimate([*GPT, "--device", "cuda"])
    assert result["device"] == "cuda" and result["measured_with"] == "cuda allocator"
    assert result["cuda_workspace_bytes"] >= 0 and result["peak_phase"]["measured"] is None
    rows = {r["category"]: r for r in result["rows"]}
    for category, (estimate_of, _field) in ROW_FIELDS.items():
        row = rows[category]
        assert row["estimate"] == estimate_of(report), category
        assert row["error_pct"] == pytest.approx(relative_error_pct(row["estimate"], row["measured"]), abs=1e-5)
    # parameters and gradients are the same tensors on any device; saved bytes count allocator blocks
    for category in ("params.count", "params.bytes", "grads_bytes"):
        assert rows[category]["measured"] == rows[category]["estimate"], category
    assert rows["activations_saved_bytes"]["measured"] % 512 == 0


def test_static_modules_do_not_import_torch():
    code = ("import sys, gradxray.cli, gradxray.verify; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = _run([sys.executable, "-c", code], ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr)


# ------------------------------------------------------------------ the instruments, in process


def test_tests_and_product_share_one_tracker():
    assert LiveStorageTracker is ProductTracker


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_measure_step_without_optimizer_matches_the_test_harness():
    inputs = {"input": torch.randn(4, 8)}
    ours = measure_step(_mlp(), inputs)
    theirs = measure_training_step(_mlp(), inputs)
    assert (ours.param_bytes, ours.grads_bytes, ours.activations_saved_bytes, ours.peak_bytes, ours.peak_phase) == \
        (theirs.param_bytes, theirs.grads_bytes, theirs.activations_saved_bytes, theirs.peak_bytes, theirs.peak_phase)
    assert ours.optimizer_bytes == 0 and ours.peak_source == "live storages"


@pytest.mark.parametrize("kind, state_per_param", [("sgd-momentum", 1), ("adamw", 2)])
def test_measure_step_with_optimizer_is_steady_state(kind, state_per_param):
    from gradxray.verify import make_optimizer

    model = _mlp()
    inputs = {"input": torch.randn(4, 8)}
    plain = measure_step(_mlp(), inputs)
    measured = measure_step(model, inputs, optimizer=make_optimizer(kind, model, torch))
    n_tensors = len(list(model.parameters()))
    # Adam's per-parameter `step` is a 0-dim float32 tensor; SGD keeps no step count
    step_bytes = 4 * n_tensors if kind == "adamw" else 0
    assert measured.optimizer_bytes == state_per_param * measured.param_bytes + step_bytes
    # the state is live from the start of the measured step; the step itself runs last
    assert measured.peak_bytes >= plain.peak_bytes + measured.optimizer_bytes
    assert measured.activations_saved_bytes == plain.activations_saved_bytes
    assert measured.grads_bytes == measured.param_bytes


def test_relative_error_rows():
    class M:
        param_count, param_bytes, buffer_bytes, grads_bytes = 10, 40, 0, 40
        optimizer_bytes, activations_saved_bytes, peak_bytes = 0, 0, 200

    report = {"params": {"count": 10, "bytes": 40}, "buffers_bytes": 0, "grads_bytes": 40,
              "optimizer_bytes": 0, "activations_saved_bytes": 16, "peak_bytes": 190}
    rows = {r["category"]: r for r in compare(report, M, "none", 5.0, 0.0)}
    assert "optimizer_bytes" not in rows
    assert rows["activations_saved_bytes"]["error_pct"] is None and not rows["activations_saved_bytes"]["within"]
    assert rows["peak_bytes"]["error_pct"] == pytest.approx(-5.0) and rows["peak_bytes"]["within"]
    assert rows["buffers_bytes"]["error_pct"] == 0.0 and rows["buffers_bytes"]["within"]
    rows = {r["category"]: r for r in compare(report, M, "adam", 4.99, 0.0)}
    assert "optimizer_bytes" in rows and not rows["peak_bytes"]["within"]
