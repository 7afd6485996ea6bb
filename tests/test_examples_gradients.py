"""The engine's torch backend, driven by the analyzer through the example source, reproduces
torch.autograd's gradients for the example models (float64)."""
import copy
import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray.analyzer import build_target  # noqa: E402
from gradxray.analyzer.settings import Settings  # noqa: E402
from gradxray.analyzer.torch_api import Runtime  # noqa: E402
from gradxray.analyzer.training_step import pick_loss  # noqa: E402
from gradxray.engine.interop import load_torch_state  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _torch_runtime():
    return Runtime(gx, backend=lambda: gx.backend("torch"), swap_location=gx.memory.swap_location)


@pytest.mark.parametrize("example,cls,args,make_inputs", [
    ("gpt", "GPT", {}, lambda: {"idx": torch.randint(0, 50304, (2, 16)), "targets": torch.randint(0, 50304, (2, 16))}),
    ("resnet", "ResNet", {}, lambda: {"x": torch.randn(2, 3, 16, 16, dtype=torch.float64)}),
])
def test_engine_gradients_equal_torch_autograd(example, cls, args, make_inputs):
    torch.manual_seed(0)
    ref = getattr(_load(example), cls)(**args).double().train()
    initial = copy.deepcopy(ref)          # the reference forward updates BatchNorm running stats
    inputs = make_inputs()
    ref_out = ref(**inputs)
    ref_loss, _ = _pick_torch_loss(ref_out)
    ref_loss.backward()

    settings = Settings(batch=2, dims={"T": 16, "H": 16, "W": 16})
    model, _, forward = build_target(os.path.join(ROOT, "examples", f"{example}.py"), cls, settings,
                                     runtime=_torch_runtime())
    load_torch_state(model, initial)
    with gx.backend("torch"):
        gx_inputs = {k: gx.from_torch(v, requires_grad=False) for k, v in inputs.items()}
    out = forward(**gx_inputs)
    loss, _ = pick_loss(out)
    assert forward.analysis.unresolved == []
    assert torch.allclose(loss.data_, ref_loss.detach(), rtol=1e-10)
    loss.backward()
    ref_params = dict(ref.named_parameters())
    checked = 0
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.allclose(p.grad.data_, ref_params[name].grad, rtol=1e-10, atol=1e-12), name
        checked += 1
    assert checked == len(ref_params)


def _pick_torch_loss(out):
    if isinstance(out, tuple):
        return out[1], "loss"
    return out.sum(), "sum"
