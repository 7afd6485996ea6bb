"""One simulated training step on the engine: forward, loss, backward (gradients start as None).

The analyzer builds the model and its inputs; this module runs the step under a
memory tracker and summarises what happened.  Liveness follows reference
counting, so the caller must not hold tensors the user's code would not hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradxray.engine as gx
from gradxray.engine.memory import MemoryTracker

from .settings import Settings


@dataclass
class StepResult:
    tracker: MemoryTracker
    outputs: list[tuple[tuple[int, ...], str]]          # shape, dtype of each tensor output
    loss_desc: str
    activations_saved_bytes: int
    peak_bytes: int
    peak_phase: str
    param_count: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    grads_bytes: int
    reached_params: set[str] = field(default_factory=set)


def tensors_in(value) -> list:
    """Tensors in an output value: a tensor, a tuple/list/dict, or an object with tensor fields."""
    if isinstance(value, gx.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []


LOSSES = ("auto", "sum", "mean")


def pick_loss(output, how: str = "auto"):
    """The scalar to call backward on: a 0-dim output, a ``loss`` element/field, else ``sum(first output)``."""
    if how not in LOSSES:
        raise ValueError(f"--loss {how} is not supported yet (use {', '.join(LOSSES)})")
    if how == "auto":
        if isinstance(output, gx.Tensor) and output.dim() == 0:
            return output, "the output"
        if isinstance(output, dict) and isinstance(output.get("loss"), gx.Tensor):
            return output["loss"], "output['loss']"
        loss_attr = getattr(output, "loss", None) if not isinstance(output, (tuple, list, dict, gx.Tensor)) else None
        if isinstance(loss_attr, gx.Tensor):
            return loss_attr, "output.loss"
        if isinstance(output, (tuple, list)):
            for i, v in enumerate(output):
                if isinstance(v, gx.Tensor) and v.dim() == 0:
                    return v, f"output[{i}]"
    ts = tensors_in(output)
    if not ts:
        return None, "no tensor output"
    first = ts[0]
    if how == "mean":
        return first.mean(), "mean(first output)"
    return first.sum(), "sum(first output)"


def _unique_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None or t._storage.uid in seen:
            continue
        seen.add(t._storage.uid)
        total += t._storage.nbytes
    return total


def simulate_training_step(model, inputs: dict, run_forward: Callable[[dict], Any],
                           settings: Settings | None = None) -> StepResult:
    """Run forward → loss → backward under a tracker.  Inputs stay alive for the whole step, as in a
    training loop that holds its batch."""
    settings = settings or Settings()
    model.train()
    model.name_modules()
    named = list(model.named_parameters())
    params = [p for _, p in named]
    buffers = [b for _, b in model.named_buffers()]
    tracker = MemoryTracker(cuda_rounding=settings.device == "cuda")
    with tracker:
        for p in params:
            tracker.register(p._storage, "param")
        for b in buffers:
            tracker.register(b._storage, "buffer")
        for t in inputs.values():
            if isinstance(t, gx.Tensor):
                tracker.register(t._storage, "input")
        input_bytes = _unique_bytes(t for t in inputs.values() if isinstance(t, gx.Tensor))
        with gx.memory.phase("forward"):
            output = run_forward(inputs)
        with gx.memory.phase("loss"):
            loss, loss_desc = pick_loss(output, settings.loss)
        saved = tracker.saved_activation_bytes()
        if loss is not None and loss.requires_grad:
            loss.backward()
        out_tensors = tensors_in(output)
        outputs = [(tuple(int(s) for s in t.shape), t.dtype.name) for t in out_tensors]
        del out_tensors, loss
    reached = {n for n, p in named if p.grad is not None}
    grads_bytes = _unique_bytes(p.grad for p in params)
    return StepResult(
        tracker=tracker, outputs=outputs, loss_desc=loss_desc,
        activations_saved_bytes=saved, peak_bytes=tracker.peak_bytes, peak_phase=tracker.peak_phase,
        param_count=sum(int(p.numel()) for p in params), param_bytes=_unique_bytes(params),
        buffer_bytes=_unique_bytes(buffers), input_bytes=input_bytes, grads_bytes=grads_bytes,
        reached_params=reached)
