"""The real-code corpus (issue 4): models from the installed sources of torchvision, timm and HF
transformers, traced statically and checked against the same models run with torch.

For each :class:`CorpusModel` the analyzer builds the target from source files alone (the package
sources are read, never imported, see ``gradxray.analyzer.project``) and runs its forward on the
shape backend; torch builds the same model (on the meta device when it can, else on the CPU) and
runs it with forward hooks on every submodule.  :func:`run_one` compares

* the model's output tensors, in order, and
* the first tensor output of every submodule both sides called (by its ``named_modules`` path).

A model is *traced* when the analyzer reported no place where it lost precision and every shape
matched; a shape that differs is *wrong* (a bug, never acceptable); anything else is a *miss*.
Used by ``tests/corpus/test_corpus.py`` and ``bench/coverage.py``.
"""
from __future__ import annotations

import importlib
import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

BATCH = 2
IMAGE = 224          # torchvision and timm classification input side
TOKENS = 16          # HF sequence length

FACTORIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "factories", "hf_models.py")

TIMM_ARCHS = [
    # (timm.models submodule, builder)
    ("resnet", "resnet18"), ("resnet", "resnet50"), ("resnet", "resnet50d"), ("resnet", "seresnet50"),
    ("resnet", "resnext50_32x4d"), ("resnetv2", "resnetv2_50"), ("res2net", "res2net50_26w_4s"),
    ("resnest", "resnest14d"), ("sknet", "skresnet18"), ("efficientnet", "efficientnet_b0"),
    ("efficientnet", "tf_efficientnet_b0"), ("efficientnet", "mobilenetv2_100"), ("efficientnet", "mnasnet_100"),
    ("mobilenetv3", "mobilenetv3_large_100"), ("ghostnet", "ghostnet_100"), ("rexnet", "rexnet_100"),
    ("regnet", "regnety_002"), ("densenet", "densenet121"), ("dla", "dla34"), ("dpn", "dpn68"),
    ("cspnet", "cspresnet50"), ("vgg", "vgg11"), ("inception_v3", "inception_v3"),
    ("xception_aligned", "xception41"), ("selecsls", "selecsls42b"), ("hrnet", "hrnet_w18_small"),
    ("nfnet", "nf_resnet50"), ("byobnet", "repvgg_a2"), ("convnext", "convnext_tiny"),
    ("convmixer", "convmixer_768_32"), ("vision_transformer", "vit_tiny_patch16_224"),
    ("vision_transformer", "vit_small_patch16_224"), ("deit", "deit_tiny_patch16_224"),
    ("swin_transformer", "swin_tiny_patch4_window7_224"), ("mlp_mixer", "mixer_b16_224"),
    ("mlp_mixer", "resmlp_12_224"), ("metaformer", "poolformer_s12"), ("pit", "pit_ti_224"),
    ("levit", "levit_128s"), ("twins", "twins_svt_small"), ("pvt_v2", "pvt_v2_b0"),
    ("mobilevit", "mobilevit_s"), ("edgenext", "edgenext_xx_small"), ("efficientformer", "efficientformer_l1"),
    ("fastvit", "fastvit_t8"), ("tiny_vit", "tiny_vit_5m_224"), ("efficientvit_mit", "efficientvit_b0"),
    ("repvit", "repvit_m1"), ("cait", "cait_xxs24_224"), ("coat", "coat_lite_tiny"), ("beit", "beit_base_patch16_224"),
    ("eva", "eva02_tiny_patch14_224"), ("gcvit", "gcvit_xxtiny"), ("hgnet", "hgnet_tiny"),
]


@dataclass
class CorpusModel:
    package: str                       # torchvision | timm | transformers
    name: str
    path: str                          # source file holding the builder
    builder: str                       # function (or class) name in that file
    inputs: dict[str, str]             # forward argument -> "[B, 3, H, W]:float32"
    dims: dict[str, int]
    build_torch: Callable[[], Any]     # the same model, built by torch

    @property
    def target(self) -> str:
        return f"{self.path}:{self.builder}"


@dataclass
class Outcome:
    model: CorpusModel
    status: str                        # traced | miss | wrong | error
    seconds: float                     # static analysis (build + forward trace)
    reasons: list[str] = field(default_factory=list)       # where the analysis lost precision
    wrong: list[str] = field(default_factory=list)         # shape mismatches
    modules_compared: int = 0


def _image_inputs() -> dict[str, str]:
    return {"x": "[B, 3, H, W]:float32"}


def _side(name: str) -> int:
    """The input side a classifier needs: Inception's auxiliary head needs 299 in train mode."""
    if name.startswith("inception"):
        return 299
    return 240 if name.endswith("_240") else IMAGE


def torchvision_models() -> list[CorpusModel]:
    import torchvision

    out = []
    for name in torchvision.models.list_models(module=torchvision.models):
        fn = torchvision.models.get_model_builder(name)
        path = inspect.getsourcefile(inspect.unwrap(fn))
        side = _side(name)
        out.append(CorpusModel("torchvision", name, path, name, _image_inputs(), {"H": side, "W": side},
                               lambda fn=fn: fn()))
    return out


def timm_models() -> list[CorpusModel]:
    out = []
    for mod_name, builder in TIMM_ARCHS:
        mod = importlib.import_module(f"timm.models.{mod_name}")
        fn = getattr(mod, builder)
        path = inspect.getsourcefile(inspect.unwrap(fn))
        side = _side(builder)
        out.append(CorpusModel("timm", builder, path, builder, _image_inputs(), {"H": side, "W": side},
                               lambda fn=fn: fn()))
    return out


def transformers_models() -> list[CorpusModel]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gradxray_corpus_hf_models", FACTORIES)
    factories = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(factories)
    return [CorpusModel("transformers", name, FACTORIES, name, inputs, {"T": TOKENS},
                        getattr(factories, name))
            for name, inputs in factories.INPUTS.items()]


PACKAGES = {"torchvision": torchvision_models, "timm": timm_models, "transformers": transformers_models}


def corpus(package: str) -> list[CorpusModel]:
    return PACKAGES[package]()


# -- torch side ---------------------------------------------------------------------------------

def _first_tensor(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v) if isinstance(v, (tuple, list)) else v
            if isinstance(t, torch.Tensor):
                return t
    return None


def _all_tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _all_tensors(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _all_tensors(v)]
    return []


def _torch_input(spec: str, dims: dict[str, int], device):
    import torch

    parts, dtype = _spec_parts(spec)
    shape = [int(dims.get(d, d)) for d in parts]
    if dtype.startswith("int"):
        return torch.randint(0, 10, shape, dtype=getattr(torch, dtype), device=device)
    return torch.randn(shape, dtype=getattr(torch, dtype), device=device)


def torch_shapes(cm: CorpusModel, dims: dict[str, int]):
    """(output shapes, {module path: first output shape}) of the model run with torch in train mode."""
    import torch

    torch.manual_seed(0)
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = cm.build_torch()
            model.train()
            seen: dict[str, tuple] = {}
            hooks = []
            for path, mod in model.named_modules():
                def hook(m, args, out, path=path):
                    t = _first_tensor(out)
                    if path not in seen:
                        seen[path] = tuple(t.shape) if t is not None else None
                hooks.append(mod.register_forward_hook(hook))
            inputs = {k: _torch_input(v, dims, device) for k, v in cm.inputs.items()}
            with torch.no_grad():
                out = model(**inputs)
            for h in hooks:
                h.remove()
            return [tuple(t.shape) for t in _all_tensors(out)], seen
        except Exception:
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


# -- analyzer side ------------------------------------------------------------------------------

def analyzer_shapes(cm: CorpusModel, dims: dict[str, int]):
    """(outcome fields) the static analysis of the target: (outputs, module shapes, reasons, seconds)."""
    import gradxray.engine as gx
    from gradxray.analyzer import Settings, build_target
    from gradxray.analyzer.training_step import tensors_in
    from gradxray.engine.memory import MemoryTracker

    settings = Settings(batch=BATCH, dims=dict(dims), inputs=dict(cm.inputs))
    start = time.perf_counter()
    model, _inputs, forward = build_target(cm.path, cm.builder, settings)
    model.name_modules()
    with gx.no_grad(), MemoryTracker(keep_timeline=False) as tracker:
        out = forward()
    seconds = time.perf_counter() - start
    reasons = [f"{os.path.relpath(u.file, os.path.dirname(os.path.dirname(cm.path))) if u.file else '?'}"
               f":{u.line}: {u.reason}" for u in forward.analysis.unresolved]
    outputs = [tuple(int(s) for s in t.shape) for t in tensors_in(out)]
    return outputs, dict(tracker.module_outputs), reasons, seconds


def run_one(cm: CorpusModel) -> Outcome:
    dims = {**cm.dims}
    start = time.perf_counter()
    try:
        outputs, modules, reasons, seconds = analyzer_shapes(cm, dims)
    except Exception as e:                       # a target the analyzer refused (with its message)
        return Outcome(cm, "error", time.perf_counter() - start, [f"{type(e).__name__}: {e}"])
    bindings = {"B": BATCH, **dims}
    true_outputs, true_modules = torch_shapes(cm, bindings)
    wrong = []
    compared = 0
    for path, shape in true_modules.items():
        ours = modules.get(path)
        if shape is None or ours is None:
            continue
        compared += 1
        if tuple(ours) != tuple(shape):
            wrong.append(f"{path or '<model>'}: traced {list(ours)}, torch {list(shape)}")
    if not reasons:
        if outputs != true_outputs[:len(outputs)] or not outputs:
            wrong.append(f"outputs: traced {[list(s) for s in outputs]}, torch {[list(s) for s in true_outputs]}")
        missing = [p for p, s in true_modules.items() if s is not None and p not in modules]
        if missing and not wrong:
            reasons.append(f"{len(missing)} submodules torch called were not called in the trace "
                           f"(first: {missing[0]})")
    if reasons:
        # after a loss of precision later shapes are not claims the analyzer makes (it says where it
        # lost track); mismatches there are listed as consequences of the miss, not as wrong shapes
        return Outcome(cm, "miss", seconds, reasons + [f"then: {w}" for w in wrong], [], compared)
    return Outcome(cm, "wrong" if wrong else "traced", seconds, reasons, wrong, compared)


# -- input discovery ----------------------------------------------------------------------------

@dataclass
class Discovered:
    model: CorpusModel
    status: str                        # found | wrong | missed
    declared: dict                     # name -> (dims, dtype) of the corpus's declared inputs
    found: dict                        # name -> (dims, dtype) the analyzer found with none declared
    detail: str = ""                   # why it missed


def _spec_parts(text: str) -> tuple[tuple, str]:
    shape, _, dtype = text.partition(":")
    dims = tuple(int(d) if d.strip().isdigit() else d.strip() for d in shape.strip("[] ").split(","))
    return dims, dtype or "float32"


def _same_input(found: tuple, declared: tuple) -> bool:
    """The dims agree one by one: equal, or a name where the corpus pins a number (discovery leaves
    symbolic what the configuration binds: ``[B, 3, H, W]`` for the declared ``[B, 3, 32, 32]``)."""
    return len(found) == len(declared) and all(
        f == d or (isinstance(f, str) and isinstance(d, int)) for f, d in zip(found, declared))


def discover_inputs(cm: CorpusModel) -> Discovered:
    """The inputs the analyzer finds for the target with none declared (inferred from the layers that
    consume them; for a forward whose inputs all default to None, the first one and those it cannot
    run without), compared with the declared ones: *found* when they are the same inputs with the same
    shapes, *wrong* when one differs or is not declared, *missed* when one is not found."""
    from gradxray.analyzer import Settings, build_target

    declared = {name: _spec_parts(text) for name, text in cm.inputs.items()}
    # discovery names the dims it does not know: bind the usual ones so that the build goes on
    bindings = {"H": IMAGE, "W": IMAGE, "T": TOKENS, **cm.dims}
    try:
        _model, _inputs, forward = build_target(cm.path, cm.builder, Settings(batch=BATCH, dims=bindings))
    except Exception as e:                       # no input found: the analyzer says so and stops
        return Discovered(cm, "missed", declared, {}, f"{type(e).__name__}: {e}")
    found = {s.name: (tuple(s.dims), s.dtype) for s in forward.input_specs or () if s.dims is not None}
    for name, (dims, dtype) in found.items():
        if name not in declared or not _same_input(dims, declared[name][0]) or dtype != declared[name][1]:
            return Discovered(cm, "wrong", declared, found)
    missing = sorted(set(declared) - set(found))
    if missing:
        return Discovered(cm, "missed", declared, found, f"not found: {', '.join(missing)}")
    return Discovered(cm, "found", declared, found)
