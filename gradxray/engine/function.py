"""Function and its context: the unit every op is written as (forward saves, backward uses).

The same class is torch.autograd.Function for users: ``forward(ctx, ...)`` / ``backward(ctx, ...)``
staticmethods, ``save_for_backward``, ``needs_input_grad``, ``mark_dirty``,
``mark_non_differentiable``, ``set_materialize_grads`` and ``once_differentiable``.
"""
from __future__ import annotations

import functools
import weakref

from . import autograd, memory
from .graph import Node, edge_of
from .tensor import NOT_TENSOR_TYPES, Tensor

INFERENCE_SAVE = ("Inference tensors cannot be saved for backward. To work around you can make a clone to get a "
                  "normal tensor and use it in autograd.")


class Context:
    """``ctx`` of a Function: what forward leaves for backward."""

    def __init__(self, materialize_grads: bool):
        self.needs_input_grad: tuple[bool, ...] = ()
        self._to_save: tuple = ()
        self._node = None            # weakref to the Node, once recorded
        self._non_differentiable: list[Tensor] = []
        self._dirty: list[Tensor] = []
        self._materialize_grads = materialize_grads

    def save_for_backward(self, *tensors) -> None:
        """Save tensors (None allowed for a conditionally skipped one)."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} is of type "
                                f"{type(t).__name__}")
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

    def set_materialize_grads(self, value: bool) -> None:
        self._materialize_grads = bool(value)


def _layout(args, lists: bool = True):
    layout, flat = [], []
    for a in args:
        if type(a) in NOT_TENSOR_TYPES:
            layout.append(None)
        elif isinstance(a, Tensor):
            layout.append(1)
            flat.append(a)
        elif lists and isinstance(a, (list, tuple)) and a and _all_tensors(a):
            layout.append(len(a))
            flat.extend(a)
        else:
            layout.append(None)
    return layout, flat


def _all_tensors(items) -> bool:
    for x in items:
        if not isinstance(x, Tensor):
            return False
    return True


class Function:
    """An autograd op: ``forward(ctx, *args)`` runs kernels and saves; ``backward(ctx, *grads)``
    returns one gradient per positional argument (None for non-tensors, a tuple for a tensor list)."""

    saves: tuple[str, ...] = ()        # names of what forward saves, in save_for_backward order
    _builtin = True                    # defined in the engine (set per subclass)
    # torch passes undefined gradients to its built-in formulas but zeros to Python Functions;
    # the engine's own ops (defined in this package) take the built-in convention.
    _materialize_default = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._builtin = cls.__module__.startswith(__package__ + ".")
        cls._materialize_default = not cls._builtin

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        # every op of a trace runs through here: module globals are read directly and the generator
        # expressions of the rare cases (dirty, non-differentiable outputs) are only built when needed
        # the engine's own ops take tensor lists (cat, stack); torch ignores tensors nested in the
        # arguments of a Python Function
        record = False
        if autograd._grad_enabled:      # with grad off (backward formulas, no_grad) nothing is recorded
            layout, inputs = _layout(args, lists=cls._builtin)
            for t in inputs:
                if t.requires_grad:
                    record = True
                    break
        ctx = Context(cls._materialize_default)
        if record:
            # by the layout: None no tensor, else a tensor or a list of n tensors (a 1-list is 1 too)
            ctx.needs_input_grad = tuple([False if n is None else a.requires_grad if isinstance(a, Tensor) else
                                          any(t.requires_grad for t in a) for a, n in zip(args, layout)])
            edges = [edge_of(t) for t in inputs]
        else:
            ctx.needs_input_grad = (False,) * len(args)
        prev_grad_mode = autograd._grad_enabled            # autograd.no_grad(), without the object
        autograd._grad_enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            autograd._grad_enabled = prev_grad_mode
        if autograd._inference_mode:
            for o in (out if isinstance(out, tuple) else (out,)):
                if isinstance(o, Tensor):
                    o._inference = True
        dirty = ctx._dirty
        for t in dirty:
            if record and t.is_leaf and t.requires_grad:
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
            if record and t._base is not None and t._base.is_leaf and t._base.requires_grad:
                raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place "
                                   "operation.")
            if t._inference and not autograd._inference_mode:
                raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not allowed.You can "
                                   "make a clone to get a normal tensor before doing inplace update.See "
                                   "https://github.com/pytorch/rfcs/pull/17 for more details.")
            t._storage.version += 1
        if not record:
            return out
        outputs = list(out) if isinstance(out, tuple) else [out]
        # an input returned unchanged becomes a fresh view of it (it must not take this node as grad_fn)
        for i, o in enumerate(outputs):
            if isinstance(o, Tensor) and _contains(inputs, o) and not _contains(dirty, o):
                outputs[i] = o._view(o.shape, o._stride, o._offset, o.data_)
        for t in ctx._to_save:
            if t is not None and t._inference:
                raise RuntimeError(INFERENCE_SAVE)
        node = Node(cls, ctx, edges, [(t._shape, t.dtype) for t in inputs], layout)
        ctx._node = weakref.ref(node)        # weak: node -> ctx -> node would be a reference cycle
        node.num_outputs = len(outputs)
        node.output_metas = [(o._shape, o.dtype, o.device) if isinstance(o, Tensor) else ((), None, None)
                             for o in outputs]
        node.location = memory._location      # backward work is attributed to the forward line
        modules = memory._module_stack
        node.module = modules[-1] if modules else ""
        non_differentiable = ctx._non_differentiable
        for i, o in enumerate(outputs):
            if not isinstance(o, Tensor) or not o.dtype.is_floating_point:
                continue
            if non_differentiable and _contains(non_differentiable, o):
                continue
            if o._base is not None and dirty and _contains(dirty, o):
                _rebase_view_history(o, node)
                continue
            o.grad_fn = node
            o._output_nr = i
            o.requires_grad = True
        try:
            node.save(ctx._to_save, outputs, cls.saves)
        finally:               # also when a pack hook raises: ctx must not keep the outputs (a cycle)
            ctx._to_save = ()
            ctx._non_differentiable = []
            ctx._dirty = []
        return tuple(outputs) if isinstance(out, tuple) else outputs[0]


def _contains(items, x) -> bool:
    """``x`` is one of ``items`` by identity (``in`` would call Tensor.__eq__, an op)."""
    for item in items:
        if item is x:
            return True
    return False


def _rebase_view_history(view, node) -> None:
    """An in-place op on a view: the base's history becomes CopySlices(in-place node) and the view's
    grad_fn a strided view of the base (torch's rebase_history)."""
    from .graph import AsStridedView, CopySlices
    base = view._base
    base_geometry = (base.shape, base.dtype, base._stride, base._offset)
    view_geometry = (view.shape, view._stride, view._offset)
    copy_slices = CopySlices(edge_of(base), base_geometry, view_geometry, node)
    base.grad_fn, base._output_nr, base.requires_grad = copy_slices, 0, True
    view.grad_fn = AsStridedView((copy_slices, 0), base_geometry, view_geometry)
    view._output_nr, view.requires_grad = 0, True


class _DelayedError(Function):
    """Identity whose backward raises: what once_differentiable leaves for a second differentiation."""

    @staticmethod
    def forward(ctx, message, *grads):
        ctx.message = message
        return tuple(g._view(g.shape, g._stride, g._offset, g.data_) for g in grads)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(ctx.message)


def once_differentiable(backward):
    """Run ``backward`` without recording; differentiating its result again raises, as in torch."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        with autograd.no_grad():
            result = backward(ctx, *grads)
        if not autograd.is_grad_enabled() or not any(isinstance(g, Tensor) and g.requires_grad for g in grads):
            return result
        results = result if isinstance(result, tuple) else (result,)
        tensors = [r for r in results if isinstance(r, Tensor)]
        if not tensors:
            return result
        # history-free aliases that require grad, so the error node gets recorded (as torch does)
        leaves = [t.detach().requires_grad_(True) for t in tensors]
        wrapped = iter(_DelayedError.apply("trying to differentiate twice a function that was marked with "
                                           "@once_differentiable", *leaves))
        results = tuple(next(wrapped) if isinstance(r, Tensor) else r for r in results)
        return results if isinstance(result, tuple) else results[0]

    return wrapper
