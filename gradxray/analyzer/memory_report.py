"""``gradxray memory TARGET``: the training-step memory report as a JSON-ready dict (DESIGN.md)."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

from .checkpointing import checkpoint_plan, checkpoint_summary
from .settings import Settings
from .training_step import LOSSES, move_to_device, simulate_training_step


class TargetError(Exception):
    """A target that cannot be analysed (missing file, unknown name, no input shapes)."""


def split_target(target: str) -> tuple[str, str]:
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise TargetError(f"target must look like path.py:Name, got {target!r}")
    if not os.path.isfile(path):
        raise TargetError(f"{path}: no such file")
    return path, name


def _build(path: str, name: str, settings: Settings):
    from . import build_target

    try:
        model, inputs, forward = build_target(path, name, settings)
    except SyntaxError as e:
        raise TargetError(f"{path}:{e.lineno or 1}:{e.offset or 1}: SyntaxError: {e.msg}") from None
    except (LookupError, ValueError) as e:
        raise TargetError(str(e)) from None
    move_to_device(model, settings.device)     # before anything holds the parameters
    return model, inputs, forward


def memory_report(target: str, settings: Settings | None = None, timeline: bool = False, *,
                  budget: int | None = None, scaling: bool = True,
                  progress: Callable[[str], None] | None = None) -> dict:
    """The report; with ``timeline``, also the live bytes per category over the step (for ``--plot``).

    ``scaling`` adds the bytes per additional sample (the step analysed at more batch sizes);
    ``budget`` (bytes) the largest batch whose peak fits it.  ``progress`` receives a line per
    analysis ("analysing at B=16 ...")."""
    settings = settings or Settings()
    if settings.loss not in LOSSES:
        raise TargetError(f"--loss {settings.loss}: not modelled yet; use one of {', '.join(LOSSES)}")
    path, name = split_target(target)
    say = progress or (lambda _msg: None)
    say(f"analysing {target} at B={settings.batch} ...")
    model, inputs, forward = _build(path, name, settings)
    param_grads = _watch_param_grads(model) if timeline else set()
    with forward.backend():
        step = simulate_training_step(model, inputs, lambda _inputs: forward(), settings)
    tracker = step.tracker
    saved_by_module: dict[str, int] = {}
    for rec in tracker.saved:
        if rec.new_storage and rec.category not in ("param", "buffer"):
            saved_by_module[rec.module] = saved_by_module.get(rec.module, 0) + rec.nbytes
    modules = []
    for mpath, m in model.named_modules():
        shape = tracker.module_outputs.get(mpath)
        modules.append({
            "path": mpath,
            "class": type(m).__name__,
            "params": sum(int(p.numel()) for p in m.parameters()),
            "output_shape": list(shape) if shape is not None else None,
            "saved_bytes": sum(b for p, b in saved_by_module.items()
                               if mpath == "" or p == mpath or p.startswith(mpath + ".")),
            "flops": tracker.flops_by_module.get(mpath, 0) if mpath else tracker.flops.get("forward", 0),
        })
    analysis = forward.analysis
    # where each input's shape came from: "pragma", "settings", "annotation", "example ...", "inferred"
    sources = {spec.name: spec.source for spec in forward.input_specs or ()}
    return {
        "target": target,
        "device": settings.device,
        "dtype": settings.dtype,
        "batch": settings.batch,
        "inputs": {k: {"shape": [int(s) for s in t.shape], "dtype": t.dtype.name, "source": sources.get(k)}
                   for k, t in inputs.items() if t is not None},      # an input passed as None is no tensor
        "params": {"count": step.param_count, "bytes": step.param_bytes},
        "buffers_bytes": step.buffer_bytes,
        "grads_bytes": step.grads_bytes,
        "optimizer": step.optimizer,
        "amp": step.amp,
        "optimizer_bytes": step.optimizer_bytes,
        "activations_saved_bytes": step.activations_saved_bytes,
        "peak_bytes": step.peak_bytes,
        "peak_phase": step.peak_phase,
        "peak_module": tracker.peak_module,
        "peak_location": ({"file": tracker.peak_location[0], "line": tracker.peak_location[1]}
                          if tracker.peak_location else None),
        **batch_scaling(path, name, settings, step.peak_bytes, scaling, budget, say),
        "gradient_flow": gradient_flow(step, forward),
        "flops": {"forward": tracker.flops.get("forward", 0), "backward": tracker.flops.get("backward", 0)},
        "checkpoint": checkpoint_summary(checkpoint_plan(model, settings.checkpoint), tracker),
        "loss": step.loss_desc,
        "outputs": [{"shape": list(s), "dtype": d} for s, d in step.outputs],
        "modules": modules,
        "unresolved": [{"file": u.file, "line": u.line, "reason": u.reason} for u in analysis.unresolved],
        **({"timeline": tracker.category_timeline({uid: "param_grad" for uid in param_grads})} if timeline else {}),
    }


def _watch_param_grads(model) -> set[int]:
    """The storages that become a parameter's ``.grad`` during the step (filled in as it runs).

    They are "grad" storages like activations' gradients; the plot tells them apart.  Recorded when
    accumulated, because with an optimizer ``zero_grad(set_to_none=True)`` drops them afterwards."""
    uids: set[int] = set()
    for p in model.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda param: uids.add(param.grad._storage.uid))
    return uids


# --------------------------------------------------------------------------- batch scaling

LINEAR_TOLERANCE = 0.005      # relative deviation of a third point from the line through the first two
MAX_SEARCH_ANALYSES = 24


def peak_at_batch(path: str, name: str, settings: Settings, batch: int) -> int:
    """The step's peak with the batch dim bound to ``batch`` (a fresh analysis: the shape backend is cheap)."""
    at = replace(settings, batch=batch)
    model, inputs, forward = _build(path, name, at)
    with forward.backend():
        step = simulate_training_step(model, inputs, lambda _inputs: forward(), at)
    return step.peak_bytes


def batch_scaling(path: str, name: str, settings: Settings, peak: int, scaling: bool, budget: int | None,
                  say: Callable[[str], None]) -> dict:
    """``per_sample_bytes`` (the slope of the peak between B and 2B, checked against 3B) and, with a
    budget, ``max_batch`` (the largest batch whose analysed peak fits, checked at it and one more)."""
    out = {"per_sample_bytes": None, "max_batch": None, "budget_bytes": budget, "batch_scaling": None}
    if not scaling and budget is None:
        return out
    b0 = settings.batch
    peaks = {b0: peak}

    def peak_of(b: int) -> int:
        if b not in peaks:
            say(f"analysing at B={b} ...")
            peaks[b] = peak_at_batch(path, name, settings, b)
        return peaks[b]

    try:
        slope = (peak_of(2 * b0) - peak) / b0
        predicted = peak + slope * 2 * b0
        third = peak_of(3 * b0)
    except Exception as e:   # the model refuses another batch size: report what is known
        out["batch_scaling"] = {"batches": sorted(peaks), "peaks": [peaks[b] for b in sorted(peaks)],
                                "linear": None, "note": f"could not analyse another batch size: {e}"}
        return out
    linear = abs(third - predicted) <= LINEAR_TOLERANCE * max(third, 1)
    out["per_sample_bytes"] = int(round(slope))
    note = None
    if slope <= 0:
        note = "the peak does not grow with the batch size (no input has the batch dim B)"
    elif not linear:
        note = (f"the peak is not linear in the batch size: at B={3 * b0} it is {third} bytes, the line through "
                f"B={b0} and B={2 * b0} predicts {int(predicted)}")
    if budget is not None and slope > 0:
        out["max_batch"] = find_max_batch(peak_of, budget, b0, peak, slope)
    out["batch_scaling"] = {"batches": sorted(peaks), "peaks": [peaks[b] for b in sorted(peaks)],
                            "linear": linear, "note": note}
    return out


def find_max_batch(peak_of: Callable[[int], int], budget: int, b0: int, peak0: int, slope: float) -> int | None:
    """The largest batch whose analysed peak is within ``budget`` (0 when not even B=1 fits).

    Starts from the linear prediction and confirms it at that batch and one more.  The peak is a
    maximum of lines (one per place it can happen), so when the prediction misses, the next guess is
    the line through the two analysed batches nearest the budget on either side, kept strictly
    inside the bracket (bisection when that stalls); at most ``MAX_SEARCH_ANALYSES`` analyses."""
    seen: dict[int, int] = {b0: peak0}

    def at(b: int) -> int:
        if b not in seen:
            seen[b] = peak_of(b)
        return seen[b]

    def line_guess(x1: int, x2: int) -> int:
        """Where the line through the analysed (x1, x2) meets the budget (rounded down)."""
        dy = seen[x2] - seen[x1]
        if dy <= 0:
            return x2 + (x2 - x1) if seen[x2] <= budget else x1
        return x1 + (budget - seen[x1]) * (x2 - x1) // dy

    guess = max(1, int((budget - peak0) // slope) + b0)
    while len(seen) <= MAX_SEARCH_ANALYSES:
        # each guess is analysed with a neighbour: the pair gives the line the peak follows there
        if at(guess) <= budget:
            at(guess + 1)
        elif guess > 1:
            at(guess - 1)
        fitting = sorted(b for b, p in seen.items() if p <= budget)
        failing = sorted(b for b, p in seen.items() if p > budget)
        lo, hi = (fitting[-1] if fitting else 0), (failing[0] if failing else None)
        if hi is not None and hi == lo + 1:
            return lo
        # every such line lies under the peak (a maximum of lines), so where it meets the budget is
        # at or beyond the answer: the nearest of them is the next guess
        crossings = [line_guess(b, b + 1) for b in seen if b + 1 in seen]
        guess = min(crossings) if crossings else (2 * lo if hi is None else (lo + hi) // 2)
        guess = max(guess, lo + 1)
        if hi is not None:
            guess = min(guess, hi - 1)
        if guess in seen:                        # no progress from the lines: bisect
            guess = (lo + hi) // 2 if hi is not None else 2 * max(lo, 1)
    return None


# --------------------------------------------------------------------------- gradient flow

CUT_REASONS = {"detach": "detach", "data": ".data", "item": ".item()", "no_grad": "no_grad region",
               "non_differentiable": "non-differentiable op"}


def gradient_flow(step, forward) -> dict:
    """Which trainable parameters a gradient reaches from the loss, and for each one it does not, the
    site that cut it: the first cut site (by line) whose inputs depend on it, preferring those that flow
    into the output; else "unused in forward", or "does not reach the loss" when it was used but the
    result was dropped."""
    forward.finish(step.reached_params)
    run = getattr(forward.finish, "__self__", None)     # the ForwardRun: its interpreter's cut sites
    names = {}
    if run is not None:
        for n, p in run.model.named_parameters():
            names[id(p)] = n
    sites: list[tuple[int, int, str, object, set[str]]] = []   # (flows?, line, kind, span, params)
    flowing = getattr(run, "flowing", set()) if run is not None else set()
    if run is not None:
        for key, site in run.interp.cuts.sites.items():
            params = {names[i] for i in site["upstream"] if i in names}
            sites.append((0 if key in flowing else 1, site["span"].line, site["kind"], site["span"], params))
    sites.sort(key=lambda s: (s[0], s[1]))
    not_reached = []
    for n in step.trainable_params:
        if n in step.reached_params:
            continue
        hit = next((s for s in sites if n in s[4]), None)
        if hit is not None:
            span = hit[3]
            not_reached.append({"param": n, "reason": CUT_REASONS.get(hit[2], hit[2]),
                                "file": span.file, "line": span.line})
        elif n in step.used_params:
            not_reached.append({"param": n, "reason": "does not reach the loss"})
        else:
            not_reached.append({"param": n, "reason": "unused in forward"})
    return {"reached": len(step.reached_params & set(step.trainable_params)), "not_reached": not_reached,
            "frozen": len(step.frozen_params)}
