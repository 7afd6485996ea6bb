"""Activation checkpointing: torch.utils.checkpoint (torch 2.13 semantics) on the engine.

Two variants, chosen by ``use_reentrant`` as in torch:

* reentrant (:class:`CheckpointFunction`): a custom Function whose forward runs the region under
  no_grad and saves only its tensor inputs; its backward recomputes the region with grad enabled and
  runs a nested backward through the recomputed outputs.
* non-reentrant: the region runs with grad enabled under saved-tensor hooks that save a small holder
  instead of each tensor; the first unpack in a backward pass recomputes the region (under the RNG
  state of the original forward), captures the tensors the recomputed ops save, stops as soon as all
  of them exist (early stop), and each one is released as soon as it is unpacked.

What stays alive, and what is allocated when, follows torch's implementation step for step, so the
memory tracker's live bytes and peak are torch's.  The recomputation runs under the memory phase
"recompute" (nested in "backward"), so the tracker's timeline shows it.

Not modelled: ``debug=True`` (torch's operator logs come from a TorchDispatchMode), selective
checkpointing policies, ``GraphExecGroup``, autocast state (the engine has no autocast yet).
"""
from __future__ import annotations

import contextlib
import sys
import warnings
import weakref
from collections import defaultdict

from .. import autograd, memory
from ..function import Function
from ..graph import SavedTensor, saved_tensors_hooks
from ..tensor import Tensor

__all__ = [
    "CheckpointError",
    "CheckpointFunction",
    "check_backward_validity",
    "checkpoint",
    "checkpoint_sequential",
    "detach_variable",
    "noop_context_fn",
    "set_checkpoint_debug_enabled",
    "set_checkpoint_early_stop",
]

RECOMPUTE_PHASE = "recompute"

_USE_REENTRANT_WARNING = (
    "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly. Starting in PyTorch 2.9, "
    "calling checkpoint without use_reentrant will raise an exception. use_reentrant=False is recommended, but if "
    "you need to preserve the current default behavior, you can pass use_reentrant=True. Refer to docs for more "
    "details on the differences between the two variants.")
_SEQUENTIAL_USE_REENTRANT_WARNING = (
    "torch.utils.checkpoint.checkpoint_sequential: the use_reentrant parameter should be passed explicitly. In "
    "version 2.9 we will raise an exception if use_reentrant is not passed. use_reentrant=False is recommended, "
    "but if you need to preserve the current default behavior, you can pass use_reentrant=True. Refer to docs for "
    "more details on the differences between the two variants.")
_NO_INPUT_REQUIRES_GRAD = "None of the inputs have requires_grad=True. Gradients will be None"
_REENTRANT_WITH_INPUTS = (
    "When use_reentrant=True, torch.utils.checkpoint is incompatible with .grad() or passing an `inputs` "
    "parameter to .backward(). To resolve this error, you can either set use_reentrant=False, or call "
    ".backward() without passing the `inputs` argument.")
_FORWARD_CONTEXT_SUPPRESSED = (
    "torch.utils.checkpoint: the forward context provided by context_fn suppressed an exception raised during "
    "the checkpointed forward. This is not supported because checkpoint cannot return a value for a failed "
    "forward.")
_DEBUG_TIP = """
Tip: To see a more detailed error message, either pass `debug=True` to
`torch.utils.checkpoint.checkpoint(...)` or wrap the code block
with `with torch.utils.checkpoint.set_checkpoint_debug_enabled(True):` to
enable checkpoint\u2011debug mode globally.
"""


class CheckpointError(RuntimeError):
    pass


def noop_context_fn():
    return contextlib.nullcontext(), contextlib.nullcontext()


_checkpoint_debug_enabled: bool | None = None
_enable_checkpoint_early_stop: bool | None = None


@contextlib.contextmanager
def set_checkpoint_debug_enabled(enabled: bool | None):
    """Override every checkpoint's ``debug`` flag inside the block (None defers to the flag)."""
    global _checkpoint_debug_enabled
    prev = _checkpoint_debug_enabled
    _checkpoint_debug_enabled = enabled
    try:
        yield
    finally:
        _checkpoint_debug_enabled = prev


@contextlib.contextmanager
def set_checkpoint_early_stop(enable: bool):
    """Override ``early_stop`` for the checkpoints whose forward runs inside the block."""
    global _enable_checkpoint_early_stop
    prev = _enable_checkpoint_early_stop
    _enable_checkpoint_early_stop = enable
    try:
        yield
    finally:
        _enable_checkpoint_early_stop = prev


def _detached(t: Tensor) -> Tensor:
    """torch's ``detach()``: same storage and version counter, no history and no reference to a base
    (``Tensor.detach`` keeps ``_base``, which would keep the recomputed graph alive through it)."""
    out = t._alias()
    out._base = None
    return out


def detach_variable(inputs):
    if not isinstance(inputs, tuple):
        raise RuntimeError(f"Only tuple of tensors is supported. Got Unsupported input type: {type(inputs).__name__}")
    out = []
    for inp in inputs:
        if not isinstance(inp, Tensor):
            out.append(inp)
            continue
        x = _detached(inp)
        x.requires_grad = inp.requires_grad
        out.append(x)
    return tuple(out)


def check_backward_validity(inputs) -> None:
    if not any(inp.requires_grad for inp in inputs if isinstance(inp, Tensor)):
        warnings.warn(_NO_INPUT_REQUIRES_GRAD, stacklevel=2)


# -- random-number state ----------------------------------------------------------------------------------


def _cuda_devices(args) -> list[int]:
    """Indices of the CUDA devices holding torch data among ``args`` (whose generators torch stashes)."""
    devices = []
    for a in args:
        if isinstance(a, Tensor) and a.device.type == "cuda" and a.data_ is not None and \
                type(a.data_).__module__ != "numpy":
            index = a.data_.get_device()
            if index not in devices:
                devices.append(index)
    return devices


class _RngStates:
    """The random streams a checkpointed region can draw from, as they are now: the numpy backend's
    generator, torch's CPU generator (only when torch is loaded: the shape and numpy backends never
    import it) and the generators of the given CUDA devices (only once CUDA is initialized, as torch)."""

    def __init__(self, cuda_devices):
        from ..backends import numpy_kernels
        self.numpy = numpy_kernels.generator().bit_generator.state
        torch = sys.modules.get("torch")
        self.torch_cpu = torch.get_rng_state() if torch is not None else None
        self.cuda = []
        if torch is not None and cuda_devices and torch.cuda.is_initialized():
            self.cuda = [(d, torch.cuda.get_rng_state(d)) for d in cuda_devices]

    def restore(self) -> None:
        from ..backends import numpy_kernels
        numpy_kernels.generator().bit_generator.state = self.numpy
        torch = sys.modules.get("torch")
        if self.torch_cpu is not None:
            torch.set_rng_state(self.torch_cpu)
        for device, state in self.cuda:
            torch.cuda.set_rng_state(state, device)


@contextlib.contextmanager
def _replaying_rng(forward_states: _RngStates | None, cuda_devices):
    """Run the block with the generators as they were at forward, then put back the surrounding states
    (torch.random.fork_rng + set_rng_state); a no-op without preserve_rng_state."""
    if forward_states is None:
        yield
        return
    surrounding = _RngStates(cuda_devices)
    forward_states.restore()
    try:
        yield
    finally:
        surrounding.restore()


# -- the running backward pass ----------------------------------------------------------------------------


def _running_graph_task():
    """``(token, can_checkpoint)`` of the innermost backward pass running now, or None outside backward:
    the pass itself identifies it, and reentrant checkpointing refuses passes that run only towards
    given inputs (grad() / backward(inputs=))."""
    task = autograd.current_graph_task()
    if task is None:
        return None
    return task, not task.towards_inputs


# -- reentrant variant ------------------------------------------------------------------------------------


class CheckpointFunction(Function):
    """Reentrant checkpoint: forward runs the region under no_grad.  Saves: the tensor inputs.
    Backward recomputes the region with grad enabled and backpropagates through it."""

    saves = ("inputs",)
    node_name = "CheckpointFunctionBackward"      # torch's name for a Python Function's node

    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, *args):
        check_backward_validity(args)
        ctx.set_materialize_grads(True)      # a user-level Function in torch: undefined grads become zeros
        ctx.run_function = run_function
        ctx.cuda_devices = _cuda_devices(args)
        ctx.forward_rng = _RngStates(ctx.cuda_devices) if preserve_rng_state else None
        # non-tensor arguments stay on ctx; tensors are saved and put back in place in backward
        ctx.inputs = []
        ctx.tensor_indices = []
        tensor_inputs = []
        for i, arg in enumerate(args):
            if isinstance(arg, Tensor):
                tensor_inputs.append(arg)
                ctx.tensor_indices.append(i)
                ctx.inputs.append(None)
            else:
                ctx.inputs.append(arg)
        ctx.save_for_backward(*tensor_inputs)
        return run_function(*args)

    @staticmethod
    def backward(ctx, *grad_outputs):
        task = _running_graph_task()
        if task is not None and not task[1]:
            raise RuntimeError(_REENTRANT_WITH_INPUTS)
        inputs = list(ctx.inputs)
        tensors = ctx.saved_tensors
        for i, idx in enumerate(ctx.tensor_indices):
            inputs[idx] = tensors[i]
        with _replaying_rng(ctx.forward_rng, ctx.cuda_devices):
            detached_inputs = detach_variable(tuple(inputs))
            with autograd.enable_grad(), memory.phase(RECOMPUTE_PHASE):
                outputs = ctx.run_function(*detached_inputs)
        if isinstance(outputs, Tensor):
            outputs = (outputs,)
        outputs_with_grad, grads_of_outputs = [], []
        for i in range(len(outputs)):
            if isinstance(outputs[i], Tensor) and outputs[i].requires_grad:
                outputs_with_grad.append(outputs[i])
                grads_of_outputs.append(grad_outputs[i])
        if not outputs_with_grad:
            raise RuntimeError("none of output has requires_grad=True, this checkpoint() is not necessary")
        autograd.backward(outputs_with_grad, grads_of_outputs)
        grads = tuple(inp.grad if isinstance(inp, Tensor) else None for inp in detached_inputs)
        return (None, None) + grads


# -- non-reentrant variant ----------------------------------------------------------------------------------


class _Handle:
    """Key of one recomputed tensor for one backward pass; dropping it drops the tensor."""

    __slots__ = ("__weakref__",)


class _Holder:
    """What the forward's nodes save instead of a tensor: per backward pass, the handle of its
    recomputed value (None once unpacked)."""

    __slots__ = ("handles", "__weakref__")

    def __init__(self):
        self.handles: dict = {}


class _CheckpointInputs:
    """Stands for the node owning the saved region inputs (named in the version-counter error)."""

    @staticmethod
    def name() -> str:
        return "checkpoint"


class _StopRecomputation(BaseException):
    """Raised by the recomputation's pack hook once every needed tensor exists (early stop).  A
    BaseException (torch's is an Exception): it must cross the analyzer's interpreter, which turns
    every Exception raised by an op into an unresolved value and carries on."""


def _internal_assert(cond) -> None:
    if not cond:
        raise AssertionError("Something went unexpectedly wrong in activation checkpoint. Please report this bug "
                             "by filing an issue to PyTorch.")


def _default_metadata(x: Tensor) -> dict:
    return {"shape": x.shape, "dtype": x.dtype, "device": x.device}


_METADATA_FNS = {"default": _default_metadata, "none": lambda _: None}


class _CheckpointFrame:
    """One checkpointed region: its saved inputs, the holders its nodes saved (weakly: they die with
    the graph) and, per backward pass, the recomputed tensors."""

    def __init__(self, recompute_fn, early_stop: bool, metadata_fn):
        self.recompute_fn = recompute_fn
        self.saved_args: list = []
        self.weak_holders: list = []
        self.recomputed = defaultdict(weakref.WeakKeyDictionary)   # pass -> {handle: tensor}
        self.recomp_counter = defaultdict(int)                      # pass -> tensors saved by the recompute
        self.is_recomputed = defaultdict(bool)
        self.early_stop = early_stop
        self.metadata_fn = metadata_fn
        self.x_metadatas: list = []
        self.forward_completed = False
        self.ignore_saved_mismatch = False

    def save_inputs(self, *args) -> None:
        # SavedTensor: what torch's _make_saved_tensor makes (an enclosing checkpoint packs it too)
        self.saved_args = [SavedTensor(a, is_output=False, name="input") if isinstance(a, Tensor) else a
                           for a in args]
        # saved as a node saves (torch's saved-tensor hooks see them): the memory tracker counts them too
        trackers = memory.active_trackers()
        for saved in self.saved_args:
            if isinstance(saved, SavedTensor):
                kept = saved.tensor if saved.unpack_hook is None else saved.packed
                if isinstance(kept, Tensor):
                    for tr in trackers:
                        tr.on_saved("checkpoint", "input", kept)

    def get_inputs(self) -> list:
        return [a.unpack(_CheckpointInputs) if isinstance(a, SavedTensor) else a for a in self.saved_args]

    def check_recomputed_tensors_match(self, gid) -> None:
        if self.ignore_saved_mismatch:
            return
        if len(self.weak_holders) != self.recomp_counter[gid]:
            raise CheckpointError(
                "torch.utils.checkpoint: A different number of tensors was saved during the original forward "
                "and recomputation.\n"
                f"Number of tensors saved during forward: {len(self.weak_holders)}\n"
                f"Number of tensors saved during recomputation: {self.recomp_counter[gid]}.\n{_DEBUG_TIP}")
        mismatched = ""
        for idx, weak_holder in enumerate(self.weak_holders):
            holder = weak_holder()
            if holder is None:
                continue
            _internal_assert(gid in holder.handles)
            _internal_assert(holder.handles[gid] is not None)
            _internal_assert(holder.handles[gid] in self.recomputed[gid])
            saved_meta = self.x_metadatas[idx]
            recomputed_meta = self.metadata_fn(self.recomputed[gid][holder.handles[gid]])
            if saved_meta != recomputed_meta:
                mismatched += (f"tensor at position {idx}:\nsaved metadata: {saved_meta}\n"
                               f"recomputed metadata: {recomputed_meta}\n")
        if mismatched:
            raise CheckpointError(
                "torch.utils.checkpoint: Recomputed values for the following tensors have different metadata "
                f"than during the forward pass.\n{mismatched}.\n{_DEBUG_TIP}")


def _forget_pending_saves(saved: Tensor) -> None:
    """Called before the early-stop exception leaves ``Function.apply`` in the middle of saving: a node
    saving its own output still lists it in ``ctx._to_save`` (output -> node -> ctx -> output), a cycle
    that only the garbage collector would free, keeping the recomputed graph alive past the point where
    torch frees it.  The list is cleared here, as a completed save clears it."""
    node = saved.grad_fn
    ctx = getattr(node, "ctx", None)
    if ctx is not None and any(t is saved for t in ctx._to_save):
        ctx._to_save = ()


class _RecomputationHook(saved_tensors_hooks):
    """Active while a region is recomputed: each tensor the recomputed ops save is matched, in order,
    with the holder the original forward saved, and stored under this pass's handle."""

    def __init__(self, frame_ref, gid):
        def pack_hook(saved):
            x = _detached(saved) if saved.requires_grad else saved
            frame = frame_ref()
            _internal_assert(frame is not None)
            recomp_idx = frame.recomp_counter[gid]
            frame.recomp_counter[gid] += 1
            if recomp_idx >= len(frame.weak_holders):
                _internal_assert(not frame.early_stop)
                if not frame.forward_completed:
                    # a backward inside the region's forward with early stop off: extra saves are expected
                    frame.ignore_saved_mismatch = True
                    return x
                raise CheckpointError("torch.utils.checkpoint: trying to save more tensors during recomputation "
                                      f"than during the original forward pass.\n{_DEBUG_TIP}")
            holder = frame.weak_holders[recomp_idx]()
            if holder is not None:        # None: already consumed by a backward inside the forward
                _internal_assert(holder.handles.get(gid) is None)
                holder.handles[gid] = _Handle()
                frame.recomputed[gid][holder.handles[gid]] = x
            if frame.early_stop and frame.recomp_counter[gid] == len(frame.weak_holders):
                _forget_pending_saves(saved)
                raise _StopRecomputation
            return x

        super().__init__(pack_hook, lambda x: x)


class _CheckpointHook(saved_tensors_hooks):
    """Active during the region's forward: ops save holders; unpacking one recomputes the region once
    per backward pass and hands out (and forgets) the recomputed tensor."""

    def __init__(self, frame: _CheckpointFrame):
        def pack_hook(x):
            holder = _Holder()
            frame.weak_holders.append(weakref.ref(holder))
            if frame.metadata_fn is not None:
                with autograd.no_grad():
                    frame.x_metadatas.append(frame.metadata_fn(x))
            return holder

        def unpack_hook(holder):
            task = _running_graph_task()
            gid = task[0] if task is not None else object()     # outside backward: recompute every time
            if not frame.is_recomputed[gid]:
                args = frame.get_inputs()
                try:
                    with _RecomputationHook(weakref.ref(frame), gid), autograd.enable_grad(), \
                            memory.phase(RECOMPUTE_PHASE):
                        frame.recompute_fn(*args)
                except _StopRecomputation:
                    pass
                frame.is_recomputed[gid] = True
                frame.check_recomputed_tensors_match(gid)
            _internal_assert(gid in holder.handles)
            if holder.handles[gid] is None:
                raise CheckpointError(
                    "torch.utils.checkpoint: Unpack is being triggered for a tensor that was already unpacked "
                    "once. If you are calling ctx.saved_tensors in backward, make sure to do so only once. "
                    "Otherwise please open an issue with details on your use case.")
            _internal_assert(holder.handles[gid] in frame.recomputed[gid])
            ret = frame.recomputed[gid][holder.handles[gid]]
            holder.handles[gid] = None       # the handle dies, and with it the dictionary's reference
            return ret

        super().__init__(pack_hook, unpack_hook)


def _checkpoint_without_reentrant(fn, preserve_rng_state, context_fn, determinism_check, debug, early_stop,
                                  args, kwargs):
    if _checkpoint_debug_enabled if _checkpoint_debug_enabled is not None else debug:
        if context_fn is not noop_context_fn:
            raise ValueError("debug=True is incompatible with non-default context_fn")
        raise NotImplementedError("checkpoint(debug=True) is not modelled by the engine: torch's operator logs "
                                  "come from a TorchDispatchMode")
    if determinism_check not in _METADATA_FNS:
        raise ValueError(f"determinism_check should be one of {list(_METADATA_FNS)}, but got {determinism_check}")
    metadata_fn = _METADATA_FNS[determinism_check]
    forward_context, recompute_context = context_fn()
    cuda_devices = _cuda_devices(args)
    forward_rng = _RngStates(cuda_devices) if preserve_rng_state else None

    def recompute_fn(*inputs):
        with _replaying_rng(forward_rng, cuda_devices), recompute_context:
            fn(*inputs, **kwargs)

    frame = _CheckpointFrame(recompute_fn,
                             _enable_checkpoint_early_stop if _enable_checkpoint_early_stop is not None
                             else early_stop, metadata_fn)
    if not autograd.is_grad_enabled():
        return fn(*args, **kwargs)
    frame.save_inputs(*args)
    completed = False
    with _CheckpointHook(frame), forward_context:
        ret = fn(*args, **kwargs)
        completed = True
    if not completed:
        raise RuntimeError(_FORWARD_CONTEXT_SUPPRESSED)
    frame.forward_completed = True
    return ret


# -- public entry points -----------------------------------------------------------------------------------


def checkpoint(function, *args, use_reentrant: bool | None = None, context_fn=noop_context_fn,
               determinism_check: str = "default", debug: bool = False, early_stop: bool = True,
               preserve_rng_state: bool = True, **kwargs):
    """torch.utils.checkpoint.checkpoint: run ``function(*args, **kwargs)`` without keeping its
    intermediate activations; they are recomputed in backward.  ``use_reentrant`` omitted warns and
    means True (torch 2.13)."""
    if use_reentrant is None:
        warnings.warn(_USE_REENTRANT_WARNING, stacklevel=2)
        use_reentrant = True
    if kwargs and use_reentrant:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
    if use_reentrant:
        if context_fn is not noop_context_fn or debug is not False:
            raise ValueError("Passing `context_fn` or `debug` is only supported when use_reentrant=False.")
        return CheckpointFunction.apply(function, preserve_rng_state, *args)
    return _checkpoint_without_reentrant(function, preserve_rng_state, context_fn, determinism_check, debug,
                                         early_stop, args, kwargs)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):  # noqa: A002 - torch's name
    """torch.utils.checkpoint.checkpoint_sequential: split ``functions`` into ``segments`` chunks and
    checkpoint all but the last."""
    if use_reentrant is None:
        warnings.warn(_SEQUENTIAL_USE_REENTRANT_WARNING, stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))

    def run_function(start, end, functions):
        def forward(input):  # noqa: A002
            for j in range(start, end + 1):
                input = functions[j](input)
            return input
        return forward

    from ..nn import Sequential
    if isinstance(functions, Sequential):
        functions = list(functions.children())
    segment_size = len(functions) // segments
    end = -1          # the last segment runs without checkpoint (its activations are needed at once)
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run_function(start, end, functions), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run_function(end + 1, len(functions) - 1, functions)(input)
