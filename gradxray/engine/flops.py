"""FLOPs per kernel, keyed by the aten kernel an op runs (a multiply-add counts as 2 FLOPs).

``kernel()`` / ``masked_kernel()`` (ops/_kernel.py) report ``kernel_flops(aten_name, args, outs)`` for
every kernel they run, so backward FLOPs are those of the backward kernels that actually run (e.g.
``convolution_backward`` computes only the gradients its output mask asks for) and a recompute under
checkpointing is counted again, in its own phase.

What is counted, and why:

* The kernels torch's ``torch.utils.flop_counter.FlopCounterMode`` counts (``TORCH_COUNTED``): matrix
  products, convolutions and fused attention, with torch's numbers and torch's conventions: no bias
  FLOPs, no discount for causal masks or padding, a transposed convolution counted per *input* point,
  the grad_weight of a grouped convolution not divided by the groups, and attention's backward as the
  five matrix products of a recomputing kernel.  The engine's total over these kernels equals
  FlopCounterMode's total for the same computation.  One deliberate difference: for the
  ``_flash_attention_*`` / ``_efficient_attention_*`` kernels (which no engine op runs; torch reaches
  them only inside the SDPA kernels it counts as a whole) torch's formula reads their dense
  [B, L, H, E] inputs as [B, H, L, E]; here they are counted as the attention they compute.
* Kernels that do the same kind of work but that FlopCounterMode does not count (``GRADXRAY_ONLY``):
  ``mv``, ``dot`` and the CPU flash attention kernels (torch's counter registers no formula for
  ``_scaled_dot_product_flash_attention_for_cpu``, so it reports 0 attention FLOPs for a CPU
  transformer whenever SDPA takes the fused path).  Their formulas are gradxray's, written with the
  same conventions, so that the figure does not depend on which kernel torch happens to pick.
  ``FlopCounter.total(phase, torch_comparable=True)`` leaves them out.
* Pointwise, reduction, normalisation, softmax, loss, pooling, indexing and copy kernels count 0, as
  in FlopCounterMode.  They are bound by memory traffic, not arithmetic (their cost shows in the bytes
  the memory tracker reports), they are O(elements) next to the matrix products' O(elements x width),
  and counting them would make the FLOP figure incomparable with FlopCounterMode and with published
  model FLOPs.

Sizes are never converted with ``int()``: with symbolic sizes (``SymInt``) a count is the same number,
displayed as an expression over the input dims (``6*B*T*...``).
"""
from __future__ import annotations

from collections.abc import Callable

from . import memory
from .symbolic import sym_prod


# -- formulas over shapes ----------------------------------------------------------------------

def mm_flops(a_shape, b_shape) -> int:
    """[m, k] @ [k, n]: 2*m*k*n."""
    m, k = a_shape
    return 2 * m * k * b_shape[1]


def bmm_flops(a_shape, b_shape) -> int:
    """[b, m, k] @ [b, k, n]: 2*b*m*k*n."""
    b, m, k = a_shape
    return 2 * b * m * k * b_shape[2]


def conv_flops(x_shape, w_shape, out_shape, transposed: bool) -> int:
    """torch's rule: for each spatial point of the output (of the input when transposed), the kernel
    window times batch x weight.shape[0] x weight.shape[1] multiply-adds (bias ignored)."""
    spatial = (x_shape if transposed else out_shape)[2:]
    return 2 * sym_prod(spatial) * sym_prod(w_shape[2:]) * x_shape[0] * w_shape[0] * w_shape[1]


def conv_backward_flops(grad_shape, x_shape, w_shape, transposed: bool, mask) -> int:
    """torch's convolution_backward rule: grad_input is the opposite (plain/transposed) convolution of
    grad by the weight; grad_weight a convolution of batch-and-channel-swapped operands (which, as in
    torch's counter, is not divided by the groups)."""
    def swap(shape):
        return [shape[1], shape[0], *shape[2:]]
    flops = 0
    if mask[0]:
        flops = flops + conv_flops(grad_shape, w_shape, x_shape, not transposed)
    if mask[1]:
        first, second = (grad_shape, x_shape) if transposed else (x_shape, grad_shape)
        flops = flops + conv_flops(swap(first), swap(second), swap(w_shape), False)
    return flops


def attention_flops(q_shape, k_shape, v_shape) -> int:
    """softmax(Q K^T) V for Q [..., L, E], K [..., S, E], V [..., S, Ev] with the query's batch and heads
    (grouped-query K/V heads are broadcast): 2*BH*L*S*E for Q K^T plus 2*BH*L*S*Ev for P V."""
    rows = sym_prod(q_shape[:-1])                   # B*H*L
    s, e, ev = k_shape[-2], q_shape[-1], v_shape[-1]
    return 2 * rows * s * e + 2 * rows * s * ev


def attention_backward_flops(q_shape, k_shape, v_shape) -> int:
    """A recomputing attention backward: Q K^T again (E), dP = dO V^T (Ev), dV = P^T dO (Ev),
    dQ = dS K (E), dK = dS^T Q (E); 2*BH*L*S*(3E + 2Ev) in all (2.5x the forward when E == Ev).
    Counted whatever gradients are asked for, as torch does."""
    rows = sym_prod(q_shape[:-1])
    s, e, ev = k_shape[-2], q_shape[-1], v_shape[-1]
    return 2 * rows * s * (3 * e + 2 * ev)


def _heads_first(shape):
    """[B, L, H, E] (the layout of the _flash/_efficient_attention kernels) as [B, H, L, E]."""
    return (shape[0], shape[2], shape[1], shape[3])


def _varlen_attention(count, q, k, v, cum_q, cum_k, max_q, max_k) -> int:
    """The _flash/_efficient_attention kernels: dense [B, L, H, E] inputs, or packed sequences
    ([1 or none, total, H, E] with cumulative lengths), counted per sequence.  Without data the lengths
    are unknown and every sequence counts at its maximum length, as torch's counter does."""
    if cum_q is None:
        return count(_heads_first(q.shape), _heads_first(k.shape), _heads_first(v.shape))
    q_heads, k_heads = q.shape[-2:], k.shape[-2:]
    v_heads = v.shape[-2:]
    if cum_q.has_data and cum_k.has_data:
        offsets_q, offsets_k = cum_q.tolist(), cum_k.tolist()
        lengths = zip((b - a for a, b in zip(offsets_q, offsets_q[1:])),
                      (b - a for a, b in zip(offsets_k, offsets_k[1:])))
    else:
        lengths = [(max_q, max_k)] * (cum_q.shape[0] - 1)
    total = 0
    for len_q, len_k in lengths:
        total = total + count((1, q_heads[0], len_q, q_heads[1]), (1, k_heads[0], len_k, k_heads[1]),
                              (1, v_heads[0], len_k, v_heads[1]))
    return total


# -- kernels -----------------------------------------------------------------------------------
# Each formula takes the kernel's positional arguments as the engine passes them (aten's order) and
# its outputs (None for a masked kernel).

def _conv_like(args, outs):
    return conv_flops(args[0].shape, args[1].shape, outs[0].shape, transposed=bool(args[6]))


def _plain_conv(args, outs):
    """cudnn_convolution and _slow_conv2d_forward: plain convolutions with no ``transposed`` argument
    (torch's counter reads convolution's argument positions for them, e.g. cuDNN's ``benchmark`` flag
    as ``transposed``; no engine op runs them)."""
    return conv_flops(args[0].shape, args[1].shape, outs[0].shape, transposed=False)


def _conv_backward(args, outs):
    grad, x, w = args[0], args[1], args[2]
    return conv_backward_flops(grad.shape, x.shape, w.shape, transposed=bool(args[7]), mask=args[10])


def _sdpa(args, outs):
    return attention_flops(args[0].shape, args[1].shape, args[2].shape)


def _sdpa_backward(args, outs):
    return attention_backward_flops(args[1].shape, args[2].shape, args[3].shape)


TORCH_COUNTED: dict[str, Callable] = {
    "mm": lambda args, outs: mm_flops(args[0].shape, args[1].shape),
    "addmm": lambda args, outs: mm_flops(args[1].shape, args[2].shape),
    "_scaled_mm": lambda args, outs: mm_flops(args[0].shape, args[1].shape),
    "bmm": lambda args, outs: bmm_flops(args[0].shape, args[1].shape),
    "baddbmm": lambda args, outs: bmm_flops(args[1].shape, args[2].shape),
    "convolution": _conv_like,
    "_convolution": _conv_like,
    "convolution_overrideable": _conv_like,
    "cudnn_convolution": _plain_conv,
    "_slow_conv2d_forward": _plain_conv,
    "convolution_backward": _conv_backward,
    "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa,
    "_scaled_dot_product_cudnn_attention": _sdpa,
    "_scaled_dot_product_flash_attention_backward": _sdpa_backward,
    "_scaled_dot_product_efficient_attention_backward": _sdpa_backward,
    "_scaled_dot_product_cudnn_attention_backward": _sdpa_backward,
    # (query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, ...)
    "_flash_attention_forward": lambda args, outs: _varlen_attention(attention_flops, *args[:7]),
    # (query, key, value, bias, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, ...)
    "_efficient_attention_forward": lambda args, outs: _varlen_attention(attention_flops, *args[:3], *args[4:8]),
    # (grad_out, query, key, value, out, logsumexp, cum_seq_q, cum_seq_k, max_q, max_k, ...)
    "_flash_attention_backward": lambda args, outs: _varlen_attention(attention_backward_flops, *args[1:4],
                                                                      *args[6:10]),
    # (grad_out, query, key, value, bias, out, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, ...)
    "_efficient_attention_backward": lambda args, outs: _varlen_attention(attention_backward_flops, *args[1:4],
                                                                          *args[6:10]),
}
"""Kernels torch's FlopCounterMode counts, with its numbers."""

GRADXRAY_ONLY: dict[str, Callable] = {
    # [n, m] @ [m]: one multiply-add per matrix element
    "mv": lambda args, outs: 2 * args[0].shape[0] * args[0].shape[1],
    # [n] . [n]
    "dot": lambda args, outs: 2 * args[0].shape[0],
    # one fused kernel doing Q K^T and P V (the math path runs them as two bmm torch does count)
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    # the CPU backward recomputes Q K^T per block and runs the four gradient products
    "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_backward,
}
"""Kernels FlopCounterMode counts as 0 that do matrix-product work: gradxray's formulas."""


# -- reporting ---------------------------------------------------------------------------------

_counters: list["FlopCounter"] = []


def kernel_flops(name: str, args, outs) -> int:
    """FLOPs of one run of the aten kernel ``name`` (0 for the kernels not counted, see the module
    docstring); also recorded, per kernel, in every open ``FlopCounter``."""
    formula = TORCH_COUNTED.get(name) or GRADXRAY_ONLY.get(name)
    flops = formula(args, outs) if formula is not None else 0
    if flops and _counters:
        phase = memory.current_phase()
        for counter in _counters:
            counter._add(phase, name, flops)
    return flops


class FlopCounter:
    """FLOPs per phase ("forward", "backward", checkpoint recompute, ...) and kernel while open: the
    engine's counterpart of FlopCounterMode's ``get_flop_counts()``.  (FlopCounterMode has no phases: a
    checkpoint's recompute, counted here in its own phase, is part of what it sees during backward.)

    Kernels report FLOPs only while a memory tracker is active, so the counter opens one of its own."""

    def __init__(self):
        self.by_phase: dict[str, dict[str, int]] = {}      # phase -> aten kernel name -> FLOPs
        self._tracker: memory.MemoryTracker | None = None

    def __enter__(self):
        self._tracker = memory.MemoryTracker(keep_timeline=False).__enter__()
        _counters.append(self)
        return self

    def __exit__(self, *exc):
        _counters.remove(self)
        self._tracker.__exit__(*exc)
        self._tracker = None
        return False

    def _add(self, phase: str, name: str, flops: int) -> None:
        per_kernel = self.by_phase.setdefault(phase, {})
        per_kernel[name] = per_kernel.get(name, 0) + flops

    def total(self, phase: str | None = None, *, torch_comparable: bool = False) -> int:
        """FLOPs of ``phase`` (all phases when None); ``torch_comparable`` keeps only the kernels
        FlopCounterMode counts."""
        phases = [phase] if phase is not None else list(self.by_phase)
        total = 0
        for p in phases:
            for name, flops in self.by_phase.get(p, {}).items():
                if not torch_comparable or name in TORCH_COUNTED:
                    total = total + flops
        return total
