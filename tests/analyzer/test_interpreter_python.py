"""Python features real model code leans on: ``functools.partial`` of classes and functions,
decorators written in Python source, classes inheriting from classes of other files (modules,
enums with classmethods, dataclasses)."""
from __future__ import annotations


from gradxray.analyzer.settings import Settings

from analyzer_helpers import analyze_in_tree, facts, line_of, reasons, write_tree




def test_partial_of_module_class_and_of_function(tmp_path):
    write_tree(tmp_path, {"net.py": """\
        from functools import partial
        import torch
        import torch.nn as nn

        def scaled(x, factor):
            return x * factor

        class Net(nn.Module):
            def __init__(self, norm_layer=None):
                super().__init__()
                if norm_layer is None:
                    norm_layer = partial(nn.LayerNorm, eps=1e-6)
                self.fc = nn.Linear(8, 16)
                self.norm = norm_layer(16)
                self.scale = partial(partial(scaled), factor=2.0)

            def forward(self, x):  # gradxray: x=[B, 8]
                y = self.scale(self.norm(self.fc(x)))
                return y
    """})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    [cls] = a.classes
    assert cls.params == 8 * 16 + 16 + 2 * 16
    src = (tmp_path / "net.py").read_text()
    assert facts(a, line_of(src, "y = self.scale")) == [("y", ("B", "16"), "float32")]


def test_source_decorators_keep_the_function(tmp_path):
    write_tree(tmp_path, {"registry.py": """\
        _MODELS = {}

        def register(fn):
            _MODELS[fn.__name__] = fn
            return fn

        def legacy_args(**renames):
            def outer(builder):
                def inner(*args, **kwargs):
                    for new, old in renames.items():
                        if old in kwargs:
                            kwargs[new] = kwargs.pop(old)
                    return builder(*args, **kwargs)
                return inner
            return outer
    """, "net.py": """\
        import torch.nn as nn
        from registry import register, legacy_args

        class Net(nn.Module):
            def __init__(self, width=4):
                super().__init__()
                self.fc = nn.Linear(4, width)

            def forward(self, x):  # gradxray: x=[B, 4]
                return self.fc(x)

        @register
        @legacy_args(width="hidden")
        def net_wide(**kwargs):
            return Net(width=32, **kwargs)
    """})
    from gradxray.analyzer import build_target

    model, _inputs, forward = build_target(str(tmp_path / "net.py"), "net_wide", Settings(roots=[str(tmp_path)]))
    out = forward()
    assert tuple(out.shape) == (8, 32)
    assert forward.analysis.unresolved == []


def test_classes_inherit_from_classes_of_other_files(tmp_path):
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/base.py": """\
        from enum import Enum
        import torch.nn as nn

        class WeightsEnum(Enum):
            @classmethod
            def verify(cls, obj):
                if obj is not None:
                    raise TypeError("weights are not loaded statically")
                return obj

        class Block(nn.Module):
            expansion = 2

            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(width, width * self.expansion)

            def forward(self, x):
                return self.fc(x)
    """, "net.py": """\
        import torch.nn as nn
        from pkg.base import Block, WeightsEnum

        class NetWeights(WeightsEnum):
            DEFAULT = None

        class WideBlock(Block):
            expansion = 4

        class Net(nn.Module):
            def __init__(self, weights=None):
                super().__init__()
                weights = NetWeights.verify(weights)
                self.block = WideBlock(8)

            def forward(self, x):  # gradxray: x=[B, 8]
                y = self.block(x)
                return y
    """})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    [cls] = a.classes
    assert cls.params == 8 * 32 + 32
    src = (tmp_path / "net.py").read_text()
    assert facts(a, line_of(src, "y = self.block(x)")) == [("y", ("B", "32"), "float32")]


def test_a_class_built_on_an_imported_module_class_is_analysed(tmp_path):
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/layers.py": """\
        import torch.nn as nn

        class Backbone(nn.Module):
            def __init__(self, width=8):
                super().__init__()
                self.fc = nn.Linear(4, width)

            def forward(self, x):
                return self.fc(x)
    """, "net.py": """\
        import pkg.layers

        class Net(pkg.layers.Backbone):
            def forward(self, x):  # gradxray: x=[B, 4]
                y = super().forward(x).relu()
                return y
    """})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    assert [c.name for c in a.classes] == ["Net"]
    src = (tmp_path / "net.py").read_text()
    assert facts(a, line_of(src, "y = super()")) == [("y", ("B", "8"), "float32")]
