"""Reference counts, for the decisions torch takes from use counts: whether AccumulateGrad may steal
an incoming gradient, whether a gradient buffer may be added into in place.

Python's count of an object includes the references the counting code holds itself, and compiled code
(the hot-path modules, see ``gradxray/native.py``) holds fewer than the interpreter's frames do: a
compiled function's parameters and the argument it passes to ``sys.getrefcount`` are borrowed.  So the
counting happens here, in a module that always runs from its source (tests/test_native.py checks that
no compiled module counts references), and a caller passes an object it holds in one local variable:
that local, this module's parameter and getrefcount's argument are the references subtracted.
"""
from __future__ import annotations

import sys

_COUNTING_REFERENCES = 3        # the caller's local, the parameter here, getrefcount's argument


def sole_reference(obj) -> bool:
    """Nobody but the caller (one local variable) holds ``obj``: torch's is_tensor_stealable of a
    tensor object (its storage may still be shared with a base)."""
    return sys.getrefcount(obj) <= _COUNTING_REFERENCES


def storage_uses(t) -> int:
    """How many tensor objects share ``t``'s storage (our analogue of storage.use_count())."""
    return sys.getrefcount(t._storage) - 1          # without getrefcount's argument


def can_accumulate_inplace(t) -> bool:
    """torch's can_accumulate_inplace: a dense tensor whose object and storage nobody else holds
    (a view never qualifies: its base keeps the storage referenced)."""
    return sys.getrefcount(t) <= _COUNTING_REFERENCES and storage_uses(t) <= 1 and t.is_non_overlapping_and_dense()
