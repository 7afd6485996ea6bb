"""Engine ops (one Function class per op, in the family modules) and the Tensor methods built on them.

This package exports the functional entry points (``add``, ``linear``, ``reshape`` ...).  A family
module may declare ``TENSOR_METHODS`` (installed on Tensor), ``TORCH_FUNCTIONS`` (``gx.<name>``,
torch's namespace) and ``FUNCTIONAL`` (``gx.nn.functional.<name>``); a name registered twice is an
error, so families never shadow each other silently."""
from __future__ import annotations

from .. import dtypes as _dt
from ..creation import ones_like  # noqa: F401  (the implicit gradient of backward())
from ..tensor import Tensor, device as _device
from .linalg import addmm, baddbmm, bmm, dot, einsum, linear, matmul, mm, mv  # noqa: F401
from .misc import clone_like_param, to_copy, to_dtype  # noqa: F401
from .pointwise import AddInplace, MulInplace, add, div, mul, neg, relu, sub  # noqa: F401
from .reduce import mean, sum  # noqa: F401
from .views import (Clone, cat, chunk, contiguous, expand, flatten, getitem, narrow, permute,  # noqa: F401
                    reshape, split, squeeze, sum_to, t, transpose, unsqueeze, view_)


def _to(self, *args, **kwargs):
    """Tensor.to(dtype) / to(device[, dtype]) / to(other) with torch's argument forms."""
    dtype, device = kwargs.get("dtype"), kwargs.get("device")
    for a in args:
        if isinstance(a, _dt.dtype):
            dtype = a
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, (str, _device)):
            device = a
        elif isinstance(a, bool) or a is None:      # non_blocking / copy given positionally
            continue
        else:
            raise TypeError(f"to() received an invalid combination of arguments - got ({type(a).__name__}, ...)")
    if dtype is not None and not isinstance(dtype, _dt.dtype):
        raise TypeError(f"to(): dtype must be a gradxray dtype, not {type(dtype).__name__}")
    if device is not None and _device(device).type == "meta":
        device = None            # the shape backend is device-less already
    return to_copy(self, dtype, device)


# torch's legacy tensor type names (`Tensor.type()`), by dtype name
_LEGACY_TYPES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                 "bfloat16": "BFloat16Tensor", "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
                 "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


def _type(self, dtype=None, non_blocking=False, **kwargs):
    """Tensor.type(): the legacy type name (``"torch.FloatTensor"``, ``"torch.cuda.HalfTensor"``); with a
    dtype or such a name, the tensor converted (itself when it has that type already), as ``to`` does."""
    if dtype is None:
        prefix = "torch.cuda." if self.device.type == "cuda" else "torch."
        return prefix + _LEGACY_TYPES[str(self.dtype).rsplit(".", 1)[-1]]
    if isinstance(dtype, str):
        module, _, name = dtype.rpartition(".")
        by_name = {v: k for k, v in _LEGACY_TYPES.items()}
        if module not in ("torch", "torch.cuda") or name not in by_name:
            raise ValueError(f"invalid type: '{dtype}'")
        return to_copy(self, getattr(_dt, by_name[name]), "cuda" if module == "torch.cuda" else "cpu")
    if not isinstance(dtype, _dt.dtype):
        raise TypeError(f"type() received an invalid dtype: {type(dtype).__name__}")
    return to_copy(self, dtype)


_METHODS = {
    "__add__": lambda a, b: add(a, b),
    "__radd__": lambda a, b: add(a, b),
    "__sub__": lambda a, b: sub(a, b),
    "__rsub__": lambda a, b: sub(b, a),
    "__mul__": lambda a, b: mul(a, b),
    "__rmul__": lambda a, b: mul(a, b),
    "__truediv__": lambda a, b: div(a, b),
    "__rtruediv__": lambda a, b: div(b, a),
    "__neg__": lambda a: neg(a),
    "__matmul__": lambda a, b: matmul(a, b),
    "__iadd__": lambda a, b: AddInplace.apply(a, b),
    "__imul__": lambda a, b: MulInplace.apply(a, b),
    "__getitem__": lambda a, i: getitem(a, i),
    "add": lambda a, b, alpha=1: add(a, b, alpha),
    "add_": lambda a, b, alpha=1: AddInplace.apply(a, b, alpha),
    "mul": lambda a, b: mul(a, b),
    "mul_": lambda a, b: MulInplace.apply(a, b),
    "sub": lambda a, b, alpha=1: sub(a, b, alpha),
    "div": lambda a, b, *, rounding_mode=None: div(a, b, rounding_mode=rounding_mode),
    "neg": lambda a: neg(a),
    "relu": lambda a: relu(a),
    "relu_": lambda a: relu(a, inplace=True),
    "matmul": lambda a, b: matmul(a, b),
    "mm": lambda a, b: mm(a, b),
    "bmm": lambda a, b: bmm(a, b),
    "mv": lambda a, b: mv(a, b),
    "dot": lambda a, b: dot(a, b),
    "baddbmm": lambda a, b1, b2, *, beta=1, alpha=1: baddbmm(a, b1, b2, beta=beta, alpha=alpha),
    "__rmatmul__": lambda a, b: matmul(b, a),
    "sum": lambda a, dim=None, keepdim=False, dtype=None: sum(a, dim, keepdim, dtype),
    "mean": lambda a, dim=None, keepdim=False, dtype=None: mean(a, dim, keepdim, dtype),
    "view": lambda a, *shape: view_(a, *shape),
    "reshape": lambda a, *shape: reshape(a, *shape),
    "transpose": lambda a, d0, d1: transpose(a, d0, d1),
    "t": lambda a: t(a),
    "permute": lambda a, *dims: permute(a, *dims),
    "expand": lambda a, *shape: expand(a, *shape),
    "unsqueeze": lambda a, d: unsqueeze(a, d),
    "squeeze": lambda a, d=None: squeeze(a, d),
    "flatten": lambda a, start_dim=0, end_dim=-1: flatten(a, start_dim, end_dim),
    "split": lambda a, size, dim=0: split(a, size, dim),
    "chunk": lambda a, chunks, dim=0: chunk(a, chunks, dim),
    "contiguous": lambda a, memory_format=None: contiguous(a),
    "clone": lambda a, memory_format=None: Clone.apply(a),
    "narrow": lambda a, dim, start, length: narrow(a, dim, start, length),
    "to": _to,
    "type": _type,
    "cuda": lambda a, device=None, non_blocking=False: to_copy(a, None, f"cuda:{device}" if isinstance(device, int)
                                                               else (device or "cuda")),
    "cpu": lambda a: to_copy(a, None, "cpu"),
    "float": lambda a: _to(a, _dt.float32),
    "double": lambda a: _to(a, _dt.float64),
    "half": lambda a: _to(a, _dt.float16),
    "bfloat16": lambda a: _to(a, _dt.bfloat16),
    "long": lambda a: _to(a, _dt.int64),
    "int": lambda a: _to(a, _dt.int32),
    "bool": lambda a: _to(a, _dt.bool_),
    "type_as": lambda a, b: _to(a, b.dtype),
}


@property
def _T(self):
    return permute(self, list(reversed(range(self.dim()))))


from . import activations, composites, conv_pool, elementwise, indexing, losses, norms, reduce, sorting  # noqa: E402
from .. import creation  # noqa: E402  (Tensor.new_*, the in-place random initialisers)

FAMILIES = (elementwise, activations, losses, indexing, conv_pool, norms, reduce, sorting, composites, creation)


def _merged(attr: str, base: dict) -> dict:
    merged = dict(base)
    for family in FAMILIES:
        for name, fn in getattr(family, attr, {}).items():
            if name in merged:
                raise RuntimeError(f"{family.__name__}.{attr} registers {name!r}, which is already registered")
            merged[name] = fn
    return merged


TENSOR_METHODS = _merged("TENSOR_METHODS", _METHODS)
TORCH_FUNCTIONS = _merged("TORCH_FUNCTIONS", {})
FUNCTIONAL = _merged("FUNCTIONAL", {})
from ..amp import wrap_policy_entries  # noqa: E402  (autocast's per-op policy, at the entries users call)
wrap_policy_entries(TENSOR_METHODS, TORCH_FUNCTIONS, FUNCTIONAL)

for _name, _fn in TENSOR_METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.T = _T
Tensor.mT = property(lambda self: transpose(self, -2, -1))
