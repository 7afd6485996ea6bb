"""Loss functions as torch decomposes them (mse, l1, smooth_l1, binary cross entropy, kl_div, cross entropy
variants), each saving what torch's nodes save."""
from __future__ import annotations

# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {}
