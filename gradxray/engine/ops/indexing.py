"""Advanced indexing, index assignment, gather/scatter, masks, where, and the shape ops built on them
(stack, repeat, roll, flip, pad, tril/triu, interpolate)."""
from __future__ import annotations

# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {}
