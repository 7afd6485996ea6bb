"""Python features that HF-transformers-style package code leans on: lazy package re-exports through
long star-import chains, configs that redirect attribute reads and writes (``attribute_map`` through
``__getattribute__`` / ``__setattr__``), dict and ``Mapping`` subclasses (activation tables, attention
registries), rich comparisons written in source (version objects), ``@contextmanager`` generators,
patches of engine classes that stay the analysis's own, and the logging/sys/threading surface."""
from __future__ import annotations

import textwrap

import gradxray.engine as gx
from analyzer_helpers import facts, first_shape, line_of, reasons
from gradxray.analyzer import analyze_source
from gradxray.analyzer.project import ProjectIndex
from gradxray.analyzer.settings import Settings



def test_config_attribute_map_through_getattribute_and_setattr(analyze):
    src = """\
    import torch.nn as nn

    class Base:
        attribute_map = {}

        def __init__(self, **kwargs):
            for k, v in kwargs.items():
                setattr(self, k, v)

        def __setattr__(self, key, value):
            if key in super().__getattribute__("attribute_map"):
                key = super().__getattribute__("attribute_map")[key]
            super().__setattr__(key, value)

        def __getattribute__(self, key):
            if key != "attribute_map" and key in super().__getattribute__("attribute_map"):
                key = super().__getattribute__("attribute_map")[key]
            return super().__getattribute__(key)

    class Cfg(Base):
        attribute_map = {"hidden_size": "n_embd"}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cfg = Cfg(hidden_size=8)
            self.fc = nn.Linear(4, cfg.n_embd + getattr(cfg, "missing", 0))
            self.out = nn.Linear(cfg.hidden_size, 2)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.out(self.fc(x))
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.out") == ("B", "2")


def test_dict_subclass_and_mapping_registry(analyze):
    src = """\
    from collections import OrderedDict
    from collections.abc import MutableMapping
    import torch
    import torch.nn as nn

    class ClassInstantier(OrderedDict):
        def __getitem__(self, key):
            content = super().__getitem__(key)
            cls, kwargs = content if isinstance(content, tuple) else (content, {})
            return cls(**kwargs)

    ACT2FN = ClassInstantier({"relu": nn.ReLU, "gelu": (nn.GELU, {"approximate": "tanh"})})

    def eager(x):
        return x * 2

    class Registry(MutableMapping):
        _global_mapping = {"eager": eager}

        def __init__(self):
            self._local_mapping = {}

        def __getitem__(self, key):
            if key in self._local_mapping:
                return self._local_mapping[key]
            return self._global_mapping[key]

        def __setitem__(self, key, value):
            self._local_mapping.update({key: value})

        def __delitem__(self, key):
            del self._local_mapping[key]

        def __iter__(self):
            return iter({**self._global_mapping, **self._local_mapping})

        def __len__(self):
            return 2

        def valid_keys(self):
            return list(self.keys())

    FUNCS = Registry()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = ACT2FN["gelu"]
            self.fc = nn.Linear(4, 4 * len(FUNCS.valid_keys()))

        def forward(self, x):  # gradxray: x=[B, 4]
            FUNCS["double"] = eager
            fn = FUNCS.get("double", None) if "double" in FUNCS else None
            y = fn(self.act(self.fc(x)))
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = fn(") == ("B", "4")


def test_rich_comparison_written_in_source(analyze):
    src = """\
    import torch.nn as nn

    class Version:
        def __init__(self, n):
            self.n = n

        def __ge__(self, other):
            return self.n >= other.n

        def __lt__(self, other):
            return self.n < other.n

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            new = Version(5) >= Version(3)
            old = Version(5) < Version(3)
            self.fc = nn.Linear(4, 8 if new and not old else 2)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "8")


def test_contextmanager_runs_the_with_body_at_its_yield(analyze):
    src = """\
    from contextlib import contextmanager
    import torch
    import torch.nn as nn

    @contextmanager
    def frozen(scale):
        with torch.no_grad():
            yield scale * 2

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        @frozen(1)
        def helper(self, x):
            return x

        def forward(self, x):  # gradxray: x=[B, 4]
            with frozen(3) as k:
                z = self.fc(x) * k
            y = self.helper(self.fc(x))
            return y + z.requires_grad
    """
    a = analyze(src)
    assert reasons(a) == []
    (name, shape, _), = facts(a, line_of(src, "z = self.fc(x) * k"))
    assert shape == ("B", "4")
    assert a.lines[line_of(src, "z = self.fc(x) * k")].tensors[0].requires_grad is False


def test_patching_an_engine_class_stays_in_the_analysis(analyze):
    src = """\
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            if not hasattr(torch.nn.Module, "visit"):
                def visit(module, fn):
                    for child in module.children():
                        visit(child, fn)
                    fn(module)
                    return module
                setattr(torch.nn.Module, "visit", visit)
            self.visit(self.mark)

        def mark(self, module):
            module._is_marked = True

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x) if getattr(self.fc, "_is_marked", False) else x[:, :1]
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "4")
    assert "visit" not in vars(gx.nn.Module)          # the engine's class is unchanged
    assert "_is_marked" not in vars(gx.nn.Linear)


def test_logging_sys_and_threading_surface(analyze):
    src = """\
    import logging
    import sys
    import threading
    import torch.nn as nn

    _lock = threading.Lock()
    logger = logging.getLogger(__name__)

    def configure():
        with _lock:
            handler = logging.StreamHandler()
            handler.flush = sys.stderr.flush
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.WARNING)
            logger.warning_once("said once")
        return sys.version_info >= (3, 8) and "torch" not in sys.modules

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8 if configure() else 2)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "8")


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_lazy_package_star_chain_parses_only_the_defining_file(tmp_path):
    site = tmp_path / "site"
    _write(site, "lazypkg/__init__.py", """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .models import *
        """)
    names = [f"m{i}" for i in range(30)]
    _write(site, "lazypkg/models/__init__.py", "".join(f"from .{n} import *\n" for n in names))
    for n in names:
        _write(site, f"lazypkg/models/{n}/__init__.py", f"from .config_{n} import *\nfrom .modeling_{n} import *\n")
        _write(site, f"lazypkg/models/{n}/config_{n}.py", f"""\
            class Cfg_{n}:
                width = 8
            __all__ = ["Cfg_{n}"]
            """)
        _write(site, f"lazypkg/models/{n}/modeling_{n}.py", f"""\
            import torch.nn as nn
            class Net_{n}(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    self.fc = nn.Linear(4, cfg.width)
                def forward(self, x):
                    return self.fc(x)
            __all__ = ["Net_{n}"]
            """)
    project = ProjectIndex([str(site)])
    loc = project.star_origin(str(site / "lazypkg" / "__init__.py"), "Net_m17", [])
    assert loc is not None and loc.file.endswith("modeling_m17.py")
    assert project.parse_count == 1                # only the file that binds the name was parsed
    assert project.star_origin(str(site / "lazypkg" / "__init__.py"), "Nope", []) is None

    src = """\
    import torch.nn as nn
    from lazypkg import Cfg_m17, Net_m17

    class Top(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Net_m17(Cfg_m17())

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.net(x)
            return y
    """
    a = analyze_source(textwrap.dedent(src), str(tmp_path / "model.py"), Settings(search_paths=[str(site)]))
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.net(x)") == ("B", "8")
