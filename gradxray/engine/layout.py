"""Memory layouts as torch's TensorIterator chooses them, over plain int shapes and element strides.

Shared by the shape backend (output strides of elementwise kernels, ``ops/_kernel.py``) and the numpy
backend (the strides its results are given): both must lay outputs out as torch does, since what a
later ``.contiguous()`` copies, and so what is saved for backward, depends on it.
"""
from __future__ import annotations


def dense_in(shape, strides, order) -> bool:
    """Strides are dense in ``order`` (fastest dim first), size-1 dims ignored (torch's is_contiguous)."""
    expected = 1
    for d in order:
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def is_contiguous(shape, strides) -> bool:
    return dense_in(shape, strides, range(len(shape) - 1, -1, -1))


def is_channels_last(shape, strides) -> bool:
    return len(shape) == 4 and dense_in(shape, strides, (1, 3, 2, 0))


def strides_in_order(shape, perm) -> tuple:
    """Dense strides with ``perm[0]`` the fastest-moving dim."""
    strides = [0] * len(shape)
    acc = 1
    for d in perm:
        strides[d] = acc
        acc *= max(shape[d], 1)
    return tuple(strides)


def channels_last_strides(shape) -> tuple:
    return strides_in_order(shape, (1, 3, 2, 0))


def _non_overlapping_and_dense(shape, strides) -> bool:
    expected = 1
    for st, n in sorted((st, n) for n, st in zip(shape, strides) if n != 1):
        if st != expected:
            return False
        expected *= n
    return True


def iterator_strides(shape, operands) -> tuple:
    """Output strides of a TensorIterator kernel over ``operands`` ((shape, element strides) pairs, in
    argument order; a Python number is a 0-dim operand, as torch wraps it) broadcast to ``shape``.

    Operands all of the output's shape that are all contiguous, all channels-last or all dense with
    the same strides give that layout (torch's fast setup).  Otherwise the dims are ordered as
    ``reorder_dimensions`` does: for two dims, the first operand whose strides tell them apart decides
    (a broadcast dim tells nothing; equal strides put the smaller dim inner), and the output is dense
    in that order."""
    shape = tuple(shape)
    ndim = len(shape)
    if ndim == 0:
        return ()
    if operands and all(tuple(s) == shape for s, _ in operands):
        strides = [tuple(st) for _, st in operands]
        if all(is_contiguous(shape, st) for st in strides):
            return strides_in_order(shape, range(ndim - 1, -1, -1))
        if all(is_channels_last(shape, st) for st in strides):
            return channels_last_strides(shape)
        if all(st == strides[0] for st in strides) and _non_overlapping_and_dense(shape, strides[0]):
            return strides[0]
    rows = []
    for op_shape, op_strides in operands:
        lead = ndim - len(op_shape)
        row = [0] * lead
        for n, st, full in zip(op_shape, op_strides, shape[lead:]):
            row.append(0 if n == 1 and full != 1 else st)
        rows.append(row)

    def should_swap(d0: int, d1: int) -> int:
        for row in rows:
            s0, s1 = row[d0], row[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(ndim - 1, -1, -1))       # perm[0]: the innermost dim
    for i in range(1, ndim):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return strides_in_order(shape, perm)
