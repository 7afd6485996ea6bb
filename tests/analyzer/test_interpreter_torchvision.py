"""Python features torchvision's model code leans on: ``obj.__module__`` and API-usage logging in
constructors, ``typing.cast``, class bodies of base classes from other files, and layer sizes computed
with torch on constants while a model is built (RegNet's width rule)."""
from __future__ import annotations

import textwrap

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.settings import Settings

from analyzer_helpers import analyze_in_tree, facts, first_shape, line_of, reasons, write_tree




def test_module_dunder_and_api_usage_logging(tmp_path):
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/utils.py": """\
            from types import FunctionType
            import torch

            def log_usage(obj):
                module = obj.__module__
                if not module.startswith("pkg"):
                    module = f"outside.{module}"
                name = obj.__class__.__name__
                if isinstance(obj, FunctionType):
                    name = obj.__name__
                torch._C._log_api_usage_once(f"{module}.{name}")
                return f"{module}.{name}"
        """,
        "pkg/net.py": """\
            import torch.nn as nn
            from .utils import log_usage

            def helper():
                return 1

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.where = log_usage(self)
                    self.fn_where = log_usage(helper)
                    self.fc = nn.Linear(4, 2)

                def forward(self, x):  # gradxray: x=[B, 4]
                    y = self.fc(x)
                    return y
        """})
    a = analyze_in_tree(tmp_path, "pkg/net.py")
    assert reasons(a) == []
    assert facts(a, 15) == [("y", ("B", "2"), "float32")]


def test_private_torch_names_stay_unresolved(analyze):
    a = analyze("""\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.k = torch._C._get_tracing_state()

            def forward(self, x):  # gradxray: x=[B, 4]
                return self.fc(x)
    """)
    assert any("torch._C._get_tracing_state" in r and "private" in r for r in reasons(a))


def test_typing_cast_is_its_value(analyze):
    src = """\
        from typing import cast
        import typing
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, cfg=(8, "M", 16)):
                super().__init__()
                layers = []
                c = 3
                for v in cfg:
                    if v == "M":
                        layers.append(nn.MaxPool2d(2))
                    else:
                        v = cast(int, v)
                        layers.append(nn.Conv2d(c, typing.cast(int, v), 3, padding=1))
                        c = v
                self.features = nn.Sequential(*layers)

            def forward(self, x):  # gradxray: x=[B, 3, 8, 8]
                y = self.features(x)
                return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert facts(a, line_of(src, "y = self.features(x)")) == [("y", ("B", "16", "4", "4"), "float32")]


def test_base_class_body_evaluates_in_its_own_file(tmp_path):
    """A class of file A inherits from a class of file B whose own base lives in B: the inherited
    methods resolve their names (``warnings``, the base class itself) in B."""
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/layers.py": """\
            import warnings
            import torch.nn as nn

            class ConvNormAct(nn.Sequential):
                def __init__(self, cin, cout):
                    super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
                    if self.__class__ == ConvNormAct:
                        warnings.warn("use Conv2dNormAct")

            class Conv2dNormAct(ConvNormAct):
                pass
        """,
        "pkg/net.py": """\
            import torch.nn as nn
            from . import layers as L

            class Stem(L.Conv2dNormAct):
                def __init__(self, cin, cout):
                    super().__init__(cin, cout)

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.stem = Stem(3, 8)

                def forward(self, x):  # gradxray: x=[B, 3, 8, 8]
                    y = self.stem(x)
                    return y
        """})
    a = analyze_in_tree(tmp_path, "pkg/net.py")
    assert reasons(a) == []
    assert facts(a, 14) == [("y", ("B", "8", "8", "8"), "float32")]


REGNET_LIKE = """\
    import math
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self, depth=6, w_0=8, w_a=6.5, w_m=2.0, quant=4):
            super().__init__()
            widths_cont = torch.arange(depth) * w_a + w_0
            block_capacity = torch.round(torch.log(widths_cont / w_0) / math.log(w_m))
            scaled = torch.round(torch.divide(w_0 * torch.pow(w_m, block_capacity), quant))
            block_widths = (scaled * quant).int().tolist()
            splits = [w != wp for w, wp in zip(block_widths + [0], [0] + block_widths)]
            stage_widths = [w for w, t in zip(block_widths, splits[:-1]) if t]
            layers = []
            c = 3
            for w in stage_widths:
                layers.append(nn.Conv2d(c, w, 3, stride=2, padding=1))
                c = w
            self.body = nn.Sequential(*layers)
            self.table = nn.Parameter(torch.zeros(9, 2))
            coords = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")).flatten(1)
            rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
            rel[:, :, 0] += 2
            self.register_buffer("index", rel.sum(-1).flatten(), persistent=False)
            self.n_stages = int(torch.tensor(len(stage_widths)).item())

        def forward(self, x):  # gradxray: x=[B, 3, 32, 32]
            y = self.body(x)
            bias = self.table[self.index]
            return y, bias
"""


def test_layer_sizes_computed_with_torch_on_constants(analyze):
    import numpy as np

    a = analyze(REGNET_LIKE)
    assert reasons(a) == []
    # the same width rule in numpy: the stages the constructor builds
    depth, w_0, w_a, w_m, quant = 6, 8, 6.5, 2.0, 4
    cont = np.arange(depth) * w_a + w_0
    cap = np.round(np.log(cont / w_0) / np.log(w_m))
    widths = (np.round(w_0 * np.power(w_m, cap) / quant) * quant).astype(int).tolist()
    stages = [w for i, w in enumerate(widths) if i == 0 or w != widths[i - 1]]
    side = 32 // 2 ** len(stages)
    line = line_of(REGNET_LIKE, "return y, bias")
    assert facts(a, line) == [("y", ("B", str(stages[-1]), str(side), str(side)), "float32"),
                              ("bias", ("81", "2"), "float32")]


def test_layer_sizes_computed_with_torch_match_torch():
    torch = pytest.importorskip("torch")
    namespace: dict = {}
    exec(compile(textwrap.dedent(REGNET_LIKE), "regnet_like.py", "exec"), namespace)   # the test's own source
    net = namespace["Net"]()
    y, bias = net(torch.randn(2, 3, 32, 32))
    a = analyze_source(textwrap.dedent(REGNET_LIKE), "model.py", Settings(batch=2))
    [cls] = a.classes
    assert cls.params == sum(p.numel() for p in net.parameters())
    line = line_of(REGNET_LIKE, "return y, bias")
    assert [lf for lf in a.lines[line].tensors][0].concrete_shape == tuple(y.shape)
    assert [lf for lf in a.lines[line].tensors][1].concrete_shape == tuple(bias.shape)


def test_large_constant_tensors_stay_shape_only_small_ones_in_forward_have_values(analyze):
    # forward code branches on small tensors it makes (HF's `fast_all(torch.ones(B, T))`): they carry
    # their values, as in a model's construction; one too large for that does not
    src = """\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                big = torch.arange(1 << 20)
                self.n = big.tolist()
                self.m = torch.zeros(size=(300, 300)).tolist()

            def forward(self, x):  # gradxray: x=[B, 4]
                k = torch.arange(4).tolist()
                return self.fc(x)
    """
    a = analyze(src)
    rs = reasons(a)
    assert [r for r in rs if "tolist" in r] == [
        "`big.tolist(...)` failed: RuntimeError: tolist() needs data; this tensor lives on the shape backend",
        "`torch.zeros(size=(300, 300)).tolist(...)` failed: RuntimeError: tolist() needs data; this tensor "
        "lives on the shape backend"]


def test_forward_branches_on_a_mask_it_builds(analyze):
    # HF's BART: no attention mask given, forward builds `torch.ones(batch, length)` and skips the
    # causal mask when it has no padding (`mask.sum() == mask.numel()`); the sizes come from the input
    src = """\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):  # gradxray: x=[B, T, 4]
                mask = torch.ones(x.shape[0], x.shape[1], device=x.device)
                positions = torch.arange(x.shape[1], device=x.device)
                if mask.sum() == mask.numel() and (positions[1:] - positions[:-1] == 1).all():
                    y = self.fc(x)
                else:
                    y = self.fc(x)[:, :1]
                return y * mask[..., None]
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "return y * mask") == ("B", "T", "4")


def test_dataclass_base_generated_init_through_super(analyze):
    src = """\
        import math
        from dataclasses import dataclass
        from typing import Callable
        import torch.nn as nn

        @dataclass
        class _BlockConfig:
            expand_ratio: float
            input_channels: int
            out_channels: int
            block: Callable[..., nn.Module]

            @staticmethod
            def adjust(channels, width_mult):
                return int(math.ceil(channels * width_mult))

        class BlockConfig(_BlockConfig):
            def __init__(self, expand_ratio, input_channels, out_channels, width_mult=1.0, block=None):
                input_channels = self.adjust(input_channels, width_mult)
                out_channels = self.adjust(out_channels, width_mult)
                if block is None:
                    block = nn.Conv2d
                super().__init__(expand_ratio, input_channels, out_channels, block)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                cnf = BlockConfig(4, 3, 8, width_mult=2.0)
                self.conv = cnf.block(cnf.input_channels, cnf.out_channels, 1)

            def forward(self, x):  # gradxray: x=[B, 6, 4, 4]
                y = self.conv(x)
                return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert facts(a, line_of(src, "y = self.conv(x)")) == [("y", ("B", "16", "4", "4"), "float32")]


def test_torchscript_overloads_numpy_schedules_and_module_list_concatenation(analyze):
    src = """\
        import numpy as np
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, depth=3):
                super().__init__()
                probs = np.linspace(0, 0.2, depth).tolist()
                self.layers = nn.ModuleList()
                for p in probs:
                    self.layers += [nn.Linear(4, 4)]
                self.scale = nn.parameter.Parameter(torch.ones(4))

            @torch.jit._overload_method  # noqa: F811
            def forward(self, x):
                pass

            def forward(self, x):  # noqa: F811  # gradxray: x=[B, 4]
                for layer in self.layers:
                    x = layer(x)
                y = x * self.scale
                return y
    """
    a = analyze(src)
    assert reasons(a) == []
    [cls] = a.classes
    assert cls.params == 3 * (16 + 4) + 4
    assert facts(a, line_of(src, "y = x * self.scale")) == [("y", ("B", "4"), "float32")]


def test_numpy_outside_the_curated_subset_is_a_reason(analyze):
    a = analyze("""\
        import numpy as np
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = np.load("weights.npy")
                self.fc = nn.Linear(4, 4)

            def forward(self, x):  # gradxray: x=[B, 4]
                return self.fc(x)
    """)
    assert any("numpy.load" in r for r in reasons(a))


def test_built_model_holds_shape_only_tensors(tmp_path):
    """Values of constant tensors serve construction only: the model's buffers carry none, so a backward
    outside the analysis (the memory report's training step) never mixes data with shape tensors."""
    from gradxray.analyzer import build_target

    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(REGNET_LIKE))
    model, inputs, forward = build_target(str(path), "Net", Settings(batch=2))
    assert model.index.data_ is None and all(p.data_ is None for p in model.parameters())
    y, bias = forward()
    (y.sum() + bias.sum()).backward()
    assert model.table.grad is not None and tuple(model.table.grad.shape) == (9, 2)
    assert forward.analysis.unresolved == []
