"""Inlay-hint and hover text from hand-built LineFacts (no analyzer, no server)."""
from __future__ import annotations

from gradxray import render
from gradxray.analyzer.results import ClassSummary, LineFact, SavedFact, TensorFact


def _qkv_fact() -> LineFact:
    ts = [TensorFact(n, ("B", "T", "384"), (8, 256, 384), "float32", True) for n in "qkv"]
    saved = [SavedFact("Addmm", "input", (2048, 384), "float32", 2048 * 384 * 4)]
    return LineFact(file="gpt.py", line=42, end_col=58, tensors=ts, calls=6,
                    saved_bytes=6 * 2048 * 384 * 4, saved=saved,
                    flops_forward=6 * 2 * 2048 * 384 * 1152, flops_backward=2 * 6 * 2 * 2048 * 384 * 1152,
                    grad_params=["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias"])


def test_units():
    assert render.human_bytes(0) == "0 B"
    assert render.human_bytes(512) == "512 B"
    assert render.human_bytes(1536) == "1.5 KiB"
    assert render.human_bytes(24 * 2**20) == "24.0 MiB"
    assert render.human_bytes(3.1 * 2**30) == "3.1 GiB"
    assert render.human_count(11_173_962) == "11.2M"
    assert render.human_count(950) == "950"
    assert render.human_flops(1_110_000_000) == "1.11 GFLOP"
    assert render.human_flops(0) == "0 FLOP"
    assert [render.short_dtype(d) for d in ("float32", "float16", "bfloat16", "float64", "int64", "bool", "torch.float32")] \
        == ["f32", "f16", "bf16", "f64", "i64", "b8", "f32"]


def test_inlay_single_and_several():
    one = LineFact(file="m.py", line=3, tensors=[TensorFact("x", ("B", "T", "768"), (8, 256, 768), "float32")])
    assert render.inlay_shape_label(one) == ": [B, T, 768] f32"
    assert render.inlay_memory_label(one) == ""
    fact = _qkv_fact()
    assert render.inlay_shape_label(fact) == "q: [B, T, 384] f32, k: [B, T, 384] f32, v: [B, T, 384] f32"
    assert render.inlay_memory_label(fact) == " · 18.0 MiB saved"
    tip = render.saved_breakdown_markdown(fact)
    assert "3.0 MiB per call × 6 calls" in tip and "| `Addmm` | input | [2048, 384] float32 | 3.0 MiB |" in tip
    many = LineFact(file="m.py", line=1, tensors=[TensorFact(f"t{i}", ("B",), (8,), "int64") for i in range(6)])
    assert render.inlay_shape_label(many).endswith("t3: [B] i64, … +2 more")


def test_hover():
    md = render.hover_markdown(_qkv_fact())
    assert "```python\n(tensor) q: [B, T, 384] float32\n```" in md
    assert "(tensor) v: [B, T, 384] float32" in md
    assert "\n---\n" in md
    assert "| saved for backward | 18.0 MiB (3.0 MiB per call × 6 calls) |" in md
    assert "`Addmm` input [2048, 384] f32 · 3.0 MiB" in md
    assert "| forward FLOPs | 10.9 GFLOP |" in md
    assert "| backward FLOPs | 21.7 GFLOP |" in md
    assert "2 parameters: `transformer.h.0.attn.c_attn.weight`" in md
    assert "q: [8, 256, 384]" in md
    empty = LineFact(file="m.py", line=1, tensors=[TensorFact("n", ("B",), (8,), "int64")])
    assert "| saved for backward | 0 B (nothing) |" in render.hover_markdown(empty)


def test_class_texts():
    cls = ClassSummary("GPT", 80, 12_400_000, 49_600_000, int(3.1 * 2**30), 2**30,
                       inputs={"idx": (("B", "T"), "int64")})
    assert render.class_lens_title(cls, 8, "float32", "adamw") == "12.4M params · peak 3.1 GiB @ B=8 (fp32, AdamW)"
    md = render.class_hover_markdown(cls, 8, "float32", "adamw")
    assert "(module) GPT: 12.4M params" in md and "input `idx` | [B, T] int64" in md
