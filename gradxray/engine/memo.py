"""Bounded memo tables for the engine's pure size computations (contiguous and view strides, SymInt
arithmetic and display): a model asks the same few questions over and over, and a full table is
cleared rather than managed, since its entries are cheap to compute again."""
from __future__ import annotations


def remember(table: dict, key, value, limit: int = 8192):
    """Store ``value`` under ``key`` in ``table`` (cleared first when it holds ``limit`` entries); return it."""
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value
