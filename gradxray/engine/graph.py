"""The autograd graph: nodes, edges and saved tensors."""
from __future__ import annotations

import contextlib
import itertools
import re
import sys
import weakref

from . import autograd, memory
from .refcounts import sole_reference
from .tensor import NO_HOOKS, Tensor

_sequence = itertools.count()
# Node.apply under the backward engine, which already runs in the grad mode every node asks for
_GRAD_MODE_SET = contextlib.nullcontext()

SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call .backward() "
    "or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time "
    "or if you need to access saved tensors after calling backward.")


_saved_hooks_stack: list = []          # (pack, unpack) pairs of the open saved_tensors_hooks blocks
_saved_hooks_disabled: list = []       # error messages of open disable_saved_tensors_hooks blocks


class saved_tensors_hooks:
    """torch.autograd.graph.saved_tensors_hooks: ``pack`` runs when an op saves a tensor for backward,
    ``unpack`` when backward needs it back."""

    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        if _saved_hooks_disabled:
            raise RuntimeError(_saved_hooks_disabled[-1])
        _saved_hooks_stack.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc):
        _saved_hooks_stack.pop()
        return False


class disable_saved_tensors_hooks:
    def __init__(self, error_message: str):
        self.error_message = error_message

    def __enter__(self):
        _saved_hooks_disabled.append(self.error_message)
        return self

    def __exit__(self, *exc):
        _saved_hooks_disabled.pop()
        return False


class save_on_cpu(saved_tensors_hooks):
    """Saved tensors are kept where they are here (the engine has a single memory space per device);
    the block exists so code using it runs."""

    def __init__(self, pin_memory=False, device_type="cuda"):
        super().__init__(lambda t: t, lambda t: t)


def _torch_type_name(t) -> str:
    """torch's legacy type string of a tensor: torch.FloatTensor, torch.cuda.HalfTensor ..."""
    where = "cuda." if t.device.type == "cuda" else ""
    from .dtypes import scalar_type_name
    return f"torch.{where}{scalar_type_name(t.dtype)}Tensor"


class SavedTensor:
    """A tensor saved for backward, with the version it had when saved.

    An output of the node itself is stored as a history-free alias (torch does the
    same to avoid a reference cycle node -> saved output -> node) and gets the node
    back as its grad_fn when unpacked.  Under ``saved_tensors_hooks`` the packed
    object is stored instead, and the version is not checked (as in torch).
    """

    __slots__ = ("tensor", "version", "is_output", "name", "packed", "unpack_hook", "requires_grad", "grad_fn",
                 "output_nr", "accumulator")

    def __init__(self, tensor, is_output: bool, name: str):
        self.version = tensor._storage.version
        self.is_output = is_output
        self.name = name
        self.requires_grad = tensor.requires_grad
        self.output_nr = tensor._output_nr
        self.grad_fn = None if is_output else tensor.grad_fn
        self.accumulator = tensor._grad_accumulator
        self.packed = self.unpack_hook = None
        if _saved_hooks_stack:
            pack, self.unpack_hook = _saved_hooks_stack[-1]
            self.tensor = None
            self.packed = pack(tensor)
        else:
            self.tensor = tensor._alias() if is_output else tensor

    def unpack(self, node: "Node"):
        if self.unpack_hook is not None:
            if self.packed is None:
                raise RuntimeError(SECOND_BACKWARD)
            return self._with_history(self.unpack_hook(self.packed), node)
        t = self.tensor
        if t is None:
            raise RuntimeError(SECOND_BACKWARD)
        if t._version != self.version:
            # torch names the forward op: the saving node for an output, the tensor's current grad_fn otherwise
            producer = node if self.is_output else t.grad_fn
            op = re.sub(r"Backward\d*$", "", producer.name()) if producer is not None else ""
            which = f", which is output {self.output_nr if self.is_output else t._output_nr} of {op}," if op else ""
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{_torch_type_name(t)} [{', '.join(str(int(d)) for d in t.shape)}]]{which} is at "
                f"version {t._version}; expected version {self.version} instead. Hint: enable anomaly detection "
                "to find the operation that failed to compute its gradient, with "
                "torch.autograd.set_detect_anomaly(True, check_nan=False).")
        if self.is_output and self.requires_grad:
            return self._with_history(t, node)
        return t

    def _with_history(self, t, node):
        """The unpacked tensor with the autograd history the saved one had (needed by create_graph)."""
        if not self.requires_grad or (not self.is_output and t.grad_fn is self.grad_fn and t.requires_grad):
            return t
        t = t._alias()
        t.requires_grad = True
        if self.is_output:
            t.grad_fn, t._output_nr = node, self.output_nr
        elif self.grad_fn is not None:
            t.grad_fn, t._output_nr = self.grad_fn, self.output_nr
        else:
            t._grad_accumulator = self.accumulator
        return t

    def release(self) -> None:
        self.tensor = self.packed = None
        self.grad_fn = None


class Node:
    """One backward function: ``fn.backward`` with its context and the edges to its inputs' nodes."""

    def __init__(self, fn, ctx, next_edges, input_metas, arg_layout):
        self.fn = fn
        self.ctx = ctx
        self.next_edges = next_edges          # list of (node, input_nr) | None, one per tensor input
        self.input_metas = input_metas        # (shape, dtype) per tensor input, for validate_outputs
        self.arg_layout = arg_layout          # per positional arg: None | 1 | n (a list of n tensors)
        self.sequence_nr = next(_sequence)
        self.saved: list[SavedTensor | None] = []
        self.released = False
        self.num_outputs = 0        # set when the forward's outputs are known
        self.output_metas = []      # (shape, dtype, device) per forward output, to materialize missing grads
        self.location = None        # forward source location (file, line), for attribution
        self.module = ""

    # hooks: shared, read-only and empty until one is registered (own_hooks)
    tensor_pre_hooks = NO_HOOKS     # output_nr -> {handle id: hook} (Tensor.register_hook)
    retains_grad = NO_HOOKS         # output_nr -> weakref of a tensor that called retain_grad()
    pre_hooks = NO_HOOKS            # Node.register_prehook: fn(grad_outputs) -> grad_outputs | None
    post_hooks = NO_HOOKS           # Node.register_hook: fn(grad_inputs, grad_outputs) -> grad_inputs | None

    def register_prehook(self, fn):
        return _add_hook(own_hooks(self, "pre_hooks"), fn)

    def register_hook(self, fn):
        return _add_hook(own_hooks(self, "post_hooks"), fn)

    def name(self) -> str:
        # torch: "MulBackward0" for its own ops, "MyFunctionBackward" for a Python Function
        explicit = getattr(self.fn, "node_name", None)
        if explicit:
            return explicit
        return self.fn.__name__ + ("Backward0" if getattr(self.fn, "_builtin", True) else "Backward")

    def __repr__(self):
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        return tuple([(e[0], e[1]) if e is not None else (None, 0) for e in self.next_edges])

    def save(self, tensors, outputs, names) -> None:
        trackers = memory._trackers
        op_name = None
        for i, t in enumerate(tensors):
            if t is None:
                self.saved.append(None)
                continue
            is_output = False
            for o in outputs:
                if t is o:
                    is_output = True
                    break
            name = names[i] if i < len(names) else f"saved{i}"
            saved = SavedTensor(t, is_output, name)
            self.saved.append(saved)
            # what is kept: the tensor, or under saved-tensor hooks whatever the pack hook returned
            kept = t if saved.unpack_hook is None else saved.packed
            if isinstance(kept, Tensor) and trackers:
                if op_name is None:
                    op_name = self.name()
                for tr in trackers:
                    tr.on_saved(op_name, name, kept)

    def unpack_saved(self):
        if self.released:
            raise RuntimeError(SECOND_BACKWARD)
        return tuple(s.unpack(self) if s is not None else None for s in self.saved)

    def release_variables(self) -> None:
        self.released = True
        for s in self.saved:
            if s is not None:
                s.release()
        self.saved = []

    def apply(self, grads, create_graph: bool):
        if self.pre_hooks:
            for hook in list(self.pre_hooks.values()):
                out = hook(tuple(grads))
                if out is not None:
                    grads[:] = list(out)
        for g in grads:
            if g is not None:
                break
        else:                       # no gradient arrived (also for a node with no outputs)
            return [None] * len(self.next_edges)
        grads = self._materialized(grads)
        with _GRAD_MODE_SET if autograd._grad_enabled is create_graph else autograd.set_grad_enabled(create_graph):
            result = self.fn.backward(self.ctx, *grads)
            if not isinstance(result, tuple):
                result = (result,)
            flat = []
            for layout, r in zip(self.arg_layout, result):
                if layout is None:
                    continue
                if layout == 1:
                    flat.append(r)
                else:
                    flat.extend(r if r is not None else [None] * layout)
            del result
            # validate_outputs: reduce broadcast gradients and cast to the input's dtype
            for i, g in enumerate(flat):
                if g is None or self.next_edges[i] is None:
                    flat[i] = None
                    continue
                shape, dtype = self.input_metas[i]
                if g._shape != shape:
                    if not _expandable_to(shape, g.shape):
                        # torch numbers only the differentiable (floating-point) inputs
                        index = sum(1 for _, d in self.input_metas[:i] if d.is_floating_point)
                        raise RuntimeError(f"Function {self.name()} returned an invalid gradient at index {index} - got "
                                           f"{[int(d) for d in g.shape]} but expected shape compatible with "
                                           f"{[int(d) for d in shape]}")
                    flat[i] = g = _ops().sum_to(g, shape)
                if g.dtype is not dtype:
                    flat[i] = g.to(dtype)
        if self.post_hooks:
            for hook in list(self.post_hooks.values()):
                out = hook(tuple(flat), tuple(grads))
                if out is not None:
                    flat = list(out)
        return flat

    def _materialized(self, grads):
        """Undefined output gradients become zeros (torch's materialize_grads, on by default), on the
        backend of the gradients that did arrive."""
        for g in grads:
            if g is None:
                break
        else:                       # every gradient arrived
            return grads
        if not self.ctx._materialize_grads:
            return grads
        from .creation import new_zeros
        ref = next(g for g in grads if g is not None)
        return [g if g is not None else new_zeros(ref, shape, dtype=dtype)
                for g, (shape, dtype, _dev) in zip(grads, self.output_metas)]


class AccumulateGrad(Node):
    """Accumulates the incoming gradient into a leaf's ``.grad`` (torch's AccumulateGrad)."""

    def __init__(self, variable):
        super().__init__(None, None, [], [], [])
        self.variable = variable
        self.sequence_nr = sys.maxsize       # runs as soon as it is ready, like torch
        self.num_outputs = 1

    def name(self) -> str:
        return "AccumulateGrad"

    def apply(self, grads, create_graph: bool):
        (new_grad,) = grads
        grads.clear()                         # drop the buffer's reference: we may steal the tensor
        var = self.variable
        if var.grad is None:
            # torch steals a gradient nobody else holds (its storage may be shared with a base, as for a
            # transposed mm result); `new_grad` is held by this local only
            if not create_graph and sole_reference(new_grad) and _obeys_layout_contract(new_grad, var):
                g = new_grad._alias()
                g._base = None
                var.grad = g
            else:
                var.grad = _ops().clone_like_param(new_grad, var)
        elif create_graph:
            var.grad = var.grad + new_grad
        else:
            var.grad.add_(new_grad)
        for hook in list(var._post_accumulate_hooks.values()):
            hook(var)
        return []

    def release_variables(self) -> None:
        pass


class CopySlices(Node):
    """The base's node after an in-place op on one of its views (torch's CopySlices): the base's gradient
    is copied, the view's part of it goes through the in-place op's node, and the result flows to the
    base's previous history."""

    def __init__(self, base_edge, base_geometry, view_geometry, fn_node):
        super().__init__(None, None, [base_edge] + list(fn_node.next_edges[1:]),
                         [base_geometry[:2]] + list(fn_node.input_metas[1:]), [])
        self.base_geometry = base_geometry       # (shape, dtype, stride, offset)
        self.view_geometry = view_geometry       # (shape, stride, offset) in the base's storage
        self.fn = fn_node
        self.num_outputs = 1
        self.location, self.module = fn_node.location, fn_node.module

    def name(self) -> str:
        return "CopySlices"

    def apply(self, grads, create_graph: bool):
        # torch's CopySlices::apply, op for op; engine ops, so with create_graph it records a graph
        from .ops._kernel import kernel
        from .ops.indexing import copy_
        from .ops.views import AsStrided, Clone
        (grad,) = grads
        grads.clear()
        shape, dtype, stride, offset = self.base_geometry
        result = kernel("new_empty_strided", (shape, dtype, stride), grad, [int(s) for s in shape],
                        [int(s) for s in stride])
        copy_(result, grad)
        del grad
        vshape, vstride, voffset = self.view_geometry
        grad_slice = AsStrided.apply(result, vshape, vstride, int(voffset) - int(offset))
        res = self.fn.apply([Clone.apply(grad_slice)], create_graph)
        if res[0] is not None:
            copy_(grad_slice, res[0])
        else:
            grad_slice.zero_()
        return [result] + list(res[1:])

    def release_variables(self) -> None:
        self.fn.release_variables()


class AsStridedView(Node):
    """grad_fn of a view after an in-place op on it: its gradient is scattered into the base's shape
    (torch's AsStridedBackward0) and flows to the base's CopySlices."""

    def __init__(self, base_edge, base_geometry, view_geometry):
        super().__init__(None, None, [base_edge], [base_geometry[:2]], [])
        self.base_geometry, self.view_geometry = base_geometry, view_geometry
        self.num_outputs = 1

    def name(self) -> str:
        return "AsStridedBackward0"

    def apply(self, grads, create_graph: bool):
        from .ops.views import as_strided_grad
        (grad,) = grads
        shape, dtype, stride, offset = self.base_geometry
        return [as_strided_grad(grad, (shape, stride, offset), self.view_geometry)]

    def release_variables(self) -> None:
        pass


def _expandable_to(shape, desired) -> bool:
    """torch's is_expandable_to: ``shape`` broadcasts to ``desired`` (so a gradient of ``desired`` sums back)."""
    if len(shape) > len(desired):
        return False
    for s, d in zip(reversed(tuple(shape)), reversed(tuple(desired))):
        if int(s) != int(d) and int(s) != 1:
            return False
    return True


def _obeys_layout_contract(grad, var) -> bool:
    """A gradient may be adopted as ``.grad`` only with the parameter's strides (size-1 dims aside)."""
    if var.is_non_overlapping_and_dense():
        return all(int(s) == 1 or int(a) == int(b) for s, a, b in zip(var.shape, grad._stride, var._stride))
    return grad.is_contiguous()


def _ops():
    """The ops package (it imports this module): looked up here, not by an import per gradient."""
    ops = sys.modules.get(__package__ + ".ops")
    if ops is None:
        from . import ops
    return ops


def accumulate_grad_of(leaf) -> AccumulateGrad:
    ref = leaf._grad_accumulator
    node = ref() if ref is not None else None
    if node is None:
        node = AccumulateGrad(leaf)
        leaf._grad_accumulator = weakref.ref(node)
    return node


def edge_of(t):
    if not t.requires_grad:
        return None
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    return (accumulate_grad_of(t), 0)


class RemovableHandle:
    def __init__(self, hooks: dict, key: int):
        self._hooks, self.id = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


_hook_ids = itertools.count()


def own_hooks(owner, attr: str) -> dict:
    """The writable dict of hooks ``attr`` of a tensor or node: its own, made on first use in place of the
    shared empty NO_HOOKS."""
    hooks = owner.__dict__.get(attr)
    if hooks is None:
        hooks = {}
        setattr(owner, attr, hooks)
    return hooks


def _add_hook(hooks: dict, fn) -> RemovableHandle:
    key = next(_hook_ids)
    hooks[key] = fn
    return RemovableHandle(hooks, key)
