"""The autograd core against torch: grad(), backward(inputs=), create_graph (Hessians), hooks,
saved-tensor hooks, inference mode, in-place on views (CopySlices), custom Functions."""
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402


def _pair(*shape, seed=0, requires_grad=True):
    t = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    t.requires_grad_(requires_grad)
    with gx.backend("torch"):
        g = gx.from_torch(t, requires_grad=requires_grad)
    return t, g


def _close(ours, theirs):
    assert ours is not None and theirs is not None
    assert torch.allclose(ours.data_, theirs.detach(), rtol=1e-10, atol=1e-12)


# -- grad() -------------------------------------------------------------------

def test_grad_returns_gradients_without_touching_dot_grad():
    t, g = _pair(3, 4)
    tw, gw = _pair(4, 2, seed=1)
    (tg,) = torch.autograd.grad((t @ tw).tanh().sum() if False else (t @ tw).relu().sum(), [t])
    (gg,) = gx.autograd.grad((g @ gw).relu().sum(), [g])
    _close(gg, tg)
    assert g.grad is None and gw.grad is None


def test_grad_allow_unused_and_materialize():
    t, g = _pair(3)
    _, gu = _pair(3, seed=1)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        gx.autograd.grad((g * 2.0).sum(), [g, gu])
    ga, gb = gx.autograd.grad((g * 2.0).sum(), [g, gu], allow_unused=True)
    assert gb is None
    ga, gb = gx.autograd.grad((g * 2.0).sum(), [g, gu], materialize_grads=True)
    assert gb is not None and not gb.data_.any()


def test_grad_of_input_that_does_not_require_grad_is_an_error():
    _, g = _pair(3)
    _, c = _pair(3, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        gx.autograd.grad((g * c).sum(), [c])


def test_grad_with_respect_to_an_intermediate_runs_only_what_is_needed():
    t, g = _pair(3, 4)
    th = t * 3.0
    gh = g * 3.0
    (tg,) = torch.autograd.grad((th * th).sum(), [th])
    (gg,) = gx.autograd.grad((gh * gh).sum(), [gh])
    _close(gg, tg)
    assert g.grad is None


def test_backward_inputs_accumulates_only_into_those():
    t, g = _pair(3)
    t2, g2 = _pair(3, seed=1)
    (t * t2).sum().backward(inputs=[t])
    (g * g2).sum().backward(inputs=[g])
    _close(g.grad, t.grad)
    assert t2.grad is None and g2.grad is None


def test_backward_inputs_with_a_non_leaf_retains_its_grad():
    t, g = _pair(3)
    th, gh = t * 2.0, g * 2.0
    (th * th).sum().backward(inputs=[th])
    (gh * gh).sum().backward(inputs=[gh])
    _close(gh.grad, th.grad)
    assert t.grad is None and g.grad is None


def test_backward_gradient_shape_mismatch_message():
    _, g = _pair(3)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (g * 2.0).backward(gx.ones(4, dtype=gx.float64))


# -- higher order -------------------------------------------------------------

def _mlp(lib, x, w1, b1, w2, b2, y):
    F = torch.nn.functional if lib is torch else gx.nn.functional
    h = F.gelu(F.linear(x, w1, b1), approximate="tanh") if False else F.linear(x, w1, b1).relu()
    out = F.linear(h, w2, b2)
    diff = out - y
    return (diff * diff).mean()


def test_hessian_of_mlp_loss_matches_torch_functional_hessian():
    torch_in, gx_in = zip(*[_pair(*s, seed=i, requires_grad=False) for i, s in
                            enumerate([(5, 3), (4, 3), (4,), (2, 4), (2,), (5, 2)])])
    x, y = torch_in[0], torch_in[5]
    gxx, gy = gx_in[0], gx_in[5]
    th = torch.autograd.functional.hessian(lambda *p: _mlp(torch, x, *p, y), tuple(torch_in[1:5]))
    gh = gx.autograd.functional.hessian(lambda *p: _mlp(gx, gxx, *p, gy), tuple(gx_in[1:5]))
    for i in range(4):
        for j in range(4):
            _close(gh[i][j], th[i][j])


def test_hessian_vector_product_matches_torch():
    t, g = _pair(4)
    tv, gv = _pair(4, seed=1, requires_grad=False)

    def f(lib, x):
        return ((x * x) * x).sum() + (x / (x * x + 1.0)).sum()
    _, thv = torch.autograd.functional.hvp(lambda x: f(torch, x), t.detach(), tv)
    _, ghv = gx.autograd.functional.hvp(lambda x: f(gx, x), g.detach(), gv)
    _close(ghv, thv)


def test_third_order_derivative():
    t, g = _pair(3)
    (t1,) = torch.autograd.grad((t * t * t * t).sum(), t, create_graph=True)
    (t2,) = torch.autograd.grad(t1.sum(), t, create_graph=True)
    (t3,) = torch.autograd.grad(t2.sum(), t)
    (g1,) = gx.autograd.grad((g * g * g * g).sum(), g, create_graph=True)
    (g2,) = gx.autograd.grad(g1.sum(), g, create_graph=True)
    (g3,) = gx.autograd.grad(g2.sum(), g)
    _close(g3, t3)


def test_create_graph_backward_accumulates_a_differentiable_grad():
    t, g = _pair(3)
    (t * t * t).sum().backward(create_graph=True)
    (g * g * g).sum().backward(create_graph=True)
    assert g.grad.requires_grad and t.grad.requires_grad
    (tgg,) = torch.autograd.grad(t.grad.sum(), t)
    (ggg,) = gx.autograd.grad(g.grad.sum(), g)
    _close(ggg, tgg)


# -- hooks --------------------------------------------------------------------

def test_tensor_hooks_retain_grad_and_removal_match_torch():
    def run(lib, x):
        h = x * 2.0
        handle = h.register_hook(lambda grad: grad * 3.0)
        h.retain_grad()
        x.register_hook(lambda grad: grad + 1.0)
        (h * h).sum().backward(retain_graph=True)
        first = (x.grad.clone() if lib is torch else x.grad.data_.clone(), (h.grad if lib is torch else h.grad.data_).clone())
        handle.remove()
        (h * h).sum().backward()
        return first, x.grad if lib is torch else x.grad.data_
    t, g = _pair(3)
    (tf, th), tx = run(torch, t)
    (gf, gh), gxg = run(gx, g)
    assert torch.allclose(gf, tf) and torch.allclose(gh, th) and torch.allclose(gxg, tx)


def test_node_pre_and_post_hooks_see_torch_values():
    seen = {}

    def run(lib, x):
        y = x * 3.0
        y.grad_fn.register_prehook(lambda go: seen.update({f"{lib.__name__}_pre": go[0] * 1.0}))
        y.grad_fn.register_hook(lambda gi, go: seen.update({f"{lib.__name__}_post": gi[0] * 1.0}))
        y.sum().backward()
    t, g = _pair(3)
    run(torch, t)
    run(gx, g)
    _close(seen["gradxray.engine_pre"], seen["torch_pre"])
    _close(seen["gradxray.engine_post"], seen["torch_post"])


def test_post_accumulate_grad_hook_runs_after_accumulation():
    t, g = _pair(3)
    calls = []
    g.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.data_.clone()))
    (g * 2.0).sum().backward()
    assert len(calls) == 1 and torch.allclose(calls[0], torch.full((3,), 2.0, dtype=torch.float64))


def test_saved_tensors_hooks_pack_and_unpack_like_torch():
    def run(lib, x):
        packed, unpacked = [], []

        def pack(t):
            packed.append(tuple(t.shape))
            return t

        def unpack(t):
            unpacked.append(tuple(t.shape))
            return t
        with lib.autograd.graph.saved_tensors_hooks(pack, unpack):
            y = (x * x).relu()
        y.sum().backward()
        return sorted(packed), sorted(unpacked)
    t, g = _pair(2, 3)
    assert run(torch, t) == run(gx, g)


def test_saved_tensors_hooks_can_replace_what_is_stored():
    # pack to a plain (history-free) copy, unpack it back: gradients unchanged, second order still works
    t, g = _pair(4)
    with gx.autograd.graph.saved_tensors_hooks(lambda x: x.detach(), lambda x: x):
        y = (g * g * g).sum()
    (g1,) = gx.autograd.grad(y, g, create_graph=True)
    (g2,) = gx.autograd.grad(g1.sum(), g)
    (t1,) = torch.autograd.grad((t * t * t).sum(), t, create_graph=True)
    (t2,) = torch.autograd.grad(t1.sum(), t)
    _close(g1, t1)
    _close(g2, t2)


# -- grad modes -----------------------------------------------------------------

def test_inference_mode_tensors_cannot_be_saved_or_require_grad():
    _, g = _pair(3)
    with gx.inference_mode():
        frozen = g * 2.0
    assert frozen.is_inference() and not frozen.requires_grad
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        g * frozen
    with pytest.raises(RuntimeError, match="Setting requires_grad=True on inference tensor"):
        frozen.requires_grad_()


def test_set_grad_enabled_and_decorators():
    _, g = _pair(3)
    with gx.set_grad_enabled(False):
        assert not (g * 2.0).requires_grad
    assert gx.no_grad()(lambda: (g * 2.0).requires_grad)() is False
    with gx.no_grad():
        assert gx.enable_grad()(lambda: (g * 2.0).requires_grad)() is True


# -- in-place ------------------------------------------------------------------

def test_inplace_on_a_view_rebases_history_like_torch():
    def run(lib, w):
        base = w * 1.0
        view = base[:, 1:3]
        view.mul_(2.5)
        view.relu_()
        (base * base).sum().backward()
        return base.grad_fn.name(), view.grad_fn.name()
    t, g = _pair(3, 4)
    tn = run(torch, t)
    gn = run(gx, g)
    assert gn == ("CopySlices", "AsStridedBackward0") and tn[1] == gn[1]
    _close(g.grad, t.grad)


def test_inplace_on_a_view_of_a_leaf_is_an_error():
    _, g = _pair(3, 4)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        g[0].mul_(2.0)


def test_saved_tensor_modified_in_place_message_matches_torch():
    t, g = _pair(3)
    msgs = []
    for x in (t, g):
        y = x * 1.0
        z = y.relu()          # saves its output
        z.mul_(2.0)
        with pytest.raises(RuntimeError) as err:
            z.sum().backward()
        msgs.append(str(err.value))
    assert msgs[1] == msgs[0]
    t2, g2 = _pair(2, 3)
    msgs = []
    for x in (t2, g2):
        y = x * 1.0
        u = y * x             # saves y (output 0 of MulBackward0) and the leaf x
        y.add_(1.0)
        with pytest.raises(RuntimeError) as err:
            u.sum().backward()
        msgs.append(str(err.value))
    assert msgs[1] == msgs[0]


# -- custom Functions --------------------------------------------------------------

class GxScaledSquare(gx.autograd.Function):
    """y = a * x**2 (a fused op with its own backward)."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x)
        ctx.a = a
        return x * x * a

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x * (2.0 * ctx.a), None


class TorchScaledSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x)
        ctx.a = a
        return x * x * a

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x * (2.0 * ctx.a), None


def test_custom_function_first_and_second_order_match_torch():
    t, g = _pair(4)
    (t1,) = torch.autograd.grad(TorchScaledSquare.apply(t, 1.5).sum(), t, create_graph=True)
    (g1,) = gx.autograd.grad(GxScaledSquare.apply(g, 1.5).sum(), g, create_graph=True)
    _close(g1, t1)
    (t2,) = torch.autograd.grad(t1.sum(), t)
    (g2,) = gx.autograd.grad(g1.sum(), g)
    _close(g2, t2)


def test_custom_function_gradcheck_against_finite_differences():
    _, g = _pair(5)
    x = g.detach()
    eps = 1e-6
    (analytic,) = gx.autograd.grad(GxScaledSquare.apply(x.requires_grad_(), 0.7).sum(), x)
    numeric = []
    for i in range(5):
        bump = torch.zeros(5, dtype=torch.float64)
        bump[i] = eps
        with gx.backend("torch"):
            hi = gx.from_torch(x.data_ + bump, requires_grad=False)
            lo = gx.from_torch(x.data_ - bump, requires_grad=False)
        numeric.append((GxScaledSquare.apply(hi, 0.7).sum().item() - GxScaledSquare.apply(lo, 0.7).sum().item())
                       / (2 * eps))
    assert torch.allclose(analytic.data_, torch.tensor(numeric, dtype=torch.float64), rtol=1e-6, atol=1e-8)


def test_custom_function_ctx_api_matches_torch():
    record = {}

    def make(lib):
        class Split(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                record[lib.__name__] = ctx.needs_input_grad
                idx = (x > 0) if lib is torch else None
                ctx.mark_non_differentiable(*([idx] if idx is not None else []))
                return x * 2.0, y * 3.0

            @staticmethod
            def backward(ctx, ga, gb):
                # materialize_grads (the default): an unused output's gradient arrives as zeros
                return ga * 2.0, gb * 3.0
        return Split
    t, g = _pair(3)
    tc, gc = _pair(3, seed=1, requires_grad=False)
    ta, _ = make(torch).apply(t, tc)
    ga, _ = make(gx).apply(g, gc)
    ta.sum().backward()
    ga.sum().backward()
    _close(g.grad, t.grad)
    assert record["gradxray.engine"] == record["torch"] == (True, False)


def test_custom_function_mark_dirty_and_leaf_error():
    class AddOneInplace(gx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1.0)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad
    _, g = _pair(3)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        AddOneInplace.apply(g)
    h = g * 1.0
    v0 = h._version
    out = AddOneInplace.apply(h)
    assert out is h and h._version > v0 and h.grad_fn.name() == "AddOneInplaceBackward"
    out.sum().backward()
    assert torch.allclose(g.grad.data_, torch.ones(3, dtype=torch.float64))


def test_once_differentiable_refuses_double_backward():
    class Cube(gx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        @gx.autograd.function.once_differentiable
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3.0 * x * x
    _, g = _pair(3)
    # an incoming gradient that needs no grad: the result is simply not differentiable (as in torch)
    (plain,) = gx.autograd.grad(Cube.apply(g).sum(), g, create_graph=True)
    assert not plain.requires_grad
    _, go = _pair(1, seed=2)
    go = go.sum()
    (g1,) = gx.autograd.grad(Cube.apply(g).sum(), g, go, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g1.sum().backward()


def test_custom_function_returning_an_input_gives_a_view():
    class Identity(gx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 2.0
    _, g = _pair(3)
    h = g * 1.0
    out = Identity.apply(h)
    assert out is not h and out._storage is h._storage and h.grad_fn.name() == "MulBackward0"
    out.sum().backward()
    assert torch.allclose(g.grad.data_, torch.full((3,), 2.0, dtype=torch.float64))


# -- device and dtype conversion ------------------------------------------------------

def test_to_converts_dtype_and_device_with_a_differentiable_copy():
    with gx.backend("shape"):
        x = gx.empty(3, 4, requires_grad=True)
        on_gpu = x.t().to("cuda", gx.float16)
        assert on_gpu.device.type == "cuda" and on_gpu.dtype is gx.float16 and on_gpu.stride() == (1, 4)
        assert on_gpu.grad_fn.name() == "ToCopyBackward0"
        back = (on_gpu * 2.0).cpu()
        assert back.device.type == "cpu"
        back.sum().backward()
        assert x.grad.device.type == "cpu" and x.grad.dtype is gx.float32 and tuple(x.grad.shape) == (3, 4)
        assert x.to("cpu") is x and x.to(gx.float32) is x          # nothing to do: the same tensor, as torch


def test_type_names_and_converts_like_torch():
    t, g = _pair(2, 3)
    assert g.type() == t.type() == "torch.DoubleTensor"
    assert g.type(gx.float64) is g and t.type(torch.float64) is t      # already that type: the same tensor
    (t.type(torch.float32) * 3.0).sum().backward()
    (g.type(gx.float32) * 3.0).sum().backward()
    assert g.type(gx.float16).type() == t.type(torch.float16).type() == "torch.HalfTensor"
    assert g.type("torch.FloatTensor").dtype is gx.float32 and t.type("torch.FloatTensor").dtype is torch.float32
    assert g.type(gx.float32).grad_fn.name() == t.type(torch.float32).grad_fn.name() == "ToCopyBackward0"
    _close(g.grad, t.grad)
    with gx.backend("shape"):
        assert gx.empty(2, device="cuda").type() == "torch.cuda.FloatTensor"


def test_to_dtype_gradient_matches_torch():
    t, g = _pair(2, 3)
    (t.to(torch.float32) * 3.0).sum().backward()
    (g.to(gx.float32) * 3.0).sum().backward()
    assert g.grad.dtype is gx.float64
    _close(g.grad, t.grad)


def test_module_to_device_keeps_tied_weights_tied():
    with gx.backend("shape"):
        emb = gx.nn.Embedding(10, 4)
        head = gx.nn.Linear(4, 10, bias=False)
        head.weight = emb.weight
        model = gx.nn.Sequential(emb, head).to("cuda")
    assert model[0].weight is model[1].weight and model[0].weight.device.type == "cuda"
    assert len(list(model.parameters())) == 1
