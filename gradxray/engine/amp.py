"""Automatic mixed precision: ``autocast`` with torch's per-op policy and weight cast cache, and ``GradScaler``.

torch applies autocast in its dispatcher, at the op the user calls and before autograd records it, so the
casts it inserts are ordinary ``ToCopyBackward0`` nodes.  The engine does the same at its entry points:
``wrap_policy_entries`` replaces the entries named in the policy (``gx.<name>``, Tensor methods,
``gx.nn.functional.<name>``) by wrappers that cast the arguments and then call the op with the policy
suspended (torch excludes the autocast key while a listed op runs, so ops it calls internally are not
cast again; unlisted composite ops are not wrapped, and the listed ops they reach through an entry point
are).  The lists are torch's (CUDA from ``autocast_mode.h``, CPU as measured on torch's CPU autocast).
"""
from __future__ import annotations

import functools
import inspect
import types
import weakref
from collections import abc, defaultdict
from enum import Enum

from . import dtypes as _dt
from . import memory
from .tensor import Tensor

DEFAULT_DTYPES = {"cpu": _dt.bfloat16, "cuda": _dt.float16}
_CPU_SUPPORTED = (_dt.bfloat16, _dt.float16)

# per device: [enabled, dtype]; torch keeps them per device type, set even when a region disables
_state = {device_type: [False, dtype] for device_type, dtype in DEFAULT_DTYPES.items()}
_nesting = 0                  # regions entered and not yet exited, all devices together (torch's counter)
_cache_enabled = True
_cast_cache: dict = {}        # id(leaf) -> (weakref to the leaf, its cast copy)
_policy_suspended = 0         # > 0 while a listed op runs: the ops it calls internally are not cast again

BCE_BANNED = ("torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
              "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
              "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
              "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
              "safe to autocast.")


def _as_engine_dtype(dtype):
    """A gx dtype; torch dtypes (``torch.bfloat16``) are accepted by name for convenience."""
    if dtype is None or isinstance(dtype, _dt.dtype):
        return dtype
    return _dt.from_name(str(dtype).replace("torch.", ""))


def _check_device_type(device_type) -> str:
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if device_type not in _state:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return device_type


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """torch.is_autocast_enabled: whether autocast is on for ``device_type`` (CUDA when not given)."""
    return _state[_check_device_type(device_type)][0]


def get_autocast_dtype(device_type: str):
    """torch.get_autocast_dtype: the lower-precision dtype of ``device_type``'s current region (or default)."""
    return _state[_check_device_type(device_type)][1]


def is_autocast_cache_enabled() -> bool:
    return _cache_enabled


def clear_autocast_cache() -> None:
    _cast_cache.clear()


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None), a context manager and a
    decorator.  Regions nest: an inner one overrides the outer one for its device and restores it on exit;
    the weight cast cache is dropped when the outermost region exits."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        self.device = _check_device_type(device_type)
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else _as_engine_dtype(dtype)
        self._cache_enabled = _cache_enabled if cache_enabled is None else bool(cache_enabled)
        if enabled and self.device == "cpu" and self.fast_dtype not in _CPU_SUPPORTED:
            import warnings
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtypes of torch.bfloat16, torch.float16 currently.",
                          stacklevel=2)
            enabled = False
        self._enabled = bool(enabled)

    def __enter__(self):
        global _nesting, _cache_enabled
        self.prev_cache_enabled = _cache_enabled
        self.prev = list(_state[self.device])
        _state[self.device] = [self._enabled, self.fast_dtype]
        _nesting += 1
        _cache_enabled = self._cache_enabled
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        global _nesting, _cache_enabled
        _nesting -= 1
        if _nesting == 0:
            _cast_cache.clear()
        _state[self.device] = self.prev
        _cache_enabled = self.prev_cache_enabled
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. "
                            "Did you mean to use autocast as a context manager? For example:\n"
                            "    with torch.autocast(device_type=...):\n"
                            "        output = model(input)")

        @functools.wraps(func)
        def decorated(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return func(*args, **kwargs)

        return decorated


# -- casting ---------------------------------------------------------------------------------------

def _eligible(x, device_type: str) -> bool:
    """torch's is_eligible: a floating tensor of the region's device, never float64."""
    return (isinstance(x, Tensor) and x.device.type == device_type and x.dtype.is_floating_point
            and x.dtype is not _dt.float64)


def _cached_cast(x, dtype, device_type: str):
    """torch's cached_cast: eligible tensors become ``dtype`` (a recorded ToCopy).  A leaf that requires grad
    (a parameter) cast from float32 to the region's lower precision is cast once and the copy reused until
    the outermost region exits; everything else is cast on every use."""
    if isinstance(x, (list, tuple)):
        return type(x)(_cached_cast(v, dtype, device_type) for v in x)
    if not _eligible(x, device_type) or x.dtype is dtype:
        return x
    from .ops.misc import to_dtype
    cacheable = (_cache_enabled and dtype is _state[device_type][1] and x.dtype is _dt.float32
                 and x.requires_grad and x.is_leaf and x._base is None)
    if not cacheable:
        return to_dtype(x, dtype)
    # keyed by the leaf alone, as torch keys it: a nested region of another lower dtype on the same device
    # gets the copy cached by the outer one
    hit = _cast_cache.get(id(x))
    if hit is not None and hit[0]() is x:
        return hit[1]
    cast = to_dtype(x, dtype)
    _cast_cache[id(x)] = (weakref.ref(x), cast)
    return cast


def _tensors(args, kwargs):
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (v for v in a if isinstance(v, Tensor))


def _region_device(args, kwargs):
    """The device whose autocast applies to this call (CUDA tensors dispatch to CUDA's), or None."""
    types_seen = {t.device.type for t in _tensors(args, kwargs)}
    for device_type in ("cuda", "cpu"):
        if device_type in types_seen and _state[device_type][0]:
            return device_type
    return None


def _cast_all(args, kwargs, dtype, device_type):
    return ([_cached_cast(a, dtype, device_type) for a in args],
            {k: _cached_cast(v, dtype, device_type) for k, v in kwargs.items()})


# -- policies (each: rule(fn, args, kwargs, device_type) -> result) ---------------------------------

def _lower_precision(fn, args, kwargs, device_type):
    args, kwargs = _cast_all(args, kwargs, _state[device_type][1], device_type)
    return fn(*args, **kwargs)


def _fp32(fn, args, kwargs, device_type):
    args, kwargs = _cast_all(args, kwargs, _dt.float32, device_type)
    return fn(*args, **kwargs)


def _promote(fn, args, kwargs, device_type):
    """Run in the widest floating type among the eligible arguments (float32 if any is float32)."""
    eligible = [t for t in _tensors(args, kwargs) if _eligible(t, device_type)]
    widest = _dt.float32 if any(t.dtype is _dt.float32 for t in eligible) else _state[device_type][1]
    args, kwargs = _cast_all(args, kwargs, widest, device_type)
    return fn(*args, **kwargs)


def _banned(fn, args, kwargs, device_type):
    raise RuntimeError(BCE_BANNED)


@functools.lru_cache(maxsize=None)
def _signature(fn):
    return inspect.signature(fn)


def _bind(fn, args, kwargs):
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


def _fp32_set_opt_dtype(fn, args, kwargs, device_type):
    """Ops with an output ``dtype`` argument run with dtype=float32 unless the caller gave one (and only
    when the first argument is eligible: torch leaves integer inputs to their own promotion)."""
    bound = _bind(fn, args, kwargs)
    first = next(iter(bound.arguments.values()))
    if _eligible(first, device_type) and bound.arguments.get("dtype") is None:
        bound.arguments["dtype"] = _dt.float32
    return fn(*bound.args, **bound.kwargs)


def _fp32_when_mode(modes, negate=False):
    """fp32 for the calls whose ``mode`` argument is (or, negated, is not) one of ``modes``."""
    def rule(fn, args, kwargs, device_type):
        mode = _bind(fn, args, kwargs).arguments.get("mode")
        if (mode in modes) != negate:
            return _fp32(fn, args, kwargs, device_type)
        return fn(*args, **kwargs)
    return rule


@functools.lru_cache(maxsize=None)
def _half_to_float_softmax(log: bool):
    """CUDA's softmax(x_half, dtype=float32): ``_softmax(x, dim, half_to_float=True)`` gives a float32
    result without a cast node; its backward returns a half gradient (derivatives.yaml passes
    ``self.scalar_type()`` to the backward kernel)."""
    from .ops import nn as nn_ops
    from .tensor import wrap_dim
    base = nn_ops.LogSoftmax if log else nn_ops.Softmax

    class HalfToFloat(base):
        node_name = "LogSoftmaxBackward0" if log else "SoftmaxBackward0"
        __doc__ = f"y = {'log_' if log else ''}softmax(x, dim) in float32 from a half x.  Saves: result."

        @classmethod
        def forward(cls, ctx, x, dim):
            from .ops._kernel import kernel
            dim = wrap_dim(dim, x.dim())
            ctx.dim, ctx.in_dtype = dim, x.dtype
            y = kernel(cls.forward_kernel, (x.shape, _dt.float32), x, dim, True)
            ctx.save_for_backward(y)
            return y

    HalfToFloat.__name__ = f"HalfToFloat{base.__name__}"
    return HalfToFloat


def _softmax_family(log: bool):
    def rule(fn, args, kwargs, device_type):
        bound = _bind(fn, args, kwargs)
        x, dim, dtype = bound.arguments["input"], bound.arguments.get("dim"), bound.arguments.get("dtype")
        if not _eligible(x, device_type):
            return fn(*args, **kwargs)
        dtype = _dt.float32 if dtype is None else dtype
        if device_type == "cuda" and x.dtype is _dt.float16 and dtype is _dt.float32:
            return _half_to_float_softmax(log).apply(x, -1 if dim is None else dim)
        bound.arguments["dtype"] = dtype
        return fn(*bound.args, **bound.kwargs)
    return rule


def _cuda_cross_entropy(fn, args, kwargs, device_type):
    """CUDA does not list cross_entropy: its decomposition is autocast op by op.  For class-index targets
    it is ``nll_loss(log_softmax(x, class_dim, x.dtype))``: the log-softmax in the input's dtype (the dtype
    is given, so the fp32_set_opt_dtype policy keeps it), then nll_loss under the fp32 policy."""
    from .ops import losses
    from .ops.nn import LogSoftmax
    bound = _bind(fn, args, kwargs)
    a = bound.arguments
    x, target = a["input"], a["target"]
    same_shape = tuple(target.shape) == tuple(x.shape) and target.dtype.is_floating_point
    if same_shape or a.get("label_smoothing", 0.0) > 0.0:
        raise NotImplementedError("cross_entropy with class-probability targets or label_smoothing under CUDA "
                                  "autocast is not modelled yet")
    logp = LogSoftmax.apply(x, 0 if x.dim() == 1 else 1)
    nll_args, nll_kwargs = _cast_all([logp, target, a.get("weight")], {}, _dt.float32, device_type)
    return losses.nll_loss(*nll_args, size_average=a.get("size_average"), ignore_index=a.get("ignore_index", -100),
                           reduce=a.get("reduce"), reduction=a.get("reduction", "mean"))


_LOSSES = ("nll_loss", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss",
           "binary_cross_entropy_with_logits", "margin_ranking_loss", "poisson_nll_loss", "cosine_embedding_loss",
           "hinge_embedding_loss", "soft_margin_loss", "multilabel_margin_loss", "triplet_margin_loss",
           "multi_margin_loss", "multilabel_soft_margin_loss")

_CUDA_LOWER = ("conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "prelu", "addmm", "addmv", "addr", "matmul", "einsum", "mm", "mv",
               "linalg_vecdot", "linear", "addbmm", "baddbmm", "bmm", "chain_matmul", "linalg_multi_dot",
               "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "scaled_dot_product_attention")
_CUDA_FP32 = ("acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
              "rsqrt", "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm", "cosine_similarity", "dist",
              "pdist", "cdist", "renorm", "logsumexp") + _LOSSES
_CUDA_SET_OPT_DTYPE = ("prod", "cumprod", "cumsum", "linalg_vector_norm", "linalg_matrix_norm", "sum",
                       "norm")   # torch.norm reaches linalg_vector_norm (and its own dtype-appending overloads)
_CUDA_PROMOTE = ("addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sample", "index_put",
                 "tensordot", "scatter_add")

# CPU: measured under torch's CPU autocast (bf16): no promote list, and none of CUDA's fp32 math.
_CPU_LOWER = ("conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "mm", "bmm", "baddbmm", "addmm", "addbmm", "linear", "matmul", "einsum",
              "tensordot", "linalg_vecdot", "prelu", "scaled_dot_product_attention")
_CPU_FP32 = ("prod", "cdist", "quantile", "nanquantile", "stft", "max_pool3d", "avg_pool3d",
             "adaptive_avg_pool3d", "adaptive_max_pool3d", "embedding_bag", "cross_entropy",
             "binary_cross_entropy", "ctc_loss") + _LOSSES

POLICIES: dict[str, dict] = {
    "cuda": {**{n: _lower_precision for n in _CUDA_LOWER}, **{n: _fp32 for n in _CUDA_FP32},
             **{n: _fp32_set_opt_dtype for n in _CUDA_SET_OPT_DTYPE}, **{n: _promote for n in _CUDA_PROMOTE},
             "softmax": _softmax_family(False), "log_softmax": _softmax_family(True),
             "interpolate": _fp32_when_mode(("area",), negate=True),     # area is adaptive_avg_pool: unlisted
             "binary_cross_entropy": _banned, "cross_entropy": _cuda_cross_entropy},
    "cpu": {**{n: _lower_precision for n in _CPU_LOWER}, **{n: _fp32 for n in _CPU_FP32},
            "pad": _fp32_when_mode(("reflect", "replicate"))},     # the reflection_/replication_pad kernels
}

# Python entry names that reach an op of another name
_ALIASES = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__pow__": "pow", "__rpow__": "pow"}
_NAMESPACES = {"linalg": "linalg_"}      # torch.linalg.<name> is the op linalg_<name>
_POLICY_OPS = set().union(*POLICIES.values())


def _policy_entry(fn, op: str):
    @functools.wraps(fn)
    def autocast_entry(*args, **kwargs):
        global _policy_suspended
        # the engine's backward formulas are internal ops; they run in the dtypes forward chose
        if _policy_suspended or not _nesting or memory.current_phase() == "backward":
            return fn(*args, **kwargs)
        device_type = _region_device(args, kwargs)
        rule = POLICIES[device_type].get(op) if device_type is not None else None
        if rule is None:
            return fn(*args, **kwargs)
        _policy_suspended += 1
        try:
            return rule(fn, args, kwargs, device_type)
        finally:
            _policy_suspended -= 1

    autocast_entry.autocast_op = op
    return autocast_entry


def wrap_policy_entries(*tables) -> None:
    """Replace, in each name -> function table (a registry dict or a module's ``globals()``), the entries
    that autocast's policy names by policy-applying wrappers (idempotent)."""
    for table in tables:
        for name, fn in list(table.items()):
            if name in _NAMESPACES and isinstance(fn, types.ModuleType):
                for attr, member in list(vars(fn).items()):
                    op = _NAMESPACES[name] + attr
                    if op in _POLICY_OPS and callable(member) and not hasattr(member, "autocast_op"):
                        setattr(fn, attr, _policy_entry(member, op))
                continue
            op = _ALIASES.get(name, name)
            if op in _POLICY_OPS and callable(fn) and not hasattr(fn, "autocast_op") and not isinstance(fn, type):
                table[name] = _policy_entry(fn, op)


# -- GradScaler ------------------------------------------------------------------------------------

class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> dict:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _backend_name(t: Tensor) -> str:
    from . import backends
    return backends.data_kind(t) or "shape"


def _full_like_backend(ref: Tensor, value, dtype) -> Tensor:
    """A scalar tensor on ``ref``'s device and backend (an engine allocation the tracker sees)."""
    from . import backends
    from .creation import full
    with backends.backend(_backend_name(ref)):
        return full((), value, dtype=dtype, device=ref.device)


def _non_finite_check_and_unscale_(grads, found_inf: Tensor, inv_scale: Tensor) -> None:
    """torch._amp_foreach_non_finite_check_and_unscale_: multiply every grad by inv_scale in place and set
    found_inf to 1 if any grad holds an inf or NaN.  The torch kernel on torch data; engine ops elsewhere
    (data-less tensors only get the in-place multiply: finiteness is unknown without data)."""
    from . import backends
    kind = backends.data_kind(*grads, found_inf, inv_scale)
    if kind == "torch":
        backends.aten("_amp_foreach_non_finite_check_and_unscale_", list(grads), found_inf, inv_scale)
        for g in grads:
            g._storage.version += 1
        return
    from .ops import TORCH_FUNCTIONS as torch_fns
    for g in grads:
        if kind is not None and bool(torch_fns["logical_not"](torch_fns["isfinite"](g)).any()):
            found_inf.fill_(1.0)
        g.mul_(inv_scale)


def _update_scale_(scale: Tensor, growth_tracker: Tensor, found_inf: Tensor, growth_factor: float,
                   backoff_factor: float, growth_interval: int) -> None:
    """torch._amp_update_scale_: back off on an inf, grow after ``growth_interval`` clean steps in a row."""
    from . import backends
    kind = backends.data_kind(scale, growth_tracker, found_inf)
    if kind == "torch":
        backends.aten("_amp_update_scale_", scale, growth_tracker, found_inf, growth_factor, backoff_factor,
                      growth_interval)
        return
    if kind is None:        # no data: the step's outcome is unknown; the scale tensors keep their storage
        return
    if found_inf.item():
        scale.fill_(_dt_float32_round(scale.item() * backoff_factor))
        growth_tracker.fill_(0)
        return
    successful = growth_tracker.item() + 1
    if successful == growth_interval:
        new_scale = _dt_float32_round(scale.item() * growth_factor)
        if new_scale not in (float("inf"), float("-inf")) and new_scale == new_scale:
            scale.fill_(new_scale)
        growth_tracker.fill_(0)
    else:
        growth_tracker.fill_(successful)


def _dt_float32_round(value: float) -> float:
    """``value`` rounded to float32, as the kernel stores it (overflowing to inf)."""
    import numpy as np
    with np.errstate(over="ignore"):
        return float(np.float32(value))


class GradScaler:
    """torch.amp.GradScaler on engine tensors: ``scale``, ``unscale_``, ``step`` (skipped when a gradient is
    inf/NaN), ``update``, ``get_scale``, ``state_dict`` / ``load_state_dict``.  The scale and growth tracker
    are engine tensors created lazily on the first scaled output's device and backend.  On the shape
    backend (no data) steps are never skipped and the scale never changes: finiteness needs data."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = device
        self._enabled = enabled
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale: Tensor | None = None
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker: Tensor | None = None
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _check_scale_growth_tracker(self, funcname: str):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)
        return self._scale, self._growth_tracker

    def _lazy_init_scale_growth_tracker(self, like: Tensor) -> None:
        self._scale = _full_like_backend(like, self._init_scale, _dt.float32)
        self._growth_tracker = _full_like_backend(like, self._init_growth_tracker, _dt.int32)

    def scale(self, outputs):
        """outputs * scale (recorded: the backward pass runs on scaled gradients)."""
        if not self._enabled:
            return outputs

        def apply_scale(val):
            if isinstance(val, Tensor):
                if self._scale is None:
                    self._lazy_init_scale_growth_tracker(val)
                return val * self._scale
            if isinstance(val, abc.Iterable):
                scaled = map(apply_scale, val)
                return type(val)(scaled) if isinstance(val, (list, tuple)) else scaled
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply_scale(outputs)

    def _unscale_grads_(self, optimizer, inv_scale: Tensor, found_inf: Tensor, allow_fp16: bool) -> dict:
        from .autograd import no_grad
        per_device_and_dtype = defaultdict(lambda: defaultdict(list))
        with no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    if not allow_fp16 and param.grad.dtype is _dt.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    per_device_and_dtype[param.grad.device][param.grad.dtype].append(param.grad)
            for dev, per_dtype in per_device_and_dtype.items():
                if dev != found_inf.device:
                    raise NotImplementedError("GradScaler with gradients on several devices is not supported yet")
                for grads in per_dtype.values():
                    _non_finite_check_and_unscale_(grads, found_inf, inv_scale)
        return {found_inf.device: found_inf}

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale in place, recording whether any is inf/NaN."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        from .autograd import no_grad
        with no_grad():
            inv_scale = self._scale.double().reciprocal().float()
        found_inf = _full_like_backend(self._scale, 0.0, _dt.float32)
        optimizer_state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, False)
        optimizer_state["stage"] = OptState.UNSCALED

    def _maybe_opt_step(self, optimizer, optimizer_state, *args, **kwargs):
        found = optimizer_state["found_inf_per_device"].values()
        if not any(f.has_data and f.item() for f in found):
            return optimizer.step(*args, **kwargs)
        return None

    def step(self, optimizer, *args, **kwargs):
        """Unscale (if not done yet) and run ``optimizer.step()`` unless a gradient was inf/NaN."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if optimizer_state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(optimizer_state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = self._maybe_opt_step(optimizer, optimizer_state, *args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Back the scale off after a skipped step, grow it after ``growth_interval`` clean ones."""
        if not self._enabled:
            return
        scale, growth_tracker = self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, float):
                scale.fill_(new_scale)
            else:
                reason = ("new_scale should be a float or a 1-element torch.cuda.FloatTensor or "
                          "torch.FloatTensor with requires_grad=False.")
                if new_scale.device.type != self._device or new_scale.numel() != 1 or new_scale.requires_grad:
                    raise AssertionError(reason)
                scale.copy_(new_scale)
        else:
            found_infs = [found_inf for state in self._per_optimizer_states.values()
                          for found_inf in state["found_inf_per_device"].values()]
            if len(found_infs) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            found_inf_combined = found_infs[0]
            for other in found_infs[1:]:
                found_inf_combined += other
            _update_scale_(scale, growth_tracker, found_inf_combined, self._growth_factor,
                           self._backoff_factor, self._growth_interval)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(state_dict["_growth_tracker"])
