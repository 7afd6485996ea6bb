"""`gradxray memory --amp bf16` against torch's CPU autocast: forward and loss under
`torch.autocast("cpu", dtype=torch.bfloat16)`, backward outside it, measured on CPU."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from gradxray.analyzer.settings import Settings  # noqa: E402
from gradxray.analyzer.memory_report import memory_report  # noqa: E402
from tests.support.torch_truth import measure_training_step  # noqa: E402

from tests.analyzer.test_memory_optimizer import CASES, ROOT, mlp_file, mods  # noqa: E402,F401  (shared cases and fixtures)

AMP_CASES = [
    # (case, optimizer, batch).  The bundled GPT is measured with AdamW: without an optimizer its
    # measured peak is an observer effect of the measuring dispatch mode (the tied weight's two
    # gradients added out of place); bf16 matmuls on CPU are slow, so it runs at one batch size.
    ("mlp", None, 2), ("mlp", None, 4), ("resnet", None, 2), ("resnet", None, 4),
    ("resnet", "adamw", 2), ("resnet", "adamw", 4), ("mlp", "sgd-momentum", 4), ("gpt", "adamw", 2),
]


def _target(case, mlp_file):
    target = CASES[case][0] or f"{mlp_file}:MLP"
    return target if os.path.isabs(target.split(":")[0]) else os.path.join(ROOT, target)


@pytest.mark.parametrize("case,optimizer,batch", AMP_CASES)
def test_bf16_autocast_matches_torch(case, optimizer, batch, mods, mlp_file):
    dims = CASES[case][1]
    settings = Settings(batch=batch, dims={**Settings().dims, **dims}, amp="bf16", optimizer=optimizer or "none")
    report = memory_report(_target(case, mlp_file), settings, scaling=False)
    torch.manual_seed(0)
    model, inputs = CASES[case][2](mods, batch)
    measured = measure_training_step(model, inputs, amp="bf16", optimizer=optimizer)

    assert report["amp"] == "bf16"
    assert report["activations_saved_bytes"] == measured.activations_saved_bytes
    assert report["grads_bytes"] == measured.grads_bytes
    assert report["optimizer_bytes"] == measured.optimizer_bytes
    error = (report["peak_bytes"] - measured.peak_bytes) / measured.peak_bytes
    assert abs(error) <= 0.02, (report["peak_bytes"], measured.peak_bytes, error)


def test_autocast_saves_the_bf16_weight_copies(mlp_file):
    """Under autocast a linear whose input requires grad saves the bf16 cast of its weight (the cast
    cache's copy): a new storage, half the fp32 weight's bytes.  (fc1's input does not require grad,
    so its weight is not saved.)"""
    target = f"{mlp_file}:MLP"
    off = memory_report(target, Settings(batch=8), scaling=False)
    bf16 = memory_report(target, Settings(batch=8, amp="bf16"), scaling=False)
    cast_weights = (256 * 256 + 256 * 10) * 2
    assert off["amp"] == "off"
    assert off["activations_saved_bytes"] < cast_weights < bf16["activations_saved_bytes"]
