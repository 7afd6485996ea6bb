"""Elementwise math beyond + - * /: exp, log, sqrt, pow, abs, trig, clamp, comparisons, minimum/maximum,
and the in-place variants users write.  One Function class per op; backward written with engine ops."""
from __future__ import annotations

# Registered by ``ops/__init__``: Tensor methods, ``gx.<name>`` functions, ``gx.nn.functional.<name>``.
TENSOR_METHODS: dict = {}
TORCH_FUNCTIONS: dict = {}
FUNCTIONAL: dict = {}
