"""The simulated training step without its allocation timeline (what the analysis runs) reports the
same totals, peak, saved tensors and FLOPs as with it (what `gradxray memory --plot` runs)."""
from __future__ import annotations

import os

from gradxray.analyzer import Settings, build_target
from gradxray.analyzer.training_step import simulate_training_step

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPT = os.path.join(REPO, "examples", "gpt.py")


def _step(timeline: bool):
    settings = Settings(optimizer="adamw")
    model, inputs, forward = build_target(GPT, "GPT", settings)
    with forward.backend():
        return simulate_training_step(model, inputs, forward, settings, timeline=timeline)


def test_the_step_without_a_timeline_reports_what_the_step_with_one_does():
    full, lean = _step(True), _step(False)
    assert full.tracker.timeline and not lean.tracker.timeline and not lean.tracker.timeline_details
    for field in ("peak_bytes", "peak_phase", "activations_saved_bytes", "grads_bytes", "optimizer_bytes",
                  "param_bytes", "outputs", "reached_params"):
        assert getattr(lean, field) == getattr(full, field), field
    for field in ("peak_bytes", "peak_location", "peak_module", "current_bytes", "flops", "flops_by_location",
                  "flops_by_module", "module_outputs"):
        assert getattr(lean.tracker, field) == getattr(full.tracker, field), field
    assert [(r.op, r.what, r.shape, r.nbytes) for r in lean.tracker.saved] == \
        [(r.op, r.what, r.shape, r.nbytes) for r in full.tracker.saved]
    assert lean.peak_bytes > lean.param_bytes > 0
