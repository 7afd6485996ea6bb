"""torch.optim.Adam and AdamW on the engine: the for-loop ("single tensor") and foreach implementations.

Both follow torch's ``_single_tensor_adam`` / ``_multi_tensor_adam`` (capturable=False,
differentiable=False) kernel for kernel; temporaries stay bound to the same local names as there, so
they are released when torch releases them (e.g. a step's ``denom`` lives until the next parameter's
replaces it) and the live memory during a step is torch's.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import no_grad
from ..tensor import Tensor
from .optimizer import (STATE, Optimizer, check_modelled, default_to_foreach, foreach_fresh, foreach_update, fresh,
                        group_by_device_and_dtype, optimizer_phase, scalar_dtype, scalar_tensor, step_value, update)

__all__ = ["Adam", "AdamW", "adam"]


class Adam(Optimizer):
    """Adam (and, with ``decoupled_weight_decay=True``, AdamW).

    State per parameter: ``step`` (a 0-dim float32 tensor on the CPU, float64 when that is the
    default dtype), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq`` (zeros like
    the parameter)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_modelled(fused, capturable, differentiable)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    # old checkpoints keep the step as a number
                    p_state["step"] = scalar_tensor(p, float(p_state["step"]), scalar_dtype(), STATE)

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps):
        for p in group["params"]:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if len(state) == 0:
                state["step"] = scalar_tensor(p, 0.0, scalar_dtype(), STATE)
                state["exp_avg"] = fresh("zeros_like", p, p, category=STATE)
                state["exp_avg_sq"] = fresh("zeros_like", p, p, category=STATE)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = fresh("zeros_like", p, p, category=STATE)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if group["amsgrad"]:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
            state_steps.append(state["step"])

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        with no_grad(), optimizer_phase():
            for group in self.param_groups:
                params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps = [], [], [], [], [], []
                beta1, beta2 = group["betas"]
                self._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                                 state_steps)
                adam(params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                     foreach=group["foreach"], decoupled_weight_decay=group["decoupled_weight_decay"],
                     amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                     weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])
        return loss


class AdamW(Adam):
    """AdamW: Adam whose weight decay scales the parameter (``p *= 1 - lr * wd``) instead of adding
    to the gradient, so it never enters the moments."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, foreach=None,
         decoupled_weight_decay=False, *, amsgrad, beta1, beta2, lr, weight_decay, eps, maximize):
    """Functional Adam (torch.optim.adam.adam): foreach by default only on accelerators."""
    if foreach is None:
        foreach = default_to_foreach(params)
    impl = _multi_tensor_adam if foreach else _single_tensor_adam
    impl(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=amsgrad, beta1=beta1,
         beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=maximize,
         decoupled_weight_decay=decoupled_weight_decay)


def _single_tensor_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad, beta1,
                        beta2, lr, weight_decay, eps, maximize, decoupled_weight_decay):
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else fresh("neg", grads[i], grads[i])
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        step_t = state_steps[i]
        update("add_", step_t, 1)
        if weight_decay != 0:
            if decoupled_weight_decay:
                update("mul_", param, 1 - lr * weight_decay)
            else:
                grad = fresh("add", grad, grad, param, alpha=weight_decay)
        update("lerp_", exp_avg, grad, 1 - beta1)
        update("addcmul_", update("mul_", exp_avg_sq, beta2), grad, grad, value=1 - beta2)

        step = step_value(step_t)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if amsgrad:
            update("maximum", max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i])
            second_moment = max_exp_avg_sqs[i]
        else:
            second_moment = exp_avg_sq
        # the sqrt is a temporary of the expression: released once the division has allocated denom
        denom = update("add_", fresh("div", second_moment, fresh("sqrt", second_moment, second_moment),
                                     bias_correction2_sqrt), eps)
        update("addcdiv_", param, exp_avg, denom, value=-step_size)


def _multi_tensor_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad, beta1,
                       beta2, lr, weight_decay, eps, maximize, decoupled_weight_decay):
    if len(params) == 0:
        return
    grouped = group_by_device_and_dtype([params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps])
    for (device_params, device_grads, device_exp_avgs, device_exp_avg_sqs, device_max_exp_avg_sqs,
         device_state_steps), _ in grouped.values():
        if maximize:
            device_grads = foreach_fresh("_foreach_neg", device_grads, device_grads)
        if device_state_steps[0].device.type == "cpu":
            # torch adds a fresh CPU tensor holding 1.0 (a temporary of the call)
            foreach_update("_foreach_add_", device_state_steps,
                           scalar_tensor(device_state_steps[0], 1.0, _dt.default_float, "other"), alpha=1.0)
        else:
            foreach_update("_foreach_add_", device_state_steps, 1)
        if weight_decay != 0:
            if decoupled_weight_decay:
                foreach_update("_foreach_mul_", device_params, 1 - lr * weight_decay)
            elif maximize:    # reuse the negated copies
                foreach_update("_foreach_add_", device_grads, device_params, alpha=weight_decay)
            else:
                device_grads = foreach_fresh("_foreach_add", device_grads, device_grads, device_params,
                                             alpha=weight_decay)
        foreach_update("_foreach_lerp_", device_exp_avgs, device_grads, 1 - beta1)
        foreach_update("_foreach_mul_", device_exp_avg_sqs, beta2)
        foreach_update("_foreach_addcmul_", device_exp_avg_sqs, device_grads, device_grads, 1 - beta2)
        del device_grads      # the negated / decayed copies go before the square roots are allocated

        bias_correction1 = [1 - beta1 ** step_value(step) for step in device_state_steps]
        bias_correction2 = [1 - beta2 ** step_value(step) for step in device_state_steps]
        step_size = [(lr / bc) * -1 for bc in bias_correction1]
        bias_correction2_sqrt = [bc ** 0.5 for bc in bias_correction2]
        if amsgrad:
            foreach_update("_foreach_maximum_", device_max_exp_avg_sqs, device_exp_avg_sqs)
            exp_avg_sq_sqrt = foreach_fresh("_foreach_sqrt", device_max_exp_avg_sqs, device_max_exp_avg_sqs)
        else:
            exp_avg_sq_sqrt = foreach_fresh("_foreach_sqrt", device_exp_avg_sqs, device_exp_avg_sqs)
        foreach_update("_foreach_div_", exp_avg_sq_sqrt, bias_correction2_sqrt)
        foreach_update("_foreach_add_", exp_avg_sq_sqrt, eps)
        foreach_update("_foreach_addcdiv_", device_params, device_exp_avgs, exp_avg_sq_sqrt, step_size)
