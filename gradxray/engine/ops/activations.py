"""Activation functions (silu, sigmoid, tanh, softplus, leaky_relu, elu, hardswish, mish ...), each with
its torch backward kernel as an engine op (so double backward works)."""
from __future__ import annotations

# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {}
