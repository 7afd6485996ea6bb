"""Python features that timm-style package code leans on: dataclass helpers, `re` / `os.environ` /
`itertools` / `collections.abc`, module globals built by several top-level statements, generator
functions, `try/except` around host calls, isinstance with typing aliases and `functools.partial`,
Enum value lookup, `copy.deepcopy`, `dir()`."""
from __future__ import annotations

from analyzer_helpers import analyze_in_tree, first_shape, reasons, write_tree



def test_dataclass_replace_asdict_and_deepcopy(analyze):
    src = """\
    import copy
    from dataclasses import dataclass, replace, asdict, field
    import torch.nn as nn

    @dataclass
    class Cfg:
        width: int = 4
        extra: dict = field(default_factory=dict)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            cfg = replace(Cfg(), width=8)
            d = asdict(copy.deepcopy(cfg))
            self.fc = nn.Linear(4, d["width"])

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "8")


def test_stdlib_helpers_re_environ_itertools_abc_and_dir(analyze):
    src = """\
    import os
    import re
    import collections.abc
    from itertools import repeat
    import torch
    import torch.nn as nn

    def to_2tuple(x):
        if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
            return tuple(x)
        return tuple(repeat(x, 2))

    HAS_SILU = 'silu' in dir(torch.nn.functional)
    WIDTH = int(os.environ.get('NET_WIDTH', '6'))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            k = int(re.split(r'(\\d.*)', 'k3')[1])
            self.conv = nn.Conv2d(3, WIDTH, to_2tuple(k), padding=1)

        def forward(self, x):  # gradxray: x=[B, 3, 8, 8]
            y = self.conv(x)
            if HAS_SILU:
                y = torch.nn.functional.silu(y)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.conv(x)") == ("B", "6", "8", "8")


def test_globals_built_by_several_statements_and_in_if_blocks(analyze):
    src = """\
    import os
    import torch.nn as nn

    cfgs = {'a': 2}
    for name, v in list(cfgs.items()):
        cfgs[name + '_wide'] = v * 4
    cfgs = dict(cfgs)

    if 'NET_FLAG' in os.environ:
        _WIDTH = 1
    else:
        _WIDTH = cfgs['a_wide']

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, _WIDTH)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "8")


def test_generator_functions_and_yield_from(analyze):
    src = """\
    import torch.nn as nn

    def widths(n):
        for i in range(n):
            yield 2 ** i
        yield from [16]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            ws = list(widths(3))
            self.fc = nn.Linear(4, sum(ws))

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc(x)") == ("B", "23")


def test_try_except_catches_a_specific_host_error(analyze):
    src = """\
    import torch.nn as nn

    def make_act(layer, inplace=True):
        try:
            return layer(inplace=inplace)
        except TypeError:
            return layer()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = make_act(nn.GELU)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.act(self.fc(x))
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.act") == ("B", "4")


def test_catch_all_handlers_keep_host_failures_reported(analyze):
    src = """\
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            try:
                self.act = nn.GELU(inplace=True)
            except Exception:
                self.act = nn.ReLU()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):  # gradxray: x=[B, 4]
            return self.fc(x)
    """
    a = analyze(src)
    assert any("GELU" in r for r in reasons(a))


def test_isinstance_with_typing_aliases_partial_and_enum_lookup(analyze):
    src = """\
    from enum import Enum
    from functools import partial
    from typing import Callable, Sequence
    import torch.nn as nn

    class Fmt(str, Enum):
        NCHW = 'NCHW'
        NHWC = 'NHWC'

    def init_fc(m, value):
        return None

    class Net(nn.Module):
        def __init__(self, depths=(1, 2), act=nn.ReLU, norm=partial(nn.LayerNorm, eps=1e-6)):
            super().__init__()
            typed = isinstance(depths, Sequence) and isinstance(act, Callable)
            if typed and isinstance(norm, partial) and Fmt('NHWC') is Fmt.NHWC:
                self.norm = norm(4)
            self.fc = nn.Linear(4, sum(depths))
            self.apply(partial(init_fc, value=0))

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(self.norm(x))
            return y
    """
    a = analyze(src)
    assert reasons(a) == []
    assert first_shape(a, src, "y = self.fc") == ("B", "3")


REGISTRY_TREE = {
    "pkg/__init__.py": "",
    "pkg/_registry.py": """\
        import sys
        from collections import defaultdict

        _entrypoints = {}
        _cfgs = {}
        _by_module = defaultdict(set)

        def register_model(fn):
            mod = sys.modules[fn.__module__]
            if hasattr(mod, '__all__'):
                mod.__all__.append(fn.__name__)
            else:
                mod.__all__ = [fn.__name__]
            _entrypoints[fn.__name__] = fn
            _by_module[fn.__module__.split('.')[-1]].add(fn.__name__)
            if hasattr(mod, 'default_cfgs') and fn.__name__ in mod.default_cfgs:
                _cfgs[fn.__name__] = dict(mod.default_cfgs[fn.__name__])
            return fn

        def get_cfg(name):
            return _cfgs.get(name, {'num_classes': 1000})

        def with_doc(fn):
            fn.__doc__ = 'rewritten'        # only changes the function: never run by the analysis
            return fn
        """,
    "pkg/models.py": """\
        import inspect
        import sys
        import torch.nn as nn
        from ._registry import register_model, get_cfg, with_doc

        __all__ = ['Net']
        default_cfgs = {'tiny': {'num_classes': 7}}

        class Net(nn.Module):
            def __init__(self, num_classes=1000):
                super().__init__()
                self.fc = nn.Linear(4, num_classes)

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.fc(x)
                return y

        @register_model
        @with_doc
        def tiny(**kwargs):
            assert 'os' not in sys.modules and sys.modules.get('torch') is None
            assert 'default_cfgs' in inspect.getsource(sys.modules[tiny.__module__])
            return Net(num_classes=get_cfg('tiny')['num_classes'] + len(__all__))
        """,
}


def test_source_decorator_runs_for_its_registry_side_effects(tmp_path):
    """`@register_model`: applied for its side effects (the name keeps the undecorated function); it
    finds its module through `sys.modules[fn.__module__]`, reads and extends that module's `__all__`
    and `default_cfgs` (the analysis's own state of the file), and fills the registry a builder reads.
    A decorator that only rewrites the function is not run."""
    from gradxray.analyzer import Settings, build_target

    write_tree(tmp_path, REGISTRY_TREE)
    settings = Settings(roots=[str(tmp_path)])
    model, _inputs, forward = build_target(str(tmp_path / "pkg" / "models.py"), "tiny", settings)
    out = forward()
    assert [u.reason for u in forward.analysis.unresolved] == []
    assert tuple(int(s) for s in out.shape[1:]) == (9,)       # 7 from the registry + len(['Net', 'tiny'])


def test_top_level_registration_calls_run_when_the_module_is_first_used(tmp_path):
    """`register_block('double', Double)` at the end of a file fills another module's registry before
    anything of the file is used; a top-level call on values the file computes (`report(model)`) is a
    script's work, not a registration, and is not run."""
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/blocks.py": """\
            import torch.nn as nn

            _block_registry = dict(plain=nn.Identity)

            def register_block(name, fn):
                _block_registry[name] = fn

            def create_block(name, **kwargs):
                return _block_registry[name](**kwargs)
            """,
        "pkg/net.py": """\
            import torch
            import torch.nn as nn
            from .blocks import register_block, create_block

            _seen = []

            class Double(nn.Module):
                def forward(self, x):
                    return torch.cat([x, x], -1)

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.block = create_block('double')
                    self.fc = nn.Linear(8, 3)

                def forward(self, x):  # gradxray: x=[B, 4]
                    y = self.fc(self.block(x))
                    return y

            def report(m):
                _seen.append(m)
                raise RuntimeError('a script step ran')

            register_block('double', Double)
            model = Net()
            report(model)
            """,
    })
    a = analyze_in_tree(tmp_path, "pkg/net.py")
    assert reasons(a) == []
    assert first_shape(a, (tmp_path / "pkg" / "net.py").read_text(), "y = self.fc") == ("B", "3")


def test_long_value_loop_stops_with_its_results_unknown(analyze):
    """A loop nest filling a table element by element (TinyViT's attention offsets over 120 x 120 pairs)
    stops after MAX_LOOP_ITERATIONS with what it computes unknown (reported, never a partial table);
    loops in the functions a loop calls count in their own frames, so a construction loop is not cut."""
    src = """\
    import torch
    import torch.nn as nn

    def make_block(width):
        ticks = []
        for k in range(400):
            ticks.append(k)
        return nn.Linear(width, width)

    class Net(nn.Module):
        def __init__(self, side=120):
            super().__init__()
            blocks = []
            for i in range(30):
                blocks.append(make_block(4))
            self.blocks = nn.Sequential(*blocks)
            idxs = []
            for p in range(side):
                for q in range(side):
                    idxs.append(abs(p - q))
            self.n = len(idxs)

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.blocks(x)
            return y
    """
    a = analyze(src)
    assert reasons(a) == ["loop stopped after 10000 iterations (with its nested loops): what it computes is unknown"]
    assert first_shape(a, src, "y = self.blocks") == ("B", "4")

