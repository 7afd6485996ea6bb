"""The real server over stdio with a stand-in analyzer: what each handler renders."""
from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_helpers import CLIENT_CAPABILITIES, SERVER_ENV, diagnostics_for, label_text, open_doc, whole

FAKE = str(Path(__file__).with_name("fake_server.py"))

SRC = textwrap.dedent("""\
    import torch.nn as nn


    class Attn(nn.Module):
        def forward(self, x):
            q, k, v = self.c_attn(x).split(384, dim=2)
            y = q + k
            h = self.proj(y).detach()
            return self.head(h)
""")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, FAKE], server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=CLIENT_CAPABILITIES, initialization_options={"batch": 8, "optimizer": "adamw"}))
    yield
    await lsp_client.shutdown_session()


async def test_diagnostics_hints_hover(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "attn.py", SRC)
    params = await diagnostics_for(client, uri)
    assert params.version == 1
    [d] = params.diagnostics
    assert (d.code, d.source, d.severity) == ("GX101", "gradxray", types.DiagnosticSeverity.Warning)
    assert d.range == types.Range(start=types.Position(line=7, character=12),
                                  end=types.Position(line=7, character=33))
    assert "head.weight" in d.message

    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=whole(SRC)))
    by_line = {h.position.line: h for h in hints}
    qkv = by_line[5]
    assert label_text(qkv) == "q: [B, T, 384] f32, k: [B, T, 384] f32, v: [B, T, 384] f32 · 8.0 KiB saved"
    assert qkv.position.character == len(SRC.splitlines()[5])
    assert qkv.kind == types.InlayHintKind.Type
    assert "Addmm" in qkv.label[1].tooltip.value
    assert label_text(by_line[6]) == ": [B, T, 384] f32"          # no memory part when nothing is saved

    # a range covering one line gives that line's hint only
    one = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=6, character=0), end=types.Position(line=6, character=0))))
    assert [h.position.line for h in one] == [6]

    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=5, character=10)))
    md = hover.contents.value
    assert "(tensor) q: [B, T, 384] float32" in md and "(tensor) v: [B, T, 384] float32" in md
    assert "| saved for backward | 8.0 KiB (4.0 KiB per call × 2 calls) |" in md
    assert "`Addmm` input [2048, 384] f32" in md
    assert await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0))) is None
    cls = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=3, character=8)))
    assert "(module) Attn: 12.4M params" in cls.contents.value

    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert [lens.command.title for lens in lenses] == ["12.4M params · peak 3.0 GiB @ B=8 (fp32, AdamW)"]


async def test_code_actions(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "attn.py", SRC)
    [d] = (await diagnostics_for(client, uri)).diagnostics
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=d.range,
        context=types.CodeActionContext(diagnostics=[d])))
    titles = [a.title for a in actions]
    assert titles == ["Remove `.detach()` (GX101, unsafe)", "Suppress GX101 on this line (# noqa)"]
    [edit] = actions[0].edit.changes[uri]
    assert edit.new_text == "self.proj(y)" and edit.range == d.range
    [noqa] = actions[1].edit.changes[uri]
    assert noqa.new_text == "  # noqa: GX101" and noqa.range.start == types.Position(line=7, character=33)


async def test_change_reanalyses_and_close_clears(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "attn.py", SRC)
    await diagnostics_for(client, uri)
    fixed = SRC.replace(".detach()", "")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)]))
    params = await diagnostics_for(client, uri)
    assert params.version == 2 and not params.diagnostics
    # a syntax error: no diagnostics, no hints, no hover (the editor's Python server reports it)
    broken = fixed.replace("def forward(self, x):", "def forward(self, x:")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=broken)]))
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=whole(broken)))
    assert not hints
    assert not (await diagnostics_for(client, uri)).diagnostics
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert not (await diagnostics_for(client, uri)).diagnostics


async def test_fix_all_safe(client: LanguageClient, tmp_path):
    src = "class M:\n    def forward(self, x):  # needs-pragma\n        return x\n"
    uri = open_doc(client, tmp_path / "m.py", src)
    [d] = (await diagnostics_for(client, uri)).diagnostics
    assert d.code == "GX901" and d.severity == types.DiagnosticSeverity.Information

    async def actions(only):
        return await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=d.range,
            context=types.CodeActionContext(diagnostics=[d], only=only)))

    fix_all = await actions([types.CodeActionKind.SourceFixAll])
    assert [a.kind for a in fix_all] == ["source.fixAll.gradxray"]
    [edit] = fix_all[0].edit.changes[uri]
    assert edit.new_text == "  # gradxray: x=[B, T, 384] float32"
    quick = await actions([types.CodeActionKind.QuickFix])
    assert [a.title for a in quick] == ["Insert the input-shape pragma (GX901)", "Suppress GX901 on this line (# noqa)"]
    assert quick[0].is_preferred


def _analyses(path: Path) -> int:
    log = path.with_suffix(".analyses")
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_one_analysis_per_version(client: LanguageClient, tmp_path):
    path = tmp_path / "attn.py"
    src = SRC + "# count-analyses\n"
    uri = open_doc(client, path, src)
    await diagnostics_for(client, uri)
    doc = types.TextDocumentIdentifier(uri=uri)
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=doc, range=whole(src)))
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=doc, position=types.Position(line=5, character=10)))
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(text_document=doc))
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc, range=whole(src), context=types.CodeActionContext(diagnostics=[])))
    assert hints and hover and lenses and actions
    assert _analyses(path) == 1                     # the handlers render the cached analysis
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=doc))
    assert (await diagnostics_for(client, uri)).version == 1
    assert _analyses(path) == 1                     # a save does not analyse the same version again...
    (tmp_path / "pyproject.toml").write_text("[tool.gradxray]\nbatch-size = 4\n")
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=doc))
    await diagnostics_for(client, uri)
    assert _analyses(path) == 2                     # ...unless its configuration changed
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(text_document=doc))
    assert [lens.command.title for lens in lenses] == ["12.4M params · peak 3.0 GiB @ B=4 (fp32, AdamW)"]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=src.replace(".detach()", ""))]))
    await client.text_document_hover_async(types.HoverParams(
        text_document=doc, position=types.Position(line=5, character=10)))
    assert (await diagnostics_for(client, uri)).version == 2
    assert _analyses(path) == 3


async def test_save_while_analysing_still_publishes(client: LanguageClient, tmp_path):
    src = SRC + "# slow\n"
    uri = open_doc(client, tmp_path / "attn.py", src)
    await asyncio.sleep(0.2)                        # the analysis of version 1 is running
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    params = await diagnostics_for(client, uri, timeout=20)
    assert params.version == 1 and [d.code for d in params.diagnostics] == ["GX101"]


async def test_close_while_analysing_caches_nothing(client: LanguageClient, tmp_path):
    path = tmp_path / "attn.py"
    uri = open_doc(client, path, SRC + "# slow\n")
    await asyncio.sleep(0.2)                        # the analysis of version 1 is running
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert not (await diagnostics_for(client, uri)).diagnostics
    await asyncio.sleep(1.5)                        # it has finished
    fixed = SRC.replace(".detach()", "")
    open_doc(client, path, fixed)                   # the same uri and version, other text
    params = await diagnostics_for(client, uri, timeout=20)
    assert params.version == 1 and not params.diagnostics
