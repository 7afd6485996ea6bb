"""torch.utils for the engine: ``gx.utils.checkpoint`` (activation checkpointing)."""
from . import checkpoint  # noqa: F401
