"""Ground truth measured with real torch (CPU): what gradxray's static estimates are compared with.

Three instruments:

* :class:`LiveStorageTracker` (from :mod:`gradxray.measure`) -- a ``TorchDispatchMode`` that follows every tensor storage
  created by an aten op and released by Python/C++ garbage collection, and so knows the live
  bytes at any moment and their peak.  Counting is by storage: a view costs nothing.
* :func:`measure_training_step` -- one forward + loss + backward of a model under the tracker and
  ``torch.autograd.graph.saved_tensors_hooks``: parameters, saved activations, peak, gradients.
* :func:`trace_forward_line_shapes` / :func:`module_output_shapes` -- the shape of every tensor
  bound on each line of ``forward`` (what the inlay hints show) and of every module's output.

Known limits (see the reference notes on measuring memory): while a dispatch mode is active,
every tensor an op returns gets a Python object, which raises its use count, so autograd may clone a
gradient instead of adopting it, and accumulates two gradients of one tensor out of place where plain
torch adds in place (seen on a conv fed by two branches: in place without the tracker, out of place
with it). A tracked run can therefore hold one gradient buffer more than the real run — the ResNet
example's measured peak is 32 KiB per sample above the engine's for exactly this reason; allocations *inside* a kernel (scratch space) are not seen -- the numbers are
tensor-level, which is what an op-level estimator models.
"""
from __future__ import annotations

import ast
import contextlib
import gc
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "LiveStorageTracker",
    "Measurement",
    "SavedRecord",
    "measure_training_step",
    "module_output_shapes",
    "pick_loss",
    "trace_forward_line_shapes",
]


# The live-storage tracker and its storage helpers are the product's (``gradxray verify`` measures
# with them too): one implementation, re-exported here under the names the tests use.
from gradxray.measure import LiveStorageTracker  # noqa: E402
from gradxray.measure import dtype_name as _dtype_name  # noqa: E402
from gradxray.measure import storage_key as _key  # noqa: E402
from gradxray.measure import storage_of as _storage  # noqa: E402
from gradxray.measure import tensors_in as _tensors_in  # noqa: E402
from gradxray.measure import unique_storage_bytes as _unique_bytes  # noqa: E402


# --------------------------------------------------------------------------------------------
# One training step
# --------------------------------------------------------------------------------------------


@dataclass
class SavedRecord:
    """One tensor saved for backward (seen by the pack hook)."""

    op: str                        # autograd node that saved it: "AddmmBackward0"
    attr: str                      # its attribute on the node: "_saved_mat1"
    shape: tuple[int, ...]
    dtype: str                     # "float32"
    nbytes: int                    # bytes of the whole storage it lives in
    kind: str                      # "activation" | "input" | "param" | "buffer"
    new_storage: bool              # first time this storage is saved, and not a parameter/buffer
    storage_key: int = field(default=0, repr=False)


@dataclass
class Measurement:
    param_count: int
    param_bytes: int               # unique storages: tied weights once
    buffer_bytes: int
    input_bytes: int
    activations_saved_bytes: int   # unique saved storages, parameters and buffers excluded
    peak_bytes: int                # live bytes: params + buffers + inputs + all allocations
    grads_bytes: int               # parameter gradients after backward (unique storages)
    output_shapes: list[tuple[int, ...]]
    output_dtypes: list[str] = field(default_factory=list)
    forward_peak_bytes: int = 0    # peak over forward + loss
    peak_phase: str | None = None  # "forward" | "loss" | "backward"
    final_bytes: int = 0           # live bytes after backward (output still referenced)
    loss_value: float | None = None
    saved: list[SavedRecord] = field(default_factory=list)
    timeline: list[tuple] = field(default_factory=list)
    optimizer_bytes: int = 0       # optimizer state held between steps (unique storages)
    backward_peak_bytes: int = 0   # peak over forward + loss + backward (before the optimizer step)

    @property
    def baseline_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes + self.input_bytes

    def saved_by_op(self) -> dict[str, int]:
        """New saved activation bytes per autograd node name."""
        out: dict[str, int] = {}
        for r in self.saved:
            if r.new_storage:
                out[r.op] = out.get(r.op, 0) + r.nbytes
        return out


def pick_loss(output, rule: str = "auto") -> torch.Tensor:
    """The scalar to call ``backward`` on (the ``--loss auto`` rule).

    A 0-dim tensor output is the loss; in a tuple/list, the first 0-dim tensor element;
    a dict or object with a ``loss`` entry/field gives that; otherwise the sum of the first
    tensor output.  ``rule="sum"`` / ``"mean"`` reduce the first tensor output.
    """
    first = _tensors_in(output)
    if rule == "auto":
        if isinstance(output, torch.Tensor) and output.dim() == 0:
            return output
        if isinstance(output, (tuple, list)):
            for e in output:
                if isinstance(e, torch.Tensor) and e.dim() == 0:
                    return e
        if isinstance(output, dict) and isinstance(output.get("loss"), torch.Tensor):
            return output["loss"]
        if isinstance(getattr(output, "loss", None), torch.Tensor):
            return output.loss
        rule = "sum"
    if not first:
        raise ValueError("the model returned no tensor to take a loss of")
    if rule == "sum":
        return first[0].sum()
    if rule == "mean":
        return first[0].mean()
    raise ValueError(f"unknown loss rule {rule!r}")


class _Packed:
    """What the pack hook hands to autograd: the tensor plus the index of its record."""

    __slots__ = ("t", "i")

    def __init__(self, t, i):
        self.t = t
        self.i = i




def _call(model, inputs: dict[str, Any]):
    return model(**inputs)


def make_optimizer(kind: str | None, params) -> torch.optim.Optimizer | None:
    """``--optimizer kind`` as a torch optimizer with its default hyper-parameters and default
    implementation (on CPU: the for-loop one); None for "none"."""
    if kind in (None, "none"):
        return None
    if kind == "sgd":
        return torch.optim.SGD(params, lr=1e-3)
    if kind == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(params)
    if kind == "adamw":
        return torch.optim.AdamW(params)
    raise ValueError(f"unknown optimizer {kind!r}")


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(amp: str | None, device_type: str = "cpu"):
    if amp in (None, "off"):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=AMP_DTYPES[amp])


def measure_training_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor], loss: str = "auto",
                          timeline: bool = False, optimizer: str | None = None,
                          amp: str | None = None, label_saved: bool = True) -> Measurement:
    """Run ``out = model(**inputs); loss(out).backward()`` in train mode and measure it.

    Gradients start as None; ``out`` stays referenced during backward.  ``inputs`` are
    created by the caller (their storages count as live from the start).

    ``optimizer`` ("sgd", "sgd-momentum", "adam", "adamw") measures a steady-state iteration
    instead: one untracked iteration allocates the state, then ``zero_grad(set_to_none=True)`` →
    forward → loss → backward → ``step()`` is measured (the peak includes the step).  ``amp``
    ("bf16", "fp16") runs forward and loss under CPU ``torch.autocast``, backward outside it.
    ``label_saved=False`` leaves the saved records' node names unread: pass it for a model with
    ``torch.utils.checkpoint`` regions, where reading a node's saved values recomputes its region.
    """
    model.train()
    params = list(model.parameters())            # named_parameters de-duplicates tied weights
    for p in params:
        p.grad = None
    opt = make_optimizer(optimizer, params)
    if opt is not None:
        with _autocast(amp):
            warm_out = _call(model, inputs)
            warm_loss = pick_loss(warm_out, loss)
        warm_loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del warm_out, warm_loss
    state = [t for st in (opt.state.values() if opt is not None else ()) for t in st.values()
             if isinstance(t, torch.Tensor)]
    buffers = list(model.buffers())
    param_count = sum(p.numel() for p in {id(p): p for p in params}.values())
    param_bytes, param_keys = _unique_bytes(params)
    buffer_bytes, buffer_keys = _unique_bytes(buffers, exclude=param_keys)
    input_tensors = _tensors_in(inputs)
    input_bytes, input_keys = _unique_bytes(input_tensors, exclude=param_keys | buffer_keys)

    records: list[dict] = []
    saved_keys: set[int] = set()

    def pack(t):
        st = _storage(t)
        k = _key(st) if st is not None else 0
        if k in param_keys:
            kind = "param"
        elif k in buffer_keys:
            kind = "buffer"
        elif k in input_keys:
            kind = "input"
        else:
            kind = "activation"
        new = kind in ("activation", "input") and st is not None and k not in saved_keys
        saved_keys.add(k)
        records.append(dict(op="?", attr="?", shape=tuple(t.shape), dtype=_dtype_name(t.dtype),
                            nbytes=st.nbytes() if st is not None else 0, kind=kind, new_storage=new,
                            storage_key=k))
        return _Packed(t, len(records) - 1)

    current = {"node": "?", "attr": "?"}

    def unpack(p):
        r = records[p.i]
        if r["op"] == "?":
            r["op"], r["attr"] = current["node"], current["attr"]
        return p.t

    tracker = LiveStorageTracker(timeline=timeline)
    tracker.register(params, counted=True)
    tracker.register(buffers, counted=True)
    tracker.register(input_tensors, counted=True)
    optimizer_bytes, _ = _unique_bytes(state, exclude=param_keys | buffer_keys | input_keys)
    tracker.register(state, counted=True)
    try:
        with tracker:
            tracker.phase = "forward"
            with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
                with _autocast(amp):
                    out = _call(model, inputs)
                    tracker.phase = "loss"
                    loss_t = pick_loss(out, loss)
            forward_peak = tracker.peak_bytes
            loss_value = float(loss_t.detach().float()) if loss_t.numel() == 1 else None
            if label_saved:
                _attribute_saved(out, loss_t, current)
            tracker.phase = "backward"
            loss_t.backward()
            del loss_t
            backward_peak = tracker.peak_bytes
            grads = [p.grad for p in params if p.grad is not None]
            grads_bytes, _ = _unique_bytes(grads)
            del grads
            if opt is not None:
                tracker.phase = "optimizer"
                opt.step()
            final = tracker.current_bytes
    finally:
        tracker.close()
    outs = _tensors_in(out)
    saved = [SavedRecord(**r) for r in records]
    activations = sum(r.nbytes for r in saved if r.new_storage)
    return Measurement(
        param_count=param_count,
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        input_bytes=input_bytes,
        activations_saved_bytes=activations,
        peak_bytes=tracker.peak_bytes,
        grads_bytes=grads_bytes,
        output_shapes=[tuple(t.shape) for t in outs],
        output_dtypes=[_dtype_name(t.dtype) for t in outs],
        forward_peak_bytes=forward_peak,
        peak_phase=tracker.peak_phase,
        final_bytes=final,
        loss_value=loss_value,
        saved=saved,
        timeline=list(tracker.timeline),
        optimizer_bytes=optimizer_bytes,
        backward_peak_bytes=backward_peak,
    )


def _attribute_saved(out, loss_t, current: dict) -> None:
    """Walk the autograd graph and read each node's ``_saved_*`` attributes once: the unpack
    hook then labels each saved-tensor record with the node and attribute that hold it.
    Nothing is allocated (unpack returns the packed tensor itself)."""
    roots = [t.grad_fn for t in _tensors_in(out) + [loss_t] if t.grad_fn is not None]
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        name = type(node).__name__
        attrs = [a for a in dir(node) if a.startswith("_saved_")]
        if hasattr(node, "saved_tensors") and not attrs:   # custom autograd.Function
            attrs = ["saved_tensors"]
        for a in attrs:
            current["node"], current["attr"] = name, a
            try:
                v = getattr(node, a)
            except Exception:   # freed, or not readable
                v = None
            del v
        current["node"], current["attr"] = "?", "?"
        stack.extend(f for f, _ in node.next_functions)


# --------------------------------------------------------------------------------------------
# Shapes per line of forward / per module
# --------------------------------------------------------------------------------------------


def _target_names(target: ast.expr) -> list[str] | None:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names: list[str] = []
        for e in target.elts:
            if isinstance(e, ast.Starred):
                e = e.value
            sub = _target_names(e)
            if sub:
                names.extend(sub)
        return names
    return None    # attributes, subscripts: not recorded


@dataclass
class _Stmt:
    line: int
    end_line: int
    names: list[str]
    is_return: bool = False


def _forward_statements(path: str) -> dict[int, _Stmt]:
    """Statements of every ``forward`` in ``path`` that bind names or return, keyed by first line."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    stmts: dict[int, _Stmt] = {}

    def visit_body(body):
        for s in body:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue   # nested definitions run in their own frames
            names: list[str] | None = None
            if isinstance(s, ast.Assign):
                names = []
                for t in s.targets:
                    names.extend(_target_names(t) or [])
            elif isinstance(s, (ast.AugAssign, ast.AnnAssign)):
                names = _target_names(s.target) or []
            elif isinstance(s, ast.Return):
                if s.value is not None:
                    stmts[s.lineno] = _Stmt(s.lineno, s.end_lineno or s.lineno, [], is_return=True)
                continue
            if names:
                stmts[s.lineno] = _Stmt(s.lineno, s.end_lineno or s.lineno, names)
            for attr in ("body", "orelse", "finalbody"):
                visit_body(getattr(s, attr, []) or [])
            for h in getattr(s, "handlers", []) or []:
                visit_body(h.body)
            for c in getattr(s, "cases", []) or []:
                visit_body(c.body)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "forward":
            visit_body(node.body)
    return stmts


def trace_forward_line_shapes(model: torch.nn.Module, inputs: dict[str, Any], path,
                              ) -> dict[int, list[tuple[str, tuple[int, ...], str]]]:
    """Run ``model(**inputs)`` once (no grad) under ``sys.settrace`` and record, for each line of
    a ``forward`` defined in ``path``, the tensors its assignment binds, read after the
    statement ran: ``{first_line: [(name, shape, dtype_name), ...]}``.  A ``return`` of a tensor
    is recorded under the name ``"return"``.  Only the first execution of a line is kept; lines
    that bound no tensor are absent."""
    path = os.path.realpath(os.fspath(path))
    stmts = _forward_statements(path)
    result: dict[int, list[tuple[str, tuple[int, ...], str]]] = {}
    is_ours: dict[Any, bool] = {}

    def record(stmt: _Stmt, frame) -> None:
        if stmt.line in result:
            return
        found = []
        loc = frame.f_locals
        for n in stmt.names:
            v = loc.get(n)
            if isinstance(v, torch.Tensor):
                found.append((n, tuple(v.shape), _dtype_name(v.dtype)))
        if found:
            result[stmt.line] = found

    def make_local(frame):
        pending: list[_Stmt | None] = [None]

        def local(frame, event, arg):
            p = pending[0]
            if event == "line":
                if p is not None and p.line <= frame.f_lineno <= p.end_line:
                    return local          # still inside a multi-line statement
                if p is not None:
                    record(p, frame)
                pending[0] = stmts.get(frame.f_lineno)
            elif event == "return":
                if p is not None:
                    if p.is_return:
                        if isinstance(arg, torch.Tensor) and p.line not in result:
                            result[p.line] = [("return", tuple(arg.shape), _dtype_name(arg.dtype))]
                    else:
                        record(p, frame)
                pending[0] = None
            return local

        return local

    def global_trace(frame, event, arg):
        if event != "call":
            return None
        code = frame.f_code
        ours = is_ours.get(code)
        if ours is None:
            ours = code.co_name == "forward" and os.path.realpath(code.co_filename) == path
            is_ours[code] = ours
        return make_local(frame) if ours else None

    old = sys.gettrace()
    sys.settrace(global_trace)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        sys.settrace(old)
    return dict(sorted(result.items()))


def module_output_shapes(model: torch.nn.Module, inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{module path: shape of its first tensor output}`` for one forward (no grad); "" is the
    model itself.  A module called several times keeps its first call."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook_for(name):
        def hook(module, args, output):
            if name in shapes:
                return
            ts = _tensors_in(output)
            if ts:
                shapes[name] = tuple(ts[0].shape)
        return hook

    for name, m in model.named_modules():
        handles.append(m.register_forward_hook(hook_for(name)))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return shapes
