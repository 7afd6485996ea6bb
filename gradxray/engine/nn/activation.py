"""Activation modules (SiLU, Sigmoid, Tanh, Softplus, LeakyReLU, ELU, Hardswish, Mish ...)."""
from __future__ import annotations

__all__: list = []
