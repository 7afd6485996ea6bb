"""torch.optim.SGD on the engine: the for-loop ("single tensor") and the foreach implementations.

Both follow torch's ``_single_tensor_sgd`` / ``_multi_tensor_sgd`` kernel for kernel, and keep
their temporaries bound to the same local names, so temporaries are released when torch releases
them and the live memory during a step is torch's.
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import (STATE, Optimizer, check_modelled, default_to_foreach, foreach_fresh, foreach_update, fresh,
                        group_by_device_and_dtype, optimizer_phase, update)

__all__ = ["SGD", "sgd"]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, weight decay, maximize.

    State per parameter (momentum != 0): ``momentum_buffer``, a copy of the first (decayed,
    negated) gradient, then updated in place."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_modelled(fused, False, differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _init_group(self, group, params, grads, momentum_buffer_list):
        for p in group["params"]:
            if p.grad is not None:
                params.append(p)
                grads.append(p.grad)
                if group["momentum"] != 0:
                    momentum_buffer_list.append(self.state[p].get("momentum_buffer"))

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad(), optimizer_phase():
            for group in self.param_groups:
                params, grads, momentum_buffer_list = [], [], []
                self._init_group(group, params, grads, momentum_buffer_list)
                sgd(params, grads, momentum_buffer_list, weight_decay=group["weight_decay"],
                    momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                    nesterov=group["nesterov"], maximize=group["maximize"], foreach=group["foreach"])
                if group["momentum"] != 0:
                    for p, buf in zip(params, momentum_buffer_list):
                        self.state[p]["momentum_buffer"] = buf
        return loss


def sgd(params, d_p_list, momentum_buffer_list, foreach=None, *, weight_decay, momentum, lr, dampening, nesterov,
        maximize):
    """Functional SGD (torch.optim.sgd.sgd): foreach by default only on accelerators."""
    if foreach is None:
        foreach = default_to_foreach(params)
    impl = _multi_tensor_sgd if foreach else _single_tensor_sgd
    impl(params, d_p_list, momentum_buffer_list, weight_decay=weight_decay, momentum=momentum, lr=lr,
         dampening=dampening, nesterov=nesterov, maximize=maximize)


def _single_tensor_sgd(params, grads, momentum_buffer_list, *, weight_decay, momentum, lr, dampening, nesterov,
                       maximize):
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else fresh("neg", grads[i], grads[i])
        if weight_decay != 0:
            grad = fresh("add", grad, grad, param, alpha=weight_decay)
        if momentum != 0:
            buf = momentum_buffer_list[i]
            if buf is None:
                buf = fresh("clone", grad, grad.detach(), category=STATE)
                momentum_buffer_list[i] = buf
            else:
                update("add_", update("mul_", buf, momentum), grad, alpha=1 - dampening)
            if nesterov:
                grad = fresh("add", grad, grad, buf, alpha=momentum)
            else:
                grad = buf
        update("add_", param, grad, alpha=-lr)


def _multi_tensor_sgd(params, grads, momentum_buffer_list, *, weight_decay, momentum, lr, dampening, nesterov,
                      maximize):
    if len(params) == 0:
        return
    grouped = group_by_device_and_dtype([params, grads, momentum_buffer_list], with_indices=True)
    for (device_params, device_grads, device_momentum_buffer_list), indices in grouped.values():
        if maximize:
            device_grads = foreach_fresh("_foreach_neg", device_grads, device_grads)
        if weight_decay != 0:
            if maximize:      # reuse the negated copies
                foreach_update("_foreach_add_", device_grads, device_params, alpha=weight_decay)
            else:
                device_grads = foreach_fresh("_foreach_add", device_grads, device_grads, device_params,
                                             alpha=weight_decay)
        if momentum != 0:
            if all(buf is not None for buf in device_momentum_buffer_list):
                bufs = list(device_momentum_buffer_list)
                foreach_update("_foreach_mul_", bufs, momentum)
                foreach_update("_foreach_add_", bufs, device_grads, alpha=1 - dampening)
            else:
                bufs = []
                for i in range(len(device_momentum_buffer_list)):
                    if device_momentum_buffer_list[i] is None:
                        buf = fresh("clone", device_grads[i], device_grads[i].detach(), category=STATE)
                        device_momentum_buffer_list[i] = momentum_buffer_list[indices[i]] = buf
                    else:
                        buf = device_momentum_buffer_list[i]
                        update("add_", update("mul_", buf, momentum), device_grads[i], alpha=1 - dampening)
                    bufs.append(buf)
            if nesterov:
                foreach_update("_foreach_add_", device_grads, bufs, alpha=momentum)
            else:
                device_grads = bufs
        foreach_update("_foreach_add_", device_params, device_grads, alpha=-lr)
