"""Engine ops (one Function class per op) and the Tensor methods built on them."""
from __future__ import annotations

from ..creation import ones_like, zeros_like, full_like  # noqa: F401  (used by autograd)
from ..tensor import Tensor
from .linalg import Addmm, Mm, addmm, linear, matmul, mm  # noqa: F401
from .misc import ToCopy, clone_like_param, to_dtype  # noqa: F401
from .pointwise import (Add, AddInplace, Div, Gelu, Mul, MulInplace, Neg, Relu, ReluInplace, Sub,  # noqa: F401
                        add, div, gelu, mul, neg, relu, sub)
from .reduce import Mean, Sum, mean, sum  # noqa: F401
from .views import (Cat, Clone, Expand, Permute, Select, Slice, Split, T, Transpose, UnsafeView, View,  # noqa: F401
                    cat, chunk, contiguous, expand, flatten, getitem, narrow, permute, reshape, split,
                    squeeze, sum_to, t, transpose, unsqueeze)
from . import views as _views


def _to(self, *args, **kwargs):
    from .. import dtypes as _dt
    from ..tensor import device as _device
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, _dt.dtype):
            dtype = a
        elif isinstance(a, (str, _device)) and _device(a) != self.device and _device(a).type != "meta":
            raise NotImplementedError("moving tensors between devices is not supported yet")
    return to_dtype(self, dtype)


def _size_args(shape):
    return shape[0] if len(shape) == 1 and isinstance(shape[0], (list, tuple)) else shape


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
    "div": lambda a, b: div(a, b),
    "neg": lambda a: neg(a),
    "relu": lambda a: relu(a),
    "relu_": lambda a: relu(a, inplace=True),
    "matmul": lambda a, b: matmul(a, b),
    "mm": lambda a, b: mm(a, b),
    "sum": lambda a, dim=None, keepdim=False, dtype=None: sum(a, dim, keepdim, dtype),
    "mean": lambda a, dim=None, keepdim=False, dtype=None: mean(a, dim, keepdim, dtype),
    "view": lambda a, *shape: _views.view_(a, *shape),
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
    "float": lambda a: _to(a, _dt_name("float32")),
    "double": lambda a: _to(a, _dt_name("float64")),
    "half": lambda a: _to(a, _dt_name("float16")),
    "bfloat16": lambda a: _to(a, _dt_name("bfloat16")),
    "long": lambda a: _to(a, _dt_name("int64")),
    "int": lambda a: _to(a, _dt_name("int32")),
    "bool": lambda a: _to(a, _dt_name("bool")),
    "type_as": lambda a, b: _to(a, b.dtype),
}


@property
def _T(self):
    return permute(self, list(reversed(range(self.dim()))))


def _dt_name(name):
    from .. import dtypes as _dt
    return _dt.from_name(name)


for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.T = _T
Tensor.mT = property(lambda self: transpose(self, -2, -1))
