"""torch.optim on the engine: SGD, Adam and AdamW with torch's state, kernels and memory."""
from __future__ import annotations

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD"]
