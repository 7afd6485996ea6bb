"""Issue 5's accuracy targets on real models: ``gradxray memory``'s estimate (static, from the installed
sources) against the same model trained one step with torch on the CPU, float32, train mode.

Models: torchvision resnet18, resnet50, mobilenet_v3_small, vit_b_16, efficientnet_b0 and
convnext_tiny, and HF GPT-2, BERT and LLaMA from small configs (``factories/hf_models.py``), each at
two batch sizes.  The MLP and the bundled examples are covered by ``tests/test_examples_accuracy.py``
and ``tests/analyzer/test_memory_optimizer.py``.

Targets (issue 5, "Done when"):

* ``activations_saved_bytes`` equal to the saved-tensor-hook measurement;
* forward + backward peak within 2 % of the measured live-storage peak in median and 5 % at most;
* the peak of a steady-state iteration with an AdamW step within 3 %.

A model the analyzer does not trace completely (it reported a place where it lost precision) is
skipped with that first reason: its estimate is not a claim the analyzer makes.

The measuring instrument has one known effect (``tests/support/torch_truth.py``): under its dispatch
mode torch may accumulate two gradients of one tensor out of place where a plain run adds in place,
so the measured peak can hold one gradient buffer that the real run never allocates.
:func:`peak_without_out_of_place_accumulation` reads the measured timeline and takes those
allocations out; where the estimate differs from the measured peak, the difference must be exactly
that.  ``bench/accuracy.py`` prints the same comparison as a table, with torchinfo's estimate and
the 4x-parameters rule beside it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import statistics
import sys
from dataclasses import dataclass, field

import pytest

from tests.corpus.harness import CorpusModel, _torch_input, corpus

SIDE = 64                  # small images keep the CPU runs short; every model here accepts them ...
SIDES = {"vit_b_16": 224}  # ... except the ViT, whose position embedding fixes its input side
TORCHVISION = ["resnet18", "resnet50", "mobilenet_v3_small", "vit_b_16", "efficientnet_b0", "convnext_tiny"]
TRANSFORMERS = ["gpt2", "bert", "llama"]
BATCHES = (1, 2)
ADAMW_BATCH = 1            # the optimizer step's size does not depend on the batch

PEAK_MEDIAN_TOLERANCE = 0.02
PEAK_MAX_TOLERANCE = 0.05
ADAMW_PEAK_TOLERANCE = 0.03


def accuracy_models(packages=("torchvision", "transformers"), names: dict[str, list[str]] | None = None
                    ) -> list[CorpusModel]:
    """The corpus models of the accuracy set (``names``: package -> model names, default the issue's)."""
    wanted = names or {"torchvision": TORCHVISION, "transformers": TRANSFORMERS}
    out = []
    for package in packages:
        if importlib.util.find_spec(package) is None:
            continue
        by_name = {cm.name: cm for cm in corpus(package)}
        for name in wanted.get(package, []):
            cm = by_name[name]
            if package == "torchvision":
                side = SIDES.get(name, SIDE)
                cm = dataclasses.replace(cm, dims={"H": side, "W": side})
            out.append(cm)
    return out


# -- one comparison --------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Estimate and measurement of one model at one batch size (``optimizer``: "none" or "adamw")."""

    model: CorpusModel
    batch: int
    optimizer: str
    unresolved: list[str]                   # where the analysis lost precision (empty: fully traced)
    estimate: dict                          # the `gradxray memory` report
    measured: object = None                 # tests.support.torch_truth.Measurement (None when untraced)
    torch_model: object = field(default=None, repr=False)
    torch_inputs: dict = field(default_factory=dict, repr=False)

    @property
    def traced(self) -> bool:
        return not self.unresolved

    @property
    def peak_error(self) -> float:
        """(estimate - measured) / measured, of the peak."""
        return (self.estimate["peak_bytes"] - self.measured.peak_bytes) / self.measured.peak_bytes

    @property
    def instrument_peak(self) -> tuple[int, int]:
        """(measured peak without the instrument's out-of-place accumulations, bytes taken out)."""
        return peak_without_out_of_place_accumulation(self.measured.timeline)


def peak_without_out_of_place_accumulation(timeline) -> tuple[int, int]:
    """The measured peak had torch accumulated every gradient in place, and the bytes that changes.

    In the timeline of :class:`~gradxray.measure.LiveStorageTracker` (``(event, op, nbytes, live,
    phase)``), an out-of-place accumulation is an ``add`` allocated during backward and followed at
    once by the release of a buffer of its size (the gradient it replaces).  Added in place, that
    buffer would have been reused: the live bytes never include both, so the level at that ``add``
    is left out of the maximum.
    """
    peak = 0
    for i, (event, op, nbytes, live, phase) in enumerate(timeline):
        nxt = timeline[i + 1] if i + 1 < len(timeline) else None
        if (event == "alloc" and op == "add" and phase == "backward" and nxt is not None
                and nxt[0] == "free" and nxt[2] == nbytes):
            continue
        peak = max(peak, live)
    measured = max((e[3] for e in timeline), default=0)
    return peak, measured - peak


def estimate(cm: CorpusModel, batch: int, optimizer: str = "none") -> tuple[dict, list[str]]:
    """The `gradxray memory` report (static) and the places where the analysis lost precision."""
    from gradxray.analyzer.memory_report import memory_report
    from gradxray.analyzer.settings import Settings

    settings = Settings(batch=batch, dims=dict(cm.dims), inputs=dict(cm.inputs), optimizer=optimizer)
    report = memory_report(cm.target, settings, scaling=False)
    reasons = [f"{_short(u['file'])}:{u['line']}: {u['reason']}" for u in report["unresolved"]]
    return report, reasons


def _short(path: str | None) -> str:
    """A source file relative to the import root holding it (``transformers/models/bert/modeling_bert.py``)."""
    if not path:
        return "?"
    roots = [r for r in sys.path if r and path.startswith(os.path.join(os.path.abspath(r), ""))]
    return os.path.relpath(path, max(roots, key=len)) if roots else path


def build_torch(cm: CorpusModel, batch: int):
    """The same model built by torch (seeded) and its inputs at ``batch``."""
    import torch

    torch.manual_seed(0)
    model = cm.build_torch()
    inputs = {k: _torch_input(v, {"B": batch, **cm.dims}, "cpu") for k, v in cm.inputs.items()}
    return model, inputs


def compare(cm: CorpusModel, batch: int, optimizer: str = "none", keep_model: bool = False) -> Comparison:
    """Estimate, then (when the model traced fully) measure one training step with torch."""
    from tests.support.torch_truth import measure_training_step

    report, reasons = estimate(cm, batch, optimizer)
    result = Comparison(cm, batch, optimizer, reasons, report)
    if reasons:
        return result
    model, inputs = build_torch(cm, batch)
    result.measured = measure_training_step(model, inputs, timeline=True,
                                            optimizer=None if optimizer == "none" else optimizer)
    if keep_model:
        result.torch_model, result.torch_inputs = model, inputs
    return result


# -- the tests ---------------------------------------------------------------------------------------

# a module-level mark rather than a skip at import: bench/accuracy.py imports the machinery above
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None
                                or importlib.util.find_spec("torchvision") is None,
                                reason="torch and torchvision are not installed (the corpus environment has them)")

_MODELS = {cm.name: cm for cm in accuracy_models()}
_results: dict[tuple[str, int, str], Comparison] = {}
_untraced: dict[str, str] = {}


def _comparison(name: str, batch: int, optimizer: str = "none") -> Comparison:
    """Cached.  The torchvision models trace completely: one that no longer does fails.  An HF model
    that does not trace yet is skipped with the analyzer's first reason (and not analysed again)."""
    if name in _untraced:
        pytest.skip(f"{name} does not trace fully: {_untraced[name]}")
    key = (name, batch, optimizer)
    if key not in _results:
        _results[key] = compare(_MODELS[name], batch, optimizer)
    result = _results[key]
    if not result.traced:
        if result.model.package != "transformers":
            pytest.fail(f"{name} no longer traces fully: {result.unresolved[0]}")
        _untraced[name] = result.unresolved[0]
        pytest.skip(f"{name} does not trace fully: {result.unresolved[0]}")
    return result


CASES = [pytest.param(name, batch, id=f"{name}-B{batch}") for name in _MODELS for batch in BATCHES]


@pytest.mark.parametrize("name,batch", CASES)
def test_saved_bytes_equal_saved_tensor_hooks(name, batch):
    c = _comparison(name, batch)
    assert c.estimate["params"]["bytes"] == c.measured.param_bytes
    assert c.estimate["activations_saved_bytes"] == c.measured.activations_saved_bytes
    assert c.estimate["grads_bytes"] == c.measured.grads_bytes


@pytest.mark.parametrize("name,batch", CASES)
def test_peak_within_max_tolerance(name, batch):
    c = _comparison(name, batch)
    assert abs(c.peak_error) <= PEAK_MAX_TOLERANCE, \
        f"estimate {c.estimate['peak_bytes']} vs measured {c.measured.peak_bytes} ({c.peak_error:+.2%})"


@pytest.mark.parametrize("name,batch", CASES)
def test_peak_differs_only_by_the_instruments_accumulation(name, batch):
    """Where the estimate is not the measured peak, the measured timeline shows why: at the measured
    peak torch (under the tracker) accumulated a gradient out of place, which the estimate, like a
    plain torch run, does in place."""
    c = _comparison(name, batch)
    if c.estimate["peak_bytes"] == c.measured.peak_bytes:
        return
    in_place_peak, taken_out = c.instrument_peak
    assert c.estimate["peak_bytes"] == in_place_peak, (
        f"estimate {c.estimate['peak_bytes']}, measured {c.measured.peak_bytes} "
        f"({taken_out} bytes of it out-of-place accumulation)")


def test_peak_median_error_and_under_estimate_rate():
    results = [_comparison(name, batch) for name in _MODELS for batch in BATCHES
               if name not in _untraced and _safe_traced(name, batch)]
    if not results:
        pytest.skip("no model traced fully")
    errors = [abs(c.peak_error) for c in results]
    under = sum(c.peak_error < 0 for c in results)
    summary = (f"{len(results)} runs: median |error| {statistics.median(errors):.3%}, max {max(errors):.3%}, "
               f"under-estimates {under}/{len(results)}")
    print(summary)
    assert statistics.median(errors) <= PEAK_MEDIAN_TOLERANCE, summary
    assert max(errors) <= PEAK_MAX_TOLERANCE, summary


def _safe_traced(name: str, batch: int) -> bool:
    """Whether the model traced (an untraced torchvision model has failed its own tests already)."""
    try:
        return _comparison(name, batch).traced
    except (pytest.skip.Exception, pytest.fail.Exception):
        return False


@pytest.mark.parametrize("name", list(_MODELS))
def test_adamw_step_peak_within_tolerance(name):
    c = _comparison(name, ADAMW_BATCH, "adamw")
    assert c.estimate["optimizer_bytes"] == c.measured.optimizer_bytes
    assert abs(c.peak_error) <= ADAMW_PEAK_TOLERANCE, \
        f"estimate {c.estimate['peak_bytes']} vs measured {c.measured.peak_bytes} ({c.peak_error:+.2%})"
