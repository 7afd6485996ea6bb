"""Measuring instruments for a real torch training step (``gradxray verify`` and the tests).

This module imports torch: only ``gradxray verify`` (and the test suite) import it, never the
static path.

* :class:`LiveStorageTracker` -- a ``TorchDispatchMode`` that follows every tensor storage
  created by an aten op and released by garbage collection, so it knows the live bytes at any
  moment and their peak.  Counting is by storage: a view costs nothing.
* :class:`SavedTensorRecorder` -- ``saved_tensors_hooks`` that record what autograd saves for
  backward (shape, bytes, parameter / buffer / input / activation, the node holding it).
* :func:`measure_step` -- one steady-state training step of a model (forward, loss, backward and,
  with an optimizer, ``step()``) measured with the tracker (CPU) or the CUDA caching allocator's
  statistics, and the recorder for what autograd saves.

Known limit: while a dispatch mode is active every tensor an op returns gets a Python object, which
raises its use count, so autograd may clone or accumulate a gradient out of place where plain torch
works in place; a tracked run can hold one gradient buffer more than the real run.  Allocations
inside a kernel (scratch space) are not seen: the numbers are tensor-level.
"""
from __future__ import annotations

import contextlib
import gc
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = [
    "LiveStorageTracker",
    "SavedTensor",
    "SavedTensorRecorder",
    "StepMeasurement",
    "dtype_name",
    "measure_step",
    "pick_loss",
    "storage_key",
    "storage_of",
    "tensors_in",
]


def storage_of(t: torch.Tensor):
    """The tensor's UntypedStorage, or None for tensors without one (sparse, nested ...)."""
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def storage_key(st) -> int:
    """Identity of a storage: the address of its C++ StorageImpl (unique while it is alive)."""
    return st._cdata


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def tensors_in(obj) -> list[torch.Tensor]:
    """Tensors found in a (nested) structure of tuples, lists, dicts and objects with fields."""
    out: list[torch.Tensor] = []
    seen: set[int] = set()

    def walk(o, depth=0):
        if depth > 6 or id(o) in seen:
            return
        if isinstance(o, torch.Tensor):
            seen.add(id(o))
            out.append(o)
        elif isinstance(o, (tuple, list)):
            seen.add(id(o))
            for e in o:
                walk(e, depth + 1)
        elif isinstance(o, dict):
            seen.add(id(o))
            for e in o.values():
                walk(e, depth + 1)
        elif hasattr(o, "__dataclass_fields__"):
            seen.add(id(o))
            for name in o.__dataclass_fields__:
                walk(getattr(o, name, None), depth + 1)

    walk(obj)
    return out


# --------------------------------------------------------------------------------------------
# Live storages
# --------------------------------------------------------------------------------------------


class LiveStorageTracker(TorchDispatchMode):
    """Follows live tensor storages during the ops run under it.

    Before entering, register the tensors that exist already and should count
    (``register(params, counted=True)``); on entry every other live tensor found
    through ``gc`` is registered as *not counted*, so that an op returning an alias
    of one of them is not taken for an allocation.  Each op output whose storage was
    not seen before, and does not alias one of the op's inputs (views, in-place ops,
    ``out=``), is an allocation; ``weakref.finalize`` on the storage object (which
    lives exactly as long as the C++ StorageImpl) subtracts it when it is freed.

    ``current_bytes`` / ``peak_bytes`` count registered-counted plus allocated storages.
    ``phase`` is a free label (e.g. "forward", "backward") copied into the timeline and
    into ``peak_phase``.
    """

    def __init__(self, timeline: bool = False):
        super().__init__()
        self.current_bytes = 0
        self.peak_bytes = 0
        self.peak_phase: str | None = None
        self.phase: str | None = None
        self.record_timeline = timeline
        # (event, op, nbytes, current_bytes, phase); event is "alloc" | "free"
        self.timeline: list[tuple[str, str, int, int, str | None]] = []
        self._sizes: dict[int, int] = {}      # key -> bytes counted for it (0 = registered, not counted)
        self._finalizers: dict[int, weakref.finalize] = {}
        self._op = "?"

    # -- registration -----------------------------------------------------------------------
    def register(self, tensors, counted: bool = True) -> None:
        """Register already-existing tensors (params, buffers, inputs...); each storage once."""
        items = [tensors] if isinstance(tensors, torch.Tensor) else tensors_in(tensors)
        for t in items:
            st = storage_of(t)
            if st is None:
                continue
            k = storage_key(st)
            if k in self._sizes:
                continue
            self._add(k, st, st.nbytes() if counted else 0, "register")

    def register_live_tensors(self) -> None:
        """Register every live tensor not registered yet as not counted."""
        for obj in gc.get_objects():
            # type(), not isinstance(): isinstance reads __class__, which some proxies override
            if issubclass(type(obj), torch.Tensor):
                self.register(obj, counted=False)

    def __enter__(self):
        self.register_live_tensors()
        return super().__enter__()

    def reset_peak(self) -> None:
        self.peak_bytes = self.current_bytes
        self.peak_phase = self.phase

    # -- bookkeeping --------------------------------------------------------------------------
    def _add(self, k: int, st, nbytes: int, op: str) -> None:
        self._sizes[k] = nbytes
        self._finalizers[k] = weakref.finalize(st, self._free, k)
        if nbytes:
            self.current_bytes += nbytes
            if self.record_timeline:
                self.timeline.append(("alloc", op, nbytes, self.current_bytes, self.phase))
            if self.current_bytes > self.peak_bytes:
                self.peak_bytes = self.current_bytes
                self.peak_phase = self.phase

    def _free(self, k: int) -> None:
        nbytes = self._sizes.pop(k, 0)
        self._finalizers.pop(k, None)
        if nbytes:
            self.current_bytes -= nbytes
            if self.record_timeline:
                self.timeline.append(("free", "", nbytes, self.current_bytes, self.phase))

    def _resize(self, k: int, st, op: str) -> None:
        """A counted storage that changed size (``resize_`` / ``out=`` into an empty tensor)."""
        old = self._sizes.get(k, 0)
        new = st.nbytes()
        if old and new != old:
            self._sizes[k] = new
            self.current_bytes += new - old
            if self.record_timeline:
                self.timeline.append(("alloc" if new > old else "free", op, abs(new - old),
                                      self.current_bytes, self.phase))
            if self.current_bytes > self.peak_bytes:
                self.peak_bytes = self.current_bytes
                self.peak_phase = self.phase

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = str(func.overloadpacket.__name__) if hasattr(func, "overloadpacket") else str(func)
        in_keys = set()
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                st = storage_of(t)
                if st is not None:
                    in_keys.add(storage_key(st))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            st = storage_of(t)
            if st is None:
                continue
            k = storage_key(st)
            if func is torch.ops.aten.lift_fresh.default and k not in self._sizes:
                # torch.tensor(...) fills its storage outside the dispatcher and then lifts it:
                # the lift is the first time that (new) storage is seen
                self._add(k, st, st.nbytes(), op)
                continue
            if k in in_keys or k in self._sizes:
                if k in self._sizes:
                    self._resize(k, st, op)
                continue
            self._add(k, st, st.nbytes(), op)
        return out

    def close(self) -> None:
        """Detach the finalizers (the tracker stops counting)."""
        for f in list(self._finalizers.values()):
            f.detach()
        self._finalizers.clear()


# --------------------------------------------------------------------------------------------
# One training step
# --------------------------------------------------------------------------------------------


def pick_loss(output, rule: str = "auto") -> torch.Tensor:
    """The scalar to call ``backward`` on: the same rule as the estimate (``--loss``).

    ``auto``: a 0-dim tensor output is the loss; a dict's ``"loss"`` entry or an object's
    ``loss`` field; in a tuple/list, the first 0-dim tensor element; otherwise the sum of the
    first tensor output.  ``sum`` / ``mean`` reduce the first tensor output.
    """
    if rule == "auto":
        if isinstance(output, torch.Tensor) and output.dim() == 0:
            return output
        if isinstance(output, dict) and isinstance(output.get("loss"), torch.Tensor):
            return output["loss"]
        if not isinstance(output, (tuple, list, dict, torch.Tensor)) and \
                isinstance(getattr(output, "loss", None), torch.Tensor):
            return output.loss
        if isinstance(output, (tuple, list)):
            for e in output:
                if isinstance(e, torch.Tensor) and e.dim() == 0:
                    return e
        rule = "sum"
    if rule not in ("sum", "mean"):
        raise ValueError(f"--loss {rule} is not measured (use auto, sum or mean)")
    first = tensors_in(output)
    if not first:
        raise ValueError("the model returned no tensor to take a loss of")
    return first[0].sum() if rule == "sum" else first[0].mean()


@dataclass
class SavedTensor:
    """One tensor autograd saved for backward, as the pack hook saw it."""

    shape: tuple[int, ...]
    dtype: str                     # "float32"
    nbytes: int                    # bytes of the whole storage it lives in
    kind: str                      # "activation" | "input" | "param" | "buffer"
    new_storage: bool              # first time this storage is saved, and not a parameter/buffer
    storage_key: int = field(default=0, repr=False)
    op: str = "?"                  # autograd node that holds it: "AddmmBackward0" (once read, see SavedTensorRecorder)
    attr: str = "?"                # its attribute on the node: "_saved_mat1"


@dataclass
class StepMeasurement:
    """What one measured training step held (bytes by storage, each storage counted once)."""

    param_count: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    grads_bytes: int               # parameter gradients after backward
    optimizer_bytes: int           # optimizer state (steady state, after a warm-up step)
    activations_saved_bytes: int   # saved for backward: new storages, parameters and buffers excluded
    peak_bytes: int                # params + buffers + inputs + optimizer state + everything allocated
    peak_phase: str | None         # "forward" | "loss" | "backward" | "optimizer" (None on CUDA)
    peak_source: str               # what measured the peak: "live storages" | "cuda allocator"
    cuda_workspace_bytes: int = 0  # persistent library workspaces (cuBLAS) left out of the CUDA peak
    forward_peak_bytes: int = 0    # peak over forward + loss
    backward_peak_bytes: int = 0   # peak over forward + loss + backward (before the optimizer step)
    final_bytes: int = 0           # live bytes at the end of the step (output still referenced)
    saved: list[SavedTensor] = field(default_factory=list)   # every tensor saved, in pack order
    timeline: list[tuple] = field(default_factory=list)      # the tracker's, when asked for (CPU)


def round_cuda(nbytes: int) -> int:
    """The caching allocator's block: requests round up to a multiple of 512 bytes."""
    return max(512, (nbytes + 511) // 512 * 512) if nbytes > 0 else 0


def unique_storage_bytes(tensors, exclude: set[int] = frozenset(), rounding=lambda n: n) -> tuple[int, set[int]]:
    keys: set[int] = set()
    total = 0
    for t in tensors:
        st = storage_of(t)
        if st is None:
            continue
        k = storage_key(st)
        if k in keys or k in exclude:
            continue
        keys.add(k)
        total += rounding(st.nbytes())
    return total, keys


class _Packed:
    """What the pack hook hands to autograd: the tensor plus the index of its record."""

    __slots__ = ("tensor", "index")

    def __init__(self, tensor, index):
        self.tensor = tensor
        self.index = index


class SavedTensorRecorder:
    """``saved_tensors_hooks`` that record every tensor autograd saves for backward.

    ``new_bytes`` counts each saved storage once, parameters and buffers excluded, in ``rounding``
    units (the CUDA allocator's blocks, or bytes).  Unpacking returns the packed tensor itself,
    so reading a saved value allocates nothing; while ``reading`` names an autograd node and
    attribute, the records unpacked for the first time are labelled with them.
    """

    def __init__(self, param_keys: set[int], buffer_keys: set[int], input_keys: set[int],
                 rounding: Callable[[int], int] = lambda n: n):
        self.records: list[SavedTensor] = []
        self.new_bytes = 0
        self.reading: tuple[str, str] = ("?", "?")
        self._param_keys, self._buffer_keys, self._input_keys = param_keys, buffer_keys, input_keys
        self._rounding = rounding
        self._saved_keys: set[int] = set()

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _kind(self, key: int) -> str:
        if key in self._param_keys:
            return "param"
        if key in self._buffer_keys:
            return "buffer"
        if key in self._input_keys:
            return "input"
        return "activation"

    def _pack(self, t):
        st = storage_of(t)
        key = storage_key(st) if st is not None else 0
        kind = self._kind(key)
        new = kind in ("activation", "input") and st is not None and key not in self._saved_keys
        self._saved_keys.add(key)
        nbytes = st.nbytes() if st is not None else 0
        if new:
            self.new_bytes += self._rounding(nbytes)
        self.records.append(SavedTensor(shape=tuple(t.shape), dtype=dtype_name(t.dtype), nbytes=nbytes,
                                        kind=kind, new_storage=new, storage_key=key))
        return _Packed(t, len(self.records) - 1)

    def _unpack(self, packed: _Packed):
        record = self.records[packed.index]
        if record.op == "?":
            record.op, record.attr = self.reading
        return packed.tensor


class _AllocatorMeter:
    """The CUDA caching allocator's counters behind the tracker's interface (``phase``,
    ``current_bytes``, ``peak_bytes``), as bytes above ``offset``."""

    def __init__(self, offset: int):
        self.offset = offset
        self.phase: str | None = None

    @property
    def current_bytes(self) -> int:
        return torch.cuda.memory_allocated() - self.offset

    @property
    def peak_bytes(self) -> int:
        return torch.cuda.max_memory_allocated() - self.offset


class _Unmeasured:
    """The meter of a warm-up step: it measures nothing."""

    phase: str | None = None
    current_bytes = peak_bytes = 0


@dataclass
class _StepLevels:
    """The meter's peak at the end of forward + loss and of backward, and its live bytes at the end."""

    forward_peak: int = 0
    backward_peak: int = 0
    final: int = 0


def _optimizer_state_tensors(optimizer) -> list[torch.Tensor]:
    return [t for state in optimizer.state.values() for t in tensors_in(state)]


def measure_step(model: torch.nn.Module, inputs: dict[str, Any], loss: str = "auto",
                 optimizer: torch.optim.Optimizer | None = None, cuda_baseline_bytes: int | None = None,
                 autocast_dtype: torch.dtype | None = None, timeline: bool = False,
                 after_loss: Callable[[Any, torch.Tensor, SavedTensorRecorder], None] | None = None,
                 ) -> StepMeasurement:
    """Measure one training step ``model(**inputs)`` → loss → ``backward()`` (→ ``optimizer.step()``).

    Train mode, gradients start as None, the output stays referenced until the measurement ends,
    the inputs are alive throughout.  With an optimizer the step is a steady-state iteration, as the
    estimate models it: a warm-up step first allocates the optimizer state, then
    ``zero_grad(set_to_none=True)`` and the measured forward, backward and ``step()``.  With
    ``autocast_dtype``, forward and loss run inside ``torch.autocast`` and backward outside it, as
    in a user's loop.

    ``cuda_baseline_bytes`` (``torch.cuda.memory_allocated()`` before the model and the inputs were
    put on the GPU) switches the peak to the caching allocator: ``max_memory_allocated()`` minus it,
    after a warm-up step whose persistent library workspaces (cuBLAS keeps one per handle and stream,
    tens of MiB on recent GPUs) are measured apart, in ``cuda_workspace_bytes``: they are not tensors
    of the step.  Saved bytes are then counted in allocator blocks, as the estimate counts them for
    CUDA.  Otherwise the peak is the :class:`LiveStorageTracker`'s, and ``timeline`` keeps its events.

    ``after_loss(output, loss, saved)`` runs inside the measurement (what it allocates counts, in the
    "loss" phase) once the loss is computed and before backward; ``saved`` is the step's
    :class:`SavedTensorRecorder`.
    """
    on_cuda = cuda_baseline_bytes is not None
    region = (lambda: torch.autocast("cuda" if on_cuda else "cpu", dtype=autocast_dtype)) \
        if autocast_dtype is not None else contextlib.nullcontext
    model.train()
    params = list(model.parameters())            # de-duplicates tied weights
    buffers = list(model.buffers())
    for p in params:
        p.grad = None
    if optimizer is not None or on_cuda:
        _run_step(model, inputs, loss, optimizer, region)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        for p in params:
            p.grad = None
        gc.collect()
    param_count = sum(p.numel() for p in params)
    param_bytes, param_keys = unique_storage_bytes(params)
    buffer_bytes, buffer_keys = unique_storage_bytes(buffers, exclude=param_keys)
    input_tensors = tensors_in(inputs)
    input_bytes, input_keys = unique_storage_bytes(input_tensors, exclude=param_keys | buffer_keys)
    state = _optimizer_state_tensors(optimizer) if optimizer is not None else []
    # on CUDA, device memory only: torch keeps Adam's `step` counters on the host (as the estimate counts)
    optimizer_bytes, _ = unique_storage_bytes([t for t in state if t.is_cuda or not on_cuda],
                                       exclude=param_keys | buffer_keys | input_keys)
    saved = SavedTensorRecorder(param_keys, buffer_keys, input_keys,
                                rounding=round_cuda if on_cuda else (lambda n: n))
    workspace = 0
    if on_cuda:
        torch.cuda.synchronize()
        resident = [t for t in [*params, *buffers, *input_tensors, *state] if t.is_cuda]   # Adam's steps stay on the CPU
        known, _ = unique_storage_bytes(resident, rounding=round_cuda)
        workspace = max(0, torch.cuda.memory_allocated() - cuda_baseline_bytes - known)
        torch.cuda.reset_peak_memory_stats()
        meter = _AllocatorMeter(cuda_baseline_bytes + workspace)
        output, levels = _run_step(model, inputs, loss, optimizer, region, meter, saved, after_loss)
        torch.cuda.synchronize()
        peak, peak_phase, source, events = meter.peak_bytes, None, "cuda allocator", []
    else:
        tracker = LiveStorageTracker(timeline=timeline)
        tracker.register(params, counted=True)
        tracker.register(buffers, counted=True)
        tracker.register(input_tensors, counted=True)
        tracker.register(state, counted=True)
        try:
            with tracker:
                output, levels = _run_step(model, inputs, loss, optimizer, region, tracker, saved, after_loss)
        finally:
            tracker.close()
        peak, peak_phase, source, events = tracker.peak_bytes, tracker.peak_phase, "live storages", tracker.timeline
    del output
    grads_bytes, _ = unique_storage_bytes([p.grad for p in params if p.grad is not None])
    return StepMeasurement(
        param_count=param_count, param_bytes=param_bytes, buffer_bytes=buffer_bytes,
        input_bytes=input_bytes, grads_bytes=grads_bytes, optimizer_bytes=optimizer_bytes,
        activations_saved_bytes=saved.new_bytes, peak_bytes=peak, peak_phase=peak_phase,
        peak_source=source, cuda_workspace_bytes=workspace, forward_peak_bytes=levels.forward_peak,
        backward_peak_bytes=levels.backward_peak, final_bytes=levels.final, saved=saved.records,
        timeline=events)


def _run_step(model, inputs: dict[str, Any], loss: str, optimizer, region: Callable[[], Any],
              meter=_Unmeasured(), saved: SavedTensorRecorder | None = None, after_loss=None):
    """forward → loss → backward (→ step): ``region()`` (autocast or nothing) and the ``saved``
    recorder's hooks are active over forward and loss.  Returns the output, which the caller holds
    until the measurement ends as a training loop holds it until the step ends, and the levels of
    ``meter`` (the tracker or the allocator), whose phase it sets."""
    levels = _StepLevels()
    meter.phase = "forward"
    with region(), (saved.hooks() if saved is not None else contextlib.nullcontext()):
        out = model(**inputs)
        meter.phase = "loss"
        loss_t = pick_loss(out, loss)
    levels.forward_peak = meter.peak_bytes
    if after_loss is not None:
        after_loss(out, loss_t, saved)
    meter.phase = "backward"
    if loss_t.requires_grad:
        loss_t.backward()
    del loss_t
    levels.backward_peak = meter.peak_bytes
    if optimizer is not None:
        meter.phase = "optimizer"
        optimizer.step()
    levels.final = meter.current_bytes
    return out, levels
