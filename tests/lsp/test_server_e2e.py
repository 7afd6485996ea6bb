"""The real server (``python -m gradxray lsp``) over stdio on the bundled GPT, with the real analyzer."""
from __future__ import annotations

import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_helpers import CLIENT_CAPABILITIES, ROOT, SERVER_ENV, diagnostics_for, label_text, open_doc, whole

GPT = (ROOT / "examples" / "gpt.py").read_text()
QKV = "q, k, v = self.c_attn(x).split(self.n_embd, dim=2)"
ATTN_LINE = "x = x + self.attn(self.ln_1(x))"
QKV_LABEL = "q: [B, T, 384] f32, k: [B, T, 384] f32, v: [B, T, 384] f32"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "gradxray", "lsp"],
                                              server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=CLIENT_CAPABILITIES))
    yield
    await lsp_client.shutdown_session()


async def test_gpt_clean_hints_and_hover(client: LanguageClient, tmp_path):
    path = tmp_path / "gpt.py"
    path.write_text(GPT)
    uri = open_doc(client, path, GPT)
    params = await diagnostics_for(client, uri)
    assert not [d for d in params.diagnostics if d.code == "GX101"]
    assert all(d.source == "gradxray" for d in params.diagnostics)

    line = _line_of(GPT, QKV)
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=whole(GPT)))
    [hint] = [h for h in hints if h.position.line == line]
    text = label_text(hint)
    assert text.startswith(QKV_LABEL), text
    assert hint.position.character == len(GPT.splitlines()[line])
    # the memory part: c_attn's input is saved by addmm, 6 blocks x [B*T, 384] float32 at B=8, T=256
    assert text[len(QKV_LABEL):] == " · 18.0 MiB saved", text
    assert "saved for backward" in hint.label[1].tooltip.value.lower()

    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=GPT.splitlines()[line].index("q"))))
    md = hover.contents.value
    assert "(tensor) q: [B, T, 384] float32" in md
    assert "saved for backward" in md
    assert "forward FLOPs" in md and "backward FLOPs" in md


async def test_gpt_detach_reports_gx101(client: LanguageClient, tmp_path):
    src = GPT.replace(ATTN_LINE, "x = x + self.attn(self.ln_1(x)).detach()")
    assert src != GPT
    path = tmp_path / "gpt_detach.py"
    path.write_text(src)
    uri = open_doc(client, path, src)
    params = await diagnostics_for(client, uri)
    gx101 = [d for d in params.diagnostics if d.code == "GX101"]
    assert len(gx101) == 1, params.diagnostics
    [d] = gx101
    line = _line_of(src, "self.attn(self.ln_1(x)).detach()")
    text = src.splitlines()[line]
    assert d.source == "gradxray" and d.severity == types.DiagnosticSeverity.Warning
    assert d.range.start == types.Position(line=line, character=text.index("self.attn"))
    assert d.range.end == types.Position(line=line, character=len(text))
    # ln_1 (weight, bias), attn.c_attn and attn.c_proj (weight, bias) in each of the 6 blocks
    assert "cuts the gradient to 36 parameters" in d.message, d.message
    assert "attn" in d.message and "… and 31 more" in d.message

    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=d.range,
        context=types.CodeActionContext(diagnostics=[d])))
    fix = next(a for a in actions if a.title.startswith("Remove `.detach()`"))
    [edit] = fix.edit.changes[uri]
    assert edit.new_text == "self.attn(self.ln_1(x))"
