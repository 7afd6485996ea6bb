"""The speed fixture ``bench/fixtures/large_model.py`` (six model families, ~1,500 lines) traces
fully, and what the analyzer traces equals what torch computes when the same models really run:
the shape and dtype of every tensor bound on a ``forward`` line, the model's output shapes and its
parameter count."""
import importlib.util
import os
import sys

import pytest

torch = pytest.importorskip("torch")

from gradxray.analyzer import analyze_source, build_target  # noqa: E402
from gradxray.analyzer.interpreter import param_stats  # noqa: E402
from gradxray.analyzer.settings import Settings  # noqa: E402
from tests.support.torch_truth import trace_forward_line_shapes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "bench", "fixtures", "large_model.py")

# small symbolic dims keep torch's real forward quick; the vision models are built for 224x224 inputs
BATCH, SEQ, IMAGE = 2, 24, 224
SETTINGS = Settings(batch=BATCH, dims={"T": SEQ, "H": IMAGE, "W": IMAGE})


def _image():
    return {"x": torch.randn(BATCH, 3, IMAGE, IMAGE)}


# root class -> its inputs for torch (the shapes its forward pragma declares, with SETTINGS' dims)
TORCH_INPUTS = {
    "GPT": lambda: {"idx": torch.randint(0, 8192, (BATCH, SEQ)), "targets": torch.randint(0, 8192, (BATCH, SEQ))},
    "ResNet": _image,
    "VisionTransformer": _image,
    "MlpMixer": _image,
    "UNet": _image,
    "ConvNeXt": _image,
}


@pytest.fixture(scope="module")
def fixture_module():
    name = "gradxray_bench_large_model"
    spec = importlib.util.spec_from_file_location(name, FIXTURE)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations (``from __future__ import annotations``) through sys.modules
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def _read_fixture() -> str:
    with open(FIXTURE, encoding="utf-8") as fh:
        return fh.read()


def test_fixture_is_a_large_file():
    assert 1400 <= len(_read_fixture().splitlines()) <= 1700


def test_whole_file_analysis_traces_every_root_class():
    """What ``gradxray check`` and the language server do: one analysis of the whole file."""
    analysis = analyze_source(_read_fixture(), FIXTURE, SETTINGS)
    assert analysis.error is None
    assert analysis.unresolved == []
    assert analysis.diagnostics == []
    assert [c.name for c in analysis.classes] == list(TORCH_INPUTS)
    for summary in analysis.classes:
        assert summary.inputs, f"{summary.name}: no inputs discovered"
        assert summary.peak_bytes > 0 and summary.activations_saved_bytes > 0, summary.name


def _engine_shapes(value) -> list[tuple[tuple[int, ...], str]]:
    """(concrete shape, dtype name) of each engine tensor in a (nested) output, in order."""
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in _engine_shapes(v)]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return [(tuple(int(d) for d in value.shape), str(value.dtype).rsplit(".", 1)[-1])]
    return []


def _torch_shapes(value) -> list[tuple[tuple[int, ...], str]]:
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in _torch_shapes(v)]
    if isinstance(value, torch.Tensor):
        return [(tuple(value.shape), str(value.dtype).rsplit(".", 1)[-1])]
    return []


@pytest.mark.parametrize("name", list(TORCH_INPUTS))
def test_traced_shapes_match_torch(name, fixture_module):
    model, inputs, run_forward = build_target(FIXTURE, name, SETTINGS)
    static_out = run_forward()
    analysis = run_forward.analysis
    assert analysis.unresolved == [], analysis.unresolved

    torch.manual_seed(0)
    torch_model = getattr(fixture_module, name)()
    torch_model.train()
    torch_inputs = TORCH_INPUTS[name]()
    assert {k: tuple(v.shape) for k, v in torch_inputs.items()} == \
        {k: tuple(int(d) for d in v.shape) for k, v in inputs.items()}

    # tied weights count once on both sides (named_parameters de-duplicates them)
    torch_params = sum(p.numel() for _, p in torch_model.named_parameters())
    assert param_stats(model)[0] == torch_params

    with torch.no_grad():
        torch_out = torch_model(**torch_inputs)
    assert _engine_shapes(static_out) == _torch_shapes(torch_out)

    truth = trace_forward_line_shapes(torch_model, torch_inputs, FIXTURE)
    assert truth, "the torch trace saw no forward lines"
    for line, tensors in sorted(truth.items()):
        fact = analysis.lines.get(line)
        assert fact is not None and fact.tensors, f"line {line}: no static shape for {tensors}"
        ours = {t.name: (t.concrete_shape, t.dtype) for t in fact.tensors}
        for var, shape, dtype in tensors:
            if var == "return":                  # `return y`: the static fact is named after the value
                assert len(ours) == 1, f"line {line}: {sorted(ours)}"
                var = next(iter(ours))
            assert var in ours, f"line {line}: {var} not traced (have {sorted(ours)})"
            assert ours[var] == (tuple(shape), dtype), f"line {line} {var}: {ours[var]} != {(tuple(shape), dtype)}"
