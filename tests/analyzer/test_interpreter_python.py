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


def test_wrapping_decorators_run_their_wrapper(tmp_path):
    # HF's @merge_with_config_defaults fills `use_cache` from the config through `func.__code__`;
    # a wrapper may also change the result; one the analysis cannot follow (`inspect.signature`, an
    # unknown registry) is skipped without reporting what it lost
    write_tree(tmp_path, {"decorators.py": """\
        import inspect
        from functools import wraps

        def config_defaults(func):
            @wraps(func)
            def wrapper(self, *args, **kwargs):
                for name in ("use_cache",):
                    index = func.__code__.co_varnames.index(name) - 1 if name in func.__code__.co_varnames else None
                    if index is not None and len(args) > index and args[index] is not None:
                        continue
                    if kwargs.get(name) is None:
                        kwargs[name] = getattr(self.config, name, None)
                return func(self, *args, **kwargs)
            return wrapper

        def flattened(func):
            def wrapper(*args, **kwargs):
                return func(*args, **kwargs).flatten(1)
            return wrapper

        def signature_checked(func):
            def wrapper(*args, **kwargs):
                if "self" in inspect.signature(func).parameters:
                    kwargs["scale"] = 100.0
                return func(*args, **kwargs)
            return wrapper

        def post_processed(func):
            def wrapper(*args, **kwargs):
                out = func(*args, **kwargs)
                if inspect.isclass(out):
                    out = out[0]
                return out
            return wrapper
    """, "net.py": """\
        import torch
        import torch.nn as nn
        from types import SimpleNamespace
        from decorators import config_defaults, flattened, signature_checked, post_processed

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.config = SimpleNamespace(use_cache=True)
                self.fc = nn.Linear(4, 6)

            @config_defaults
            def forward(self, x, use_cache=None):  # gradxray: x=[B, 3, 4]
                y = self.fc(x)
                if use_cache:
                    y = y[:, :1]
                z = self.tail(y)
                w = self.checked(z)
                return self.post(w)

            @flattened
            def tail(self, y):
                return y * 2

            @signature_checked
            def checked(self, z, scale=1.0):
                return z * scale

            @post_processed
            def post(self, w):
                return w + 1
    """})
    from gradxray.analyzer import build_target

    model, _inputs, forward = build_target(str(tmp_path / "net.py"), "Net", Settings(roots=[str(tmp_path)]))
    out = forward()
    assert forward.analysis.unresolved == []
    assert tuple(out.shape) == (8, 6)          # use_cache=True from the config: one position, flattened


def test_context_decorator_above_a_wrapper_covers_it(tmp_path):
    write_tree(tmp_path, {"net.py": """\
        import torch
        import torch.nn as nn

        def flattened(func):
            def wrapper(*args, **kwargs):
                return func(*args, **kwargs).flatten(1)
            return wrapper

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 6)

            def forward(self, x):  # gradxray: x=[B, 3, 4]
                return self.frozen(x)

            @torch.no_grad()
            @flattened
            def frozen(self, x):
                return self.fc(x)
    """})
    from gradxray.analyzer import build_target

    model, _inputs, forward = build_target(str(tmp_path / "net.py"), "Net", Settings(roots=[str(tmp_path)]))
    out = forward()
    assert forward.analysis.unresolved == []
    assert tuple(out.shape) == (8, 18) and not out.requires_grad


def test_init_subclass_of_a_base_runs_for_each_subclass(tmp_path):
    # HF's composite configs: the base's __init_subclass__ turns each subclass's own
    # `sub_configs_defaults` (read from `cls.__dict__`) into specs that later build the sub-configs
    write_tree(tmp_path, {"net.py": """\
        import torch.nn as nn

        class Spec:
            def __init__(self, config_class):
                self.config_class = config_class

            def create(self):
                return self.config_class()

        class BaseConfig:
            sub_configs_defaults = {}

            def __init_subclass__(cls, **kwargs):
                super().__init_subclass__(**kwargs)
                own = cls.__dict__.get("sub_configs_defaults")
                if own is not None:
                    cls.sub_configs_defaults = {k: Spec(v) for k, v in own.items()}

        class TextConfig(BaseConfig):
            width = 12

        class PairConfig(BaseConfig):
            sub_configs_defaults = {"text": TextConfig}

            def __init__(self):
                self.text = self.sub_configs_defaults["text"].create()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, PairConfig().text.width)

            def forward(self, x):  # gradxray: x=[B, 4]
                return self.fc(x)
    """})
    from gradxray.analyzer import build_target

    model, _inputs, forward = build_target(str(tmp_path / "net.py"), "Net", Settings(roots=[str(tmp_path)]))
    out = forward()
    assert forward.analysis.unresolved == []
    assert tuple(out.shape) == (8, 12)


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


def test_membership_in_a_dict_reads_its_keys_only(tmp_path):
    # a value the analysis does not know (a call it cannot follow) leaves `key in d` known; a loop filling
    # a dict while testing membership (timm's attention-offset tables) stays linear
    write_tree(tmp_path, {"net.py": """\
        import itertools
        import torch.nn as nn
        from mystery import unknowable

        class Net(nn.Module):
            def __init__(self, r=7):
                super().__init__()
                table = {"known": 1, "lost": unknowable()}
                points = list(itertools.product(range(r), range(r)))
                offsets = {}
                for p1 in points:
                    for p2 in points:
                        offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                        if offset not in offsets:
                            offsets[offset] = len(offsets)
                width = len(offsets) + (100 if "known" in table else 0) + (1000 if "other" in table else 0)
                self.fc = nn.Linear(4, width)

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.fc(x)
                return y
    """})
    a = analyze_in_tree(tmp_path, "net.py")
    assert [r for r in reasons(a) if "unknowable" not in r and "mystery" not in r] == []
    src = (tmp_path / "net.py").read_text()
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", str(49 + 100)), "float32")]


def test_lambdas_and_comprehensions_in_a_class_body_read_module_names(tmp_path):
    # Python's scoping: a class body's names are not visible to functions and lambdas defined in it
    write_tree(tmp_path, {"net.py": """\
        from dataclasses import dataclass, field
        import torch.nn as nn

        WIDTH = 8

        @dataclass
        class Cfg:
            WIDTH: int = 3
            sizes: tuple = field(default_factory=lambda: (WIDTH, 2 * WIDTH))
            # a comprehension's own scope skips the class body too; its first iterable does not
            depths: tuple = tuple(WIDTH + d for d in range(WIDTH))

        class Net(nn.Module):
            def __init__(self, cfg: Cfg = None):
                super().__init__()
                cfg = cfg or Cfg()
                self.fc = nn.Linear(cfg.sizes[0], cfg.sizes[1])
                self.out = nn.Linear(cfg.sizes[1], cfg.depths[-1])

            def forward(self, x):  # gradxray: x=[B, 8]
                y = self.fc(x)
                z = self.out(y)
                return z
    """})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    src = (tmp_path / "net.py").read_text()
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("B", "16"), "float32")]
    # Python: range(WIDTH) reads the class's 3, the element expression the module's 8: (8, 9, 10)
    assert facts(a, line_of(src, "z = self.out")) == [("z", ("B", "10"), "float32")]
