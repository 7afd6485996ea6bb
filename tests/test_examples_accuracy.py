"""`gradxray memory --format json` (the real CLI, static, no torch in the analysis) against the
example models really run with torch on CPU: saved-tensor hooks and a live-storage tracker."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from tests.support.torch_truth import measure_training_step  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cli_memory(target, *args):
    proc = subprocess.run([sys.executable, "-m", "gradxray", "memory", target, "--device", "cpu", "--format", "json",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


CASES = {
    # name: (target, cli dims, builder of (torch model, inputs))
    "gpt": ("examples/gpt.py:GPT", ["--dim", "T=64"],
            lambda mod, b: (mod.GPT(), {"idx": torch.randint(0, 50304, (b, 64)),
                                        "targets": torch.randint(0, 50304, (b, 64))})),
    "resnet": ("examples/resnet.py:ResNet", ["--dim", "H=32", "--dim", "W=32"],
               lambda mod, b: (mod.ResNet(), {"x": torch.randn(b, 3, 32, 32)})),
}


@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("example", sorted(CASES))
def test_memory_estimate_equals_torch_run(example, batch):
    target, dims, build = CASES[example]
    report = _cli_memory(target, "--batch", str(batch), *dims)
    torch.manual_seed(0)
    model, inputs = build(_load(example), batch)
    measured = measure_training_step(model, inputs)

    assert report["unresolved"] == []
    assert report["params"]["count"] == measured.param_count
    assert report["params"]["bytes"] == measured.param_bytes
    assert report["buffers_bytes"] == measured.buffer_bytes
    assert report["activations_saved_bytes"] == measured.activations_saved_bytes
    assert abs(report["peak_bytes"] - measured.peak_bytes) <= 0.02 * measured.peak_bytes, \
        (report["peak_bytes"], measured.peak_bytes)
    assert report["grads_bytes"] == measured.grads_bytes
    assert [o["shape"] for o in report["outputs"]] == [list(s) for s in measured.output_shapes]
