"""Tests of the torch ground-truth harness (tests/support/torch_truth.py) and of the bundled examples.

Every expected number here is derived by hand from the saved-tensor rules
(reference notes: saved_tensors.md) and the live-storage model; where the CPU
kernel choice matters (flash attention for CPU, ``linear`` -> ``addmm``/``mm``) the
comment says so.  Run with ``python -m pytest tests/test_torch_truth.py`` from the
repository root.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.support.torch_truth import (  # noqa: E402
    LiveStorageTracker,
    measure_training_step,
    module_output_shapes,
    pick_loss,
    trace_forward_line_shapes,
)

ROOT = Path(__file__).resolve().parents[1]
F32 = 4


def _load_example(name: str):
    path = ROOT / "examples" / f"{name}.py"
    mod_name = f"_gradxray_example_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


def _line_of(path, text: str) -> int:
    """1-based number of the first line of ``path`` containing ``text``."""
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not found in {path}")


# ---------------------------------------------------------------------------------------------
# (a) the tracker on the validation case of the reference notes (section 3)
# ---------------------------------------------------------------------------------------------


def test_tracker_linear_chain_validation_case():
    torch.manual_seed(0)
    layers = nn.Sequential(*[nn.Linear(256, 256, bias=False) for _ in range(4)])
    x = torch.randn(4096, 256)                     # does not require grad
    g = torch.randn(4096, 256)                     # upstream gradient, allocated beforehand
    A = 4096 * 256 * F32                           # one activation: 4 MiB
    W = 256 * 256 * F32                            # one weight (and its grad): 256 KiB

    tracker = LiveStorageTracker(timeline=True)    # x, g, the weights: live already, not counted
    with tracker:
        h = layers(x)
        forward_peak = tracker.peak_bytes
        h.backward(g)
        final = tracker.current_bytes
    tracker.close()

    # forward: h1..h4 (h1..h3 saved by the next mm, h4 referenced by us)
    assert forward_peak == 4 * A == 16_777_216
    # backward of layer 3 holds h1, h2 (saved), h4, g3, gW4, and allocates g2 and gW3
    assert tracker.peak_bytes == 5 * A + 2 * W == 21_495_808
    # at the end: h4 and the four weight grads
    assert final == A + 4 * W == 5_242_880
    allocs = [e for e in tracker.timeline if e[0] == "alloc"]
    assert {e[1] for e in allocs} == {"mm"}        # bias-free 2-D linear is a plain mm
    assert len(allocs) == 4 + 4 + 3                # 4 outputs, 4 weight grads, 3 input grads
    del h


def test_tracker_views_and_inplace_cost_nothing():
    x = torch.randn(64, 64)
    tracker = LiveStorageTracker()
    with tracker:
        v = x.t()                 # view of a live (uncounted) tensor
        y = x.view(-1)            # view
        x.mul_(2)                 # in-place
        z = x + 1                 # new storage: 16 KiB
        w = z[:, :8]              # view of z
    assert tracker.peak_bytes == 64 * 64 * F32
    assert tracker.current_bytes == 64 * 64 * F32
    del z
    assert tracker.current_bytes == 64 * 64 * F32       # w keeps z's storage alive
    del w
    assert tracker.current_bytes == 0
    tracker.close()
    del v, y


def test_tracker_registered_tensors_count_from_the_start():
    p = torch.randn(1000)
    tracker = LiveStorageTracker()
    tracker.register([p], counted=True)
    with tracker:
        q = p * 2
    assert tracker.peak_bytes == 2 * 1000 * F32
    del q
    assert tracker.current_bytes == 1000 * F32
    tracker.close()


# ---------------------------------------------------------------------------------------------
# (b) a tiny model counted by hand
# ---------------------------------------------------------------------------------------------


def test_tiny_mlp_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    x = torch.randn(32, 64)                        # no grad
    m = measure_training_step(model, {"input": x})

    W1, b1, W2, b2 = 128 * 64 * F32, 128 * F32, 10 * 128 * F32, 10 * F32
    X, H, OUT = 32 * 64 * F32, 32 * 128 * F32, 32 * 10 * F32
    assert m.param_count == 128 * 64 + 128 + 10 * 128 + 10
    assert m.param_bytes == W1 + b1 + W2 + b2 == 38_440
    assert m.buffer_bytes == 0
    assert m.input_bytes == X == 8192
    assert m.output_shapes == [(32, 10)]

    # Saved: addmm #1 saves mat1 = x (W1 needs grad) but not W1.t() (x needs no grad);
    # relu saves its result; addmm #2 saves mat1 = relu result (same storage) and W2.t()
    # (a parameter view, not counted).  Loss = out.sum() saves nothing.
    assert m.activations_saved_bytes == X + H == 24_576
    kinds = [(r.op, r.attr, r.kind, r.new_storage) for r in m.saved]
    assert kinds == [
        ("AddmmBackward0", "_saved_mat1", "input", True),
        ("ReluBackward0", "_saved_result", "activation", True),
        ("AddmmBackward0", "_saved_mat1", "activation", False),
        ("AddmmBackward0", "_saved_mat2", "param", False),
    ]

    base = W1 + b1 + W2 + b2 + X
    # forward: h1 = addmm (H), relu result (H); h1 dies when Sequential rebinds its variable
    assert m.forward_peak_bytes == base + 2 * H
    # backward peak, in AddmmBackward of layer 1: out, loss (4 B), the root grad ones (4 B,
    # alive until backward ends), W2/b2 grads, grad of h1 (H) and new grad W1 + grad b1
    # (the relu result and the grad of the relu output are already freed)
    assert m.peak_bytes == base + OUT + 4 + 4 + W2 + b2 + H + W1 + b1 == 102_744
    assert m.peak_phase == "backward"
    assert m.grads_bytes == W1 + b1 + W2 + b2
    # the loss (derived from out by the harness) is released after backward; out stays
    assert m.final_bytes == base + OUT + W1 + b1 + W2 + b2


def test_input_requiring_grad_changes_what_linear_saves():
    torch.manual_seed(0)
    lin = nn.Linear(16, 8, bias=False)
    lin.weight.requires_grad_(False)               # frozen weight: x is not needed for backward
    x = torch.randn(4, 16, requires_grad=True)
    m = measure_training_step(lin, {"input": x})
    # mm saves mat2 = W.t() (a parameter view) only
    assert m.activations_saved_bytes == 0
    assert [(r.op, r.kind) for r in m.saved] == [("MmBackward0", "param")]
    assert m.grads_bytes == 0


def test_pick_loss_rules():
    a = torch.ones(3, requires_grad=True)
    scalar = a.sum()
    assert pick_loss(scalar) is scalar
    assert pick_loss((a * 2, scalar)) is scalar
    assert pick_loss({"logits": a * 2, "loss": scalar}) is scalar

    @dataclass
    class Out:
        logits: torch.Tensor
        loss: torch.Tensor

    assert pick_loss(Out(a * 2, scalar)) is scalar
    s = pick_loss((a * 2, None))
    assert s.dim() == 0 and float(s.detach()) == 6.0
    assert float(pick_loss(a * 2, "mean").detach()) == 2.0


# ---------------------------------------------------------------------------------------------
# (c) the bundled examples
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt_mod():
    return _load_example("gpt")


@pytest.fixture(scope="module")
def resnet_mod():
    return _load_example("resnet")


@pytest.fixture(scope="module")
def gpt(gpt_mod):
    torch.manual_seed(0)
    return gpt_mod.GPT()                           # constructible without arguments


def _gpt_saved_bytes(B, T, C=384, H=6, n_layer=6, V=50304):
    """Saved-for-backward bytes of examples/gpt.py (dropout 0, CPU) by the per-op rules."""
    N = B * T
    act = N * C * F32
    stats = N * F32                                # layer-norm mean or rstd ([B, T, 1])
    block = (
        act + 2 * stats                            # ln_1: input, mean, rstd
        + act                                      # c_attn addmm: mat1 = ln_1 output
        + 3 * act                                  # flash-for-CPU SDPA: q, k, v = ONE qkv storage
        + B * H * T * F32                          #   + logsumexp [B, H, T] fp32
        + act                                      #   + output (c_proj's mat1 is the same storage)
        + act + 2 * stats                          # ln_2
        + act                                      # c_fc addmm: mat1
        + 4 * act                                  # gelu: self (= c_fc output)
        + 4 * act                                  # mlp c_proj addmm: mat1 = gelu output
    )
    return (
        N * 8 + T * 8                              # embedding indices: idx (input), pos (arange)
        + n_layer * block                          # residual adds save nothing; dropout(p=0) is identity
        + act + 2 * stats                          # ln_f
        + act                                      # lm_head mm: self = ln_f output (W is tied)
        + N * V * F32                              # log_softmax result (nll_loss saves the same storage)
        + N * 8 + F32                              # nll_loss: target (input), total_weight (0-dim)
    )


@pytest.mark.parametrize("B", [2, 4])
def test_gpt_training_step(gpt, B):
    T, V, C = 64, 50304, 384
    torch.manual_seed(1)
    idx = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    m = measure_training_step(gpt, {"idx": idx, "targets": targets})

    assert m.output_shapes == [(B, T, V), ()]
    assert m.output_dtypes == ["float32", "float32"]
    assert math.isfinite(m.loss_value) and 9.0 < m.loss_value < 13.0      # ~ ln(50304) at init
    n_all = sum(p.numel() for _, p in gpt.named_parameters(remove_duplicate=False))
    assert n_all - m.param_count == V * C                                   # tied weight counted once
    assert m.param_count == 30_062_592
    assert m.param_bytes == 4 * m.param_count
    assert m.grads_bytes == m.param_bytes
    assert m.input_bytes == 2 * B * T * 8
    assert m.activations_saved_bytes == _gpt_saved_bytes(B, T) == {2: 45_057_540, 4: 90_114_564}[B]

    # Peak: in EmbeddingBackward of the tied wte/lm_head weight.  The lm_head gradient
    # (a transposed view of an mm output) sits in the engine's input buffer; the dense
    # embedding gradient arrives and the two are summed OUT of place (a third W-sized
    # buffer).  Live then: params, inputs, logits, loss + root grad (8 B), the grads of all
    # other parameters and 3 x W.
    P, W, logits = m.param_bytes, V * C * F32, B * T * V * F32
    assert m.peak_phase == "backward"
    assert m.peak_bytes == P + m.input_bytes + logits + 8 + (P - W) + 3 * W
    assert m.peak_bytes == {2: 420_792_328, 4: 446_550_024}[B]


def test_gpt_forward_line_shapes(gpt, gpt_mod):
    B, T, C, H = 2, 64, 384, 6
    path = gpt_mod.__file__
    idx = torch.randint(0, 50304, (B, T))
    lines = trace_forward_line_shapes(gpt, {"idx": idx, "targets": idx}, path)

    assert lines[_line_of(path, "q, k, v = self.c_attn(x).split")] == [
        ("q", (B, T, C), "float32"), ("k", (B, T, C), "float32"), ("v", (B, T, C), "float32")]
    assert lines[_line_of(path, "q = q.view(B, T")] == [("q", (B, H, T, C // H), "float32")]
    assert lines[_line_of(path, "y = F.scaled_dot_product_attention")] == [("y", (B, H, T, C // H), "float32")]
    assert lines[_line_of(path, "y = y.transpose(1, 2).contiguous()")] == [("y", (B, T, C), "float32")]
    assert lines[_line_of(path, "x = x + self.attn(self.ln_1(x))")] == [("x", (B, T, C), "float32")]
    assert lines[_line_of(path, "x = x + self.mlp(self.ln_2(x))")] == [("x", (B, T, C), "float32")]
    assert lines[_line_of(path, "h = self.c_fc(x)")] == [("h", (B, T, 4 * C), "float32")]
    assert lines[_line_of(path, "pos = torch.arange")] == [("pos", (T,), "int64")]
    assert lines[_line_of(path, "x = block(x)")] == [("x", (B, T, C), "float32")]
    assert lines[_line_of(path, "logits = self.lm_head(x)")] == [("logits", (B, T, 50304), "float32")]
    assert lines[_line_of(path, "loss = F.cross_entropy")] == [("loss", (), "float32")]
    # returns of a tensor are recorded; "B, T, C = x.size()" binds no tensor
    block_return = _line_of(path, "        return x")
    assert lines[block_return] == [("return", (B, T, C), "float32")]
    assert _line_of(path, "B, T, C = x.size()") not in lines
    assert _line_of(path, "device = idx.device") not in lines

    shapes = module_output_shapes(gpt, {"idx": idx})                         # inference path
    assert shapes["lm_head"] == (B, 1, 50304)
    assert shapes["transformer.h.0.attn.c_attn"] == (B, T, 3 * C)
    assert shapes[""] == (B, 1, 50304)


@pytest.fixture(scope="module")
def resnet(resnet_mod):
    torch.manual_seed(0)
    return resnet_mod.resnet18()


def _resnet_saved_bytes(B, S=32, width=64, layers=(2, 2, 2, 2)):
    """Saved-for-backward bytes of examples/resnet.py (train mode, CPU) by the per-op rules."""
    def act(c, s):
        return B * c * s * s * F32

    total = B * 3 * S * S * F32                    # stem conv: input x
    total += act(width, S) + 2 * width * F32       # stem bn: input, save_mean, save_invstd
    total += act(width, S)                         # relu (in place): result (= bn output)
    s = S // 2                                     # maxpool saves self (= relu result) + int64 indices
    total += B * width * s * s * 8
    total += act(width, s)                         # first conv of layer1 saves the maxpool output
    c_in = width
    for i, n in enumerate(layers):
        c = width * 2 ** i
        if i > 0:
            s //= 2
        for j in range(n):
            bn = act(c, s) + 2 * c * F32           # running stats and weight are buffers/params
            total += bn + act(c, s) + bn           # bn1, relu1 result (= conv2 input), bn2
            if j == 0 and (i > 0 or c_in != c):
                total += bn                        # downsample: conv input is x (already saved), bn
            total += act(c, s)                     # relu after "out += identity": result
        c_in = c
    # adaptive avg-pool to 1x1 runs as mean(): saves nothing; fc addmm saves mat1
    total += B * c_in * F32
    return total


@pytest.mark.parametrize("B", [2, 4])
def test_resnet_training_step(resnet, B):
    torch.manual_seed(1)
    x = torch.randn(B, 3, 32, 32)
    m = measure_training_step(resnet, {"x": x})

    assert m.output_shapes == [(B, 10)]
    assert m.param_count == 11_173_962
    assert m.param_bytes == 4 * m.param_count
    # 20 batch norms: running_mean, running_var (fp32, C each) + num_batches_tracked (int64)
    bn_channels = 64 + 2 * 2 * (64 + 128 + 256 + 512) + (128 + 256 + 512)
    assert m.buffer_bytes == 2 * bn_channels * F32 + 20 * 8
    assert m.input_bytes == B * 3 * 32 * 32 * F32
    assert m.grads_bytes == m.param_bytes
    # per-channel batch-norm statistics do not scale with B: 7,140,864 at B=4, not 2x
    assert m.activations_saved_bytes == _resnet_saved_bytes(B) == {2: 3_589_632, 4: 7_140_864}[B]
    ops = {r.op for r in m.saved}
    assert {"ConvolutionBackward0", "NativeBatchNormBackward0", "ReluBackward0",
            "MaxPool2DWithIndicesBackward0", "AddmmBackward0"} == ops
    assert m.peak_phase == "backward"
    # Every tensor the forward allocates is saved (conv out -> bn input, bn out -> relu_
    # result, ...) except the output [B, 10] and the loss (4 B); x is in both the baseline
    # and the saved bytes.  So the forward peak is exactly:
    saved_new = sum(r.nbytes for r in m.saved if r.new_storage and r.kind == "activation")
    assert saved_new == m.activations_saved_bytes - m.input_bytes
    assert m.forward_peak_bytes == m.baseline_bytes + saved_new + B * 10 * F32 + 4
    # saved activations are released while the gradients appear, so the peak lies between
    # "everything saved" and "everything saved + all grads"
    assert m.forward_peak_bytes < m.peak_bytes < m.forward_peak_bytes + m.grads_bytes
    # after backward: params, buffers, input, grads and the output
    assert m.final_bytes == m.baseline_bytes + m.grads_bytes + B * 10 * F32


def test_resnet_forward_line_shapes(resnet, resnet_mod):
    B = 2
    path = resnet_mod.__file__
    x = torch.randn(B, 3, 32, 32)
    lines = trace_forward_line_shapes(resnet, {"x": x}, path)

    # BasicBlock.forward: first executed in layer1.0 (64 channels, 16x16 after the maxpool)
    assert lines[_line_of(path, "identity = x")] == [("identity", (B, 64, 16, 16), "float32")]
    assert lines[_line_of(path, "out = self.conv1(x)")] == [("out", (B, 64, 16, 16), "float32")]
    assert lines[_line_of(path, "out += identity")] == [("out", (B, 64, 16, 16), "float32")]
    # the downsample line first runs in layer2.0
    assert lines[_line_of(path, "identity = self.downsample(x)")] == [("identity", (B, 128, 8, 8), "float32")]
    # ResNet.forward
    assert lines[_line_of(path, "x = self.maxpool(x)")] == [("x", (B, 64, 16, 16), "float32")]
    assert lines[_line_of(path, "x = self.layer4(x)")] == [("x", (B, 512, 2, 2), "float32")]
    assert lines[_line_of(path, "x = self.avgpool(x)")] == [("x", (B, 512, 1, 1), "float32")]
    assert lines[_line_of(path, "x = torch.flatten(x, 1)")] == [("x", (B, 512), "float32")]
    assert lines[_line_of(path, "x = self.fc(x)")] == [("x", (B, 10), "float32")]

    shapes = module_output_shapes(resnet, {"x": x})
    assert shapes["layer3.0.downsample"] == (B, 256, 4, 4)
    assert shapes["avgpool"] == (B, 512, 1, 1)
    assert shapes[""] == (B, 10)


def test_tracker_observer_effect_on_gradient_accumulation_is_real():
    """Why the tracked peak can exceed the engine's (which models plain torch): with a dispatch mode active,
    torch accumulates a tensor's two incoming gradients out of place; without one, in place."""
    import torch
    from tests.support.torch_truth import LiveStorageTracker

    def accumulates_in_place(track: bool) -> bool:
        torch.manual_seed(0)
        x = torch.randn(2, 8, 8, 8, requires_grad=True)
        c1 = torch.nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        c2 = torch.nn.Conv2d(8, 16, 1, 2, bias=False)
        seen = {}
        h = x.relu()
        a, b = c1(h), c2(h)
        a.grad_fn.register_hook(lambda gi, go: seen.update(a=gi[0].data_ptr()) or None)
        b.grad_fn.register_hook(lambda gi, go: seen.update(b=gi[0].data_ptr()) or None)
        h.grad_fn.register_prehook(lambda go: seen.update(h=go[0].data_ptr()) or None)
        loss = a.sum() + b.sum()
        if track:
            with LiveStorageTracker():
                loss.backward()
        else:
            loss.backward()
        return seen["h"] in (seen["a"], seen["b"])

    assert accumulates_in_place(track=False)
    assert not accumulates_in_place(track=True)
