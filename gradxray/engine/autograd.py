"""Grad mode and the backward engine (dependency counting, ready queue, accumulation, release)."""
from __future__ import annotations

import heapq
import itertools
import sys

from . import memory

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled:
    def __init__(self, mode: bool):
        self.mode = bool(mode)
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False


class _GradMode:
    mode = True

    def __enter__(self):
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, fn):
        def wrapper(*a, **k):
            with self.__class__():
                return fn(*a, **k)
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        return wrapper


class no_grad(_GradMode):
    mode = False


class enable_grad(_GradMode):
    mode = True


def _can_accumulate_inplace(t, expected_refs: int) -> bool:
    """torch's can_accumulate_inplace: a dense tensor whose object and storage nobody else holds
    (a view never qualifies: its base keeps the storage referenced)."""
    from .graph import _storage_uses
    return sys.getrefcount(t) <= expected_refs and _storage_uses(t) <= 1 and t.is_non_overlapping_and_dense()


def _accumulate(buffer: list, pos: int, var) -> None:
    """torch's InputBuffer::accumulate: add in place into the first gradient if nobody else holds it,
    otherwise out of place."""
    old = buffer[pos]
    if old is None:
        buffer[pos] = var
        return
    buffer[pos] = None
    # references counted: `old`, the parameter `t`, getrefcount's argument
    if _can_accumulate_inplace(old, 3):
        old.add_(var)
        buffer[pos] = old
    else:
        buffer[pos] = old + var


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    from .graph import edge_of
    from . import ops
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported yet")
    if inputs is not None:
        raise NotImplementedError("backward(inputs=...) is not supported yet")
    if retain_graph is None:
        retain_graph = create_graph
    grad_tensors = grad_tensors or [None] * len(tensors)
    roots = []
    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            with memory.phase("backward"):
                g = ops.ones_like(t)
        roots.append((edge_of(t), g))
    del tensors, grad_tensors, g
    _execute(roots, retain_graph, create_graph)


def _execute(roots, retain_graph: bool, create_graph: bool) -> None:
    # dependency counting over the graph reachable from the roots
    deps: dict = {}
    seen = set()
    stack = [edge[0] for edge, _ in roots]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for e in node.next_edges:
            if e is None:
                continue
            deps[e[0]] = deps.get(e[0], 0) + 1
            if id(e[0]) not in seen:
                stack.append(e[0])
    buffers: dict = {}
    ready: list = []
    tie = itertools.count()
    for (node, nr), g in roots:
        buf = buffers.setdefault(node, [None] * _num_inputs(node))
        _accumulate(buf, nr, g)
        if deps.get(node, 0) == 0:
            heapq.heappush(ready, (-node.sequence_nr, next(tie), node))
    del roots
    with memory.phase("backward"):
        while ready:
            _, _, node = heapq.heappop(ready)
            inputs = buffers.pop(node, None)
            if inputs is None:
                inputs = [None] * _num_inputs(node)
            if node.location is not None:
                with memory.source_location(*node.location), memory.module_scope(node.module):
                    outputs = node.apply(inputs, create_graph)
            else:
                outputs = node.apply(inputs, create_graph)
            del inputs
            if not retain_graph:
                node.release_variables()
            for i, edge in enumerate(node.next_edges):
                if edge is None:
                    continue
                nxt, nr = edge
                g = outputs[i]
                outputs[i] = None
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * _num_inputs(nxt)
                    _accumulate(buf, nr, g)
                    del g
                deps[nxt] -= 1
                if deps[nxt] == 0:
                    heapq.heappush(ready, (-nxt.sequence_nr, next(tie), nxt))
            del outputs, node


def _num_inputs(node) -> int:
    """Gradient slots of a node: one per output of its forward."""
    return node.num_outputs
