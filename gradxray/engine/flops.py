"""FLOP formulas per kernel (multiply-add = 2 FLOPs), keyed by the aten kernel the op runs.

Counted at the kernel, so backward FLOPs are the FLOPs of the backward kernels
that actually run (e.g. ``convolution_backward`` computes only the gradients
that are needed)."""
from __future__ import annotations

from .symbolic import sym_prod


def _n(shape) -> int:
    return int(sym_prod(shape))


def _conv_count(x_shape, w_shape, out_shape, transposed: bool) -> int:
    """torch's FlopCounterMode rule: per spatial point (of the output, or of the input when transposed),
    kernel size x batch x weight.shape[0] x weight.shape[1] multiply-adds."""
    spatial = (x_shape if transposed else out_shape)[2:]
    return 2 * _n(spatial) * _n(w_shape[2:]) * int(x_shape[0]) * int(w_shape[0]) * int(w_shape[1])


def _conv_backward_count(grad_shape, x_shape, w_shape, transposed: bool, mask) -> int:
    """FlopCounterMode's convolution_backward: grad_input as the opposite (plain/transposed) convolution of
    grad by the weight; grad_weight as a convolution of batch-channel-swapped operands (which, as in torch's
    counter, does not divide by groups)."""
    def swap(shape):
        return [shape[1], shape[0], *shape[2:]]
    flops = 0
    if mask[0]:
        flops += _conv_count(grad_shape, w_shape, x_shape, not transposed)
    if mask[1]:
        first, second = (grad_shape, x_shape) if transposed else (x_shape, grad_shape)
        flops += _conv_count(swap(first), swap(second), swap(w_shape), False)
    return flops


def kernel_flops(name: str, args, outs) -> int:
    from .tensor import Tensor
    t = [a for a in args if isinstance(a, Tensor)]
    if name in ("mm", "addmm"):
        a, b = (t[0], t[1]) if name == "mm" else (t[1], t[2])
        return 2 * _n(a.shape) * int(b.shape[1])
    if name == "bmm":
        return 2 * _n(t[0].shape) * int(t[1].shape[-1])
    if name == "convolution":
        return _conv_count(t[0].shape, t[1].shape, outs[0].shape, transposed=args[6])
    if name == "convolution_backward":
        return _conv_backward_count(t[0].shape, t[1].shape, t[2].shape, transposed=args[7], mask=args[-1])
    if name == "_scaled_dot_product_flash_attention_for_cpu":
        q, k, v = t[0], t[1], t[2]
        return 2 * _n(q.shape) * int(k.shape[-2]) + 2 * _n(q.shape[:-1]) * int(k.shape[-2]) * int(v.shape[-1])
    if name == "_scaled_dot_product_flash_attention_for_cpu_backward":
        q, k, v = t[1], t[2], t[3]
        fwd = 2 * _n(q.shape) * int(k.shape[-2]) + 2 * _n(q.shape[:-1]) * int(k.shape[-2]) * int(v.shape[-1])
        return 2 * fwd
    return 0
