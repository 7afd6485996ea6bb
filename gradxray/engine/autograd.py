"""Grad mode and the backward engine (dependency counting, ready queue, accumulation, release)."""
from __future__ import annotations

import heapq
import itertools

from . import memory
from .refcounts import can_accumulate_inplace

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


_inference_mode = False


def is_inference_mode_enabled() -> bool:
    return _inference_mode


class inference_mode:
    """Like no_grad, and tensors made inside are inference tensors (they may never be saved for backward)."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)

    def __enter__(self):
        global _grad_enabled, _inference_mode
        self.prev = (_grad_enabled, _inference_mode)
        if self.mode:
            _grad_enabled, _inference_mode = False, True
        return self

    def __exit__(self, *exc):
        global _grad_enabled, _inference_mode
        _grad_enabled, _inference_mode = self.prev
        return False

    def __call__(self, fn):
        def wrapper(*a, **k):
            with inference_mode(self.mode):
                return fn(*a, **k)
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        return wrapper


def _accumulate(buffer: list, pos: int, var) -> None:
    """torch's InputBuffer::accumulate: add in place into the first gradient if nobody else holds it,
    otherwise out of place."""
    old = buffer[pos]
    if old is None:
        buffer[pos] = var
        return
    buffer[pos] = None
    if can_accumulate_inplace(old):         # `old` is held by this local only (see refcounts)
        old.add_(var)
        buffer[pos] = old
    else:
        buffer[pos] = old + var


def _as_tuple(x):
    if x is None:
        return None
    from .tensor import Tensor
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _make_roots(tensors, grad_tensors, create_graph):
    """(edge, gradient) per output; the implicit gradient of a scalar is ones."""
    from .graph import edge_of
    from . import ops
    grad_tensors = list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"got {len(tensors)} tensors and {len(grad_tensors)} gradients")
    roots = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            with memory.phase("backward"):
                g = ops.ones_like(t)
        elif tuple(int(s) for s in g.shape) != tuple(int(s) for s in t.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {list(g.shape)} and output[{i}] "
                               f"has a shape of {list(t.shape)}.")
        roots.append((edge_of(t), g))
    return roots


def _input_edges(inputs):
    from .graph import edge_of
    edges = []
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        edges.append(edge_of(t))
    return edges


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward: accumulate gradients of ``tensors`` into the leaves' ``.grad``
    (only into ``inputs`` when given)."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors)
    inputs = _as_tuple(inputs)
    if inputs is not None and len(inputs) == 0:
        raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _make_roots(tensors, grad_tensors, create_graph)
    targets = None
    if inputs is not None:
        edges = _input_edges(inputs)
        for t in inputs:
            if t.grad_fn is not None:
                t.retain_grad()           # torch accumulates into a non-leaf input through retain_grad
        targets = {(id(e[0]), e[1]): e for e in edges}
    del tensors, grad_tensors
    _execute(roots, retain_graph, create_graph, targets=targets)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    """torch.autograd.grad: the gradients of ``outputs`` with respect to ``inputs`` (``.grad`` untouched)."""
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    grad_outputs = _as_tuple(grad_outputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    if materialize_grads and not allow_unused:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False.")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _make_roots(outputs, grad_outputs, create_graph)
    edges = _input_edges(inputs)
    captured = [None] * len(edges)
    _execute(roots, retain_graph, create_graph, capture=(edges, captured))
    del roots
    result = []
    for t, g in zip(inputs, captured):
        if g is None:
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                from .creation import zeros_like
                g = zeros_like(t)
        result.append(g)
    return tuple(result)


def _reachable(roots):
    """Dependency counts (incoming edges) of every node reachable from the roots."""
    deps: dict = {}
    seen = set()
    stack = [edge[0] for edge, _ in roots if edge is not None]
    order = []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        for e in node.next_edges:
            if e is None:
                continue
            deps[e[0]] = deps.get(e[0], 0) + 1
            if id(e[0]) not in seen:
                stack.append(e[0])
    return deps, order


def _leading_to(order, targets, include_targets: bool) -> set:
    """Ids of the nodes with a path to one of ``targets`` (torch's exec_info): only they run."""
    parents: dict = {}
    for node in order:
        for e in node.next_edges:
            if e is not None:
                parents.setdefault(id(e[0]), []).append(node)
    found = set(id(n) for n in targets) if include_targets else set()
    stack = list(targets)
    seen = set()
    while stack:
        node = stack.pop()
        for p in parents.get(id(node), ()):
            found.add(id(p))
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return found


_AccumulateGrad = None      # graph.AccumulateGrad, bound on first use (graph imports this module)


def _run_pre_hooks(node, buffer) -> None:
    """Tensor hooks (``register_hook``) on the gradients a node is about to receive, then retain_grad."""
    global _AccumulateGrad
    if _AccumulateGrad is None:
        from .graph import AccumulateGrad as _AccumulateGrad
    if isinstance(node, _AccumulateGrad):
        hooks = {0: node.variable._hooks} if node.variable._hooks else {}
        retains = {}
    else:
        hooks, retains = node.tensor_pre_hooks, node.retains_grad
        if not hooks and not retains:       # the common case: nothing registered on this node
            return
    for nr, fns in hooks.items():
        for fn in list(fns.values()):
            if buffer[nr] is None:
                break
            out = fn(buffer[nr])
            if out is not None:
                buffer[nr] = out
    for nr, ref in retains.items():
        t = ref()
        if t is not None and buffer[nr] is not None:
            with set_grad_enabled(False):
                t.grad = buffer[nr].clone() if t.grad is None else t.grad + buffer[nr]


class GraphTask:
    """One running backward pass (torch's graph task): its identity, and whether it runs only towards
    given inputs (``grad()`` / ``backward(inputs=...)``), which reentrant checkpointing refuses."""

    __slots__ = ("towards_inputs", "__weakref__")

    def __init__(self, towards_inputs: bool):
        self.towards_inputs = towards_inputs


_graph_tasks: list = []


def current_graph_task():
    """The innermost backward pass running now, or None outside backward."""
    return _graph_tasks[-1] if _graph_tasks else None


def _execute(roots, retain_graph: bool, create_graph: bool, targets=None, capture=None) -> None:
    """Run the backward graph from ``roots``.

    ``targets`` (backward(inputs=...)): only nodes with a path to them run.  ``capture`` (grad()):
    the gradients arriving at the input edges are stored instead of accumulated, and only nodes
    with a path to an input run."""
    deps, order = _reachable(roots)
    needed = None
    captures: dict = {}
    if targets is not None:
        needed = _leading_to(order, [e[0] for e in targets.values()], include_targets=True)
    if capture is not None:
        edges, captured = capture
        for i, (node, nr) in enumerate(edges):
            captures.setdefault(id(node), []).append((nr, i))
        # a captured node itself runs only when it also leads to another input
        needed = _leading_to(order, [node for node, _ in edges], include_targets=False)
    buffers: dict = {}
    ready: list = []
    tie = itertools.count()
    for (node, nr), g in roots:
        buf = buffers.setdefault(node, [None] * _num_inputs(node))
        _accumulate(buf, nr, g)
        if deps.get(node, 0) == 0 and not any(node is n for _, _, n in ready):
            heapq.heappush(ready, (-node.sequence_nr, next(tie), node))
    del roots
    node = buf = g = None          # this frame must not keep a root gradient alive (stealing, live memory)
    _graph_tasks.append(GraphTask(towards_inputs=needed is not None))
    try:
        _run_ready(ready, buffers, deps, needed, captures, captured if capture is not None else None,
                   retain_graph, create_graph, tie)
    finally:
        _graph_tasks.pop()


def _run_ready(ready, buffers, deps, needed, captures, captured, retain_graph, create_graph, tie) -> None:
    """The engine loop: pop the ready node with the highest sequence number, run it, pass its
    gradients on, release what it saved."""
    with memory.phase("backward"), set_grad_enabled(create_graph):
        while ready:
            _, _, node = heapq.heappop(ready)
            inputs = buffers.pop(node, None)
            if inputs is None:
                inputs = [None] * _num_inputs(node)
            _run_pre_hooks(node, inputs)
            for nr, i in captures.get(id(node), ()):
                captured[i] = inputs[nr]
            if needed is not None and id(node) not in needed:
                del inputs
                continue
            if node.location is not None:
                prev = memory.enter_node(node.location, node.module)
                try:
                    outputs = node.apply(inputs, create_graph)
                finally:
                    memory.leave_node(prev)
            else:
                outputs = node.apply(inputs, create_graph)
            del inputs
            if not retain_graph:
                node.release_variables()
            for i, edge in enumerate(node.next_edges):
                if edge is None:
                    continue
                nxt, nr = edge
                g = outputs[i] if i < len(outputs) else None
                if i < len(outputs):
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


def __getattr__(name):
    """torch.autograd's namespace: ``graph`` (saved-tensor hooks), ``Function``, ``function``,
    ``functional`` — resolved lazily because those modules import this one."""
    import importlib
    if name == "Function":
        from .function import Function
        return Function
    if name in ("graph", "function"):
        return importlib.import_module(f"{__package__}.{name}")
    if name == "functional":
        return importlib.import_module(f"{__package__}.autograd_functional")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
