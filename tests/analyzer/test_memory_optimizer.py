"""`gradxray memory` with an optimizer: the steady-state iteration (zero_grad(set_to_none=True) →
forward → backward → step(), state already allocated), compared with the same iteration run by
torch on CPU and measured (live-storage peak, optimizer state storages)."""
from __future__ import annotations

import os
import textwrap

import pytest

torch = pytest.importorskip("torch")

from gradxray.analyzer.memory_report import memory_report  # noqa: E402
from gradxray.analyzer.settings import Settings  # noqa: E402
from tests.support.loading import load_module  # noqa: E402
from tests.support.torch_truth import measure_training_step  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F32 = 4

MLP_SOURCE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, d_in=64, hidden=256, d_out=10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, d_out)

    def forward(self, x):  # gradxray: x=[B, 64] float32
        return self.head(F.gelu(self.fc2(F.relu(self.fc1(x)))))


class Partial(nn.Module):
    """Frozen embedding, a detached branch and an unused layer: parameters that get no gradient."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(32, 32)
        self.frozen.requires_grad_(False)
        self.side = nn.Linear(32, 32)
        self.unused = nn.Linear(32, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, x):  # gradxray: x=[B, 32] float32
        h = self.frozen(x)
        s = self.side(h).detach()
        return self.out(h + s)


class Deep(nn.Module):
    def __init__(self, width=128, depth=8):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):  # gradxray: x=[B, 128] float32
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x
'''



@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mlp") / "mlp.py"
    path.write_text(textwrap.dedent(MLP_SOURCE))
    return str(path)


def _examples():
    return {"gpt": load_module(os.path.join(ROOT, "examples", "gpt.py"), "_opt_example_gpt"),
            "resnet": load_module(os.path.join(ROOT, "examples", "resnet.py"), "_opt_example_resnet")}


CASES = {
    # name: (target, dims, builder of (torch model, inputs) for a batch)
    "mlp": (None, {}, lambda mods, b: (mods["mlp"].MLP(), {"x": torch.randn(b, 64)})),
    "gpt": ("examples/gpt.py:GPT", {"T": 64},
            lambda mods, b: (mods["gpt"].GPT(), {"idx": torch.randint(0, 50304, (b, 64)),
                                                 "targets": torch.randint(0, 50304, (b, 64))})),
    "resnet": ("examples/resnet.py:ResNet", {"H": 32, "W": 32},
               lambda mods, b: (mods["resnet"].ResNet(), {"x": torch.randn(b, 3, 32, 32)})),
}


def estimate(target, batch, dims, **kw):
    settings = Settings(batch=batch, dims={**Settings().dims, **dims}, **kw)
    return memory_report(target, settings, scaling=False)


def measure(case, mods, batch, **kw):
    torch.manual_seed(0)
    model, inputs = CASES[case][2](mods, batch)
    return measure_training_step(model, inputs, **kw)


@pytest.fixture(scope="module")
def mods(mlp_file):
    return {**_examples(), "mlp": load_module(mlp_file, "_opt_mlp")}


@pytest.mark.parametrize("optimizer", ["adamw", "sgd-momentum"])
@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("case", sorted(CASES))
def test_peak_with_optimizer_step_matches_torch(case, batch, optimizer, mods, mlp_file):
    target, dims, _ = CASES[case]
    target = target or f"{mlp_file}:MLP"
    if not os.path.isabs(target.split(":")[0]):
        target = os.path.join(ROOT, target)
    report = estimate(target, batch, dims, optimizer=optimizer)
    measured = measure(case, mods, batch, optimizer=optimizer)

    assert report["optimizer"] == optimizer
    assert report["optimizer_bytes"] == measured.optimizer_bytes
    assert report["activations_saved_bytes"] == measured.activations_saved_bytes
    assert report["grads_bytes"] == measured.grads_bytes
    error = (report["peak_bytes"] - measured.peak_bytes) / measured.peak_bytes
    assert abs(error) <= 0.03, (report["peak_bytes"], measured.peak_bytes, error)


def test_optimizer_state_sizes(mlp_file):
    target = f"{mlp_file}:MLP"
    plain = estimate(target, 4, {})
    param_bytes, tensors = plain["params"]["bytes"], 6
    assert plain["optimizer_bytes"] == 0
    assert estimate(target, 4, {}, optimizer="sgd")["optimizer_bytes"] == 0
    assert estimate(target, 4, {}, optimizer="sgd-momentum")["optimizer_bytes"] == param_bytes
    # exp_avg and exp_avg_sq per parameter, and a 0-dim float32 `step` tensor per parameter (CPU)
    for kind in ("adam", "adamw"):
        assert estimate(target, 4, {}, optimizer=kind)["optimizer_bytes"] == 2 * param_bytes + tensors * F32


def test_step_is_part_of_the_peak(mlp_file):
    """AdamW's for-loop step holds a parameter-sized temporary (sqrt, then denom) on top of params,
    grads and state: for a model whose activations are small the peak happens in the step."""
    report = estimate(f"{mlp_file}:MLP", 1, {}, optimizer="adamw")
    assert report["peak_phase"] == "optimizer"
    resident = report["params"]["bytes"] + report["grads_bytes"] + report["optimizer_bytes"]
    assert report["peak_bytes"] > resident


def test_frozen_and_unreached_parameters_get_no_state(mlp_file, mods):
    """Frozen parameters get no gradient or state; one cut by `.detach()` or never used gets no
    gradient, so in a steady-state loop no state either (torch skips parameters whose grad is None)."""
    target = f"{mlp_file}:Partial"
    report = estimate(target, 8, {}, optimizer="adamw")
    torch.manual_seed(0)
    model = mods["mlp"].Partial()
    measured = measure_training_step(model, {"x": torch.randn(8, 32)}, optimizer="adamw")
    out_bytes = (32 * 4 + 4) * F32
    assert report["grads_bytes"] == measured.grads_bytes == out_bytes
    assert report["optimizer_bytes"] == measured.optimizer_bytes == 2 * out_bytes + 2 * F32
    assert report["peak_bytes"] == measured.peak_bytes
    flow = report["gradient_flow"]
    assert flow["reached"] == 2 and flow["frozen"] == 2
    reasons = {e["param"]: e["reason"] for e in flow["not_reached"]}
    assert reasons == {"side.weight": "detach", "side.bias": "detach",
                       "unused.weight": "unused in forward", "unused.bias": "unused in forward"}


def test_cuda_uses_the_foreach_step(mlp_file):
    """On CUDA torch defaults to the foreach implementation, whose square roots of every parameter's
    second moment are alive at once; the `step` counters stay on the CPU and are not device memory."""
    target = f"{mlp_file}:Deep"
    cpu = estimate(target, 1, {}, optimizer="adam")
    cuda = estimate(target, 1, {}, optimizer="adam", device="cuda")
    param_bytes = cpu["params"]["bytes"]
    assert cuda["optimizer_bytes"] == 2 * param_bytes
    assert cuda["peak_phase"] == cpu["peak_phase"] == "optimizer"
    # for-loop: a few temporaries the size of one parameter; foreach: one per parameter, all together
    def resident(r):
        return r["params"]["bytes"] + r["grads_bytes"] + r["optimizer_bytes"]
    assert cpu["peak_bytes"] - resident(cpu) < param_bytes // 2
    assert cuda["peak_bytes"] - resident(cuda) >= param_bytes
