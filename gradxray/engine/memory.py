"""Live-storage memory tracker.

Every ``Storage`` the engine creates reports itself here when it is allocated and
when it is released (reference counting decides, exactly as for torch storages),
together with the source location and module path that were current at
allocation.  Saved-for-backward tensors are reported when an op's node is
recorded.  Counting is by storage: a view costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

_trackers: list["MemoryTracker"] = []
_location: tuple[str, int] | None = None
_module_stack: list[str] = []
_phase: str = "forward"
_phase_depth = 0


def active_trackers() -> list["MemoryTracker"]:
    return _trackers


def current_location() -> tuple[str, int] | None:
    return _location


def current_phase() -> str:
    """"forward", "backward", "recompute" ... : what the engine is running now."""
    return _phase


def current_module() -> str:
    return _module_stack[-1] if _module_stack else ""


# The scopes below are a plain function and classes rather than @contextmanager generators: the
# interpreter sets a source location per statement and every module call enters a module scope, and a
# generator-based context manager costs several times as much to enter and leave.

def swap_location(location):
    """Make ``location`` ((file, line) or None) the place every allocation and saved tensor is
    attributed to; returns the one it replaces, to pass back when done (a plain call rather than a
    context object: the analyzer sets one per statement it runs, the engine one per backward node)."""
    global _location
    prev = _location
    _location = location
    return prev


def enter_node(location, module: str):
    """swap_location and module_scope in one plain call, for the backward engine (once per node it
    runs); returns what leave_node takes."""
    global _location
    prev = _location
    _location = location
    _module_stack.append(module)
    return prev


def leave_node(prev) -> None:
    global _location
    _module_stack.pop()
    _location = prev


class module_scope:
    """Attribute allocations to a module path (entered by ``nn.Module.__call__``)."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        _module_stack.append(self.path)

    def __exit__(self, *exc):
        _module_stack.pop()
        return False


class phase:
    """Label of the training-step phase ("forward", "loss", "backward", "optimizer")."""

    __slots__ = ("name", "prev")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        global _phase, _phase_depth
        self.prev = _phase
        _phase = self.name
        _phase_depth += 1
        for t in _trackers:
            t._mark_phase(self.name)

    def __exit__(self, *exc):
        global _phase, _phase_depth
        _phase = self.prev
        _phase_depth -= 1
        if _phase_depth == 0:
            for t in _trackers:
                if t.keep_timeline:
                    t.phase_ends.append(len(t.timeline))
        return False


def module_output(path: str, output) -> None:
    for t in _trackers:
        t.on_module_output(path, output)


def flops(n: int) -> None:
    if n:
        for t in _trackers:
            t.on_flops(n)


def round_cuda(nbytes: int) -> int:
    """The CUDA caching allocator rounds every request up to a multiple of 512 bytes (minimum 512)."""
    return max(512, (nbytes + 511) // 512 * 512) if nbytes > 0 else 0


@dataclass(slots=True)       # one per storage the engine makes
class Allocation:
    uid: int
    nbytes: int
    category: str           # "param", "buffer", "input", "activation", "grad", "optimizer", "other"
    location: tuple[str, int] | None
    module: str
    phase: str


@dataclass(slots=True)       # one per tensor an op saves
class SavedRecord:
    op: str                 # node name, e.g. "AddmmBackward0"
    what: str               # which saved value ("mat1", "result", ...)
    shape: tuple[int, ...]
    dtype: str
    nbytes: int             # storage bytes
    storage_uid: int
    new_storage: bool       # first time this storage is saved
    category: str           # the storage's category (param storages are not activations)
    location: tuple[str, int] | None
    module: str


@dataclass
class MemoryTracker:
    """Context manager recording allocations, frees and saved tensors."""

    cuda_rounding: bool = False
    current_bytes: int = 0
    peak_bytes: int = 0
    peak_phase: str = ""
    peak_location: tuple[str, int] | None = None
    peak_module: str = ""
    live: dict[int, Allocation] = field(default_factory=dict)
    timeline: list[tuple[str, int, str]] = field(default_factory=list)   # (phase, bytes after event, category)
    # parallel to ``timeline``: (storage uid, module path that allocated it); (0, "") for phase marks
    timeline_details: list[tuple[int, str]] = field(default_factory=list)
    peak_event: int = -1            # index in ``timeline`` of the event that first reached the peak
    phase_ends: list[int] = field(default_factory=list)   # timeline lengths when the outermost phase was left
    # timeline length when tracking stopped: storages it saw still report their frees after that
    closed_at: int | None = None
    saved: list[SavedRecord] = field(default_factory=list)
    _saved_uids: set[int] = field(default_factory=set)
    keep_timeline: bool = True
    module_outputs: dict[str, tuple[int, ...] | None] = field(default_factory=dict)   # path -> first output shape
    flops: dict[str, int] = field(default_factory=dict)                      # phase -> FLOPs
    flops_by_location: dict[tuple[str, int], list[int]] = field(default_factory=dict)   # loc -> [fwd, bwd]
    flops_by_module: dict[str, int] = field(default_factory=dict)             # forward FLOPs per module path

    def __enter__(self):
        _trackers.append(self)
        self.closed_at = None
        return self

    def __exit__(self, *exc):
        # by identity: trackers are dataclasses, and two that saw the same events compare equal
        del _trackers[next(i for i, t in enumerate(_trackers) if t is self)]
        self.closed_at = len(self.timeline)
        return False

    # -- events ---------------------------------------------------------
    def _size(self, nbytes: int) -> int:
        return round_cuda(nbytes) if self.cuda_rounding else nbytes

    def register(self, storage, category: str) -> None:
        """Count a storage that existed before tracking started (parameters, inputs)."""
        if storage.uid in self.live:
            return
        storage.category = category
        storage._trackers = storage._trackers + (self,)
        self._add(storage)

    def on_alloc(self, storage) -> None:
        self._add(storage)

    def _add(self, storage) -> None:
        # runs for every storage an op makes: attributes read once
        uid, category, module = storage.uid, storage.category, storage.module
        size = self._size(storage.nbytes)
        self.live[uid] = Allocation(uid, size, category, storage.location, module, _phase)
        self.current_bytes = current = self.current_bytes + size
        if self.keep_timeline:
            self.timeline.append((_phase, current, category))
            self.timeline_details.append((uid, module))
        if current > self.peak_bytes:
            self.peak_event = len(self.timeline) - 1
            self.peak_bytes = current
            self.peak_phase = _phase
            self.peak_location = _location
            self.peak_module = _module_stack[-1] if _module_stack else ""

    def on_free(self, storage) -> None:
        uid = storage.uid
        alloc = self.live.pop(uid, None)
        if alloc is None:
            return
        self.current_bytes = current = self.current_bytes - alloc.nbytes
        if self.keep_timeline:
            self.timeline.append((_phase, current, alloc.category))
            self.timeline_details.append((uid, alloc.module))

    def on_saved(self, op: str, what: str, tensor) -> None:
        if _phase == "recompute":
            # a checkpoint's recomputation (utils.checkpoint) holds what it saves for one use in this
            # backward: allocations the timeline counts, not tensors the forward saved
            return
        st = tensor._storage
        uid = st.uid
        saved_uids = self._saved_uids
        new = uid not in saved_uids
        saved_uids.add(uid)
        self.saved.append(SavedRecord(op, what, tuple(map(int, tensor._shape)), tensor.dtype.name,
                                      self._size(st.nbytes), uid, new,
                                      st.category, _location, _module_stack[-1] if _module_stack else ""))

    def on_module_output(self, path: str, output) -> None:
        if path in self.module_outputs:
            return
        first = output
        while isinstance(first, (tuple, list)) and first:
            first = first[0]
        is_tensor = hasattr(first, "shape") and hasattr(first, "dtype")
        self.module_outputs[path] = tuple(map(int, first.shape)) if is_tensor else None

    def on_flops(self, n: int) -> None:
        n = int(n)             # totals as numbers (a FlopCounter keeps symbolic counts as expressions)
        self.flops[_phase] = self.flops.get(_phase, 0) + n
        loc = _location
        if loc is not None and _phase in ("forward", "backward"):
            slot = self.flops_by_location.setdefault(loc, [0, 0])
            slot[0 if _phase == "forward" else 1] += n
        if _phase == "forward":
            # attribute to every enclosing module, so a block's FLOPs include its children's
            for path in set(_module_stack):
                self.flops_by_module[path] = self.flops_by_module.get(path, 0) + n

    def _mark_phase(self, name: str) -> None:
        if self.keep_timeline:
            self.timeline.append((name, self.current_bytes, "phase"))
            self.timeline_details.append((0, ""))

    # -- summaries ------------------------------------------------------
    def saved_activation_bytes(self) -> int:
        """Bytes of distinct storages saved for backward, excluding parameters and buffers."""
        return sum(r.nbytes for r in self.saved if r.new_storage and r.category not in ("param", "buffer"))

    def category_timeline(self, relabel: dict[int, str] | None = None, max_points: int = 2000) -> dict:
        """The live bytes of each category over the step, JSON-ready, for plotting.

        A storage is counted under the category it ends with (an optimizer re-tags its state after
        allocating it), or under ``relabel[uid]`` (e.g. to tell parameter gradients from activation
        gradients).  Point ``x = 0`` is what is live when the first phase begins; ``x = k`` is the
        state after the k-th allocation or free since then.  Phases are runs of events under one
        phase label ("end": after the outermost phase was left).  Longer timelines are thinned to
        about ``max_points`` points, keeping each stretch's lowest and highest total and the peak."""
        relabel = relabel or {}
        aligned = len(self.timeline_details) == len(self.timeline)
        final: dict[int, str] = {}
        if aligned:
            for (_, _, cat), (uid, _) in zip(self.timeline, self.timeline_details):
                if cat != "phase":
                    final[uid] = cat          # a storage's last event (its free) has its latest category
            final.update((uid, a.category) for uid, a in self.live.items())
        ends = set(self.phase_ends)
        running: dict[str, int] = {}
        events = [("start", None, "", 0)]     # (phase, {category: delta} | (category, delta), module, total)
        peak_at, prev_total, state = 0, 0, "start"
        for i, (ph, total, cat) in enumerate(self.timeline[:self.closed_at]):
            if i in ends:
                state = "end"
            if cat == "phase":
                state = None
                continue
            uid, module = self.timeline_details[i] if aligned else (0, "")
            cat = relabel.get(uid) or final.get(uid, cat)
            delta, prev_total = total - prev_total, total
            if state == "start":              # before the step: one point, whatever order things were made in
                running[cat] = running.get(cat, 0) + delta
                events[0] = ("start", None, "", total)
            else:
                running.setdefault(cat, 0)
                events.append((state or ph, (cat, delta), module, total))
            if i == self.peak_event:
                peak_at = len(events) - 1
        if self.peak_event < 0 or self.peak_event >= len(self.timeline):
            peak_at = max(range(len(events)), key=lambda k: (events[k][3], -k))
        n = len(events)
        last_phase_at = max((k for k, e in enumerate(events) if e[0] not in ("start", "end")), default=0)
        for k in range(1, last_phase_at):     # between two phases: part of the one before
            if events[k][0] == "end":
                events[k] = (events[k - 1][0], *events[k][1:])
        keep = set(range(n))
        if n > max_points:
            per = -(-n // max(1, max_points // 2))
            keep = {0, peak_at, n - 1}
            for lo in range(0, n, per):
                stretch = range(lo, min(n, lo + per))
                keep.add(min(stretch, key=lambda k: events[k][3]))
                keep.add(max(stretch, key=lambda k: events[k][3]))
        order = list(running)
        totals = dict(running)
        series: dict[str, list[int]] = {c: [] for c in order}
        xs, modules = [], []
        for k, (_, change, module, _) in enumerate(events):
            if change is not None:
                totals[change[0]] += change[1]
            if k in keep:
                xs.append(k)
                modules.append(module)
                for c in order:
                    series[c].append(totals[c])
        phases: list[list] = []
        for k, (ph, *_rest) in enumerate(events):
            if phases and phases[-1][0] == ph:
                phases[-1][2] = k + 1
            else:
                phases.append([ph, k, k + 1])
        loc = self.peak_location
        return {
            "events": n,
            "x": xs,
            "series": series,
            "module": modules,
            "phases": phases,
            "peak": {"bytes": self.peak_bytes, "event": peak_at, "phase": self.peak_phase,
                     "module": self.peak_module, "file": loc[0] if loc else None, "line": loc[1] if loc else None},
        }
