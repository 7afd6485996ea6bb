"""FLOP formulas per kernel (multiply-add = 2 FLOPs), keyed by the aten kernel the op runs.

Counted at the kernel, so backward FLOPs are the FLOPs of the backward kernels
that actually run (e.g. ``convolution_backward`` computes only the gradients
that are needed)."""
from __future__ import annotations

from .symbolic import sym_prod


def _n(shape) -> int:
    return int(sym_prod(shape))


def _conv_fwd(out_shape, w_shape) -> int:
    # every output element: Cin/groups * prod(kernel) multiply-adds
    return 2 * _n(out_shape) * _n(w_shape[1:])


def kernel_flops(name: str, args, outs) -> int:
    from .tensor import Tensor
    t = [a for a in args if isinstance(a, Tensor)]
    if name in ("mm", "addmm"):
        a, b = (t[0], t[1]) if name == "mm" else (t[1], t[2])
        return 2 * _n(a.shape) * int(b.shape[1])
    if name == "bmm":
        return 2 * _n(t[0].shape) * int(t[1].shape[-1])
    if name == "convolution":
        return _conv_fwd(outs[0].shape, t[1].shape)
    if name == "convolution_backward":
        grad, w = t[0], t[2]
        mask = args[-1]
        per = _conv_fwd(grad.shape, w.shape)
        return per * (int(bool(mask[0])) + int(bool(mask[1])))
    if name == "_scaled_dot_product_flash_attention_for_cpu":
        q, k, v = t[0], t[1], t[2]
        return 2 * _n(q.shape) * int(k.shape[-2]) + 2 * _n(q.shape[:-1]) * int(k.shape[-2]) * int(v.shape[-1])
    if name == "_scaled_dot_product_flash_attention_for_cpu_backward":
        q, k, v = t[1], t[2], t[3]
        fwd = 2 * _n(q.shape) * int(k.shape[-2]) + 2 * _n(q.shape[:-1]) * int(k.shape[-2]) * int(v.shape[-1])
        return 2 * fwd
    return 0
