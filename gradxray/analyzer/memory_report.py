"""``gradxray memory TARGET``: the training-step memory report as a JSON-ready dict (DESIGN.md)."""
from __future__ import annotations

import os

from .settings import Settings
from .training_step import LOSSES, simulate_training_step


class TargetError(Exception):
    """A target that cannot be analysed (missing file, unknown name, no input shapes)."""


def split_target(target: str) -> tuple[str, str]:
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise TargetError(f"target must look like path.py:Name, got {target!r}")
    if not os.path.isfile(path):
        raise TargetError(f"{path}: no such file")
    return path, name


def memory_report(target: str, settings: Settings | None = None) -> dict:
    from . import build_target

    settings = settings or Settings()
    if settings.loss not in LOSSES:
        raise TargetError(f"--loss {settings.loss}: not modelled yet; use one of {', '.join(LOSSES)}")
    if settings.optimizer not in ("none", None):
        raise TargetError(f"--optimizer {settings.optimizer}: optimizer state is not modelled yet; "
                          "use --optimizer none (parameters, gradients and activations are reported)")
    path, name = split_target(target)
    try:
        model, inputs, forward = build_target(path, name, settings)
    except SyntaxError as e:
        raise TargetError(f"{path}:{e.lineno or 1}:{e.offset or 1}: SyntaxError: {e.msg}") from None
    except (LookupError, ValueError) as e:
        raise TargetError(str(e)) from None
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
    return {
        "target": target,
        "device": settings.device,
        "dtype": settings.dtype,
        "batch": settings.batch,
        "inputs": {k: {"shape": [int(s) for s in t.shape], "dtype": t.dtype.name} for k, t in inputs.items()},
        "params": {"count": step.param_count, "bytes": step.param_bytes},
        "buffers_bytes": step.buffer_bytes,
        "grads_bytes": step.grads_bytes,
        "optimizer_bytes": 0,
        "activations_saved_bytes": step.activations_saved_bytes,
        "peak_bytes": step.peak_bytes,
        "peak_phase": step.peak_phase,
        "flops": {"forward": tracker.flops.get("forward", 0), "backward": tracker.flops.get("backward", 0)},
        "loss": step.loss_desc,
        "outputs": [{"shape": list(s), "dtype": d} for s, d in step.outputs],
        "modules": modules,
        "unresolved": [{"file": u.file, "line": u.line, "reason": u.reason} for u in analysis.unresolved],
    }
