"""Ground truth measured with real torch (CPU): what gradxray's static estimates are compared with.

Three instruments:

* :class:`LiveStorageTracker` (from :mod:`gradxray.measure`) -- a ``TorchDispatchMode`` that follows every tensor storage
  created by an aten op and released by Python/C++ garbage collection, and so knows the live
  bytes at any moment and their peak.  Counting is by storage: a view costs nothing.
* :func:`measure_training_step` -- one forward + loss + backward of a model under the tracker and
  ``torch.autograd.graph.saved_tensors_hooks`` (:func:`gradxray.measure.measure_step`): parameters,
  saved activations, peak, gradients, plus the output's shapes, the loss and the node holding
  each saved tensor.
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
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

# The measured step, the live-storage tracker, the saved-tensor hooks and the loss rule are the
# product's (``gradxray verify`` measures with them too): one implementation, re-exported here under
# the names the tests use, with what only the tests read added on top.
from gradxray.measure import LiveStorageTracker, StepMeasurement, measure_step, pick_loss
from gradxray.measure import SavedTensor as SavedRecord
from gradxray.measure import dtype_name as _dtype_name
from gradxray.measure import tensors_in as _tensors_in
from gradxray.verify import AMP_DTYPES, make_optimizer

__all__ = [
    "LiveStorageTracker",
    "Measurement",
    "SavedRecord",
    "measure_training_step",
    "module_output_shapes",
    "pick_loss",
    "trace_forward_line_shapes",
]


# --------------------------------------------------------------------------------------------
# One training step
# --------------------------------------------------------------------------------------------


@dataclass
class Measurement(StepMeasurement):
    """The product's step measurement, plus what the tests read of the output and the loss."""

    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output_dtypes: list[str] = field(default_factory=list)
    loss_value: float | None = None

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


def measure_training_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor], loss: str = "auto",
                          timeline: bool = False, optimizer: str | None = None,
                          amp: str | None = None, label_saved: bool = True) -> Measurement:
    """Run ``out = model(**inputs); loss(out).backward()`` in train mode and measure it
    (:func:`gradxray.measure.measure_step` on CPU).

    Gradients start as None; ``out`` stays referenced during backward.  ``inputs`` are
    created by the caller (their storages count as live from the start).

    ``optimizer`` ("sgd", "sgd-momentum", "adam", "adamw") measures a steady-state iteration
    instead: one untracked iteration allocates the state, then ``zero_grad(set_to_none=True)`` →
    forward → loss → backward → ``step()`` is measured (the peak includes the step).  ``amp``
    ("bf16", "fp16") runs forward and loss under CPU ``torch.autocast``, backward outside it.
    ``label_saved=False`` leaves the saved records' node names unread: pass it for a model with
    ``torch.utils.checkpoint`` regions, where reading a node's saved values recomputes its region.
    """
    seen: dict[str, Any] = {}

    def after_loss(out, loss_t, saved) -> None:
        outs = _tensors_in(out)
        seen["output_shapes"] = [tuple(t.shape) for t in outs]
        seen["output_dtypes"] = [_dtype_name(t.dtype) for t in outs]
        seen["loss_value"] = float(loss_t.detach().float()) if loss_t.numel() == 1 else None
        if label_saved:
            _attribute_saved(out, loss_t, saved)

    amp_dtype = AMP_DTYPES[amp or "off"]
    step = measure_step(model, inputs, loss=loss, optimizer=make_optimizer(optimizer, model, torch),
                        autocast_dtype=getattr(torch, amp_dtype) if amp_dtype else None,
                        timeline=timeline, after_loss=after_loss)
    return Measurement(**vars(step), **seen)


def _attribute_saved(out, loss_t, saved) -> None:
    """Walk the autograd graph and read each node's ``_saved_*`` attributes once: the recorder's
    unpack hook then labels each saved-tensor record with the node and attribute that hold it.
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
            saved.reading = (name, a)
            try:
                v = getattr(node, a)
            except Exception:   # freed, or not readable
                v = None
            del v
        saved.reading = ("?", "?")
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
