"""One simulated training step on the engine.

Without an optimizer: forward, loss, backward, gradients starting as None.  With one, the
steady-state iteration of a training loop (DESIGN.md): ``zero_grad(set_to_none=True)`` →
forward → loss → backward → ``step()``, the optimizer state already allocated.  With AMP,
forward and loss run inside ``autocast`` and backward outside it, as in a user's loop.

The analyzer builds the model and its inputs; this module runs the step under a
memory tracker and summarises what happened.  Liveness follows reference
counting, so the caller must not hold tensors the user's code would not hold.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import gradxray.engine as gx
from gradxray.engine.memory import MemoryTracker

from .checkpointing import checkpointing
from .settings import Settings
from .values import UserInstance

OPTIMIZERS = ("none", "sgd", "sgd-momentum", "adam", "adamw")
AMP_DTYPES = {"off": None, "fp16": "float16", "bf16": "bfloat16"}


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
    optimizer: str = "none"
    optimizer_bytes: int = 0                             # state held between steps (device memory)
    amp: str = "off"
    trainable_params: list[str] = field(default_factory=list)   # requires_grad, in named_parameters order
    frozen_params: list[str] = field(default_factory=list)
    used_params: set[str] = field(default_factory=set)   # consumed by an op that recorded a graph


def tensors_in(value) -> list:
    """Tensors in an output value: a tensor, a tuple/list/dict, or an object with tensor fields."""
    if isinstance(value, gx.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, UserInstance) and value.mapping is not None:
        # an instance of an analysed dict subclass (HF's ModelOutput): its items, as a dict's
        return tensors_in(value.mapping)
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


def make_optimizer(kind: str, params: list, device: str):
    """The engine optimizer for ``--optimizer kind`` with torch's default hyper-parameters.

    The implementation is the one torch picks by default (``_default_to_fused_or_foreach``): the
    foreach kernels on CUDA, the per-parameter for-loop on CPU.  It is passed explicitly because the
    analyzer's parameters may still sit on the CPU when the target device is CUDA."""
    foreach = device == "cuda"
    if kind == "sgd":
        return gx.optim.SGD(params, lr=1e-3, foreach=foreach)
    if kind == "sgd-momentum":
        return gx.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=foreach)
    if kind == "adam":
        return gx.optim.Adam(params, foreach=foreach)
    if kind == "adamw":
        return gx.optim.AdamW(params, foreach=foreach)
    raise ValueError(f"--optimizer {kind}: unknown optimizer (use one of {', '.join(OPTIMIZERS)})")


def _allocate_state(optimizer, params: list) -> None:
    """One untracked step with zero gradients: the state a steady-state iteration starts with.

    Cheaper than a warm-up iteration (no forward or backward); the state depends only on which
    parameters have a gradient, and on their shapes and dtypes."""
    with gx.no_grad():
        for p in params:
            p.grad = gx.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _state_tensors(optimizer, device: str) -> list:
    """The optimizer's state tensors in device memory.  On CUDA the ``step`` counters are CPU
    tensors (torch keeps them on the host unless capturable or fused), so they are left out."""
    out = []
    for state in optimizer.state.values():
        for key, t in state.items():
            if isinstance(t, gx.Tensor) and not (device == "cuda" and key == "step" and t.dim() == 0):
                out.append(t)
    return out


def move_to_device(model, device: str) -> None:
    """``model.to(device)`` as a training script does before its loop, when the built model is elsewhere."""
    if device == "cuda" and any(p.device.type != "cuda" for p in model.parameters()):
        model.to(device)


def autocast_region(settings: Settings):
    """The ``autocast`` region the forward and loss run in (a null context with ``amp = off``)."""
    dtype = AMP_DTYPES.get(settings.amp or "off")
    if dtype is None:
        return contextlib.nullcontext()
    return gx.autocast(settings.device, dtype=getattr(gx, dtype))


def simulate_training_step(model, inputs: dict, run_forward: Callable[[dict], Any],
                           settings: Settings | None = None, *, timeline: bool = True) -> StepResult:
    """Run (zero_grad →) forward → loss → backward (→ step) under a tracker.  Inputs stay alive for
    the whole step, as in a training loop that holds its batch.  ``timeline``: whether the tracker keeps
    every allocation and release in order (for plots; totals, peaks and saved tensors are kept anyway)."""
    settings = settings or Settings()
    if (settings.optimizer or "none") not in OPTIMIZERS:
        raise ValueError(f"--optimizer {settings.optimizer}: unknown optimizer (use one of {', '.join(OPTIMIZERS)})")
    if (settings.amp or "off") not in AMP_DTYPES:
        raise ValueError(f"--amp {settings.amp}: unknown (use one of {', '.join(AMP_DTYPES)})")
    model.train()
    move_to_device(model, settings.device)
    model.name_modules()
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    optimizer = None
    if (settings.optimizer or "none") != "none" and trainable:
        optimizer = make_optimizer(settings.optimizer, [p for _, p in trainable], settings.device)
        _allocate_state(optimizer, [p for _, p in trainable])
    result = _tracked_iteration(model, named, inputs, run_forward, settings, optimizer, timeline)
    stale = [p for n, p in trainable if n not in result.reached_params and p in optimizer.state] if optimizer else []
    if stale:
        # parameters no gradient reaches never get state in a real loop: drop what the warm-up gave
        # them and run the iteration again (only models with unreached parameters pay for this)
        for p in stale:
            del optimizer.state[p]
        del result
        result = _tracked_iteration(model, named, inputs, run_forward, settings, optimizer, timeline)
    return result


def _tracked_iteration(model, named, inputs: dict, run_forward, settings: Settings, optimizer,
                       timeline: bool) -> StepResult:
    params = [p for _, p in named]
    buffers = [b for _, b in model.named_buffers()]
    for p in params:
        # the leaf's cached AccumulateGrad: set again by the first recorded op that uses ``p``
        p._grad_accumulator = None
    state = _state_tensors(optimizer, settings.device) if optimizer is not None else []
    tracker = MemoryTracker(cuda_rounding=settings.device == "cuda", keep_timeline=timeline)
    with tracker:
        for p in params:
            tracker.register(p._storage, "param")
        for b in buffers:
            tracker.register(b._storage, "buffer")
        for t in state:
            tracker.register(t._storage, "optimizer")
        for t in inputs.values():
            if isinstance(t, gx.Tensor):
                tracker.register(t._storage, "input")
        input_bytes = _unique_bytes(t for t in inputs.values() if isinstance(t, gx.Tensor))
        with autocast_region(settings):
            with gx.memory.phase("forward"), checkpointing(model, settings):
                output = run_forward(inputs)
            with gx.memory.phase("loss"):
                loss, loss_desc = pick_loss(output, settings.loss)
        used = {n for n, p in named if p._grad_accumulator is not None}
        saved = tracker.saved_activation_bytes()
        if loss is not None and loss.requires_grad:
            loss.backward()
        del loss
        reached = {n for n, p in named if p.grad is not None}
        grads_bytes = _unique_bytes(p.grad for p in params)
        if optimizer is not None:
            optimizer.step()          # the output is still referenced, as in a loop's body
        out_tensors = tensors_in(output)
        outputs = [(tuple(int(s) for s in t.shape), t.dtype.name) for t in out_tensors]
        del out_tensors, output
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    return StepResult(
        tracker=tracker, outputs=outputs, loss_desc=loss_desc,
        activations_saved_bytes=saved, peak_bytes=tracker.peak_bytes, peak_phase=tracker.peak_phase,
        param_count=sum(int(p.numel()) for p in params), param_bytes=_unique_bytes(params),
        buffer_bytes=_unique_bytes(buffers), input_bytes=input_bytes, grads_bytes=grads_bytes,
        reached_params=reached, optimizer=settings.optimizer or "none",
        optimizer_bytes=_unique_bytes(state), amp=settings.amp or "off",
        trainable_params=[n for n, p in named if p.requires_grad],
        frozen_params=[n for n, p in named if not p.requires_grad], used_params=used)
