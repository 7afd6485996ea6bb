"""Convolutions beyond conv2d (1d/3d, transposed) and pooling (max/avg 1d/2d, adaptive)."""
from __future__ import annotations

# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {}
