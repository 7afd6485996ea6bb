"""FLOPs per kernel against torch's FlopCounterMode: the engine's forward and backward FLOPs, kernel by
kernel, on the torch backend and on the shape backend, for matrix products in every decomposition,
einsum, convolutions, attention on the math path, an MLP and a GPT model; gradxray's own formulas for the
kernels torch's counter leaves out (mv, dot, CPU flash attention); the CUDA attention kernels' formulas
against torch's; and symbolic sizes."""
import math
from fractions import Fraction

import pytest

torch = pytest.importorskip("torch")

from torch.utils import flop_counter  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine import flops as gx_flops  # noqa: E402
from gradxray.engine.flops import FlopCounter  # noqa: E402
from gradxray.engine.interop import load_torch_state  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from gradxray.engine.symbolic import SymInt  # noqa: E402
from tests.support.opcheck import Arg  # noqa: E402

TF = torch.nn.functional
aten = torch.ops.aten


# -- gradxray-only FLOPs, written out by hand for the cases that run such kernels ----------------------

def _mv(n, m):
    return 2 * n * m


def _flash_forward(b, h, lq, s, e):
    return 2 * b * h * lq * s * e + 2 * b * h * lq * s * e


def _flash_backward(b, h, lq, s, e):
    return 5 * 2 * b * h * lq * s * e      # Q K^T recomputed, dO V^T, P^T dO, dS K, dS^T Q


class _Mirrored:
    """A torch module and its engine twin: on data the twin gets the torch module's weights, on the shape
    backend it is built data-less.  Calling it runs the twin."""

    def __init__(self, torch_module, make_gx_module):
        self.torch_module, self.make_gx_module = torch_module, make_gx_module

    def __call__(self, *inputs):
        backend = "shape" if inputs[0].data_ is None else "torch"
        with gx.backend(backend):
            module = self.make_gx_module()
            if backend == "torch":
                load_torch_state(module, self.torch_module)
            return module(*inputs)


def _mlp_case():
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 3))
    torch.manual_seed(0)
    torch_model = build(torch)
    return (lambda x, y: TF.mse_loss(torch_model(x), y),
            lambda x, y, _twin=_Mirrored(torch_model, lambda: build(gx)): F.mse_loss(_twin(x), y),
            [Arg((5, 12)), Arg((5, 3), requires_grad=False)], dict(dtypes=(torch.float32,)))


GPT_CONFIG = dict(vocab=64, ctx=16, d=32, layers=2, heads=4)


def _gpt_case(batch, seq):
    from bench.engine import gpt2_classes
    torch.manual_seed(0)
    torch_model = gpt2_classes(torch)(**GPT_CONFIG)
    twin = _Mirrored(torch_model, lambda: gpt2_classes(gx)(**GPT_CONFIG))
    d, heads, layers = GPT_CONFIG["d"], GPT_CONFIG["heads"], GPT_CONFIG["layers"]
    head_dim = d // heads
    tokens = torch.randint(0, GPT_CONFIG["vocab"], (2, batch, seq))
    # causal SDPA without dropout takes the CPU flash kernel, which FlopCounterMode does not count
    only_ours = {"forward": layers * _flash_forward(batch, heads, seq, seq, head_dim),
                 "backward": layers * _flash_backward(batch, heads, seq, seq, head_dim)}
    return (lambda idx, targets: torch_model(idx, targets), twin, [tokens[0], tokens[1]],
            dict(gradxray_only=only_ours, dtypes=(torch.float32,)))


def _sdpa(**kwargs):
    return (lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kwargs),
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs))


def _conv(name, **kwargs):
    return (lambda x, w, b=None: getattr(TF, name)(x, w, b, **kwargs),
            lambda x, w, b=None: getattr(F, name)(x, w, b, **kwargs))


def _matmul(a, b, **check):
    return (torch.matmul, gx.matmul, [a, b], check)


# name: (torch_fn, gx_fn, inputs, check) where check may give ``gradxray_only``: {phase: FLOPs} of the
# kernels torch's counter does not count, ``values=False`` where the outputs are random (dropout),
# and ``dtypes`` where not all of DTYPES apply.
CASES = {
    # F.linear: addmm, flattened addmm, matmul (+ in-place bias), unsqueezed mm
    "linear_2d": (TF.linear, F.linear, [Arg((4, 6)), Arg((5, 6)), Arg((5,))], {}),
    "linear_3d": (TF.linear, F.linear, [Arg((2, 3, 6)), Arg((5, 6)), Arg((5,))], {}),
    "linear_3d_noncontiguous": (TF.linear, F.linear, [Arg((2, 3, 6), transposed=True), Arg((5, 6)), Arg((5,))], {}),
    "linear_no_bias": (TF.linear, F.linear, [Arg((2, 3, 6)), Arg((5, 6))], {}),
    "linear_frozen_weight": (TF.linear, F.linear, [Arg((4, 6)), Arg((5, 6), requires_grad=False), Arg((5,))], {}),
    "linear_frozen_input": (TF.linear, F.linear, [Arg((2, 3, 6), requires_grad=False), Arg((5, 6)), Arg((5,))], {}),
    # torch flattens any contiguous input with a 1-D bias into one addmm (_flatten_nd_linear)
    "linear_1d": (TF.linear, F.linear, [Arg((6,)), Arg((5, 6)), Arg((5,))], {}),
    "linear_4d": (TF.linear, F.linear, [Arg((2, 3, 2, 6)), Arg((5, 6)), Arg((5,))], {}),
    # matmul, each of torch's decompositions
    "matmul_1d_1d": _matmul(Arg((5,)), Arg((5,)), gradxray_only={"forward": 2 * 5}),
    "matmul_2d_1d": _matmul(Arg((3, 5)), Arg((5,)), gradxray_only={"forward": _mv(3, 5), "backward": _mv(5, 3)}),
    "matmul_1d_2d": _matmul(Arg((5,)), Arg((5, 4))),
    "matmul_2d_2d": _matmul(Arg((3, 5)), Arg((5, 4))),
    "matmul_2d_2d_transposed": _matmul(Arg((3, 5), transposed=True), Arg((5, 4))),
    "matmul_3d_2d_fold": _matmul(Arg((2, 3, 5)), Arg((5, 4))),
    "matmul_3d_2d_weight_frozen": _matmul(Arg((2, 3, 5)), Arg((5, 4), requires_grad=False)),
    "matmul_3d_2d_noncontiguous_frozen": _matmul(Arg((5, 3, 2), transposed=True), Arg((2, 4), requires_grad=False)),
    "matmul_3d_1d": _matmul(Arg((2, 3, 5)), Arg((5,)),
                            gradxray_only={"forward": _mv(6, 5), "backward": _mv(5, 6)}),
    "matmul_1d_3d": _matmul(Arg((5,)), Arg((2, 5, 4)), gradxray_only={"forward": _mv(8, 5), "backward": _mv(5, 8)}),
    "matmul_2d_3d": _matmul(Arg((3, 5)), Arg((2, 5, 4))),
    "matmul_2d_3d_frozen_left": _matmul(Arg((3, 5), requires_grad=False), Arg((2, 5, 4))),
    "matmul_4d_4d": _matmul(Arg((2, 3, 4, 5)), Arg((2, 3, 5, 6))),
    "matmul_4d_4d_broadcast": _matmul(Arg((2, 1, 4, 5)), Arg((1, 3, 5, 6))),
    "matmul_4d_3d_broadcast": _matmul(Arg((2, 3, 4, 5)), Arg((3, 5, 2))),
    "matmul_4d_transposed": _matmul(Arg((2, 3, 4, 5), transposed=True), Arg((2, 3, 5, 6))),
    "matmul_empty_batch": _matmul(Arg((0, 3, 5)), Arg((5, 4))),
    # bmm / baddbmm
    "bmm": (torch.bmm, gx.bmm, [Arg((3, 4, 5)), Arg((3, 5, 2))], {}),
    "bmm_frozen_left": (torch.bmm, gx.bmm, [Arg((3, 4, 5), requires_grad=False), Arg((3, 5, 2))], {}),
    "baddbmm": (torch.baddbmm, gx.baddbmm, [Arg((3, 4, 2)), Arg((3, 4, 5)), Arg((3, 5, 2))], {}),
    "baddbmm_scaled_broadcast": (lambda c, a, b: torch.baddbmm(c, a, b, beta=0.5, alpha=2.0),
                                 lambda c, a, b: gx.baddbmm(c, a, b, beta=0.5, alpha=2.0),
                                 [Arg((4, 1)), Arg((3, 4, 5)), Arg((3, 5, 2))], {}),
    # einsum: every contraction is a bmm
    "einsum_batched": (lambda a, b: torch.einsum("bij,bjk->bik", a, b), lambda a, b: gx.einsum("bij,bjk->bik", a, b),
                       [Arg((2, 3, 4)), Arg((2, 4, 5))], {}),
    "einsum_attention_scores": (lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k),
                                lambda q, k: gx.einsum("bhqd,bhkd->bhqk", q, k),
                                [Arg((2, 3, 4, 5)), Arg((2, 3, 6, 5))], {}),
    "einsum_inner": (lambda a, b: torch.einsum("i,i->", a, b), lambda a, b: gx.einsum("i,i->", a, b),
                     [Arg((7,)), Arg((7,))], {}),
    "einsum_outer": (lambda a, b: torch.einsum("i,j->ij", a, b), lambda a, b: gx.einsum("i,j->ij", a, b),
                     [Arg((3,)), Arg((4,))], {}),
    # three operands: both contract in opt_einsum's order where it is installed, else left to right
    "einsum_chain": (lambda a, b, c: torch.einsum("ij,jk,kl->il", a, b, c),
                     lambda a, b, c: gx.einsum("ij,jk,kl->il", a, b, c), [Arg((3, 4)), Arg((4, 5)), Arg((5, 2))], {}),
    # convolutions, plain and transposed, 1-3 spatial dims
    "conv1d": (*_conv("conv1d", dilation=2, padding=1), [Arg((3, 2, 11)), Arg((5, 2, 3)), Arg((5,))], {}),
    "conv2d_strided_groups": (*_conv("conv2d", stride=2, padding=1, groups=2),
                              [Arg((2, 4, 9, 9)), Arg((6, 2, 3, 3)), Arg((6,))], {}),
    "conv2d_frozen_weight": (*_conv("conv2d", padding=1),
                             [Arg((2, 3, 6, 6)), Arg((4, 3, 3, 3), requires_grad=False)], {}),
    "conv2d_frozen_input": (*_conv("conv2d"), [Arg((2, 3, 6, 6), requires_grad=False), Arg((4, 3, 3, 3))], {}),
    "conv2d_noncontiguous": (*_conv("conv2d"), [Arg((2, 3, 6, 5), transposed=True), Arg((4, 3, 2, 2))], {}),
    "conv3d": (*_conv("conv3d"), [Arg((1, 2, 4, 5, 4)), Arg((3, 2, 2, 3, 2)), Arg((3,))], {}),
    "conv_transpose1d": (*_conv("conv_transpose1d", stride=3), [Arg((2, 3, 5)), Arg((3, 4, 2)), Arg((4,))], {}),
    "conv_transpose2d_groups": (*_conv("conv_transpose2d", stride=2, output_padding=1, groups=2),
                                [Arg((2, 4, 4, 3)), Arg((4, 3, 3, 2))], {}),
    "conv_transpose3d": (*_conv("conv_transpose3d", padding=1), [Arg((1, 2, 3, 4, 3)), Arg((2, 3, 3, 3, 3))], {}),
    # attention on the math path (bmm, counted by torch): 3-D inputs, or dropout
    "sdpa_3d": (*_sdpa(), [Arg((2, 5, 4)), Arg((2, 6, 4)), Arg((2, 6, 3))], {}),
    "sdpa_3d_causal": (*_sdpa(is_causal=True), [Arg((3, 5, 4)), Arg((3, 5, 4)), Arg((3, 5, 4))], {}),
    "sdpa_4d_dropout": (*_sdpa(dropout_p=0.3), [Arg((2, 3, 5, 4)), Arg((2, 3, 6, 4)), Arg((2, 3, 6, 4))],
                        dict(values=False)),
    # the CPU flash kernel: torch counts 0
    "sdpa_cpu_flash": (*_sdpa(), [Arg((2, 3, 5, 4)), Arg((2, 3, 6, 4)), Arg((2, 3, 6, 4))],
                       dict(gradxray_only={"forward": _flash_forward(2, 3, 5, 6, 4),
                                           "backward": _flash_backward(2, 3, 5, 6, 4)})),
    "sdpa_cpu_flash_causal_frozen_value": (*_sdpa(is_causal=True),
                                           [Arg((1, 2, 7, 8)), Arg((1, 2, 7, 8)), Arg((1, 2, 7, 8), requires_grad=False)],
                                           dict(gradxray_only={"forward": _flash_forward(1, 2, 7, 7, 8),
                                                               "backward": _flash_backward(1, 2, 7, 7, 8)})),
    "sdpa_cpu_flash_grouped_query": (*_sdpa(enable_gqa=True),
                                     [Arg((1, 4, 3, 4)), Arg((1, 2, 5, 4)), Arg((1, 2, 5, 4))],
                                     dict(gradxray_only={"forward": _flash_forward(1, 4, 3, 5, 4),
                                                         "backward": _flash_backward(1, 4, 3, 5, 4)})),
    # models
    "mlp": _mlp_case(),
    "gpt": _gpt_case(batch=2, seq=8),
}

DTYPES = [torch.float64, torch.float32]


def _torch_counts(counter):
    return {packet.__name__: n for packet, n in counter.get_flop_counts().get("Global", {}).items() if n}


def _run_torch(fn, inputs):
    """Forward and backward FLOPs per aten kernel under FlopCounterMode, and the outputs."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn(*inputs)
    forward = _torch_counts(counter)
    outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]
    backward = {}
    if outs:
        with counter:
            torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
        backward = _torch_counts(counter)
    return forward, backward, out


def _run_engine(fn, inputs):
    """Forward and backward FLOPs per aten kernel on the engine, and the outputs."""
    with FlopCounter() as counter:
        out = fn(*inputs)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if o.requires_grad]
        if outs:
            gx.autograd.backward(outs, [gx.ones_like(o) for o in outs])
    phases = counter.by_phase
    return phases.get("forward", {}), phases.get("backward", {}), out


def _data_less(t):
    """A shape-backend tensor with ``t``'s shape, dtype and layout (contiguous, or Arg's reversed one)."""
    dtype = gx.dtypes.from_name(str(t.dtype).removeprefix("torch."))
    if t.is_contiguous():
        s = gx.empty(*t.shape, dtype=dtype)
    else:
        s = gx.empty(*reversed(t.shape), dtype=dtype).permute(*reversed(range(t.dim())))
    assert tuple(int(st) for st in s.stride()) == t.stride(), "an input layout the test cannot reproduce"
    return s.requires_grad_(t.requires_grad)


def _engine_inputs(tensors, backend):
    if backend == "shape":
        with gx.backend("shape"):
            return [_data_less(t) for t in tensors]
    with gx.backend("torch"):
        return [gx.from_torch(t.detach(), requires_grad=t.requires_grad) for t in tensors]


def _split(per_kernel):
    """(kernels FlopCounterMode counts, gradxray's own) as two dicts."""
    return ({k: v for k, v in per_kernel.items() if k in gx_flops.TORCH_COUNTED},
            {k: v for k, v in per_kernel.items() if k not in gx_flops.TORCH_COUNTED})


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_flops_match_flop_counter_mode(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    if dtype not in check.get("dtypes", DTYPES):
        pytest.skip("the model's weights are float32")
    gen = torch.Generator().manual_seed(0)
    tensors = [a.make(dtype, gen) if isinstance(a, Arg) else a for a in args]
    torch_fwd, torch_bwd, torch_out = _run_torch(torch_fn, tensors)
    fwd, bwd, out = _run_engine(gx_fn, _engine_inputs(tensors, "torch"))
    if check.get("values", True):
        rtol = 1e-10 if dtype is torch.float64 else 1e-4
        torch.testing.assert_close(out.data_, torch_out.detach(), rtol=rtol, atol=rtol)

    shape_fwd, shape_bwd, _ = _run_engine(gx_fn, _engine_inputs(tensors, "shape"))
    assert (shape_fwd, shape_bwd) == (fwd, bwd), "the shape backend counts other FLOPs than the torch backend"

    expected_ours = check.get("gradxray_only", {})
    for phase, ours, theirs in (("forward", fwd, torch_fwd), ("backward", bwd, torch_bwd)):
        counted, only_ours = _split(ours)
        assert counted == theirs, f"{phase}: engine kernels {counted} != FlopCounterMode {theirs}"
        assert sum(only_ours.values()) == expected_ours.get(phase, 0), f"{phase}: gradxray-only kernels {only_ours}"


def test_flop_counter_totals_and_memory_tracker_agree():
    """FlopCounter's totals (all kernels, or FlopCounterMode's kernels only) and the memory tracker's
    per-phase FLOPs are the same numbers."""
    torch_fn, gx_fn, args, check = CASES["gpt"]
    inputs = _engine_inputs(args, "shape")
    tracker = gx.memory.MemoryTracker(keep_timeline=False)
    with tracker, FlopCounter() as counter:
        gx_fn(*inputs).backward()
    torch_fwd, torch_bwd, _ = _run_torch(torch_fn, args)
    for phase, theirs in (("forward", torch_fwd), ("backward", torch_bwd)):
        assert counter.total(phase) == tracker.flops[phase]
        assert counter.total(phase, torch_comparable=True) == sum(theirs.values())
        assert counter.total(phase) - counter.total(phase, torch_comparable=True) == check["gradxray_only"][phase]
    assert counter.total() == tracker.flops["forward"] + tracker.flops["backward"]


def test_cpu_flash_attention_formula():
    """Forward: 2*B*H*L*S*E for Q K^T plus 2*B*H*L*S*Ev for P V.  Backward: Q K^T recomputed (E), dP = dO V^T
    (Ev), dV = P^T dO (Ev), dQ = dS K (E), dK = dS^T Q (E) = 2*B*H*L*S*(3E + 2Ev), whichever grads are asked."""
    b, h, lq, s, e = 2, 3, 5, 7, 4
    with gx.backend("shape"):
        q = gx.empty(b, h, lq, e, requires_grad=True)
        k = gx.empty(b, h, s, e, requires_grad=False)
        v = gx.empty(b, h, s, e, requires_grad=False)
    with FlopCounter() as counter:
        out = F.scaled_dot_product_attention(q, k, v)
        out.backward(gx.ones_like(out))
    assert counter.by_phase["forward"] == {"_scaled_dot_product_flash_attention_for_cpu": 2 * b * h * lq * s * e * 2}
    assert counter.by_phase["backward"] == {"_scaled_dot_product_flash_attention_for_cpu_backward":
                                            2 * b * h * lq * s * (3 * e + 2 * e)}
    # the same numbers as torch's counter gives the math path's matrix products for the forward, and as its
    # formula for the fused CUDA kernels' backward
    assert counter.total("forward") == flop_counter.sdpa_flop_count((b, h, lq, e), (b, h, s, e), (b, h, s, e))
    assert counter.total("backward") == flop_counter.sdpa_backward_flop_count((b, h, lq, e), (b, h, lq, e),
                                                                              (b, h, s, e), (b, h, s, e))


def _shape_backend_attention(device, q_shape, k_shape, v_shape, dtype=gx.float16, **kwargs):
    with gx.backend("shape"):
        q, k, v = (gx.empty(*s, dtype=dtype, device=device, requires_grad=True) for s in (q_shape, k_shape, v_shape))
    with FlopCounter() as counter:
        out = F.scaled_dot_product_attention(q, k, v, **kwargs)
        out.backward(gx.ones_like(out))
    return counter.by_phase


ATTENTION_SHAPES = {
    "square": ((2, 4, 16, 64), (2, 4, 16, 64), (2, 4, 16, 64)),
    "cross": ((1, 2, 9, 32), (1, 2, 20, 32), (1, 2, 20, 32)),
    "grouped_query": ((2, 8, 12, 64), (2, 2, 12, 64), (2, 2, 12, 64)),
}


@pytest.mark.parametrize("shapes", sorted(ATTENTION_SHAPES))
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_cuda_attention_kernels_count_as_torch_does(shapes, dtype):
    """The CUDA kernels the engine picks (cuDNN for fp16, memory-efficient for fp32) traced on the shape
    backend: FLOPs as torch's registered formulas give them for the same shapes."""
    q, k, v = ATTENTION_SHAPES[shapes]
    if dtype == "float32" and q[1] != k[1]:
        pytest.skip("grouped-query fp32 attention takes the math path on CUDA")
    phases = _shape_backend_attention("cuda", q, k, v, dtype=gx.dtypes.from_name(dtype), enable_gqa=q[1] != k[1])
    kernel = "_scaled_dot_product_cudnn_attention" if dtype == "float16" else "_scaled_dot_product_efficient_attention"
    forward = flop_counter.flop_registry[getattr(aten, kernel)]
    backward = flop_counter.flop_registry[getattr(aten, kernel + "_backward")]
    try:
        expected_forward = forward(torch.Size(q), torch.Size(k), torch.Size(v))
    except AssertionError:
        assert q[1] != k[1], "torch's formula rejected shapes that are not grouped-query"
        pytest.skip("this torch's counter predates grouped-query attention (it asserts equal heads)")
    assert phases["forward"] == {kernel: expected_forward}
    assert phases["backward"] == {kernel + "_backward": backward(torch.Size(q), torch.Size(q), torch.Size(k),
                                                                 torch.Size(v))}


def _shape_tensor(*shape):
    with gx.backend("shape"):
        return gx.empty(*shape)


def test_formulas_of_kernels_the_engine_does_not_run_match_torch():
    """Kernels in torch's counter that no engine op runs (CUDA flash SDPA, _scaled_mm, the _flash/_efficient
    attention kernels, the convolution aliases): the same numbers as torch's formulas."""
    t = _shape_tensor
    q, k, v = t(2, 4, 9, 16), t(2, 4, 11, 16), t(2, 4, 11, 8)
    shapes = [torch.Size(x.shape) for x in (q, k, v)]
    formulas = gx_flops.TORCH_COUNTED
    assert formulas["_scaled_dot_product_flash_attention"]((q, k, v, 0.0, False), None) == \
        flop_counter.sdpa_flop_count(*shapes)
    assert formulas["_scaled_dot_product_flash_attention_backward"]((t(2, 4, 9, 8), q, k, v), None) == \
        flop_counter.sdpa_backward_flop_count(torch.Size((2, 4, 9, 8)), *shapes)
    assert formulas["_scaled_mm"]((t(8, 16), t(16, 4), t(1), t(1)), None) == flop_counter.mm_flop((8, 16), (16, 4))
    x, w, out = t(2, 3, 8, 8), t(5, 3, 3, 3), t(2, 5, 6, 6)
    expected = flop_counter.conv_flop_count(torch.Size(x.shape), torch.Size(w.shape), torch.Size(out.shape))
    for name in ("_convolution", "convolution_overrideable"):
        assert formulas[name]((x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), [out]) == expected
    assert formulas["cudnn_convolution"]((x, w, [0, 0], [1, 1], [1, 1], 1, False, False, False), [out]) == expected
    assert formulas["_slow_conv2d_forward"]((x, w, [3, 3], None, [1, 1], [0, 0]), [out]) == expected

    # _flash/_efficient_attention_forward take [B, L, H, E]; torch's formula expects [B, H, L, E]
    bl = [t(2, 9, 4, 16), t(2, 11, 4, 16), t(2, 11, 4, 8)]
    fwd_args = {"_flash_attention_forward": (*bl, None, None, 9, 11),
                "_efficient_attention_forward": (*bl, None, None, None, 9, 11)}
    for name, fwd in fwd_args.items():
        assert formulas[name](fwd, None) == flop_counter.sdpa_flop_count(*shapes), name
    grad_bl = t(2, 9, 4, 8)
    bwd_args = {"_flash_attention_backward": (grad_bl, *bl, grad_bl, t(2, 4, 9), None, None, 9, 11),
                "_efficient_attention_backward": (grad_bl, *bl, None, grad_bl, None, None, 9, 11)}
    for name, bwd in bwd_args.items():
        assert formulas[name](bwd, None) == flop_counter.sdpa_backward_flop_count(
            torch.Size((2, 4, 9, 8)), *shapes), name


def test_packed_sequence_attention_counts_each_sequence():
    """Packed (nested) sequences: each sequence at its own length when the offsets have data, at the maximum
    length without data (as torch's counter does for fake tensors)."""
    heads, e = 2, 8
    q, k, v = (_shape_tensor(3 + 5, heads, e) for _ in range(3))
    offsets = gx.tensor([0, 3, 8], dtype=gx.int32)
    per_sequence = flop_counter.sdpa_flop_count((1, heads, 3, e), (1, heads, 3, e), (1, heads, 3, e)) + \
        flop_counter.sdpa_flop_count((1, heads, 5, e), (1, heads, 5, e), (1, heads, 5, e))
    formula = gx_flops.TORCH_COUNTED["_flash_attention_forward"]
    assert formula((q, k, v, offsets, offsets, 5, 5), None) == per_sequence
    data_less = _shape_tensor(3)
    assert formula((q, k, v, data_less, data_less, 5, 5), None) == \
        2 * flop_counter.sdpa_flop_count((1, heads, 5, e), (1, heads, 5, e), (1, heads, 5, e))
    torch_offsets = torch.tensor([0, 3, 8], dtype=torch.int32)
    torch_formula = flop_counter.flop_registry[aten._flash_attention_forward]
    as_torch = [torch.empty(x.shape) for x in (q, k, v)]
    assert formula((q, k, v, offsets, offsets, 5, 5), None) == \
        torch_formula(*as_torch, torch_offsets, torch_offsets, 5, 5)


def test_mv_and_dot_formulas():
    """gradxray's: one multiply-add per matrix (vector) element."""
    with FlopCounter() as counter:
        gx.mv(_shape_tensor(6, 4), _shape_tensor(4))
        gx.dot(_shape_tensor(9), _shape_tensor(9))
    assert counter.by_phase["forward"] == {"mv": 2 * 6 * 4, "dot": 2 * 9}
    assert counter.total("forward", torch_comparable=True) == 0


def _evaluate(count, bindings) -> int:
    """A SymInt's polynomial evaluated at other values of its symbols."""
    if not isinstance(count, SymInt):
        return int(count)
    total = Fraction(0)
    for monomial, coefficient in count._poly.items():
        total += coefficient * math.prod(bindings[s] ** p for s, p in monomial)
    assert total.denominator == 1
    return int(total)


def _symbolic_gpt_flops(batch, seq):
    from bench.engine import gpt2_classes
    with gx.backend("shape"):
        model = gpt2_classes(gx)(**GPT_CONFIG)
        idx, targets = (gx.empty(batch, seq, dtype=gx.int64) for _ in range(2))
    with FlopCounter() as counter:
        model(idx, targets).backward()
    return counter.total("forward"), counter.total("backward")


def _symbolic_conv_flops(batch, size):
    with gx.backend("shape"):
        x = gx.empty(batch, 3, size, size, requires_grad=True)
        w = gx.empty(4, 3, 3, 3, requires_grad=True)
    with FlopCounter() as counter:
        F.conv_transpose2d(F.conv2d(x, w, padding=1), w).sum().backward()
    return counter.total("forward"), counter.total("backward")


@pytest.mark.parametrize("model", ["gpt", "conv"])
def test_symbolic_sizes_give_the_same_flops(model):
    """With SymInt dims the counts are the concrete numbers, kept as expressions over the dims that give
    the concrete numbers at other bindings too."""
    run = _symbolic_gpt_flops if model == "gpt" else _symbolic_conv_flops
    symbolic = run(SymInt(2, "B"), SymInt(8, "T"))
    assert symbolic == run(2, 8)
    for count in symbolic:
        assert isinstance(count, SymInt) and {"B", "T"} <= {s for m in count._poly for s, _ in m}, count
    for batch, size in ((3, 5), (1, 12)):
        assert tuple(_evaluate(c, {"B": batch, "T": size}) for c in symbolic) == run(batch, size)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_cuda_attention_matches_flop_counter_mode_on_gpu(dtype):
    """On a GPU: the engine's CUDA SDPA kernel (torch backend) counts what FlopCounterMode counts."""
    gen = torch.Generator().manual_seed(0)
    tensors = [Arg(s).make(dtype, gen, "cuda") for s in ((2, 4, 16, 64), (2, 4, 24, 64), (2, 4, 24, 64))]
    torch_fwd, torch_bwd, _ = _run_torch(TF.scaled_dot_product_attention, tensors)
    with gx.backend("torch"):
        inputs = [gx.from_torch(t.detach(), requires_grad=True) for t in tensors]
    fwd, bwd, _ = _run_engine(F.scaled_dot_product_attention, inputs)
    assert (fwd, bwd) == (torch_fwd, torch_bwd)
