"""Python features that timm-style package code leans on: dataclass helpers, `re` / `os.environ` /
`itertools` / `collections.abc`, module globals built by several top-level statements, generator
functions, `try/except` around host calls, isinstance with typing aliases and `functools.partial`,
Enum value lookup, `copy.deepcopy`, `dir()`."""
from __future__ import annotations

from analyzer_helpers import first_shape, reasons



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
