"""Inlay-hint shapes: every tensor-producing line of the examples' forwards, traced statically,
equals what torch produces when the model really runs."""
import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")

from gradxray.analyzer import analyze_source  # noqa: E402
from gradxray.analyzer.settings import Settings  # noqa: E402
from tests.support.torch_truth import trace_forward_line_shapes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("example,settings,build", [
    ("gpt", Settings(batch=3, dims={"T": 32}),
     lambda m: (m.GPT(), {"idx": torch.randint(0, 50304, (3, 32)), "targets": torch.randint(0, 50304, (3, 32))})),
    ("resnet", Settings(batch=3, dims={"H": 40, "W": 24}),
     lambda m: (m.ResNet(), {"x": torch.randn(3, 3, 40, 24)})),
])
def test_every_forward_line_shape_matches_torch(example, settings, build):
    path = os.path.join(ROOT, "examples", f"{example}.py")
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    analysis = analyze_source(source, path, settings)
    assert analysis.error is None and analysis.unresolved == []
    model, inputs = build(_load(path, f"shapes_{example}"))
    model.train()
    truth = trace_forward_line_shapes(model, inputs, path)
    assert truth, "the torch trace saw no forward lines"
    for line, tensors in sorted(truth.items()):
        fact = analysis.lines.get(line)
        assert fact is not None and fact.tensors, f"line {line}: no static shape for {tensors}"
        ours = {t.name: (t.concrete_shape, t.dtype) for t in fact.tensors}
        for name, shape, dtype in tensors:
            if name == "return":                  # `return y`: the static fact is named after the value
                assert len(ours) == 1, f"line {line}: {sorted(ours)}"
                name = next(iter(ours))
            assert name in ours, f"line {line}: {name} not traced (have {sorted(ours)})"
            assert ours[name] == (tuple(shape), dtype), f"line {line} {name}: {ours[name]} != {(tuple(shape), dtype)}"


def test_gpt_hints_are_symbolic():
    path = os.path.join(ROOT, "examples", "gpt.py")
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    analysis = analyze_source(source, path, Settings(batch=2, dims={"T": 64}))
    texts = {t.name: t.shape_text() for f in analysis.lines.values() for t in f.tensors}
    assert texts["q"] in ("[B, T, 384]", "[B, 6, T, 64]")
    assert texts["logits"] == "[B, T, 50304]"
    assert texts["pos"] == "[T]"
