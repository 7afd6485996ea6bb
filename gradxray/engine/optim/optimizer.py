"""torch.optim.Optimizer on the engine: parameter groups, per-parameter state, zero_grad, state dicts.

An optimizer step runs the same aten kernels, in the same order, as torch's implementation for the
same arguments, so the memory it allocates (state tensors and temporaries) is what torch allocates.
Nothing here records an autograd graph: steps run under ``no_grad`` and call kernels directly.

Memory categories: state tensors (``exp_avg``, ``momentum_buffer``, ``step`` ...) are "optimizer";
temporaries that live only during ``step()`` are "other".
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from itertools import chain

from .. import backends, memory
from .. import dtypes as _dt
from ..creation import _filled, _like
from ..ops._kernel import inplace, kernel, strides_like
from ..tensor import Parameter, Tensor

STATE = "optimizer"
TEMPORARY = "other"

# torch._utils._get_foreach_kernels_supported_devices(): where torch defaults to the foreach path
FOREACH_DEVICES = ("cuda", "xpu")


class _Required:
    """The default of an option a parameter group must set itself (torch.optim.optimizer.required)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


# -- kernels for optimizer steps ------------------------------------------------------------------

def track_as(t: Tensor, category: str) -> Tensor:
    """Count ``t``'s storage under ``category`` in every tracker that sees it."""
    st = t._storage
    st.category = category
    for tracker in st._trackers:
        alloc = tracker.live.get(st.uid)
        if alloc is not None:
            alloc.category = category
    return t


def _meta(like: Tensor):
    return like.shape, like.dtype, strides_like(like.shape, like)


def fresh(aten_name: str, like: Tensor, *args, category: str = TEMPORARY, **kwargs) -> Tensor:
    """An out-of-place kernel whose result has ``like``'s shape, dtype and memory layout."""
    return track_as(kernel(aten_name, _meta(like), *args, **kwargs), category)


def update(aten_name: str, target: Tensor, *args, **kwargs) -> Tensor:
    """An in-place kernel on ``target``: no allocation, and (as in torch, even under no_grad) a
    version-counter bump, so a graph that saved ``target`` refuses to use it afterwards."""
    inplace(aten_name, target, *args, **kwargs)
    target._storage.version += 1
    return target


def foreach_fresh(aten_name: str, likes: list[Tensor], *args, **kwargs) -> list[Tensor]:
    """An out-of-place ``_foreach_*`` kernel: one new tensor per element of ``likes``."""
    outs = kernel(aten_name, [_meta(t) for t in likes], *args, **kwargs)
    return [track_as(t, TEMPORARY) for t in outs]


def foreach_update(aten_name: str, targets: list[Tensor], *args, **kwargs) -> None:
    """An in-place ``_foreach_*_`` kernel on every tensor of ``targets``."""
    if backends.any_data(targets):
        backends.aten(aten_name, targets, *args, **kwargs)
    for t in targets:
        t._storage.version += 1


def scalar_tensor(ref: Tensor, value: float, dtype, category: str) -> Tensor:
    """``torch.tensor(value, dtype=dtype, device="cpu")``, on ``ref``'s backend."""
    return track_as(_like(_filled("full", value), ref, dtype=dtype, device="cpu", shape=()), category)


def scalar_dtype():
    """torch.optim.optimizer._get_scalar_dtype(): the dtype of ``step`` tensors."""
    return _dt.float64 if _dt.default_float is _dt.float64 else _dt.float32


def step_value(step_t: Tensor) -> float:
    """The step count held by ``step_t`` (torch's ``_get_value``).

    Without data (shape backend) no kernel runs, so the bias corrections computed from this value
    are never used; 1.0 keeps that scalar arithmetic defined."""
    return float(step_t.item()) if step_t.has_data else 1.0


def group_by_device_and_dtype(tensorlists: list[list], with_indices: bool = False) -> dict:
    """torch's ``_group_tensors_by_device_and_dtype``: ``{(device, dtype): (lists, indices)}``, keyed by
    the first list's tensors, groups in order of first appearance."""
    grouped: dict = {}
    for i, t in enumerate(tensorlists[0]):
        key = (t.device, t.dtype)
        if key not in grouped:
            grouped[key] = ([[] for _ in tensorlists], [])
        lists, indices = grouped[key]
        for lst, src in zip(lists, tensorlists):
            if src:
                lst.append(src[i])
        indices.append(i)
    return grouped


def default_to_foreach(params: list[Tensor]) -> bool:
    """torch's ``_default_to_fused_or_foreach`` (fused never chosen by default): the foreach path
    when every parameter is a plain tensor on an accelerator, the for-loop path on CPU."""
    return all(p is None or (type(p) in (Tensor, Parameter) and p.device.type in FOREACH_DEVICES) for p in params)


def check_modelled(fused, capturable: bool, differentiable: bool) -> None:
    for name, value in (("fused", fused), ("capturable", capturable), ("differentiable", differentiable)):
        if value:
            raise NotImplementedError(f"{name}=True is not modelled by the engine's optimizers")


# -- the base class ---------------------------------------------------------------------------------

class Optimizer:
    """Base class of optimizers (torch.optim.Optimizer): ``param_groups``, ``state``, ``step()``."""

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__module__}.{type(params).__name__}")
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self) -> dict:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)

        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):            # from named_parameters()
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names

        for param in tensors:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(param).__module__}.{type(param).__name__}")
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)

        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (``set_to_none``) or zero them in place (one ``_foreach_zero_`` per
        device and dtype when the optimizer was built with ``foreach=True``)."""
        foreach = self.defaults.get("foreach", False) or self.defaults.get("fused", False)
        per_device_and_dtype: dict = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                if foreach:
                    per_device_and_dtype[(p.grad.device, p.grad.dtype)].append(p.grad)
                else:
                    update("zero_", p.grad)
        for grads in per_device_and_dtype.values():
            foreach_update("_foreach_zero_", grads)

    def step(self, closure=None):
        raise NotImplementedError

    def _closure_loss(self, closure):
        from ..autograd import enable_grad
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- state dicts ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {param index: {name: tensor}}, "param_groups": [options + param indices]}``;
        the state tensors are the optimizer's own (not copies), as in torch."""
        param_mappings: dict[int, int] = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    @staticmethod
    def _cast_state_value(param, value, key=None):
        """A loaded state tensor follows its parameter's dtype (``step`` keeps its own); a tensor already
        of that dtype is taken as is, without a copy (torch's ``Tensor.to``)."""
        if key == "step" or not param.is_floating_point():
            return value
        return value.to(dtype=param.dtype)

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, key=None):
            if isinstance(value, Tensor):
                return Optimizer._cast_state_value(param, value, key)
            if isinstance(value, dict):
                return {k: cast(param, v, key=k) for k, v in value.items()}
            if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
                return type(value)(cast(param, v) for v in value)
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                state[id_map[k]] = cast(id_map[k], v)
            else:
                state[k] = v

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})


def optimizer_phase():
    """The memory phase a step runs in."""
    return memory.phase("optimizer")
