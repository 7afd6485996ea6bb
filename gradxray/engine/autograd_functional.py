"""torch.autograd.functional on the engine: vjp, hvp, jacobian and hessian, built on ``autograd.grad``
with ``create_graph`` (so every second derivative is the engine's own double backward)."""
from __future__ import annotations

from . import autograd
from .tensor import Tensor


def _tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _prepared(inputs, create_graph: bool):
    """Fresh leaves requiring grad on the inputs' data (torch's _grad_preprocess)."""
    out = []
    for t in inputs:
        if create_graph and t.requires_grad:
            from .ops.views import view_
            out.append(view_(t, *t.shape))
        else:
            out.append(t.detach().requires_grad_(True))
    return tuple(out)


def _zeros_for_unused(grads, inputs):
    from .creation import zeros_like
    return tuple(g if g is not None else zeros_like(t) for g, t in zip(grads, inputs))


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J)."""
    is_tuple = not isinstance(inputs, Tensor)
    inputs = _prepared(_tuple(inputs), create_graph)
    with autograd.enable_grad():
        outputs = func(*inputs)
    outs = _tuple(outputs)
    vs = _tuple(v) if v is not None else tuple(None for _ in outs)
    grads = autograd.grad(outs, inputs, vs, create_graph=create_graph, allow_unused=True)
    if strict and any(g is None for g in grads):
        raise RuntimeError("The output of the user-provided function is independent of an input. This is not "
                           "allowed in strict mode.")
    grads = _zeros_for_unused(grads, inputs)
    return outputs, (grads if is_tuple else grads[0])


def hvp(func, inputs, v, create_graph=False, strict=False):
    """(func(inputs), H v) for a scalar function."""
    is_tuple = not isinstance(inputs, Tensor)
    inputs = _prepared(_tuple(inputs), create_graph)
    with autograd.enable_grad():
        out = func(*inputs)
        grads = autograd.grad(out, inputs, create_graph=True, allow_unused=True)
        grads = _zeros_for_unused(grads, inputs)
        dot = None
        for g, w in zip(grads, _tuple(v)):
            term = (g * w).sum()
            dot = term if dot is None else dot + term
    hv = autograd.grad(dot, inputs, create_graph=create_graph, allow_unused=True)
    hv = _zeros_for_unused(hv, inputs)
    return out, (hv if is_tuple else hv[0])


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """J[i][j] = d outputs[i] / d inputs[j], each block shaped output.shape + input.shape (row by row)."""
    from .ops import cat, reshape
    if strategy != "reverse-mode":
        raise NotImplementedError("jacobian(strategy='forward-mode') is not supported")
    is_in_tuple = not isinstance(inputs, Tensor)
    inputs = _prepared(_tuple(inputs), create_graph)
    with autograd.enable_grad():
        outputs = func(*inputs)
    is_out_tuple = not isinstance(outputs, Tensor)
    blocks = []
    for out in _tuple(outputs):
        flat = reshape(out, (-1,))
        rows = [[] for _ in inputs]
        for i in range(int(flat.shape[0])):
            with autograd.enable_grad():
                element = flat[i]
            grads = autograd.grad(element, inputs, retain_graph=True, create_graph=create_graph, allow_unused=True)
            for j, (g, t) in enumerate(zip(_zeros_for_unused(grads, inputs), inputs)):
                rows[j].append(reshape(g, (1,) + tuple(t.shape)))
        row_blocks = []
        for j, t in enumerate(inputs):
            stacked = cat(rows[j], 0) if rows[j] else None
            row_blocks.append(reshape(stacked, tuple(out.shape) + tuple(t.shape)))
        blocks.append(tuple(row_blocks) if is_in_tuple else row_blocks[0])
    return tuple(blocks) if is_out_tuple else blocks[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar function: blocks H[i][j] shaped inputs[i].shape + inputs[j].shape."""
    is_tuple = not isinstance(inputs, Tensor)
    inputs = _tuple(inputs)

    def gradient(*xs):
        with autograd.enable_grad():
            out = func(*xs)
            if int(out.numel()) != 1:
                raise RuntimeError("The function given to hessian should return a single element Tensor")
            grads = autograd.grad(out, xs, create_graph=True, allow_unused=True)
        grads = _zeros_for_unused(grads, xs)
        return grads if is_tuple else grads[0]

    return jacobian(gradient, inputs if is_tuple else inputs[0], create_graph=create_graph)
