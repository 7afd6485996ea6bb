"""No cyclic garbage collection while the analysis parses and traces.

Parsing (``ast.parse`` of a file and of each installed-package file it imports) and tracing make
many objects and no reference cycles that results depend on: storages are released by reference
counting, which is what the memory numbers mirror.  The cyclic collector's passes over them are
pure cost — ``ast.parse`` takes about twice as long with them — so they wait until the work is done.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    """The cyclic collector off inside (as it was, after: nested uses leave it off until the outermost)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
