"""gx.optim against torch.optim: parameters, every state tensor, version counters, state dicts,
zero_grad, and the memory of a step (optimizer state bytes and the live-storage peak during
``step()``), for the for-loop and the foreach implementations."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray.engine import memory  # noqa: E402
from tests.support.torch_truth import LiveStorageTracker  # noqa: E402

# name -> (optimizer class name, options); every case runs with foreach=False and foreach=True
CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_momentum_dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "sgd_nesterov_weight_decay": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "sgd_maximize_weight_decay": ("SGD", dict(lr=0.1, maximize=True, weight_decay=0.1)),
    "sgd_momentum_maximize_weight_decay": ("SGD", dict(lr=0.05, momentum=0.8, maximize=True, weight_decay=0.2)),
    "adam": ("Adam", dict()),
    "adam_betas_eps": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    "adam_weight_decay": ("Adam", dict(lr=0.01, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.01, amsgrad=True)),
    "adam_maximize_weight_decay_amsgrad": ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.1, amsgrad=True)),
    "adamw": ("AdamW", dict()),
    "adamw_amsgrad_maximize": ("AdamW", dict(lr=0.01, amsgrad=True, maximize=True, weight_decay=0.05)),
    "adamw_no_weight_decay": ("AdamW", dict(lr=0.01, weight_decay=0.0)),
}

# parameter layouts: a matrix, a vector, a non-contiguous (transposed) 3-d tensor, a 0-dim scalar
SHAPES = [((3, 4), False), ((5,), False), ((2, 3, 4), True), ((), False)]
STEPS = 3


def _make_params(generator):
    params = []
    for shape, transposed in SHAPES:
        t = torch.randn(tuple(reversed(shape)) if transposed else shape, dtype=torch.float64, generator=generator)
        if transposed:
            t = t.permute(*reversed(range(t.dim())))
        params.append(t.requires_grad_())
    return params


def _state_tensors(opt):
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, (torch.Tensor, gx.Tensor))]


def _unique_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st._cdata if isinstance(t, torch.Tensor) else st.uid] = st.nbytes() if isinstance(t, torch.Tensor) \
            else st.nbytes
    return sum(seen.values())


def _torch_step(opt, params):
    """torch's step under the live-storage tracker; (peak, final) bytes."""
    tracker = LiveStorageTracker()
    tracker.register(params)
    tracker.register([p.grad for p in params if p.grad is not None])
    tracker.register(_state_tensors(opt))
    try:
        with tracker:
            opt.step()
    finally:
        tracker.close()
    return tracker.peak_bytes, tracker.current_bytes


def _gx_step(opt, params):
    """The engine's step under a fresh memory tracker (same storages registered); (peak, final) bytes."""
    tracker = memory.MemoryTracker()
    for p in params:
        tracker.register(p._storage, "param")
        if p.grad is not None:
            tracker.register(p.grad._storage, "grad")
    for t in _state_tensors(opt):
        tracker.register(t._storage, "optimizer")
    with tracker:
        opt.step()
    return tracker.peak_bytes, tracker.current_bytes


def _shape_only(params):
    with gx.backend("shape"):
        return [gx.nn.Parameter(gx.empty(*p.shape, dtype=gx.float64)) for p in params]


def _assert_same_tensor(t, g, what):
    assert tuple(g.shape) == tuple(t.shape), what
    assert g.dtype.name == str(t.dtype).replace("torch.", ""), what
    assert tuple(g.stride()) == tuple(t.stride()), what
    torch.testing.assert_close(g.data_, t.detach(), rtol=1e-12, atol=0, msg=what)


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_matches_torch(name, foreach):
    cls_name, options = CASES[name]
    gen = torch.Generator().manual_seed(1234)
    t_params = _make_params(gen)
    # torch runs twice: measured under the live-storage tracker, and unobserved for values and version
    # counters (a dispatch mode suppresses the version bumps of foreach in-place kernels)
    m_params = [p.detach().clone().requires_grad_() for p in t_params]
    g_params = [gx.from_torch(p.detach(), requires_grad=True) for p in t_params]
    s_params = _shape_only(t_params)
    t_opt = getattr(torch.optim, cls_name)(t_params, foreach=foreach, **options)
    m_opt = getattr(torch.optim, cls_name)(m_params, foreach=foreach, **options)
    g_opt = getattr(gx.optim, cls_name)(g_params, foreach=foreach, **options)
    s_opt = getattr(gx.optim, cls_name)(s_params, foreach=foreach, **options)

    state_tracker = memory.MemoryTracker()       # sees what the engine's steps allocate and keep
    for step in range(STEPS):
        for i, (tp, mp, gp, sp) in enumerate(zip(t_params, m_params, g_params, s_params)):
            if step == 0 and i == len(t_params) - 1:
                tp.grad = mp.grad = gp.grad = sp.grad = None    # skipped by the first step: state created later
                continue
            grad = torch.randn(tp.shape, dtype=torch.float64, generator=gen)
            tp.grad, mp.grad = grad.clone(), grad.clone()
            gp.grad = gx.from_torch(grad)
            with gx.backend("shape"):
                sp.grad = gx.empty(*grad.shape, dtype=gx.float64)

        t_opt.step()
        t_peak, t_final = _torch_step(m_opt, m_params)
        with state_tracker:
            g_peak, g_final = _gx_step(g_opt, g_params)
        s_peak, s_final = _gx_step(s_opt, s_params)
        assert (g_peak, g_final) == (t_peak, t_final), f"step {step}: live bytes (peak, after)"
        assert (s_peak, s_final) == (t_peak, t_final), f"step {step}: shape backend live bytes (peak, after)"

        for i, (tp, gp) in enumerate(zip(t_params, g_params)):
            _assert_same_tensor(tp, gp, f"step {step}: param {i}")
            assert gp._version == tp._version, f"step {step}: param {i} version"
            if tp.grad is not None:      # foreach nesterov updates the gradients in place
                _assert_same_tensor(tp.grad, gp.grad, f"step {step}: grad {i}")
                assert gp.grad._version == tp.grad._version, f"step {step}: grad {i} version"
            t_state, g_state, s_state = t_opt.state.get(tp, {}), g_opt.state.get(gp, {}), \
                s_opt.state.get(s_params[i], {})
            assert list(g_state) == list(t_state) == list(s_state), f"step {step}: param {i} state keys"
            for key, value in t_state.items():
                _assert_same_tensor(value, g_state[key], f"step {step}: param {i} state {key}")
                assert g_state[key]._version == value._version, f"step {step}: param {i} {key} version"
                assert tuple(s_state[key].shape) == tuple(value.shape)
                assert s_state[key].dtype is g_state[key].dtype
            # the engine's step ran without recording a graph
            assert gp.is_leaf and gp.requires_grad and gp.grad_fn is None

    state = _state_tensors(g_opt)
    torch_state_bytes = _unique_bytes(_state_tensors(t_opt))
    assert sum(a.nbytes for a in state_tracker.live.values() if a.category == "optimizer") == torch_state_bytes
    assert all(t._storage.category == "optimizer" for t in state)
    # nothing but the state outlives the steps
    assert {a.category for a in state_tracker.live.values()} <= {"optimizer"}


def test_optimizer_state_bytes_and_step_dtype():
    """Adam keeps step (0-dim float32 on the CPU), exp_avg, exp_avg_sq (+ max_exp_avg_sq) per parameter."""
    gen = torch.Generator().manual_seed(0)
    t_params = _make_params(gen)
    g_params = [gx.from_torch(p.detach(), requires_grad=True) for p in t_params]
    for tp, gp in zip(t_params, g_params):
        grad = torch.randn(tp.shape, dtype=torch.float64, generator=gen)
        tp.grad, gp.grad = grad.clone(), gx.from_torch(grad)
    t_opt = torch.optim.Adam(t_params, amsgrad=True)
    g_opt = gx.optim.Adam(g_params, amsgrad=True)
    with memory.MemoryTracker() as tracker:
        t_opt.step()
        g_opt.step()
    numel = sum(p.numel() for p in t_params)
    assert _unique_bytes(_state_tensors(t_opt)) == 3 * 8 * numel + 4 * len(t_params)
    assert sum(a.nbytes for a in tracker.live.values() if a.category == "optimizer") == 3 * 8 * numel + 4 * len(
        t_params)
    for gp in g_params:
        step = g_opt.state[gp]["step"]
        assert step.dtype is gx.float32 and tuple(step.shape) == () and step.device == gx.device("cpu")
        assert step.item() == 1.0


@pytest.mark.parametrize("foreach", [False, True], ids=["for_loop", "foreach"])
def test_zero_grad(foreach):
    gen = torch.Generator().manual_seed(3)
    t_params = _make_params(gen)[:2]
    g_params = [gx.from_torch(p.detach(), requires_grad=True) for p in t_params]
    t_opt = torch.optim.SGD(t_params, lr=0.1, foreach=foreach)
    g_opt = gx.optim.SGD(g_params, lr=0.1, foreach=foreach)
    for tp, gp in zip(t_params, g_params):
        grad = torch.randn(tp.shape, dtype=torch.float64, generator=gen)
        tp.grad, gp.grad = grad.clone(), gx.from_torch(grad)
    t_grads, g_grads = [p.grad for p in t_params], [p.grad for p in g_params]

    t_opt.zero_grad(set_to_none=False)
    g_opt.zero_grad(set_to_none=False)
    for tp, gp, tg, gg in zip(t_params, g_params, t_grads, g_grads):
        assert gp.grad is gg and tp.grad is tg                  # zeroed in place, not replaced
        assert gg.tolist() == tg.tolist() and not any(v != 0 for v in gg.data_.flatten().tolist())
        assert gg._version == tg._version == 1
        assert not gg.requires_grad

    g_opt.zero_grad()                                           # default: set_to_none=True
    t_opt.zero_grad()
    assert all(p.grad is None for p in g_params) and all(p.grad is None for p in t_params)
    g_opt.zero_grad(set_to_none=False)                          # no gradients: nothing to do
    assert all(p.grad is None for p in g_params)


def test_zero_grad_detaches_a_gradient_with_history():
    w = gx.from_torch(torch.ones(3, dtype=torch.float64), requires_grad=True)
    x = gx.from_torch(torch.ones(3, dtype=torch.float64), requires_grad=True)
    w.grad = x * 2.0                     # a gradient that is itself part of a graph
    gx.optim.SGD([w]).zero_grad(set_to_none=False)
    assert w.grad.grad_fn is None and not w.grad.requires_grad
    assert w.grad.tolist() == [0.0, 0.0, 0.0]


def _group_options(groups):
    return [{k: v for k, v in g.items() if k != "params"} for g in groups]


@pytest.mark.parametrize("cls_name, options", [("SGD", dict(lr=0.1, momentum=0.9)),
                                               ("Adam", dict(lr=0.01, amsgrad=True)),
                                               ("AdamW", dict(lr=0.01))])
def test_state_dict_and_param_groups(cls_name, options):
    gen = torch.Generator().manual_seed(7)
    t_params = _make_params(gen)
    g_params = [gx.from_torch(p.detach(), requires_grad=True) for p in t_params]
    # two groups, the second with its own learning rate; parameters given by name in torch's form
    t_opt = getattr(torch.optim, cls_name)([{"params": t_params[:2]}], **options)
    g_opt = getattr(gx.optim, cls_name)([{"params": g_params[:2]}], **options)
    t_opt.add_param_group({"params": t_params[2:], "lr": 0.5})
    g_opt.add_param_group({"params": g_params[2:], "lr": 0.5})
    assert _group_options(g_opt.param_groups) == _group_options(t_opt.param_groups)

    def run_steps(n):
        for _ in range(n):
            for tp, gp in zip(t_params, g_params):
                grad = torch.randn(tp.shape, dtype=torch.float64, generator=gen)
                tp.grad, gp.grad = grad.clone(), gx.from_torch(grad)
            t_opt.step()
            g_opt.step()

    run_steps(2)
    t_sd, g_sd = t_opt.state_dict(), g_opt.state_dict()
    assert g_sd["param_groups"] == t_sd["param_groups"]
    assert list(g_sd["state"]) == list(t_sd["state"]) == [0, 1, 2, 3]
    for k in t_sd["state"]:
        assert list(g_sd["state"][k]) == list(t_sd["state"][k])
        for name, value in t_sd["state"][k].items():
            _assert_same_tensor(value, g_sd["state"][k][name], f"state {k} {name}")
            assert g_sd["state"][k][name] is g_opt.state[g_params[k]][name]     # the state itself, no copy

    # a fresh optimizer over copies of the parameters continues exactly like the original
    g_copies = [gx.from_torch(p.data_, requires_grad=True) for p in g_params]
    g_loaded = getattr(gx.optim, cls_name)([{"params": g_copies[:2]}, {"params": g_copies[2:]}], **options)
    g_loaded.load_state_dict(g_opt.state_dict())
    assert _group_options(g_loaded.param_groups) == _group_options(g_opt.param_groups)
    for p, q in zip(g_params, g_copies):
        for name, value in g_opt.state[p].items():
            assert g_loaded.state[q][name] is value      # same dtype: taken without a copy, as torch's .to()
    g_loaded.state = type(g_loaded.state)(dict, {q: {n: gx.from_torch(v.data_) for n, v in s.items()}
                                                 for q, s in g_loaded.state.items()})   # independent copies
    for _ in range(2):
        grads = [torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in t_params]
        for tp, gp, cp, grad in zip(t_params, g_params, g_copies, grads):
            tp.grad, gp.grad, cp.grad = grad.clone(), gx.from_torch(grad), gx.from_torch(grad)
        t_opt.step()
        g_opt.step()
        g_loaded.step()
    for tp, gp, cp in zip(t_params, g_params, g_copies):
        _assert_same_tensor(tp, gp, "original")
        _assert_same_tensor(tp, cp, "loaded")

    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        getattr(gx.optim, cls_name)(g_copies, **options).load_state_dict(g_opt.state_dict())
    with pytest.raises(ValueError, match="loaded state dict contains a parameter group that doesn't match the size "
                                         "of optimizer's group"):
        getattr(gx.optim, cls_name)([{"params": g_copies[:1]}, {"params": g_copies[1:]}],
                                    **options).load_state_dict(g_opt.state_dict())


def test_named_parameters_and_repr():
    model = gx.nn.Linear(3, 2)
    opt = gx.optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"], [model.weight, model.bias]))
    t_opt = torch.optim.SGD(torch.nn.Linear(3, 2).named_parameters(), lr=0.1)
    assert repr(opt) == repr(t_opt)
    assert opt.state_dict()["param_groups"] == t_opt.state_dict()["param_groups"]
    with pytest.raises(ValueError, match="all optimizer param groups should be with/without names. cannot add "
                                         "param group without names to the optimizer"):
        opt.add_param_group({"params": [gx.nn.Parameter(gx.empty(2))]})


def test_closure_runs_with_grad_enabled():
    w = gx.from_torch(torch.tensor([1.0, -2.0], dtype=torch.float64), requires_grad=True)
    opt = gx.optim.SGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with gx.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    assert w.tolist() == [0.0, 0.0]          # w - 0.5 * 2w


def test_step_invalidates_a_graph_that_saved_the_parameter():
    """The in-place update bumps the version counter, so an old graph refuses to backpropagate."""
    for lib, optim in ((torch, torch.optim), (gx, gx.optim)):
        w = (torch.ones(3, dtype=torch.float64) if lib is torch else gx.from_torch(torch.ones(3, dtype=torch.float64)))
        w.requires_grad_()
        loss = (w * w).sum()
        w.grad = (w.detach() * 1.0)
        optim.SGD([w], lr=0.1).step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_shape_backend_on_cuda_defaults_to_foreach():
    """torch picks the foreach implementation for CUDA parameters and the for-loop one on the CPU.
    Their temporaries differ: all square roots at once, vs one sqrt + one division at a time while
    the previous parameter's denominator is still bound."""
    sizes = [4096, 1024, 256]

    def extra_peak(device):
        with gx.backend("shape"):
            params = [gx.nn.Parameter(gx.empty(n, device=device)) for n in sizes]
            for p in params:
                p.grad = gx.empty(*p.shape, device=device)
        opt = gx.optim.Adam(params)
        opt.step()                                  # state exists: a steady-state step
        base = sum(4 * n * 4 for n in sizes) + 4 * len(sizes)    # params, grads, exp_avg, exp_avg_sq; steps
        return _gx_step(opt, params)[0] - base

    assert extra_peak("cpu") == 4 * max(2 * sizes[0], sizes[0] + 2 * sizes[1], sizes[1] + 2 * sizes[2])
    assert extra_peak("cuda") == 4 * sum(sizes)


ERRORS = [
    (lambda p: torch.optim.SGD(p, lr=-1.0), lambda p: gx.optim.SGD(p, lr=-1.0), ValueError),
    (lambda p: torch.optim.SGD(p, momentum=-0.5), lambda p: gx.optim.SGD(p, momentum=-0.5), ValueError),
    (lambda p: torch.optim.SGD(p, weight_decay=-1), lambda p: gx.optim.SGD(p, weight_decay=-1), ValueError),
    (lambda p: torch.optim.SGD(p, nesterov=True), lambda p: gx.optim.SGD(p, nesterov=True), ValueError),
    (lambda p: torch.optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True),
     lambda p: gx.optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError),
    (lambda p: torch.optim.Adam(p, lr=-1e-3), lambda p: gx.optim.Adam(p, lr=-1e-3), ValueError),
    (lambda p: torch.optim.Adam(p, eps=-1.0), lambda p: gx.optim.Adam(p, eps=-1.0), ValueError),
    (lambda p: torch.optim.Adam(p, betas=(1.0, 0.9)), lambda p: gx.optim.Adam(p, betas=(1.0, 0.9)), ValueError),
    (lambda p: torch.optim.AdamW(p, betas=(0.9, -0.1)), lambda p: gx.optim.AdamW(p, betas=(0.9, -0.1)), ValueError),
    (lambda p: torch.optim.AdamW(p, weight_decay=-0.1), lambda p: gx.optim.AdamW(p, weight_decay=-0.1), ValueError),
    (lambda p: torch.optim.SGD([]), lambda p: gx.optim.SGD([]), ValueError),
    (lambda p: torch.optim.SGD(p[0]), lambda p: gx.optim.SGD(p[0]), TypeError),
    (lambda p: torch.optim.SGD([{"params": set(p)}]), lambda p: gx.optim.SGD([{"params": set(p)}]), TypeError),
    (lambda p: torch.optim.SGD([{"params": p}, {"params": p[:1]}]),
     lambda p: gx.optim.SGD([{"params": p}, {"params": p[:1]}]), ValueError),
    (lambda p: torch.optim.SGD([p[0] * 2]), lambda p: gx.optim.SGD([p[0] * 2]), ValueError),
    (lambda p: torch.optim.SGD([p[0], 1.0]), lambda p: gx.optim.SGD([p[0], 1.0]), TypeError),
]


@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_errors_match_torch(index):
    torch_fn, gx_fn, error = ERRORS[index]
    t_params = [torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)]
    g_params = [gx.from_torch(p.detach(), requires_grad=True) for p in t_params]
    with pytest.raises(error) as torch_error:
        torch_fn(t_params)
    with pytest.raises(error) as gx_error:
        gx_fn(g_params)
    assert _without_type_name(str(gx_error.value)) == _without_type_name(str(torch_error.value))


def _without_type_name(message: str) -> str:
    """The message up to the offending object's type name (torch names its own tensor types)."""
    for cut in (" but got ", " but one of the params is "):
        if cut in message:
            return message.split(cut)[0] + cut
    return message


@pytest.mark.parametrize("option", ["fused", "capturable", "differentiable"])
def test_unmodelled_options_are_errors(option):
    w = gx.from_torch(torch.ones(2), requires_grad=True)
    with pytest.raises(NotImplementedError, match=f"{option}=True is not modelled"):
        gx.optim.Adam([w], **{option: True})
