"""Engine speed against what a user would otherwise run, measured in the same process.

(a) Tracing: forward + backward of GPT-2 small (124M parameters) at batch 8 x 1024 on the engine's
    shape backend with its memory tracker (what `gradxray memory` does), against torch on the meta
    device under a live-storage tracker (the closest torch-native way to get the same answer
    without running the model).  Goal: gradxray faster.
(b) Numerics: one training step (forward, loss, backward, SGD update) of an MLP (batch 256,
    width 1024, 4 layers) on the engine's torch backend against torch eager.  Goal: <= 1.3x.

Run: python bench/engine.py [--repeats N]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from tests.support.torch_truth import LiveStorageTracker  # noqa: E402


def gpt2_classes(lib):
    """GPT-2 (nanoGPT layout) written once for torch and for the engine: ``lib`` is torch or gx."""
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads = heads
            self.ln_1 = nn.LayerNorm(d)
            self.c_attn = nn.Linear(d, 3 * d)
            self.c_proj = nn.Linear(d, d)
            self.ln_2 = nn.LayerNorm(d)
            self.c_fc = nn.Linear(d, 4 * d)
            self.mlp_proj = nn.Linear(4 * d, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self, vocab=50257, ctx=1024, d=768, layers=12, heads=12):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(ctx, d)
            self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, targets):
            b, t = idx.shape
            pos = lib.arange(0, t, dtype=lib.long, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT


def trace_engine(batch, seq):
    gpt = gpt2_classes(gx)
    tracker = gx.memory.MemoryTracker()
    with gx.backend("shape"), tracker:
        model = gpt()
        idx = gx.empty(batch, seq, dtype=gx.int64)
        loss = model(idx, gx.empty(batch, seq, dtype=gx.int64))
        loss.backward()
    return tracker.peak_bytes


def trace_torch_meta(batch, seq, track=True):
    gpt = gpt2_classes(torch)
    with torch.device("meta"):
        model = gpt()
        idx = torch.empty(batch, seq, dtype=torch.long)
        targets = torch.empty(batch, seq, dtype=torch.long)
    if not track:
        model(idx, targets).backward()
        return None
    tracker = LiveStorageTracker()
    tracker.register(list(model.parameters()), counted=True)
    with tracker:
        loss = model(idx, targets)
        loss.backward()
    return tracker.peak_bytes


def mlp_step(lib, model, x, y, lr=1e-3):
    out = model(x)
    diff = out - y
    loss = (diff * diff).mean()
    loss.backward()
    with lib.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-lr)
            p.grad = None
    return loss


def mlp(lib, width, layers):
    nn = lib.nn
    mods = []
    for _ in range(layers - 1):
        mods += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(width, width))


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    print(f"(a) GPT-2 small forward+backward trace, batch {args.batch} x {args.seq}")
    peak_engine = trace_engine(args.batch, args.seq)
    t_engine = _median_time(lambda: trace_engine(args.batch, args.seq), args.repeats)
    t_meta = _median_time(lambda: trace_torch_meta(args.batch, args.seq), args.repeats)
    t_plain = _median_time(lambda: trace_torch_meta(args.batch, args.seq, track=False), args.repeats)
    print(f"    gradxray shape backend + memory tracker: {t_engine * 1e3:8.1f} ms  (peak {peak_engine / 2**30:.2f} GiB)")
    print(f"    torch meta device + live-storage tracker: {t_meta * 1e3:8.1f} ms")
    print(f"    torch meta device, no tracker (no answer): {t_plain * 1e3:8.1f} ms")
    print(f"    ratio gradxray / torch-meta: {t_engine / t_meta:.2f}x  (goal < 1)")

    width, layers, batch = 1024, 4, 256
    print(f"(b) MLP training step on CPU, batch {batch}, width {width}, {layers} layers, float32")
    torch.manual_seed(0)
    tmodel = mlp(torch, width, layers)
    gmodel = mlp(gx, width, layers)
    from gradxray.engine.interop import load_torch_state
    with gx.backend("torch"):
        load_torch_state(gmodel, tmodel)
    tx, ty = torch.randn(batch, width), torch.randn(batch, width)
    with gx.backend("torch"):
        gxx, gy = gx.from_torch(tx), gx.from_torch(ty)
    for _ in range(2):                       # warm-up (thread pools, allocator)
        mlp_step(torch, tmodel, tx, ty)
        mlp_step(gx, gmodel, gxx, gy)
    reps = max(9, args.repeats * 5)
    eager_times, gx_times = [], []
    for _ in range(reps):        # interleaved, so that load on the machine hits both alike
        eager_times.append(_median_time(lambda: mlp_step(torch, tmodel, tx, ty), 1))
        gx_times.append(_median_time(lambda: mlp_step(gx, gmodel, gxx, gy), 1))
    t_eager, t_gx = statistics.median(eager_times), statistics.median(gx_times)
    print(f"    torch eager:             {t_eager * 1e3:8.2f} ms")
    print(f"    gradxray torch backend:  {t_gx * 1e3:8.2f} ms")
    print(f"    ratio gradxray / eager:  {t_gx / t_eager:.2f}x  (goal <= 1.3)")
    assert math.isfinite(t_gx)


if __name__ == "__main__":
    main()
