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


def test_raise_travels_to_a_callers_matching_except(analyze):
    src = """\
    import torch.nn as nn

    class NotSupported(ValueError):
        pass

    def check(flag):
        if not flag:
            raise NotSupported(f"{flag} is not supported")
        return 8

    def outer(flag):
        try:
            return check(flag)
        except (ValueError, ImportError):
            return 6

    def reraise():
        try:
            check(False)
        except ValueError:
            raise

    def guarded():
        try:
            reraise()
        except NotSupported as e:
            return 5 if isinstance(e, ValueError) else 0

    def cleanup_then_raise():
        try:
            check(False)
        finally:
            pass
        return 99                         # never reached: the exception travels on after `finally`

    def host_error():
        return int("not a number")

    def catches_host():
        try:
            return host_error()
        except ValueError:
            return 3

    def wrong_handler():
        try:
            return check(False)
        except KeyError:
            return 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [outer(True), outer(False), guarded(), catches_host()]
            try:
                sizes.append(cleanup_then_raise())
            except ValueError:
                sizes.append(4)
            self.fc = nn.Linear(4, sum(sizes))
            self.unknown = wrong_handler()

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert first_shape(a, src, "y = self.fc") == ("B", str(8 + 6 + 5 + 3 + 4))
    # no handler for it anywhere: the call that raised gives Unknown, with the raise as the reason
    assert reasons(a) == ["reached `raise NotSupported(f'{flag} is not supported')`"]
    assert a.unresolved[0].line == line_of(src, "raise NotSupported")


def test_torch_classes_the_engine_lacks_are_placeholders(analyze):
    src = """\
    import torch
    import torch.nn as nn
    from torch.nn.attention.flex_attention import BlockMask

    def widths(module):
        if isinstance(module, nn.LSTM):
            return 1
        if isinstance(module, (torch.Tensor, BlockMask)):
            return 2
        return 4 if not issubclass(nn.Linear, nn.LSTM) else 3

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, widths(nn.Linear(2, 2)) + widths(torch.zeros(1)))
            self.rnn = nn.LSTM(4, 8)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert first_shape(a, src, "y = self.fc") == ("B", "6")
    assert reasons(a) == ["`torch.nn.LSTM` is not supported by gradxray's engine"]
    assert a.unresolved[0].line == line_of(src, "self.rnn = nn.LSTM")


def test_package_probes_see_torch_installed_and_nothing_else(analyze):
    src = """\
    import importlib.metadata
    import importlib.util
    import torch.nn as nn

    def version_of(name):
        if importlib.util.find_spec(name) is None:
            return "N/A"
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    def probe():
        try:
            importlib.metadata.version("flash_attn")
        except importlib.metadata.PackageNotFoundError:
            return 1
        return 0

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            n = len(version_of("torch").split(".")) + (version_of("flash_attn") == "N/A") + probe()
            self.fc = nn.Linear(4, n)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    from gradxray.analyzer.torch_api import TORCH_VERSION

    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc") == ("B", str(len(TORCH_VERSION.split(".")) + 2))


def test_hf_module_and_output_idioms(analyze):
    """nn.Buffer attributes, pytree registration, `__class__.__name__` of modules, Mapping `super().get`,
    an @dataclass output under a dict base with its own __init__, fields() defaults, a property setter
    through object.__setattr__, getattr(o, k, d) around a getter reading an unset field, classproperty,
    inspect.signature, Tensor.type and a stub class defined under a module-level `if`."""
    src = """\
    import importlib.util
    import inspect
    from collections import OrderedDict
    from collections.abc import MutableMapping
    from dataclasses import dataclass, fields
    import torch
    import torch.nn as nn
    import torch.utils._pytree as pytree

    HAVE_KERNELS = importlib.util.find_spec("kernels") is not None
    if HAVE_KERNELS:
        Repo = importlib.import_module("kernels").Repo
    else:
        class Repo:
            def load(self):
                return None

    class classproperty(property):
        def __get__(self, obj, owner):
            return self.fget(owner)

    class Registry(MutableMapping):
        _global = {"eager": 1, "sdpa": 2}

        def __init__(self):
            self._local = {}
        def __getitem__(self, k):
            return self._local[k] if k in self._local else self._global[k]
        def __setitem__(self, k, v):
            self._local[k] = v
        def __delitem__(self, k):
            del self._local[k]
        def __iter__(self):
            return iter({**self._global, **self._local})
        def __len__(self):
            return len(self._global) + len(self._local)
        def lookup(self, k, default):
            return super().get(k, default)

    class Cfg:
        def __init__(self):
            self._impl = None              # the property's setter runs
        @property
        def _impl(self):
            return self._impl_internal
        @_impl.setter
        def _impl(self, value):
            current = getattr(self, "_impl", None)       # the getter raises AttributeError: the default
            self._impl_internal = value if value is not None else (current or "sdpa")
        @classproperty
        def sub_configs(cls):
            return {}

    class Output(OrderedDict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
        def __post_init__(self):
            for f in fields(self):
                v = getattr(self, f.name)
                if v is not None and f.default is None:
                    self[f.name] = v

    @dataclass
    class ModelOutput(Output):
        last_hidden_state: torch.Tensor = None
        pooled: torch.Tensor = None

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.inv_freq = nn.Buffer(torch.ones(4), persistent=False)
        def forward(self, x):
            return x * self.inv_freq

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cfg = Cfg()
            pytree.register_pytree_node(ModelOutput, None, None)
            width = 2 * Registry().lookup(cfg._impl, 0) + len(cfg.sub_configs)
            width += len(inspect.signature(self.forward).parameters)
            width += Repo().load() is None
            self.norm = RMSNorm()
            self.fc = nn.Linear(4, width)
            self.kind = type(self.norm).__name__ if "Norm" in self.norm.__class__.__name__ else ""

        def forward(self, x):  # gradxray: x=[B, 4]
            h = self.norm(x).type(torch.float16)
            y = self.fc(h.type(torch.float32))
            out = ModelOutput(last_hidden_state=y)
            z = out.last_hidden_state + out["last_hidden_state"]
            return out
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "h = self.norm(x)") == ("B", "4")
    assert facts(a, line_of(src, "h = self.norm(x)"))[0][2] == "float16"
    assert first_shape(a, src, "y = self.fc(") == ("B", str(2 * 2 + 0 + 1 + 1))
    assert first_shape(a, src, "z = out.last") == ("B", "6")


def test_sequence_classes_and_tracing_probes(analyze):
    """A Sequence class with __len__/__getitem__ only is iterable (for, zip, list, len); the probes packages make
    for tracing, capture and other accelerators answer as in eager CPU/CUDA execution."""
    src = """\
    from collections.abc import Sequence
    import torch
    import torch.nn as nn

    class PerLayer(Sequence):
        def __init__(self, widths):
            self.widths = widths
        def __len__(self):
            return len(self.widths)
        def __getitem__(self, i):
            if i < 0 or i >= len(self):
                raise IndexError(i)
            return self.widths[i]

    def tracing(x):
        return (torch.cuda.is_current_stream_capturing() or torch.compiler.is_exporting()
                or torch.xpu.is_available() or torch.backends.mps.is_available()
                or isinstance(x, getattr(torch, "_subclasses").FakeTensor))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = PerLayer([3, 5])
            pairs = list(zip(layers, ["a", "b"]))
            self.fc = nn.Linear(4, sum(w for w in layers) + len(pairs) + len(layers))

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x) if not tracing(x) else x
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "12")
