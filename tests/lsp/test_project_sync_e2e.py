"""The real server over stdio with two open files, one importing the other: editing the imported file
(unsaved) re-analyses the importing one, whose diagnostics and inlay hints follow the edit; closing
the imported file without saving brings back what is on disk."""
from __future__ import annotations

import asyncio
import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_helpers import CLIENT_CAPABILITIES, SERVER_ENV, diagnostics_for, label_text, open_doc, whole

LAYERS = """\
import torch.nn as nn

WIDTH = 64


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, WIDTH)

    def forward(self, x):
        return self.fc(x)
"""

MODEL = """\
import torch.nn as nn
from pkg.layers import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block(32)

    def forward(self, x):  # gradxray: x=[B, 32] float32
        h = self.block(x)
        return h
"""

H_LINE = MODEL.splitlines().index("        h = self.block(x)")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "gradxray", "lsp"],
                                              server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CLIENT_CAPABILITIES))
    yield
    await lsp_client.shutdown_session()


def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


async def _h_hint(client: LanguageClient, uri: str) -> str:
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=whole(MODEL)))
    return next(label_text(h) for h in hints if h.position.line == H_LINE)


async def test_editing_an_imported_file_reanalyses_its_importer(client: LanguageClient, tmp_path):
    (tmp_path / "pyproject.toml").write_text("")          # the workspace root
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    layers_path, model_path = pkg / "layers.py", pkg / "model.py"
    layers_path.write_text(LAYERS)
    model_path.write_text(MODEL)

    layers = open_doc(client, layers_path, LAYERS)
    await diagnostics_for(client, layers)
    model = open_doc(client, model_path, MODEL)
    first = await diagnostics_for(client, model)
    assert [d.code for d in first.diagnostics] == []
    assert await _h_hint(client, model) == ": [B, 64] f32"

    # an unsaved edit of the imported file: the importer's hints follow it
    _change(client, layers, 2, LAYERS.replace("WIDTH = 64", "WIDTH = 48"))
    assert await _eventually(lambda: _h_hint(client, model), ": [B, 48] f32")
    assert [d.code for d in client.diagnostics.get(model, [])] == []

    # the imported class is renamed: the importer now has a place it cannot trace, on the use site
    _change(client, layers, 3, LAYERS.replace("class Block", "class Layer"))
    [note] = await _eventually(lambda: _current_diagnostics(client, model), lambda ds: len(ds) == 1)
    assert note.code == "GX902" and note.severity == types.DiagnosticSeverity.Information
    assert note.source == "gradxray"
    assert note.message.startswith("not traced: "), note.message
    assert "Block" in note.message and "pkg.layers" in note.message, note.message
    use_line = MODEL.splitlines().index("        self.block = Block(32)")
    assert note.range.start == types.Position(line=use_line, character=21)     # on `Block`
    assert note.range.end == types.Position(line=use_line, character=26)

    # closing the imported file drops its unsaved text: the importer sees the file on disk again
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=layers)))
    assert await _eventually(lambda: _current_diagnostics(client, model), lambda ds: len(ds) == 0) == []
    assert await _eventually(lambda: _h_hint(client, model), ": [B, 64] f32")


async def _current_diagnostics(client: LanguageClient, uri: str):
    return list(client.diagnostics.get(uri, []))


async def _eventually(read, expected, timeout: float = 120.0):
    """Poll ``read()`` until it equals ``expected`` (or satisfies it, when a predicate): the server republishes
    several documents after one edit, in an order the test must not depend on."""
    check = expected if callable(expected) else (lambda value: value == expected)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(0.1)


BASE = """\
import torch.nn as nn


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)

    def forward(self, input_ids=None, attention_mask=None):
        return self.emb(input_ids)
"""

MINE = """\
from pkg.base import Base


class Mine(Base):
    pass
"""


async def test_an_inherited_forward_gets_its_note_and_pragma_on_the_subclass_line(client: LanguageClient, tmp_path):
    """The forward is in another file (as a model class of an installed package would be): the GX901 note
    of the analysed file's class sits on its line, and its quick fix puts the assumed pragma there."""
    (tmp_path / "pyproject.toml").write_text("")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(BASE)
    mine_path = pkg / "mine.py"
    mine_path.write_text(MINE)
    mine = open_doc(client, mine_path, MINE)
    [note] = (await diagnostics_for(client, mine)).diagnostics
    class_line = MINE.splitlines().index("class Mine(Base):")
    assert note.code == "GX901" and note.severity == types.DiagnosticSeverity.Information
    assert note.range.start.line == class_line
    assert "input_ids=[B, T] int64" in note.message and "--input" in note.message
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=mine), range=note.range,
        context=types.CodeActionContext(diagnostics=[note])))
    fixes = [a for a in actions if a.title.startswith("Insert an input-shape pragma")]
    assert len(fixes) == 1, [a.title for a in actions]
    [fix] = fixes
    [edit] = fix.edit.changes[mine]
    assert edit.new_text == "  # gradxray: input_ids=[B, T] int64"
    assert edit.range.start == types.Position(line=class_line, character=len("class Mine(Base):"))
    # with the pragma in place, nothing is left to say
    _change(client, mine, 2, MINE.replace("class Mine(Base):", "class Mine(Base):" + edit.new_text))
    assert await _eventually(lambda: _current_diagnostics(client, mine), lambda ds: len(ds) == 0) == []
