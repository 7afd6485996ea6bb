"""Function and its context: the unit every op is written as (forward saves, backward uses)."""
from __future__ import annotations

import weakref

from . import autograd, memory
from .graph import Node, edge_of
from .tensor import Tensor


class Context:
    """``ctx`` of a Function: what forward leaves for backward."""

    def __init__(self):
        self.needs_input_grad: tuple[bool, ...] = ()
        self._to_save: tuple = ()
        self._node = None            # weakref to the Node, once recorded
        self._non_differentiable: list[Tensor] = []
        self._dirty: list[Tensor] = []

    def save_for_backward(self, *tensors) -> None:
        """Save tensors (None allowed for a conditionally skipped one)."""
        self._to_save = tensors

    @property
    def saved_tensors(self):
        node = self._node() if self._node is not None else None
        if node is None:
            return tuple(self._to_save)
        return node.unpack_saved()

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable.extend(tensors)

    def mark_dirty(self, *tensors) -> None:
        self._dirty.extend(tensors)


def _layout(args):
    layout, flat = [], []
    for a in args:
        if isinstance(a, Tensor):
            layout.append(1)
            flat.append(a)
        elif isinstance(a, (list, tuple)) and a and all(isinstance(x, Tensor) for x in a):
            layout.append(len(a))
            flat.extend(a)
        else:
            layout.append(None)
    return layout, flat


class Function:
    """An autograd op: ``forward(ctx, *args)`` runs kernels and saves; ``backward(ctx, *grads)``
    returns one gradient per positional argument (None for non-tensors, a tuple for a tensor list)."""

    saves: tuple[str, ...] = ()        # names of what forward saves, in save_for_backward order

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        layout, inputs = _layout(args)
        record = autograd.is_grad_enabled() and any(t.requires_grad for t in inputs)
        ctx = Context()
        if record:
            ctx.needs_input_grad = tuple(
                (isinstance(a, Tensor) and a.requires_grad) or
                (n not in (None, 1) and any(t.requires_grad for t in a))
                for a, n in zip(args, layout))
            edges = [edge_of(t) for t in inputs]
        else:
            ctx.needs_input_grad = tuple(False for _ in args)
        with autograd.no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        outputs = out if isinstance(out, tuple) else (out,)
        for t in ctx._dirty:
            if record and t.is_leaf and t.requires_grad:
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
            t._storage.version += 1
        if not record:
            return out
        node = Node(cls, ctx, edges, [(t.shape, t.dtype) for t in inputs], layout)
        ctx._node = weakref.ref(node)        # weak: node -> ctx -> node would be a reference cycle
        node.num_outputs = len(outputs)
        node.location = memory.current_location()      # backward work is attributed to the forward line
        node.module = memory.current_module()
        for i, o in enumerate(outputs):
            if not isinstance(o, Tensor) or not o.dtype.is_floating_point:
                continue
            if any(o is nd for nd in ctx._non_differentiable):
                continue
            o.grad_fn = node
            o._output_nr = i
            o.requires_grad = True
        node.save(ctx._to_save, outputs, cls.saves)
        ctx._to_save = ()
        ctx._non_differentiable = []
        ctx._dirty = []
        return out

