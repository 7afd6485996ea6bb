"""Inference of an input's shape from the layer that first consumes it: followed through helper
methods (``self._forward_impl(x)``), submodules' own forwards by position or keyword
(``self.embeddings(input_ids=input_ids)``) and a ``Sequential``'s first layer; stopped where the
input is replaced by a value the search cannot see into (``x = blk(x)``).  HF-style forwards whose
inputs all default to None get their first input inferred.  A forward defined in another file takes
its pragma from that file, or from the class or factory function of the analysed file."""
from __future__ import annotations

import textwrap

import pytest
from analyzer_helpers import facts, line_of

from gradxray.analyzer import Settings, analyze_source, build_target
from gradxray.analyzer.config import parse_input_spec
from gradxray.analyzer.memory_report import memory_report
from gradxray.render import memory_report_text

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _analyze(body: str, **settings):
    src = HEADER + textwrap.dedent(body)
    return src, analyze_source(src, "model.py", Settings(**settings))


def _gx901(analysis):
    notes = [d for d in analysis.diagnostics if d.code == "GX901"]
    assert len(notes) == 1, analysis.diagnostics
    return notes[0]


def _pragma_of(note) -> str | None:
    return note.fix.edits[0].content if note.fix else None


def test_hf_style_forward_gets_its_first_input_from_an_embedding():
    src, a = _analyze("""\
        class Embeddings(nn.Module):
            def __init__(self):
                super().__init__()
                self.word = nn.Embedding(100, 16)

            def forward(self, input_ids=None, inputs_embeds=None):
                if inputs_embeds is None:
                    inputs_embeds = self.word(input_ids)
                return inputs_embeds


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.embeddings = Embeddings()
                self.head = nn.Linear(16, 100)

            def forward(self, input_ids: torch.LongTensor | None = None, attention_mask=None, labels=None):
                h = self.embeddings(input_ids=input_ids)
                logits = self.head(h)
                return logits
    """)
    note = _gx901(a)
    assert note.span.line == line_of(src, "labels=None):")
    assert _pragma_of(note) == "  # gradxray: input_ids=[B, T] int64"
    assert note.fix.applicability == "unsafe"
    assert facts(a, line_of(src, "logits = self.head")) == [("logits", ("B", "T", "100"), "float32")]
    assert a.unresolved == []
    [model] = [c for c in a.classes if c.name == "Model"]
    assert model.inputs == {"input_ids": (("B", "T"), "int64")}


def test_an_optional_input_with_no_consumer_runs_with_none_and_says_so():
    src, a = _analyze("""\
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(self, x=None):
                if x is None:
                    x = torch.zeros(2, 8)
                y = self.fc(x * 2)
                return y
    """)
    note = _gx901(a)
    assert "x=[B, ...] float32" in note.message and note.fix is None
    assert facts(a, line_of(src, "y = self.fc")) == [("y", ("2", "2"), "float32")]


def test_a_first_input_annotated_as_no_tensor_is_not_guessed():
    _, a = _analyze("""\
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(10, 4)

            def forward(self, return_dict: bool = None, input_ids=None):
                return self.emb(input_ids)
    """)
    assert [d for d in a.diagnostics if d.code == "GX901"] == []


def test_helper_methods_and_sequential_first_layers_are_followed():
    src, a = _analyze("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
                self.fc = nn.Linear(8, 10)

            def _transform_input(self, x):
                return x

            def _forward_impl(self, x):
                x = self.features(x)
                x = x.mean((2, 3))
                return self.fc(x)

            def forward(self, x):
                x = self._transform_input(x)
                y = self._forward_impl(x)
                return y
    """, dims={"H": 8, "W": 8})
    assert _pragma_of(_gx901(a)) == "  # gradxray: x=[B, 3, H, W] float32"
    assert facts(a, line_of(src, "y = self._forward_impl")) == [("y", ("B", "10"), "float32")]


def test_positions_and_keywords_map_to_the_submodule_forward_parameters():
    _, a = _analyze("""\
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(6, 4, 3, padding=1)

            def forward(self, hidden, features, *, scale=1.0):
                return self.conv(features) * scale


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block()

            def forward(self, a, b):
                return self.block(a, b) + self.block(hidden=b, features=a)
    """, dims={"T": 5})
    # `a` first reaches Block.forward as `hidden` (no layer consumes it there), then as `features`
    assert _pragma_of(_gx901(a)) == "  # gradxray: a=[B, 6, T] float32, b=[B, 6, T] float32"


def test_an_input_replaced_by_an_unfollowed_call_stops_the_search():
    # `x = blk(x)` of a block it cannot tell: the head after it does not consume the input
    _, a = _analyze("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block0 = nn.Linear(32, 16)
                self.head = nn.Linear(16, 2)

            def forward_features(self, x):
                blk = getattr(self, "block" + str(0))
                x = blk(x)
                return x

            def forward(self, x):
                x = self.forward_features(x)
                return self.head(x)
    """)
    note = _gx901(a)
    assert note.fix is None and "x=[B, ...] float32" in note.message


@pytest.mark.parametrize("loop", [
    "for blk in self.blocks:\n                    x = blk(x)",
    "for i, blk in enumerate(self.blocks):\n                    x = blk(x)",
    "for drop, blk in zip(self.drops, self.blocks):\n                    x = drop(x)\n                    x = blk(x)",
    "for blk in self.named.values():\n                    x = blk(x)",
])
def test_the_first_element_of_a_loop_over_submodules_is_followed(loop):
    src, a = _analyze(f"""\
        class Block(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(width, 16)

            def forward(self, x):
                return self.fc(x)


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([Block(32), Block(16)])
                self.named = nn.ModuleDict({{"a": Block(32), "b": Block(16)}})
                self.drops = nn.ModuleList([nn.Dropout(0.1), nn.Dropout(0.1)])
                self.head = nn.Linear(16, 2)

            def forward(self, x):
                {loop}
                y = self.head(x)
                return y
    """)
    assert _pragma_of(_gx901(a)) == "  # gradxray: x=[B, 32] float32"
    assert facts(a, line_of(src, "y = self.head")) == [("y", ("B", "2"), "float32")]


@pytest.mark.parametrize("layer, inferred", [
    ("nn.Dropout(0.1)", "  # gradxray: x=[B, 16] float32"),       # keeps the shape: seen through
    ("nn.Flatten()", None),                                         # may change it: the search stops
])
def test_library_layers_that_keep_the_shape_are_seen_through(layer, inferred):
    _, a = _analyze(f"""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.pre = {layer}
                self.fc = nn.Linear(16, 2)

            def forward(self, x):
                x = self.pre(x)
                return self.fc(x)
    """)
    assert _pragma_of(_gx901(a)) == inferred


def test_a_replacement_under_an_if_does_not_stop_the_search():
    src, a = _analyze("""\
        class PatchEmbed(nn.Module):
            def __init__(self, pad=False):
                super().__init__()
                self.pad = pad
                self.proj = nn.Conv2d(3, 8, 4, stride=4)

            def forward(self, x):
                if self.pad:
                    x = F.pad(x, (0, 1, 0, 1))
                x = self.proj(x)
                return x


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.patch_embed = PatchEmbed()

            def forward(self, x):
                y = self.patch_embed(x)
                return y
    """, dims={"H": 16, "W": 16})
    assert _pragma_of(_gx901(a)) == "  # gradxray: x=[B, 3, H, W] float32"
    assert facts(a, line_of(src, "y = self.patch_embed")) == [("y", ("B", "8", "H/4", "W/4"), "float32")]


# --- optional inputs an HF-style forward cannot run without ----------------------------------------------

SEQ2SEQ = """\
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)

        def forward(self, input_ids=None, inputs_embeds=None, **kwargs):
            if input_ids is not None and inputs_embeds is not None:
                raise ValueError("You cannot specify both input_ids and inputs_embeds")
            elif input_ids is not None:
                inputs_embeds = self.embed(input_ids)
            elif inputs_embeds is None:
                raise ValueError("You have to specify either input_ids or inputs_embeds")
            return inputs_embeds


    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Stack()
            self.decoder = Stack()

        def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                    decoder_inputs_embeds=None, **kwargs):
{prepare}
            memory = self.encoder(input_ids=input_ids, **kwargs)
            out = self.decoder(input_ids=decoder_input_ids, inputs_embeds=decoder_inputs_embeds, **kwargs)
            return out + memory.mean(1, keepdim=True)
"""


def test_an_input_the_decoder_raises_without_is_inferred_too():
    src, a = _analyze(SEQ2SEQ.format(prepare=""), dims={"T": 5})
    note = _gx901(a)
    assert "input_ids=[B, T] int64, decoder_input_ids=[B, T] int64" in note.message
    assert _pragma_of(note) == "  # gradxray: input_ids=[B, T] int64, decoder_input_ids=[B, T] int64"
    assert facts(a, line_of(src, "out = self.decoder")) == [("out", ("B", "T", "8"), "float32")]
    assert a.unresolved == []


def test_an_input_the_forward_makes_itself_when_none_is_not_inferred():
    prepare = ("            if decoder_input_ids is None and decoder_inputs_embeds is None:\n"
               "                decoder_input_ids = input_ids.clone()")
    src, a = _analyze(SEQ2SEQ.format(prepare=prepare), dims={"T": 5})
    assert _pragma_of(_gx901(a)) == "  # gradxray: input_ids=[B, T] int64"
    assert facts(a, line_of(src, "out = self.decoder")) == [("out", ("B", "T", "8"), "float32")]


@pytest.mark.parametrize("vision_call, inferred", [
    # the vision tower reaches its patch layer with whatever it gets: it needs pixel_values
    ("self.vision(pixel_values=pixel_values)", ", pixel_values=[B, 3, H, W] float32"),
    # the model runs the vision tower only when pixel_values is given
    ("self.vision(pixel_values=pixel_values) if pixel_values is not None else 0", ""),
])
def test_an_input_a_tower_consumes_unconditionally_is_inferred(vision_call, inferred):
    _, a = _analyze(f"""\
        class Vision(nn.Module):
            def __init__(self):
                super().__init__()
                self.patch = nn.Conv2d(3, 8, 4, stride=4)

            def forward(self, pixel_values=None):
                return self.patch(pixel_values.to(torch.float32)).flatten(2).mean(-1)


        class Text(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(50, 8)

            def forward(self, input_ids=None, token_type_ids=None):
                h = self.embed(input_ids)
                if token_type_ids is not None:
                    h = h + self.embed(token_type_ids)
                return h.mean(1)


        class Clip(nn.Module):
            def __init__(self):
                super().__init__()
                self.text = Text()
                self.vision = Vision()

            def forward(self, input_ids=None, pixel_values: torch.FloatTensor | None = None, token_type_ids=None):
                text = self.text(input_ids, token_type_ids=token_type_ids)
                image = {vision_call}
                return text + image
    """, dims={"T": 5, "H": 8, "W": 8})
    assert _pragma_of(_gx901(a)) == "  # gradxray: input_ids=[B, T] int64" + inferred
    assert a.unresolved == []


# --- a forward defined in another file --------------------------------------------------------------

LIB = """\
import torch.nn as nn


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)

    def forward(self, idx, targets=None):{pragma}
        return self.emb(idx)
"""


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")

    def write(lib_pragma: str = "", model: str = "") -> str:
        (tmp_path / "lib.py").write_text(LIB.format(pragma=f"  # gradxray: {lib_pragma}" if lib_pragma else ""))
        path = tmp_path / "model.py"
        path.write_text(textwrap.dedent(model))
        return str(path)
    return write


MINE = """\
    from lib import Base


    class Mine(Base):{pragma}
        pass
"""


def test_the_pragma_of_an_inherited_forward_is_read_in_its_own_file(workspace):
    path = workspace("idx=[B, 7] int64", MINE.format(pragma=""))
    a = analyze_source(open(path).read(), path, Settings(batch=2))
    assert [d.code for d in a.diagnostics] == [] and a.unresolved == []
    assert a.classes[0].inputs == {"idx": (("B", "7"), "int64")}


def test_without_one_the_note_and_its_pragma_go_on_the_class_of_the_analysed_file(workspace):
    path = workspace("", MINE.format(pragma=""))
    source = open(path).read()
    a = analyze_source(source, path, Settings(batch=2))
    note = _gx901(a)
    assert note.span.file == path and note.span.line == line_of(source, "class Mine")
    assert "on this line" in note.message and "--input idx=[B,T]:int64" in note.message
    edit = note.fix.edits[0]
    assert edit.span.line == line_of(source, "class Mine") and edit.content == "  # gradxray: idx=[B, T] int64"
    # with the fix applied, the pragma on the class line is read
    fixed = source.replace("class Mine(Base):", "class Mine(Base):" + edit.content)
    a = analyze_source(fixed, path, Settings(batch=2, dims={"T": 3}))
    assert [d.code for d in a.diagnostics] == []
    assert a.classes[0].inputs == {"idx": (("B", "T"), "int64")}


def test_a_factory_function_takes_the_pragma_of_a_forward_in_another_file(workspace):
    path = workspace("", """\
        from lib import Base


        def build():  # gradxray: idx=[B, 5] int64
            return Base()
    """)
    _model, inputs, forward = build_target(path, "build", Settings(batch=3))
    assert [tuple(int(d) for d in t.shape) for t in inputs.values()] == [(3, 5)]
    assert [s.source for s in forward.input_specs] == ["pragma"]


# --- what the user sees -------------------------------------------------------------------------------

def test_the_memory_report_says_which_inputs_were_assumed(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(HEADER + textwrap.dedent("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(10, 4)

            def forward(self, idx, mask=None):  # gradxray: mask=None
                return self.emb(idx)
    """))
    report = memory_report(f"{path}:Net", Settings(batch=2, dims={"T": 3}), scaling=False)
    assert report["inputs"] == {"idx": {"shape": [2, 3], "dtype": "int64", "source": "inferred"}}
    text = memory_report_text(report)
    assert "idx: [2, 3] int64  (assumed from the layer that first consumes it" in text


def test_none_is_an_input_value_on_the_command_line_too():
    assert parse_input_spec("None") == "None"
    assert parse_input_spec("[B,T]:int64") == "[B, T]:int64"
    with pytest.raises(ValueError, match="or None"):
        parse_input_spec("none-ish")


@pytest.mark.parametrize("signature, body", [
    ("self, *args, **kwargs", "return self.fc(*args)"),
    ("self, x=None, *, y=None", "return self.fc(y if x is None else x)"),
    ("self, x=None", "return self.fc(" + " + ".join(["x"] * 400) + ")"),         # a deep expression
    ("self, x=None", "return self.helper(x)"),                                  # a staticmethod, not followed
    ("self, x=None", "return self.fc(x) if self.training else self.missing(x)"),
])
def test_odd_forwards_get_a_note_or_a_guess_never_a_crash(signature, body):
    _, a = _analyze(f"""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            @staticmethod
            def helper(x):
                return x

            def forward({signature}):
                {body}
    """)
    assert a.error is None
    assert len([d for d in a.diagnostics if d.code == "GX901"]) <= 1
