"""The abstract interpreter on small inline models (engine, shape backend).

Expected shapes follow torch semantics for the ops involved (Linear maps the last
dim, view/transpose/split as in torch, Conv2d with padding=1/stride=1 keeps H, W)."""
from __future__ import annotations

from analyzer_helpers import fc_net, facts, line_of, reasons, source_line

ATTN = """\
    import math
    from dataclasses import dataclass

    import torch
    import torch.nn as nn
    from torch.nn import functional as F


    @dataclass
    class Config:
        n_embd: int = 64
        n_head: int = 4
        n_layer: int = 3
        bias: bool = True
        dropout: float = 0.0


    class Attention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.n_head = config.n_head
            self.n_embd = config.n_embd

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.qkv(x).split(self.n_embd, dim=2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.proj(y)


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln = nn.LayerNorm(config.n_embd)
            self.attn = Attention(config)

        def forward(self, x):
            x = x + self.attn(self.ln(x))
            return x


    class Model(nn.Module):
        def __init__(self, config: Config):
            super().__init__()
            self.config = config
            self.wte = nn.Embedding(100, config.n_embd)
            self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
            self.head = nn.Linear(config.n_embd, 100, bias=False)

        def forward(self, idx):  # gradxray: idx=[B, T] int64
            x = self.wte(idx)
            for block in self.blocks:
                x = block(x)
            logits = self.head(x)
            return logits
"""


def test_attention_shapes_are_symbolic(analyze):
    a = analyze(ATTN)
    assert a.error is None and a.unresolved == [] and a.diagnostics == []
    assert facts(a, line_of(ATTN, "q, k, v = self.qkv(x)")) == [
        ("q", ("B", "T", "64"), "float32"), ("k", ("B", "T", "64"), "float32"), ("v", ("B", "T", "64"), "float32")]
    assert facts(a, line_of(ATTN, "q = q.view")) == [("q", ("B", "4", "T", "16"), "float32")]
    assert facts(a, line_of(ATTN, "y = F.scaled_dot_product_attention")) == [("y", ("B", "4", "T", "16"), "float32")]
    assert facts(a, line_of(ATTN, "y = y.transpose(1, 2)")) == [("y", ("B", "T", "64"), "float32")]
    assert facts(a, line_of(ATTN, "return self.proj(y)")) == [("self.proj(y)", ("B", "T", "64"), "float32")]
    assert facts(a, line_of(ATTN, "logits = self.head(x)")) == [("logits", ("B", "T", "100"), "float32")]
    assert facts(a, line_of(ATTN, "x = self.wte(idx)")) == [("x", ("B", "T", "64"), "float32")]


def test_loop_lines_count_calls_and_facts_carry_positions(analyze):
    a = analyze(ATTN)
    ln = line_of(ATTN, "q = q.view")
    lf = a.lines[ln]
    assert lf.calls == 3                              # one per Block of the ModuleList
    assert lf.line == ln and lf.end_line == ln and lf.file == "model.py"
    assert lf.end_col == len(source_line(ATTN, ln))
    assert a.lines[line_of(ATTN, "x = block(x)")].calls == 3
    assert a.lines[line_of(ATTN, "logits = self.head(x)")].calls == 1
    t = lf.tensors[0]
    assert t.concrete_shape == (8, 4, 256, 16) and t.requires_grad


def test_config_dataclass_defaults_annotation_and_settings_args(analyze):
    a = analyze(ATTN)
    [c] = a.classes
    assert c.name == "Model" and c.line == line_of(ATTN, "class Model")
    per_block = 2 * 64 + (64 * 192 + 192) + (64 * 64 + 64)       # LayerNorm + qkv + proj
    assert c.params == 100 * 64 + 3 * per_block + 64 * 100
    assert c.param_bytes == 4 * c.params
    assert c.inputs == {"idx": (("B", "T"), "int64")}


def test_config_keyword_overrides_and_field_factory(analyze):
    src = """\
        from dataclasses import dataclass, field
        import torch.nn as nn

        @dataclass
        class Cfg:
            width: int = 32
            depth: int = 2
            extra: list = field(default_factory=list)

        class Net(nn.Module):
            def __init__(self, cfg=None, depth=None):
                super().__init__()
                if cfg is None:
                    cfg = Cfg(width=8)
                if depth is not None:
                    cfg.depth = depth
                self.layers = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(cfg.depth))
                self.n_extra = len(cfg.extra)

            def forward(self, x):  # gradxray: x=[B, 8]
                for layer in self.layers:
                    x = layer(x)
                return x
    """
    a = analyze(src)
    assert a.unresolved == []
    assert a.classes[0].params == 2 * (8 * 8 + 8)
    a = analyze(src, args={"depth": 5})
    assert a.classes[0].params == 5 * (8 * 8 + 8)
    assert a.lines[line_of(src, "x = layer(x)")].calls == 5


def test_tuple_unpacking_forms(analyze):
    src = """\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(12, 12)

            def forward(self, x):  # gradxray: x=[B, T, 12]
                B, T, C = x.shape
                h, w = x.shape[-2:]
                a, b, c = self.fc(x).chunk(3, dim=-1)
                first, *rest = self.fc(x).split(4, dim=-1)
                (p, q), r = (a, b), c
                y = torch.cat([first, *rest, p], dim=-1).view(B * T, C + 4)
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "B, T, C = x.shape")) == []          # sizes, not tensors
    assert facts(a, line_of(src, "a, b, c =")) == [("a", ("B", "T", "4"), "float32"),
                                                   ("b", ("B", "T", "4"), "float32"),
                                                   ("c", ("B", "T", "4"), "float32")]
    assert facts(a, line_of(src, "first, *rest")) == [("first", ("B", "T", "4"), "float32")]
    assert [n for n, _, _ in facts(a, line_of(src, "(p, q), r"))] == ["p", "q", "r"]
    assert facts(a, line_of(src, "y = torch.cat")) == [("y", ("B*T", "16"), "float32")]


def test_if_else_folding(analyze):
    src = """\
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self, use_proj=True, mode="wide"):
                super().__init__()
                self.use_proj = use_proj
                if mode == "narrow":
                    self.fc = nn.Linear(16, 4)
                elif mode == "wide":
                    self.fc = nn.Linear(16, 64)
                else:
                    self.fc = nn.Linear(16, 1)
                self.proj = nn.Linear(64, 2) if use_proj else None

            def forward(self, x, mask=None):  # gradxray: x=[B, 16]
                h = self.fc(x)
                if self.training:
                    h = F.dropout(h, 0.1)
                else:
                    h_eval = h * 1
                if mask is not None:
                    h_masked = h * mask
                if self.proj is not None and self.use_proj:
                    out = self.proj(h)
                else:
                    out = h
                return out
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "h = self.fc(x)")) == [("h", ("B", "64"), "float32")]
    assert line_of(src, "h = F.dropout") in a.lines
    assert line_of(src, "h_eval") not in a.lines
    assert line_of(src, "h_masked") not in a.lines
    assert facts(a, line_of(src, "out = self.proj(h)")) == [("out", ("B", "2"), "float32")]
    assert line_of(src, "out = h") not in a.lines
    a = analyze(src, args={"use_proj": False, "mode": "narrow"})
    assert facts(a, line_of(src, "out = h")) == [("out", ("B", "4"), "float32")]


def test_unknown_condition_takes_if_branch_and_is_recorded(analyze):
    src = fc_net("""\
        if somewhere.FLAG:
            y = self.fc(x)
        else:
            y = x
        return y
    """, imports="import somewhere")
    a = analyze(src)
    ln = line_of(src, "if somewhere.FLAG")
    assert ("model.py", ln) in {(u.file, u.line) for u in a.unresolved}
    assert any("unresolved import `somewhere`" in r for r in reasons(a))
    assert any("could not be evaluated; assumed true" in r for r in reasons(a))
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "4"), "float32")]
    assert line_of(src, "y = x") not in a.lines


def test_unknown_is_contagious_not_fatal(analyze):
    src = fc_net("""\
        z = torch.frobnicate(x)
        w = self.fc(z) + 1
        v = self.fc(x)
        return v
    """, fc="8, 8", pragma="x=[B, 8]")
    a = analyze(src)
    assert a.error is None
    [u] = a.unresolved
    assert u.line == line_of(src, "torch.frobnicate") and "torch.frobnicate" in u.reason
    assert line_of(src, "w = self.fc(z)") not in a.lines          # Unknown propagates silently
    assert facts(a, line_of(src, "v = self.fc(x)")) == [("v", ("B", "8"), "float32")]
    assert a.classes[0].params == 8 * 8 + 8


def test_engine_error_becomes_unknown(analyze):
    src = fc_net("""\
        y = self.fc(x)
        return y
    """, fc="8, 8", pragma="x=[B, 5]")
    a = analyze(src)
    [u] = a.unresolved
    assert u.line == line_of(src, "y = self.fc(x)") and "failed" in u.reason


def test_weight_tying_counts_one_parameter(analyze):
    src = """\
        import torch.nn as nn

        class LM(nn.Module):
            def __init__(self, tie=True):
                super().__init__()
                self.emb = nn.ModuleDict(dict(wte=nn.Embedding(100, 16)))
                self.head = nn.Linear(16, 100, bias=False)
                if tie:
                    self.emb.wte.weight = self.head.weight

            def forward(self, idx):  # gradxray: idx=[B, T] int64
                logits = self.head(self.emb.wte(idx))
                return logits
    """
    a = analyze(src)
    assert a.unresolved == []
    assert a.classes[0].params == 1600
    assert analyze(src, args={"tie": False}).classes[0].params == 3200
    assert facts(a, line_of(src, "logits =")) == [("logits", ("B", "T", "100"), "float32")]


def test_resnet_block_inplace_add_sequential_star_args_class_attr(analyze):
    src = """\
        import torch
        import torch.nn as nn

        def conv3x3(cin, cout, stride=1):
            return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)

        class Basic(nn.Module):
            expansion = 1

            def __init__(self, cin, cout, stride=1, downsample=None):
                super().__init__()
                self.conv = conv3x3(cin, cout, stride)
                self.bn = nn.BatchNorm2d(cout)
                self.relu = nn.ReLU(inplace=True)
                self.downsample = downsample

            def forward(self, x):
                identity = x
                out = self.bn(self.conv(x))
                if self.downsample is not None:
                    identity = self.downsample(x)
                out += identity
                out = self.relu(out)
                return out

        class Net(nn.Module):
            def __init__(self, width=8, blocks=2):
                super().__init__()
                self.stem = conv3x3(3, width)
                layers = []
                for i in range(blocks):
                    layers.append(Basic(width, width * Basic.expansion))
                down = nn.Sequential(nn.Conv2d(width, 2 * width, 1, stride=2, bias=False), nn.BatchNorm2d(2 * width))
                layers.append(Basic(width, 2 * width, stride=2, downsample=down))
                self.body = nn.Sequential(*layers)
                self.pool = nn.AdaptiveAvgPool2d((1, 1))
                self.fc = nn.Linear(2 * width, 10)

            def forward(self, x):  # gradxray: x=[B, 3, H, W] float32
                x = self.stem(x)
                x = self.body(x)
                x = torch.flatten(self.pool(x), 1)
                return self.fc(x)
    """
    a = analyze(src, dims={"H": 32, "W": 32})
    assert a.unresolved == []
    assert facts(a, line_of(src, "out += identity")) == [("out", ("B", "8", "H", "W"), "float32")]
    assert a.lines[line_of(src, "out += identity")].calls == 3
    assert facts(a, line_of(src, "identity = self.downsample(x)")) == [
        ("identity", ("B", "16", "H/2", "W/2"), "float32")]
    assert facts(a, line_of(src, "x = torch.flatten")) == [("x", ("B", "16"), "float32")]
    assert a.lines[line_of(src, "x = torch.flatten")].tensors[0].concrete_shape == (8, 16)


def test_no_grad_block_and_decorator(analyze):
    src = """\
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            @torch.no_grad()
            def frozen(self, x):
                f = self.fc(x)
                return f

            def forward(self, x):  # gradxray: x=[B, 4]
                with torch.no_grad():
                    t = self.fc(x)
                g = self.frozen(x)
                y = self.fc(x) + t + g
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    rg = {ln: [t.requires_grad for t in lf.tensors] for ln, lf in a.lines.items()}
    assert rg[line_of(src, "t = self.fc(x)")] == [False]
    assert rg[line_of(src, "f = self.fc(x)")] == [False]
    assert rg[line_of(src, "y = self.fc(x) + t")] == [True]


def test_python_builtins_helpers_and_comprehensions(analyze):
    src = """\
        import torch
        import torch.nn as nn
        from collections import OrderedDict

        HIDDEN = 6

        def double(n):
            return 2 * n

        class Head(nn.Module):
            def __init__(self, dim=4, n_heads=2, *, scale=None):
                super().__init__()
                self.scale = scale if scale is not None else dim ** -0.5
                self.heads = nn.ModuleDict(OrderedDict((f"h{i}", nn.Linear(dim, HIDDEN)) for i in range(n_heads)))
                for i in range(n_heads):
                    setattr(self, f"gate{i}", nn.Linear(dim, 1))
                self.n = len(self.heads)
                self.widest = max(HIDDEN, double(dim), min(3, 4))

            def _combine(self, parts, dim=-1):
                return torch.cat(parts, dim=dim)

            def forward(self, x):  # gradxray: x=[B, 4]
                outs = [head(x) * self.scale for name, head in self.heads.items()]
                gates = [getattr(self, f"gate{i}")(x) for i in range(self.n)]
                assert len(outs) == 2, f"expected {len(outs)}"
                both = self._combine(outs + gates)
                pairs = {name: o.shape[-1] for name, o in zip(self.heads, outs)}
                width = int(sum(pairs.values()))
                if isinstance(both, torch.Tensor) and width == 12:
                    out = both[:, :width] + both[..., -2:].sum(dim=-1, keepdim=True)
                return out
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "both = self._combine")) == [("both", ("B", "14"), "float32")]
    assert facts(a, line_of(src, "out = both[:, :width]")) == [("out", ("B", "12"), "float32")]
    assert a.classes[0].params == 2 * (4 * 6 + 6) + 2 * (4 + 1)


def test_subclass_of_engine_layer_and_super_forward(analyze):
    src = """\
        import torch.nn as nn

        class Scaled(nn.Linear):
            def __init__(self, cin, cout, scale=2.0):
                super().__init__(cin, cout)
                self.scale = scale

            def forward(self, x):
                return super().forward(x) * self.scale

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = Scaled(4, 3)

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.a(x)
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert a.classes[0].params == 4 * 3 + 3
    assert facts(a, line_of(src, "y = self.a(x)")) == [("y", ("B", "3"), "float32")]


def test_properties_static_and_class_methods(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            base = 4

            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(self.width, Net.make_width(2))

            @property
            def width(self):
                return self.base * 2

            @staticmethod
            def make_width(n):
                return n * 3

            @classmethod
            def build(cls):
                return cls()

            def forward(self, x):  # gradxray: x=[B, 8]
                y = self.fc(x)
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "6"), "float32")]


def test_sandbox_refuses_dunders_and_unsafe_builtins(analyze):
    src = fc_net("""\
        a = x.__class__.__mro__
        b = getattr(x, "__class__")
        c = open("/etc/passwd")
        d = os.system("true")
        e = ().__class__
        y = self.fc(x)
        return y
    """, imports="import os")
    a = analyze(src)
    lines = {u.line for u in a.unresolved}
    for needle in ("a = x.__class__", "b = getattr", "c = open", "d = os.system", "e = ().__class__"):
        assert line_of(src, needle) in lines
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "4"), "float32")]


def test_detach_cuts_gradient(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(16, 32)
                self.head = nn.Linear(32, 4)
                self.side = nn.Linear(16, 4)

            def forward(self, x):  # gradxray: x=[B, 16] float32
                h = self.body(x).detach()
                s = self.side(x)
                s2 = self.side(x).detach()
                return self.head(h) + s + s2
    """
    a = analyze(src)
    assert a.unresolved == []
    [cut] = a.grad_cuts                          # side's parameters still get a gradient through `s`
    ln = line_of(src, "h = self.body(x).detach()")
    text = source_line(src, ln)
    assert cut.kind == "detach" and cut.cut_params == ["body.weight", "body.bias"]
    assert (cut.span.line, cut.span.col, cut.span.end_line, cut.span.end_col) == (
        ln, text.index("self.body"), ln, len(text))
    assert facts(a, ln) == [("h", ("B", "32"), "float32")]
    assert not a.lines[ln].tensors[0].requires_grad
    assert [d.code for d in a.diagnostics] == ["GX101"]


def test_data_attribute_cut_and_cut_not_reaching_output(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 4)

            def forward(self, x):  # gradxray: x=[B, 4]
                h = self.a(x).data
                unused = self.b(x).detach()
                return h * 2
    """
    a = analyze(src)
    assert [(c.kind, c.cut_params) for c in a.grad_cuts] == [("data", ["a.weight", "a.bias"])]


def test_syntax_error(analyze):
    a = analyze("import torch\nclass X(:\n    pass\n", path="bad.py")
    assert a.error is not None and a.error.startswith("bad.py:2:")
    assert "SyntaxError" in a.error
    assert a.lines == {} and a.classes == [] and a.diagnostics == []


def test_broken_user_code_never_raises(analyze):
    src = """\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.fc = nn.Linear(n, n)
                self.loop()

            def loop(self):
                return self.loop()

            def forward(self, x):  # gradxray: x=[B, 4]
                while x:
                    pass
                raise ValueError("nope")
    """
    a = analyze(src)
    assert a.error is None
    assert any("without argument `n`" in r for r in reasons(a))
    assert any("depth limit" in r for r in reasons(a))


def test_common_boilerplate_is_understood(analyze):
    src = """\
        import logging
        import warnings
        import torch
        import torch.nn as nn

        logger = logging.getLogger(__name__)
        IS_MAIN = __name__ == "__main__"

        class Old(nn.Module):
            def __init__(self):
                nn.Module.__init__(self)
                self.fc = nn.Linear(4, 4)
                nn.init.xavier_uniform_(self.fc.weight)
                nn.init.zeros_(self.fc.bias)
                self.w = nn.Parameter(torch.zeros(4))
                torch.nn.init.trunc_normal_(self.w, std=0.02)
                self.on_gpu = torch.cuda.is_available()

            def forward(self, x):  # gradxray: x=[B, 4]
                warnings.warn("deprecated")
                logger.info("running %s %s", type(self).__name__, self.__class__.__name__)
                if IS_MAIN or self.on_gpu:
                    x = x * 0
                y = self.fc(x) + self.w
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert a.classes[0].params == 4 * 4 + 4 + 4
    assert line_of(src, "x = x * 0") not in a.lines
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "4"), "float32")]
    a = analyze(src, device="cuda")
    assert line_of(src, "x = x * 0") in a.lines


def test_engine_internals_are_not_reachable(analyze):
    src = fc_net("""\
        with torch.backend("torch"):
            t = torch.zeros(2)
        m = torch.memory
        y = self.fc(x)
        return y
    """)
    a = analyze(src)
    assert {u.line for u in a.unresolved} >= {line_of(src, 'torch.backend("torch")'), line_of(src, "m = torch.memory")}
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "4"), "float32")]


def test_transparent_wrappers(analyze):
    src = """\
        import functools
        import torch
        import torch.nn as nn

        @functools.lru_cache(maxsize=None)
        def width(n):
            return n * 2

        class Inner(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, width(2))

            @torch.jit.ignore
            def helper(self, x):
                return x + 1

            def forward(self, x):
                if torch.jit.is_scripting():
                    return x
                return self.helper(self.fc(x))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = torch.compile(Inner(), mode="max-autotune")

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.inner(x)
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "y = self.inner(x)")) == [("y", ("B", "4"), "float32")]


def test_runaway_loops_are_bounded(analyze, monkeypatch):
    import gradxray.analyzer.interpreter as interp_mod

    monkeypatch.setattr(interp_mod, "MAX_STEPS", 2_000)
    src = """\
        import torch.nn as nn

        class Spin(nn.Module):
            def __init__(self):
                super().__init__()
                n = 0
                for i in range(10 ** 9):
                    n += i

            def forward(self, x):  # gradxray: x=[B, 4]
                return x

        class Fine(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.fc(x)
                return y
    """
    a = analyze(src)
    assert any("analysis stopped after 2000 statements" in r for r in reasons(a))
    assert [c.name for c in a.classes] == ["Fine"]
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "4"), "float32")]


def test_user_callables_and_context_managers(analyze):
    src = """\
        import torch.nn as nn

        class Scale:
            def __init__(self, k):
                self.k = k

            def __call__(self, t):
                return t * self.k

        class Tag:
            def __enter__(self):
                self.entered = True
                return self

            def __exit__(self, *exc):
                return False

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.scale = Scale(3)

            def forward(self, x):  # gradxray: x=[B, 4]
                with Tag() as tag:
                    y = self.scale(self.fc(x))
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "y = self.scale")) == [("y", ("B", "2"), "float32")]


def test_dataclasses_module_form_and_imports_inside_functions(analyze):
    src = """\
        import dataclasses
        import torch.nn as nn

        @dataclasses.dataclass
        class Cfg:
            width: int = 4
            sizes: list = dataclasses.field(default_factory=list)
            depth: int = dataclasses.field(default=2)

        class Net(nn.Module):
            def __init__(self, cfg: Cfg):
                super().__init__()
                from torch.nn import Linear
                import torch.nn.functional as F
                import torch.nn.functional
                self.layers = nn.ModuleList(Linear(cfg.width, cfg.width) for _ in range(cfg.depth + len(cfg.sizes)))
                self.act = F.relu
                self.act2 = torch.nn.functional.gelu

            def forward(self, x):  # gradxray: x=[B, 4]
                for layer in self.layers:
                    x = self.act2(self.act(layer(x)))
                return x
    """
    a = analyze(src)
    assert a.unresolved == []
    assert a.classes[0].params == 2 * (4 * 4 + 4)
    assert facts(a, line_of(src, "x = self.act2")) == [("x", ("B", "4"), "float32")]
    assert a.lines[line_of(src, "x = self.act2")].calls == 2


def test_closures_keep_their_free_variables_after_the_call_returns(analyze):
    src = """\
        import torch.nn as nn

        def scaler(k):
            unused = k + 1
            def f(t):
                return t * k
            return f

        class Net(nn.Module):
            def __init__(self, width=4):
                super().__init__()
                self.fc = nn.Linear(width, 2 * width)
                self.scale = scaler(3)
                self.shift = lambda t: t + width

            def forward(self, x):  # gradxray: x=[B, 4]
                y = self.shift(self.scale(self.fc(x)))
                return y
    """
    a = analyze(src)
    assert a.unresolved == []
    assert facts(a, line_of(src, "y = self.shift")) == [("y", ("B", "8"), "float32")]
