"""Differentiating a backward kernel through an equivalent composite of engine ops.

torch writes the derivative of some backward kernels (``native_layer_norm_backward``,
``_softmax_backward_data``, ``gelu_backward`` w.r.t. its input ...) as long hand-derived formulas.
Here such a kernel's backward re-expresses the kernel as a composite of differentiable engine
ops and differentiates that: the values are the same at every order, and only the (rarely used)
double-backward temporaries differ from torch's.
"""
from __future__ import annotations

from .. import autograd


def composite_grads(composite, inputs, needs, grads):
    """Gradients of ``composite(*inputs)`` (a tensor or tuple of tensors) with respect to the inputs
    flagged in ``needs``, given the incoming ``grads`` for its outputs (None: no gradient).  The result
    is differentiable again when grad mode is on (``create_graph``).

    Each wanted input enters the composite through a fresh alias, and the gradient is taken with
    respect to that alias: only the composite's direct dependence counts, never a path through another
    input's history (e.g. an incoming gradient that itself depends on the saved output)."""
    from .views import view_
    create_graph = autograd.is_grad_enabled()
    if not any(n and t is not None for t, n in zip(inputs, needs)):
        return [None] * len(inputs)
    with autograd.enable_grad():
        local = [view_(t, *t.shape) if n and t is not None else t for t, n in zip(inputs, needs)]
        outs = composite(*local)
    wanted = [t for t, n in zip(local, needs) if n and t is not None]
    outs = outs if isinstance(outs, tuple) else (outs,)
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o is not None and o.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    found = iter(autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], create_graph=create_graph,
                               allow_unused=True))
    return [next(found) if n and t is not None else None for t, n in zip(inputs, needs)]
