"""gradxray's autograd engine, with torch's API: ``import gradxray.engine as gx``.

Knows nothing of the analyzer.  Backends: "shape" (no data), "numpy" (CPU numerics, no torch) and
"torch" (torch kernels, never torch.autograd); see ``backends``.
"""
from __future__ import annotations

from . import autograd, backends, memory  # noqa: F401
from .autograd import enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled  # noqa: F401,E501
from .backends import backend, manual_seed  # noqa: F401
from .creation import (arange, empty, empty_like, from_numpy, from_torch, full, full_like, ones, ones_like,  # noqa: F401
                       rand, randint, randn, randn_like, tensor, zeros, zeros_like)
from .creation import (as_tensor, empty_strided, eye, linspace, logspace, rand_like, randint_like,  # noqa: F401
                       tril_indices, triu_indices)
from .dtypes import (bfloat16, bool_ as bool, dtype, float16, float32, float64, int8, int16, int32,  # noqa: F401
                     int64, promote_types, result_type, uint8)
from .dtypes import finfo, get_default_dtype, iinfo  # noqa: F401
from .function import Function  # noqa: F401
from .symbolic import SymInt  # noqa: F401
from .tensor import Parameter, Size, Tensor, device  # noqa: F401
from . import ops  # noqa: F401  (installs Tensor methods)
from .ops import (add, addmm, baddbmm, bmm, cat, chunk, div, dot, einsum, flatten, linear, matmul, mean, mm, mul,  # noqa: F401
                  mv, neg, permute, relu, reshape, split, squeeze, sub, sum, t, transpose, unsqueeze)
from . import nn  # noqa: F401
from . import optim  # noqa: F401
from . import utils  # noqa: F401

for _name, _fn in ops.TORCH_FUNCTIONS.items():      # the op families' torch-namespace functions
    if _name in globals():
        raise RuntimeError(f"gx.{_name} is registered by an op family but already defined")
    globals()[_name] = _fn
from . import amp  # noqa: E402
from .amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402,F401
amp.wrap_policy_entries(globals())      # autocast's per-op policy on gx.linear, gx.matmul, gx.sum ...

long = int64
float = float32
double = float64
half = float16
int = int32  # noqa: A001 - torch's name
