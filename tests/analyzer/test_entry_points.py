"""analyze_source / build_target: the examples, factories, no torch import, no extra references."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import pytest

import gradxray.engine as gx
from gradxray.analyzer import analyze_source, build_target
from gradxray.analyzer.settings import Settings
from gradxray.engine.memory import MemoryTracker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def _example(name):
    path = os.path.join(EXAMPLES, name)
    with open(path, encoding="utf-8") as fh:
        return path, fh.read()


def test_gpt_example_traces_fully():
    path, src = _example("gpt.py")
    a = analyze_source(src, path, Settings())
    assert a.error is None and a.unresolved == [] and a.diagnostics == []
    [c] = a.classes
    # token + position embeddings, 6 blocks, final LayerNorm; lm_head tied to wte (counted once)
    block = 2 * 2 * 384 + (384 * 1152 + 1152) + (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384)
    assert c.name == "GPT" and c.params == 50304 * 384 + 256 * 384 + 6 * block + 2 * 384
    shapes = {t.name: t.shape_text() for f in a.lines.values() for t in f.tensors}
    assert shapes["tok_emb"] == "[B, T, 384]" and shapes["pos"] == "[T]"
    assert shapes["logits"] == "[B, T, 50304]" and shapes["loss"] == "[]"


def test_resnet_example_traces_fully():
    path, src = _example("resnet.py")
    a = analyze_source(src, path, Settings(dims={"H": 32, "W": 32}))
    assert a.error is None and a.unresolved == [] and a.diagnostics == []
    [c] = a.classes                      # BasicBlock is a submodule, resnet18 a factory: one root
    assert c.name == "ResNet" and c.params == 11173962       # torchvision-style resnet18 for 10 classes
    lines = src.splitlines()
    first = {lines[ln - 1].strip(): [t.shape_text() for t in f.tensors] for ln, f in sorted(a.lines.items())}
    # the first block runs after the stride-2 max pool; the first downsampling block is layer2's
    assert first["identity = x"] == ["[B, 64, H/2, W/2]"]
    assert first["identity = self.downsample(x)"] == ["[B, 128, H/4, W/4]"]
    assert first["x = torch.flatten(x, 1)"] == ["[B, 512]"]


def test_build_target_factory_and_class():
    path, _ = _example("resnet.py")
    model, inputs, fwd = build_target(path, "resnet18", Settings(batch=2, dims={"H": 32, "W": 32}))
    assert isinstance(model, gx.nn.Module) and type(model).__name__ == "ResNet"
    assert list(inputs) == ["x"] and tuple(int(d) for d in inputs["x"].shape) == (2, 3, 32, 32)
    out = fwd()
    assert tuple(out.shape) == (2, 10) and out.requires_grad
    assert fwd.analysis.unresolved == []
    path, _ = _example("gpt.py")
    model, inputs, fwd = build_target(path, "GPT", Settings(batch=2, dims={"T": 16}))
    assert set(inputs) == {"idx", "targets"}
    logits, loss = fwd(inputs)
    assert [sym for sym in map(str, logits.shape)] == ["B", "T", "50304"] and loss.dim() == 0


def test_build_target_errors(tmp_path):
    path, _ = _example("resnet.py")
    with pytest.raises(LookupError):
        build_target(path, "Nope", Settings())
    p = tmp_path / "m.py"
    p.write_text("import torch.nn as nn\nclass N(nn.Module):\n    def forward(self, x):\n        return x\n")
    with pytest.raises(ValueError, match="no input shape"):
        build_target(str(p), "N", Settings())


def test_analysis_does_not_import_torch():
    code = textwrap.dedent(f"""\
        import sys
        from gradxray.analyzer import analyze_source
        from gradxray.analyzer.settings import Settings
        for name in ("gpt.py", "resnet.py"):
            path = {EXAMPLES!r} + "/" + name
            a = analyze_source(open(path).read(), path, Settings(batch=2, dims={{"T": 16, "H": 32, "W": 32}}))
            assert a.unresolved == [], a.unresolved
        print("torch" in sys.modules)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


MLP = """\
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(64, 8)

    def forward(self, x):  # gradxray: x=[B, 32]
        h = self.fc1(x)
        h = self.act(h)
        tmp = h * 2
        y = self.fc2(h)
        return y
"""


def _direct_forward(m, x, detach=False):
    # the same statements, run by Python itself on the engine
    h = m.fc1(x)
    h = m.act(h).detach() if detach else m.act(h)
    tmp = h * 2  # noqa: F841 - alive until return, as in the interpreted forward
    y = m.fc2(h)
    return y


def _measure(run):
    """(peak, live bytes with the output held, live bytes after dropping it), cyclic GC off
    (the engine's graph may hold cycles; only reference counting is compared here)."""
    gc.collect()
    gc.disable()
    try:
        with gx.backend("shape"), MemoryTracker() as tr:
            out = run()
            during = tr.current_bytes
            del out
            return tr.peak_bytes, during, tr.current_bytes
    finally:
        gc.enable()


@pytest.mark.parametrize("detach", [False, True])
def test_interpreter_holds_references_exactly_as_python(tmp_path, detach):
    """Live bytes during and after forward match running the same code directly: the interpreter
    (frames, facts, gradient-cut tags) keeps no tensor alive longer than CPython would."""
    p = tmp_path / "mlp.py"
    p.write_text(MLP.replace("h = self.act(h)", "h = self.act(h).detach()") if detach else MLP)
    model, inputs, fwd = build_target(str(p), "MLP", Settings(batch=4))
    interp = _measure(fwd)
    direct = _measure(lambda: _direct_forward(model, inputs["x"], detach))
    assert interp == direct and interp[0] > 0
