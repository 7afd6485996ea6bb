"""The activation-checkpointing what-if: ``--checkpoint blocks|sqrt|<module paths>``.

The training step runs with the chosen submodules wrapped as
``torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)`` would wrap them: their
forward keeps only its inputs for backward, and backward recomputes it (the engine's checkpoint,
which follows torch's step for step, so live bytes and the peak come out as torch's).

Selection (``Settings.checkpoint``):

* ``none`` — no checkpointing.
* ``blocks`` — the model's repeated blocks: the children of ``nn.ModuleList`` / ``nn.Sequential``
  containers that have submodules of their own, grouped by class; the class with the most such
  children wins (at least two), ties going to more parameters in total, then to the class met
  first.  GPT's ``transformer.h.*``, ResNet's ``layer1.0 … layer4.1``.
* ``sqrt`` — ``checkpoint_sequential``-like over those N blocks: ``isqrt(N)`` segments of
  ``N // isqrt(N)`` consecutive blocks, each segment one checkpointed region, the last segment left
  as is (as torch does).  A segment never spans two containers.
* anything else — comma-separated module paths; a ``*`` or ``?`` glob matches within one path
  component (``transformer.h.*`` is the blocks, not their layers).

Wrapping is done per module instance for the duration of the step (the instance's class is
swapped for a subclass whose ``__call__`` enters the engine's checkpoint), so the interpreted
forward, its source lines and the module attribution stay as they are.
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import math
from dataclasses import dataclass, field

import gradxray.engine as gx
from gradxray.engine import backends, memory
from gradxray.engine.utils.checkpoint import RECOMPUTE_PHASE, checkpoint

POLICIES = ("none", "blocks", "sqrt")
_MAX_LISTED = 24          # candidate paths shown in an error message


class CheckpointSelectionError(ValueError):
    """A ``--checkpoint`` value that names no module of the model (the message lists candidates)."""


@dataclass
class CheckpointPlan:
    policy: str                                     # "blocks", "sqrt" or "paths"
    segments: list[list[str]] = field(default_factory=list)   # each one checkpointed region, in order

    @property
    def modules(self) -> list[str]:
        return [p for seg in self.segments for p in seg]


# -- selection ----------------------------------------------------------------------------------------------


def _containers():
    return (gx.nn.ModuleList, gx.nn.Sequential)


def repeated_blocks(model) -> list[str]:
    """Paths of the model's repeated blocks (the ``blocks`` rule in the module docstring), in
    module order; empty when the model has none."""
    groups: dict[type, list[str]] = {}
    params: dict[type, int] = {}
    for path, container in model.named_modules():
        if not isinstance(container, _containers()):
            continue
        for name, child in container.named_children():
            if child is None or not any(True for _ in child.children()):
                continue          # a bare layer: checkpointing it alone saves nothing worth a recompute
            cls = type(child)
            groups.setdefault(cls, []).append(f"{path}.{name}" if path else name)
            params[cls] = params.get(cls, 0) + sum(int(p.numel()) for p in child.parameters())
    best = None
    for order, (cls, paths) in enumerate(groups.items()):
        key = (len(paths), params[cls], -order)
        if len(paths) >= 2 and (best is None or key > best[0]):
            best = (key, paths)
    return list(best[1]) if best else []


def _sqrt_segments(blocks: list[str]) -> list[list[str]]:
    """``checkpoint_sequential(blocks, isqrt(N))``'s checkpointed segments, cut at container edges."""
    n = len(blocks)
    if n < 2:
        return []
    size = n // math.isqrt(n)
    chunks: list[list[str]] = []
    for path in blocks:
        parent = path.rpartition(".")[0]
        last = chunks[-1] if chunks else None
        if last is not None and len(last) < size and last[-1].rpartition(".")[0] == parent:
            last.append(path)
        else:
            chunks.append([path])
    return chunks[:-1]          # the last segment runs without checkpoint: its activations are needed at once


def _matches(pattern: str, path: str) -> bool:
    pat_parts, path_parts = pattern.split("."), path.split(".")
    return len(pat_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pat_parts))


def _candidates(model) -> list[str]:
    """Module paths worth naming in an error: modules with submodules of their own."""
    return [p for p, m in model.named_modules() if p and any(True for _ in m.children())]


def _unknown_path_error(model, pattern: str) -> CheckpointSelectionError:
    all_paths = [p for p, _ in model.named_modules() if p]
    close = difflib.get_close_matches(pattern, all_paths, n=3)
    cands = _candidates(model) or all_paths
    listed = ", ".join(cands[:_MAX_LISTED]) + (f", … ({len(cands) - _MAX_LISTED} more)"
                                                if len(cands) > _MAX_LISTED else "")
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return CheckpointSelectionError(
        f"--checkpoint: no module at path {pattern!r}{hint}; modules that can be checkpointed: "
        f"{listed or 'none'}")


def checkpoint_plan(model, spec: str | None) -> CheckpointPlan | None:
    """The regions ``spec`` selects in ``model``; None for ``none``.  Raises CheckpointSelectionError."""
    spec = (spec or "none").strip()
    if spec == "none":
        return None
    if spec in ("blocks", "sqrt"):
        blocks = repeated_blocks(model)
        if not blocks:
            raise CheckpointSelectionError(
                f"--checkpoint {spec}: the model has no repeated blocks (two or more modules of one class "
                "in an nn.ModuleList or nn.Sequential); name the modules to checkpoint instead, e.g. "
                f"--checkpoint {','.join(_candidates(model)[:2]) or 'path.to.module'}")
        segments = [[b] for b in blocks] if spec == "blocks" else _sqrt_segments(blocks)
        return CheckpointPlan(spec, segments)
    paths = [p for p, _ in model.named_modules() if p]
    chosen: list[str] = []
    for pattern in (s.strip() for s in spec.split(",")):
        if not pattern:
            continue
        hits = [p for p in paths if _matches(pattern, p)]
        if not hits:
            raise _unknown_path_error(model, pattern)
        chosen.extend(h for h in hits if h not in chosen)
    if not chosen:
        raise CheckpointSelectionError(f"--checkpoint {spec!r}: expected none, blocks, sqrt or module paths")
    order = {p: i for i, p in enumerate(paths)}
    return CheckpointPlan("paths", [[p] for p in sorted(chosen, key=order.__getitem__)])


# -- applying a plan ----------------------------------------------------------------------------------------


class _Segment:
    """One checkpointed region over modules m0 … mk that the model calls one after another, each on
    the previous one's output (a single module is the usual case).  Calling m0 runs
    ``checkpoint(chain, *args, use_reentrant=False)``, the chain calling m0 … mk as the model would;
    m1 … mk, then called by the model's own code, hand the chain's output on."""

    def __init__(self, modules: list, paths: list[str]):
        self.modules = modules
        self.classes = [type(m) for m in modules]    # their own classes: backward may recompute after the swap
        self.paths = paths
        self.chain_output = None          # the region's output while m1 … mk are still to be called
        self.pending = 0
        self.backend = backends.current()
        self.autocast_state: dict = {}

    def chain(self, *args, **kwargs):
        """The region's body, also what backward's recomputation runs.  That happens outside the
        analyzer's backend context and outside the forward's autocast regions, so the recomputation
        restores the forward's creation backend and, as torch's checkpoint does, its autocast state."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(backends.backend(self.backend))
            if memory.current_phase() == RECOMPUTE_PHASE:
                for device, (enabled, dtype, cache) in self.autocast_state.items():
                    stack.enter_context(gx.autocast(device, dtype=dtype, enabled=enabled, cache_enabled=cache))
            out = self.classes[0].__call__(self.modules[0], *args, **kwargs)
            for cls, m in zip(self.classes[1:], self.modules[1:]):
                out = cls.__call__(m, out)
        return out

    def call(self, index: int, *args, **kwargs):
        if index == 0:
            if len(self.modules) > 1 and (kwargs or len(args) != 1):
                raise CheckpointSelectionError(
                    f"--checkpoint sqrt: {self.paths[0]} takes more than one input, so the segment "
                    f"{'+'.join(self.paths)} cannot run as one chain; checkpoint the blocks one by one instead")
            self.backend = backends.current()
            self.autocast_state = {d: (gx.amp.is_autocast_enabled(d), gx.amp.get_autocast_dtype(d),
                                       gx.amp.is_autocast_cache_enabled()) for d in ("cpu", "cuda")}
            # a lone module's scope also covers the inputs the checkpoint saves, so the module table
            # shows what it saves instead; a chain's first scope must not cover the modules after it
            scope = memory.module_scope(self.modules[0]._gx_path) if len(self.modules) == 1 \
                else contextlib.nullcontext()
            with scope:
                out = checkpoint(self.chain, *args, use_reentrant=False, **kwargs)
            if len(self.modules) > 1:
                self.chain_output, self.pending = out, len(self.modules) - 1
            return out
        if self.pending and not kwargs and len(args) == 1 and args[0] is self.chain_output:
            self.pending -= 1
            out = self.chain_output
            if not self.pending:
                self.chain_output = None
            return out
        raise CheckpointSelectionError(
            f"--checkpoint sqrt: {self.paths[index]} is not called on the output of {self.paths[index - 1]}, "
            f"so the segment {'+'.join(self.paths)} is not a chain; checkpoint the blocks one by one instead")


_CHECKPOINTED_CLASSES: dict[type, type] = {}


def _checkpointed_class(cls: type) -> type:
    """A subclass of ``cls`` whose calls go through the instance's segment.  Swapping an instance's
    class (rather than patching ``forward``) keeps the module scope inside the checkpointed region, as
    ``checkpoint(module, x)`` has it, so chained blocks keep their own attribution."""
    sub = _CHECKPOINTED_CLASSES.get(cls)
    if sub is None:
        def __call__(self, *args, **kwargs):
            segment, index = self.__dict__["_gx_checkpoint_segment"]
            return segment.call(index, *args, **kwargs)

        attrs = {"__call__": __call__, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        if hasattr(cls, "_gx_user_class"):
            attrs["_gx_user_class"] = cls._gx_user_class      # the interpreter skips it like the user class
        sub = _CHECKPOINTED_CLASSES[cls] = type(cls.__name__, (cls,), attrs)
    return sub


@contextlib.contextmanager
def checkpointing(model, settings):
    """Apply ``settings.checkpoint`` to ``model`` for the forward run inside the block (the backward
    that recomputes the regions may run after it); yields the plan (None for ``none``)."""
    plan = checkpoint_plan(model, getattr(settings, "checkpoint", "none"))
    if plan is None:
        yield None
        return
    swapped = []
    try:
        for seg_paths in plan.segments:
            modules = [model.get_submodule(p) for p in seg_paths]
            segment = _Segment(modules, seg_paths)
            for i, m in enumerate(modules):
                swapped.append((m, type(m)))
                object.__setattr__(m, "_gx_checkpoint_segment", (segment, i))
                object.__setattr__(m, "__class__", _checkpointed_class(type(m)))
        yield plan
    finally:
        for m, cls in reversed(swapped):
            object.__setattr__(m, "__class__", cls)
            m.__dict__.pop("_gx_checkpoint_segment", None)


def recompute_flops(tracker) -> int:
    """Forward FLOPs re-run by backward's recomputation (the tracker counts them under their own phase)."""
    return int(tracker.flops.get(RECOMPUTE_PHASE, 0))


def checkpoint_summary(plan: CheckpointPlan | None, tracker) -> dict:
    """The ``checkpoint`` entry of the memory report."""
    if plan is None:
        return {"policy": "none", "modules": [], "segments": [], "recompute_flops": 0}
    return {"policy": plan.policy, "modules": plan.modules, "segments": [list(s) for s in plan.segments],
            "recompute_flops": recompute_flops(tracker)}


__all__ = ["CheckpointPlan", "CheckpointSelectionError", "POLICIES", "checkpoint_plan", "checkpoint_summary",
           "checkpointing", "recompute_flops", "repeated_blocks"]
