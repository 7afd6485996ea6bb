"""Autocast and GradScaler against torch: per-op dtype policy (CPU bf16 measured on torch's CPU autocast, CUDA
fp16 as torch 2.11 runs it), the casts recorded as ToCopyBackward0 nodes, saved tensors, gradients, the
weight cast cache and its memory, nesting, and GradScaler sequences with injected infs."""
import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import TOLERANCES, Arg, check_op  # noqa: E402

BF16_TOL = dict(tolerances=TOLERANCES[torch.bfloat16])
LABELS = torch.tensor([0, 2, 1, 2])


def under_autocast(fn, device="cpu", dtype=None):
    """(torch_fn, gx_fn): ``fn(ns, *args)`` run inside each library's autocast region; ``ns`` is the
    namespace pair (torch or gx, its functional module) so one body describes both."""
    def torch_fn(*args):
        with torch.autocast(device, dtype=dtype or torch.bfloat16):
            return fn(torch, TF, *args)

    def gx_fn(*args):
        with gx.autocast(device, dtype=dtype or gx.bfloat16):
            return fn(gx, F, *args)

    return torch_fn, gx_fn


def _mlp(ns, f, x, w1, b1, g, beta, w2, b2, labels):
    h = f.gelu(f.layer_norm(f.linear(x, w1, b1), (w1.shape[0],), g, beta))
    return f.cross_entropy(f.linear(h, w2, b2), labels)


def _attention_block(ns, f, x, wq, wk, wv):
    q, k, v = (f.linear(x, w).view(1, 4, 2, 4).transpose(1, 2) for w in (wq, wk, wv))
    return f.softmax(f.scaled_dot_product_attention(q, k, v), -1)


def _conv_block(ns, f, x, w, b, gamma, beta):
    y = f.batch_norm(f.conv2d(x, w, b, padding=1), None, None, gamma, beta, training=True)
    return f.pad(f.relu(y), (1, 1, 1, 1), mode="reflect")


# name: (torch_fn, gx_fn, args, check kwargs); all on the CPU policy (bf16) unless named otherwise
CASES = {
    "linear": (*under_autocast(lambda ns, f, x, w, b: f.linear(x, w, b)), [Arg((4, 5)), Arg((3, 5)), Arg((3,))],
               {}),
    "linear_3d_frozen_input": (*under_autocast(lambda ns, f, x, w, b: f.linear(x, w, b)),
                               [Arg((2, 4, 5), requires_grad=False), Arg((3, 5)), Arg((3,))], {}),
    "linear_twice_cast_cache": (*under_autocast(lambda ns, f, x, w: f.linear(x, w) * f.linear(x, w)),
                                [Arg((4, 5)), Arg((3, 5))], {}),
    "matmul_operator_transposed": (*under_autocast(lambda ns, f, x, w: x @ w),
                                   [Arg((4, 5)), Arg((5, 3), transposed=True)], {}),
    "matmul_batched_broadcast": (*under_autocast(lambda ns, f, x, w: ns.matmul(x, w)), [Arg((2, 4, 5)), Arg((5, 3))],
                                 {}),
    "mm_nonleaf_is_not_cached": (*under_autocast(lambda ns, f, a, b: ns.mm(a * 2, b) + ns.mm(a * 2, b)),
                                 [Arg((3, 4)), Arg((4, 2))], {}),
    "addmm": (*under_autocast(lambda ns, f, c, a, b: ns.addmm(c, a, b)), [Arg((2,)), Arg((3, 4)), Arg((4, 2))], {}),
    "bmm": (*under_autocast(lambda ns, f, a, b: ns.bmm(a, b)), [Arg((2, 3, 4)), Arg((2, 4, 5))], {}),
    "baddbmm": (*under_autocast(lambda ns, f, c, a, b: ns.baddbmm(c, a, b, alpha=0.5)),
                [Arg((2, 3, 5)), Arg((2, 3, 4)), Arg((2, 4, 5))], {}),
    "conv2d": (*under_autocast(lambda ns, f, x, w, b: f.conv2d(x, w, b, padding=1)),
               [Arg((2, 3, 5, 5)), Arg((4, 3, 3, 3)), Arg((4,))], {}),
    "prelu": (*under_autocast(lambda ns, f, x, a: f.prelu(x, a)), [Arg((2, 3, 4)), Arg((3,))], {}),
    "sdpa": (*under_autocast(lambda ns, f, q, k, v: f.scaled_dot_product_attention(q, k, v)),
             [Arg((1, 2, 4, 8)), Arg((1, 2, 4, 8)), Arg((1, 2, 4, 8))], dict(second_order=False)),
    "cross_entropy_fp32_policy": (*under_autocast(lambda ns, f, x, w, y: f.cross_entropy(f.linear(x, w), y)),
                                  [Arg((4, 5)), Arg((3, 5)), LABELS], {}),
    "mse_loss_mixed_inputs": (*under_autocast(lambda ns, f, x, w, t: f.mse_loss(f.linear(x, w), t)),
                              [Arg((4, 5)), Arg((3, 5)), Arg((4, 3))], {}),
    "prod_fp32_on_cpu": (*under_autocast(lambda ns, f, x, w: f.linear(x, w).prod(1)),
                         [Arg((4, 5)), Arg((3, 5))], {}),
    "unlisted_ops_keep_bf16": (*under_autocast(lambda ns, f, x, w: f.log_softmax(f.layer_norm(f.linear(x, w), (3,)),
                                                                                   -1).sum()),
                               [Arg((4, 5)), Arg((3, 5))], {}),
    "pad_reflect_fp32_constant_not": (*under_autocast(
        lambda ns, f, x, w: f.pad(ns.conv2d(x, w), (1, 1, 1, 1), mode="reflect") * 2
        + f.pad(ns.conv2d(x, w), (1, 1, 1, 1)).float()),
        [Arg((1, 2, 4, 4)), Arg((3, 2, 1, 1))], {}),
    "mlp": (*under_autocast(_mlp), [Arg((4, 6)), Arg((5, 6)), Arg((5,)), Arg((5,)), Arg((5,)), Arg((3, 5)),
                                    Arg((3,)), LABELS], {}),
    "attention_block": (*under_autocast(_attention_block),
                        [Arg((4, 8)), Arg((8, 8)), Arg((8, 8)), Arg((8, 8))],
                        dict(second_order=False)),     # torch has no double backward for CPU flash attention
    "conv_bn_block": (*under_autocast(_conv_block),
                      [Arg((2, 3, 5, 5)), Arg((4, 3, 3, 3)), Arg((4,)), Arg((4,)), Arg((4,))], {}),
    "fp16_on_cpu": (*under_autocast(lambda ns, f, x, w: f.softmax(f.linear(x, w), -1), dtype=torch.float16),
                    [Arg((4, 5)), Arg((3, 5))], dict(tolerances=TOLERANCES[torch.float16])),
}

# inputs of each dtype; second order only where nothing runs in bf16 (float64 is never cast), since a
# vector-Hessian product in bf16 differs from torch's by rounding alone
DTYPES = {"float32": (torch.float32, dict(BF16_TOL, second_order=False)),
          "bfloat16": (torch.bfloat16, dict(BF16_TOL, second_order=False)),
          "float64": (torch.float64, dict(tolerances=(1e-10, 1e-12)))}


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_case_against_torch_autocast(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    torch_dtype, tol = DTYPES[dtype]
    check_op(torch_fn, gx_fn, args, dtype=torch_dtype, **{**tol, **check})


# -- the graphs: every node and the dtype of every saved tensor ------------------------------------

def _node_names(root):
    names, seen, stack = [], {}, [root.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node          # held, so that a torch node wrapper's id is not reused
        names.append(node.name().replace("torch::autograd::", ""))
        stack.extend(f for f, _ in node.next_functions if f is not None)
    return sorted(names)


def _inputs(args, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    tin = [a.make(dtype, gen) if isinstance(a, Arg) else a for a in args]
    with gx.backend("torch"):
        gin = [gx.from_torch(t) if isinstance(t, torch.Tensor) else t for t in tin]
    return tin, gin


@pytest.mark.parametrize("name", sorted(CASES))
def test_graph_nodes_equal_torch(name):
    torch_fn, gx_fn, args, _ = CASES[name]
    tin, gin = _inputs(args)
    tout, gout = torch_fn(*tin), gx_fn(*gin)
    assert _node_names(gout) == _node_names(tout)
    assert gout.dtype.name == str(tout.dtype).replace("torch.", "")


def test_cast_cache_is_an_allocation_of_two_bytes_per_parameter_until_the_outermost_region_exits():
    with gx.backend("torch"):
        model = gx.nn.Sequential(gx.nn.Linear(16, 32), gx.nn.GELU(), gx.nn.Linear(32, 8))
        x = gx.randn(4, 16)
    params = sum(int(p.numel()) for p in model.parameters())
    with gx.memory.MemoryTracker() as tracker:
        before = tracker.current_bytes
        with gx.autocast("cpu"):
            with gx.autocast("cpu", enabled=False):
                assert model(x).dtype is gx.float32     # disabled inside: nothing cast, nothing cached
            assert tracker.current_bytes == before
            out = model(x)
            del out                                      # graph and activations gone, the cache stays
            assert tracker.current_bytes - before == 2 * params
            with gx.autocast("cpu"):                     # an inner region reuses the cached copies
                model(x).sum()
            assert tracker.current_bytes - before == 2 * params
        assert tracker.current_bytes == before           # dropped when the outermost region exits


def test_cached_copy_is_what_addmm_saves_and_lives_until_backward():
    with gx.backend("torch"):
        lin = gx.nn.Linear(8, 4)
        x = gx.randn(3, 8, requires_grad=True)     # torch's addmm saves mat2 only when mat1 needs a grad
    with gx.memory.MemoryTracker() as tracker:
        with gx.autocast("cpu"):
            loss = lin(x).float().sum()
        saved = {r.what: r for r in tracker.saved if r.op == "AddmmBackward0"}
        assert saved["mat2"].dtype == "bfloat16" and saved["mat2"].nbytes == 2 * 8 * 4
        live_after_exit = tracker.current_bytes
        loss.backward()
    assert lin.weight.grad.dtype is gx.float32 and lin.bias.grad.dtype is gx.float32
    assert live_after_exit > 0


def test_nesting_enabled_false_and_decorator_against_torch():
    def body(ns, f, autocast, x, w):
        with autocast("cpu"):
            a = f.linear(x, w)
            with autocast("cpu", enabled=False):
                b = f.linear(x, w)
                inner = (ns.is_autocast_enabled("cpu"), str(ns.get_autocast_dtype("cpu")).split(".")[-1])
            with autocast("cpu", dtype=ns.float16):
                c = f.linear(x, w)
            outer = (ns.is_autocast_enabled("cpu"), str(ns.get_autocast_dtype("cpu")).split(".")[-1])
        return a.float().sum() + b.sum() + c.float().sum(), (a.dtype, b.dtype, c.dtype), inner, outer

    tin, gin = _inputs([Arg((3, 4)), Arg((2, 4))])
    t_loss, t_dtypes, t_inner, t_outer = body(torch, TF, torch.autocast, *tin)
    g_loss, g_dtypes, g_inner, g_outer = body(gx, F, gx.autocast, *gin)
    assert [d.name for d in g_dtypes] == [str(d).split(".")[-1] for d in t_dtypes]
    assert (g_inner, g_outer) == (t_inner, t_outer) == ((False, "bfloat16"), (True, "bfloat16"))
    assert _node_names(g_loss) == _node_names(t_loss)
    assert not gx.is_autocast_enabled("cpu") and gx.get_autocast_dtype("cpu") is gx.bfloat16

    @gx.autocast("cpu")
    def decorated(x, w):
        return F.linear(x, w)

    assert decorated(*gin).dtype is gx.bfloat16 and not gx.is_autocast_enabled("cpu")


def test_autocast_arguments_and_errors_match_torch():
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        gx.autocast(0)
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'tpu'"):
        gx.autocast("tpu")
    with pytest.warns(UserWarning, match="CPU Autocast only supports dtypes of torch.bfloat16, torch.float16"):
        region = gx.autocast("cpu", dtype=gx.float64)
    with region:
        assert not gx.is_autocast_enabled("cpu")
    with pytest.raises(TypeError, match="requires a callable"):
        gx.autocast("cpu")(3)
    assert gx.amp.autocast is gx.autocast
    assert gx.get_autocast_dtype("cuda") is gx.float16 and gx.get_autocast_dtype("cpu") is gx.bfloat16


def test_in_place_ops_are_not_autocast():
    with gx.backend("torch"):
        x = gx.randn(4, 4)
        w = gx.randn(4, 4)
    with gx.autocast("cpu"):
        x.add_(w)
        assert x.dtype is gx.float32
        assert gx.matmul(x, w).dtype is gx.bfloat16


# -- CUDA fp16 policy on the shape backend (expected graphs as torch 2.11 builds them on an H100) ---

def _cuda(*shape, dtype=gx.float32, requires_grad=True):
    with gx.backend("shape"):
        return gx.empty(*shape, dtype=dtype, device="cuda", requires_grad=requires_grad)


H, FP = gx.float16, gx.float32

# name: (fn, inputs, torch's output dtype, torch's nodes other than AccumulateGrad)
CUDA_POLICY = {
    "linear": (lambda x, w, b: F.linear(x, w, b), [(3, 4), (5, 4), (5,)], H,
               ["AddmmBackward0", "TBackward0", "ToCopyBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "linear_half_input": (lambda x, w: F.linear(x.half(), w), [(3, 4), (5, 4)], H,
                          ["MmBackward0", "TBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "mv_lower": (lambda a, v: gx.mv(a, v), [(3, 4), (4,)], H, ["MvBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "dot_promote": (lambda a, b: gx.dot(a.half(), b), [(4,), (4,)], FP,
                    ["DotBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "softmax_half_to_float": (lambda x: F.softmax(x.half(), -1), [(3, 4)], FP, ["SoftmaxBackward0", "ToCopyBackward0"]),
    "log_softmax_half_to_float": (lambda x: F.log_softmax(x.half(), -1), [(3, 4)], FP,
                                  ["LogSoftmaxBackward0", "ToCopyBackward0"]),
    "softmax_dtype_given": (lambda x: F.softmax(x, -1, dtype=gx.float16), [(3, 4)], H,
                            ["SoftmaxBackward0", "ToCopyBackward0"]),
    "sum_opt_dtype": (lambda x: x.half().sum(1), [(3, 4)], FP, ["SumBackward1", "ToCopyBackward0"]),
    "cumsum_opt_dtype": (lambda x: x.half().cumsum(1), [(3, 4)], FP, ["CumsumBackward0", "ToCopyBackward0"]),
    "prod_opt_dtype": (lambda x: gx.prod(x.half()), [(3, 4)], FP, ["ProdBackward0", "ToCopyBackward0"]),
    "norm_opt_dtype": (lambda x: x.half().norm(), [(4,)], FP, ["LinalgVectorNormBackward0", "ToCopyBackward0"]),
    "mean_unlisted": (lambda x: x.half().mean(), [(3, 4)], H, ["MeanBackward0", "ToCopyBackward0"]),
    "layer_norm_fp32": (lambda x, g, b: F.layer_norm(x.half(), (4,), g, b), [(3, 4), (4,), (4,)], FP,
                        ["NativeLayerNormBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "exp_fp32": (lambda x: x.half().exp(), [(4,)], FP, ["ExpBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "pow_fp32": (lambda x: x.half() ** 2, [(4,)], FP, ["PowBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "gelu_unlisted": (lambda x: F.gelu(x.half()), [(4,)], H, ["GeluBackward0", "ToCopyBackward0"]),
    "cross_entropy": (lambda x: F.cross_entropy(x.half(), _cuda(3, dtype=gx.int64, requires_grad=False)), [(3, 4)], FP,
                      ["NllLossBackward0", "ToCopyBackward0", "LogSoftmaxBackward0", "ToCopyBackward0"]),
    "mse_loss_fp32": (lambda a, b: F.mse_loss(a.half(), b), [(4,), (4,)], FP,
                      ["MseLossBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "addcmul_promote": (lambda a, b, c: gx.addcmul(a, b.half(), c), [(4,), (4,), (4,)], FP,
                        ["AddcmulBackward0", "ToCopyBackward0", "ToCopyBackward0"]),
    "batch_norm_unlisted": (lambda x, g, b: F.batch_norm(x.half(), None, None, g, b, training=True),
                            [(2, 4, 3), (4,), (4,)], H, None),
    "float64_untouched": (lambda x, w: F.softmax(F.linear(x.double(), w.double()), -1), [(3, 4), (5, 4)],
                          gx.float64, None),
}


@pytest.mark.parametrize("name", sorted(CUDA_POLICY))
def test_cuda_fp16_policy_on_shape_backend(name):
    fn, shapes, out_dtype, nodes = CUDA_POLICY[name]
    inputs = [_cuda(*s) for s in shapes]
    with gx.autocast("cuda"):
        out = fn(*inputs)
    assert out.device.type == "cuda" and out.data_ is None
    assert out.dtype is out_dtype
    if nodes is not None:
        assert [n for n in _node_names(out) if n != "AccumulateGrad"] == sorted(nodes)
    gx.autograd.backward([out], [_cuda(*out.shape, dtype=out.dtype, requires_grad=False)])
    for x in inputs:
        assert x.grad is not None and x.grad.dtype is x.dtype and tuple(x.grad.shape) == tuple(x.shape)


def test_cuda_softmax_half_to_float_saves_fp32_result_and_returns_a_half_gradient():
    x = _cuda(3, 4, dtype=H)
    with gx.memory.MemoryTracker() as tracker, gx.autocast("cuda"):
        y = F.softmax(x, -1)
    assert [(r.op, r.what, r.dtype) for r in tracker.saved] == [("SoftmaxBackward0", "result", "float32")]
    (g,) = gx.autograd.grad([y], [x], [_cuda(3, 4, requires_grad=False)])
    assert g.dtype is H


def test_cuda_binary_cross_entropy_is_banned_with_torchs_message():
    p, t = _cuda(4), _cuda(4, requires_grad=False)
    with gx.autocast("cuda"), pytest.raises(RuntimeError) as err:
        F.binary_cross_entropy(p, t)
    assert str(err.value).startswith("torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe "
                                     "to autocast.\nMany models use a sigmoid layer")
    with gx.autocast("cpu"):                      # CPU runs it in fp32 instead
        assert F.binary_cross_entropy(_cuda(4, dtype=H), _cuda(4, dtype=H, requires_grad=False)).dtype is H


def test_cuda_cast_cache_bytes_on_shape_backend():
    with gx.backend("shape"):
        model = gx.nn.Sequential(gx.nn.Linear(64, 256), gx.nn.ReLU(), gx.nn.Linear(256, 64))
        for p in model.parameters():
            assert p.device.type == "cpu"
        x = gx.empty(8, 64, device="cuda")
    cuda_model = [gx.nn.Parameter(gx.empty(*p.shape, device="cuda")) for p in model.parameters()]
    w1, b1, w2, b2 = cuda_model
    params = sum(int(p.numel()) for p in cuda_model)
    with gx.memory.MemoryTracker() as tracker:
        with gx.autocast("cuda"):
            y = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)
            assert y.dtype is H
            del y
            assert tracker.current_bytes == 2 * params
        assert tracker.current_bytes == 0


# -- real CUDA (run on a GPU machine) ----------------------------------------------------------------

CUDA_CASES = {
    "linear": (lambda ns, f, x, w, b: f.linear(x, w, b), [Arg((4, 5)), Arg((3, 5)), Arg((3,))]),
    "linear_twice": (lambda ns, f, x, w: f.linear(x, w) * f.linear(x, w), [Arg((4, 5)), Arg((3, 5))]),
    "softmax": (lambda ns, f, x, w: f.softmax(f.linear(x, w), -1), [Arg((4, 5)), Arg((3, 5))]),
    "log_softmax": (lambda ns, f, x, w: f.log_softmax(f.linear(x, w), -1), [Arg((4, 5)), Arg((3, 5))]),
    "sum_prod": (lambda ns, f, x, w: f.linear(x, w).sum(1) + f.linear(x, w).prod(1), [Arg((4, 5)), Arg((3, 5))]),
    "layer_norm": (lambda ns, f, x, w, g: f.layer_norm(f.linear(x, w), (3,), g), [Arg((4, 5)), Arg((3, 5)), Arg((3,))]),
    "cross_entropy": (lambda ns, f, x, w, y: f.cross_entropy(f.linear(x, w), y), [Arg((4, 5)), Arg((3, 5)), LABELS]),
    "mse_exp": (lambda ns, f, x, w, t: f.mse_loss(f.linear(x, w).exp(), t), [Arg((4, 5)), Arg((3, 5)), Arg((4, 3))]),
}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(CUDA_CASES))
def test_cuda_fp16_against_torch(name):
    fn, args = CUDA_CASES[name]
    gen = torch.Generator().manual_seed(0)
    tin = [a.make(torch.float32, gen).detach().cuda().requires_grad_(a.requires_grad) if isinstance(a, Arg)
           else a.cuda() for a in args]
    with gx.backend("torch"):
        gin = [gx.from_torch(t) for t in tin]
    diff_t = [t for t in tin if t.requires_grad]
    diff_g = [g for g in gin if g.requires_grad]
    with torch.autocast("cuda"):
        tout = fn(torch, TF, *tin)
    with gx.autocast("cuda"):
        gout = fn(gx, F, *gin)
    assert gout.dtype.name == str(tout.dtype).replace("torch.", "")
    assert _node_names(gout) == _node_names(tout)
    torch.testing.assert_close(gout.data_.float(), tout.detach().float(), rtol=1e-2, atol=1e-3)
    tg = torch.autograd.grad(tout.sum(), diff_t)
    gg = gx.autograd.grad([gout.sum()], diff_g)
    for a, b in zip(gg, tg):
        assert a.dtype.name == str(b.dtype).replace("torch.", "")
        torch.testing.assert_close(a.data_.float(), b.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bce_message_is_torchs():
    p = torch.rand(4, device="cuda")
    with torch.autocast("cuda"), pytest.raises(RuntimeError) as err:
        TF.binary_cross_entropy(p, p)
    assert str(err.value).startswith(gx.amp.BCE_BANNED)


# -- GradScaler against torch.amp.GradScaler("cpu") ----------------------------------------------------

def _scaler_run(lib, steps, inf_steps, nan_steps, backend="torch"):
    """Train a tiny model with a GradScaler (growth_interval 3), injecting inf / NaN into one gradient on the
    given steps; returns (scale, growth tracker, parameters) after every update."""
    gen = torch.Generator().manual_seed(1)
    w0, b0, x0 = torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen), torch.randn(5, 4, generator=gen)
    if lib == "torch":
        w, b, x = w0.clone().requires_grad_(), b0.clone().requires_grad_(), x0
        opt = torch.optim.SGD([w, b], lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    else:
        with gx.backend(backend):
            w, b, x = gx.from_torch(w0, True), gx.from_torch(b0, True), gx.from_torch(x0)
        opt = gx.optim.SGD([w, b], lr=0.1, momentum=0.9)
        scaler = gx.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
    history = []
    for step in range(steps):
        opt.zero_grad()
        loss = ((x @ w.t() + b) ** 2).mean()
        scaler.scale(loss).backward()
        if step in inf_steps or step in nan_steps:
            bad = math.inf if step in inf_steps else math.nan
            (w.grad if lib == "torch" else w.grad.data_)[0, 1] = bad     # torch tensor or numpy array
        if step % 4 == 1:
            scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        params = [p.detach().clone() if lib == "torch" else torch.as_tensor(gx.backends.to_numpy(p).copy())
                  for p in (w, b)]
        history.append((scaler.get_scale(), scaler.state_dict()["_growth_tracker"], params))
    return history, scaler


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_grad_scaler_sequence_equals_torch(backend):
    kwargs = dict(steps=12, inf_steps={2, 7}, nan_steps={8})
    ours, _ = _scaler_run("gx", backend=backend, **kwargs)
    theirs, _ = _scaler_run("torch", **kwargs)
    scales = [s for s, _, _ in theirs]
    assert scales != [scales[0]] * len(scales)              # the sequence both backs off and grows
    for step, ((s, g, p), (ts, tg, tp)) in enumerate(zip(ours, theirs)):
        assert (s, g) == (ts, tg), f"step {step}: scale/tracker {(s, g)} != torch {(ts, tg)}"
        for a, e in zip(p, tp):
            torch.testing.assert_close(a.float(), e.float(), rtol=1e-5, atol=1e-6)


def test_grad_scaler_errors_and_state_dict():
    with gx.backend("torch"):
        w = gx.randn(3, requires_grad=True)
    opt = gx.optim.SGD([w], lr=0.1)
    scaler = gx.amp.GradScaler("cpu")
    with pytest.raises(AssertionError, match="Attempted unscale_ but _scale is None"):
        scaler.unscale_(opt)
    scaler.scale((w * w).sum()).backward()
    assert w.grad.dtype is gx.float32 and scaler.get_scale() == 2.0 ** 16
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called on this optimizer since the "
                                           r"last update\(\)."):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called since the last update\(\)."):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: None)
    scaler.update()
    state = scaler.state_dict()
    assert state == {"scale": 2.0 ** 16, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                     "_growth_tracker": 1}
    other = gx.amp.GradScaler("cpu", init_scale=4.0)
    other.load_state_dict(state)
    assert other.get_scale() == 2.0 ** 16 and other.state_dict() == state
    with pytest.raises(RuntimeError, match="The source state dict is empty"):
        other.load_state_dict({})
    with pytest.raises(AssertionError, match="The growth factor must be > 1.0."):
        gx.amp.GradScaler("cpu", growth_factor=1.0)
    assert gx.amp.GradScaler("cpu", enabled=False).scale(w) is w

    with gx.backend("torch"):
        h = gx.randn(3, dtype=gx.float16, requires_grad=True)
    half_opt = gx.optim.SGD([h], lr=0.1)
    scaler.scale(h.float().sum()).backward()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients."):
        scaler.step(half_opt)


def test_grad_scaler_on_shape_backend_steps_and_keeps_storage():
    w = _cuda(4, 4)
    opt = gx.optim.SGD([w], lr=0.1)
    scaler = gx.amp.GradScaler()
    with gx.autocast("cuda"):
        loss = F.linear(_cuda(2, 4, requires_grad=False), w).float().sum()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert w.grad.dtype is gx.float32 and scaler._scale.data_ is None
