"""The gradxray language server (pygls 2.x).

Handlers only render :class:`gradxray.analyzer.results.Analysis`; they never
compute.  One analysis per document version, run in a single worker thread
(so the event loop keeps answering), cached; hover, inlay hints, code lens and
code actions for that version reuse it (and wait for it when it is running).

* diagnostics: published on didOpen / didSave at once, on didChange after a
  short debounce; ``source = "gradxray"``, ``code`` = rule code.  A document
  that does not parse gets no diagnostics (the editor's Python server reports
  syntax errors) and no hints.
* inlay hints: after each tensor-producing statement, ``: [B, T, 384] f32`` for
  one tensor, ``q: [B, T, 384] f32, k: [...] f32, v: [...] f32`` for several,
  plus `` · 24.0 MiB saved`` (tooltip: the breakdown by op) when the line saves
  activations for backward.
* hover on a line with facts: one fenced block per tensor
  ``(tensor) q: [B, T, 384] float32``, a rule, then a table (saved for backward
  per call × calls, saved by which op, forward/backward FLOPs, gradient
  reaches, shapes at the configured sizes).  Hover on an analysed class line:
  parameters, activations, peak.
* code lens above each analysed ``nn.Module`` class:
  ``12.4M params · peak 3.1 GiB @ B=8 (fp32, AdamW)``.
* code actions: each diagnostic's fix (quick fix), ``# noqa: CODE`` for the
  line, and ``source.fixAll.gradxray`` for the safe fixes.

Settings: ``initializationOptions`` (``batch``/``batch-size``, ``dims``,
``device``, ``dtype``, ``optimizer``, ``select``, ``ignore``) are the defaults;
the nearest ``[tool.gradxray]`` applies over them.
"""
from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from gradxray import __version__, render
from gradxray.analyzer.positions import byte_col_to_char, line_text, split_lines
from gradxray.analyzer.results import Analysis
from gradxray.analyzer.settings import Settings

log = logging.getLogger("gradxray.lsp")

SOURCE = "gradxray"
DEBOUNCE_S = 0.15
FIX_ALL_KIND = f"{types.CodeActionKind.SourceFixAll.value}.gradxray"
_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


@dataclass
class Entry:
    """The analysis of one version of one document, with what rendering needs."""

    uri: str
    version: int | None
    analysis: Analysis
    lines: list[str]
    settings: Settings


def _analyze(source: str, path: str, settings: Settings) -> Analysis:
    from gradxray.analyzer import analyze_source

    try:
        return analyze_source(source, path, settings)
    except Exception as exc:  # the analyzer promises not to raise; never take the server down
        log.exception("analysis of %s failed", path)
        return Analysis(path=path, error=f"internal error: {type(exc).__name__}: {exc}")


def _settings_from_options(options) -> Settings:
    s = Settings()
    if not isinstance(options, dict):
        return s
    try:
        batch = options.get("batch", options.get("batch-size", options.get("batchSize")))
        if isinstance(batch, int) and batch > 0:
            s.batch = batch
        dims = options.get("dims")
        if isinstance(dims, dict):
            s.dims.update({str(k): int(v) for k, v in dims.items() if int(v) > 0})
        for key in ("device", "dtype", "optimizer", "loss"):
            if isinstance(options.get(key), str):
                setattr(s, key, options[key])
        for key in ("select", "ignore"):
            if isinstance(options.get(key), list):
                setattr(s, key, [str(c).upper() for c in options[key]])
    except (TypeError, ValueError):
        log.warning("ignoring malformed initializationOptions: %r", options)
    return s


class GradxrayServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(SOURCE, __version__)
        self.base_settings = Settings()
        self.cache: dict[str, Entry] = {}
        self.running: dict[str, tuple[int | None, asyncio.Future]] = {}
        self.timers: dict[str, asyncio.Task] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradxray-analysis")
        self._shown_errors: set[str] = set()

    # ----------------------------------------------------------------- settings

    def settings_for(self, path: str | None) -> Settings:
        from gradxray.analyzer.config import ConfigError, settings_for_file

        if not path:
            return self.base_settings
        try:
            return settings_for_file(path, self.base_settings)
        except ConfigError as exc:
            msg = str(exc)
            if msg not in self._shown_errors:
                self._shown_errors.add(msg)
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"gradxray: {msg}"))
            return self.base_settings

    # ----------------------------------------------------------------- analysis cache

    async def entry_for(self, uri: str) -> Entry | None:
        """The analysis of the document's current version: cached, running, or started now."""
        doc = self.workspace.get_text_document(uri)
        try:
            source = doc.source
        except OSError:
            return None
        version = doc.version
        cached = self.cache.get(uri)
        if cached is not None and cached.version == version and version is not None:
            return cached
        run = self.running.get(uri)
        if run is not None and run[0] == version and version is not None:
            return await asyncio.shield(run[1])
        # a pending debounce timer is left alone: it finds this run (or its result) and publishes
        return await self._start(uri, source, version, doc.path)

    def _start(self, uri: str, source: str, version: int | None, path: str | None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        settings = self.settings_for(path)
        fut = loop.run_in_executor(self.executor, _analyze, source, path or uri, settings)

        async def finish() -> Entry:
            analysis = await fut
            entry = Entry(uri, version, analysis, split_lines(source), settings)
            current = self.cache.get(uri)
            if current is None or current.version is None or version is None or current.version <= version:
                self.cache[uri] = entry
            if self.running.get(uri, (None, None))[1] is task:
                del self.running[uri]
            return entry

        task = asyncio.ensure_future(finish())
        self.running[uri] = (version, task)
        return task

    def schedule(self, uri: str, delay: float) -> None:
        old = self.timers.pop(uri, None)
        if old is not None and not old.done():
            old.cancel()

        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            entry = await self.entry_for(uri)
            if entry is None:
                return
            doc = self.workspace.get_text_document(uri)
            if doc.version != entry.version:
                return  # a newer edit is pending; it will publish
            self.publish(entry)

        task = asyncio.ensure_future(run())
        self.timers[uri] = task
        task.add_done_callback(lambda t: self.timers.pop(uri, None) if self.timers.get(uri) is t else None)

    def publish(self, entry: Entry) -> None:
        diagnostics = [] if entry.analysis.error else [self.lsp_diagnostic(entry, d) for d in entry.analysis.diagnostics]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=entry.uri, version=entry.version, diagnostics=diagnostics))

    def forget(self, uri: str) -> None:
        timer = self.timers.pop(uri, None)
        if timer is not None and not timer.done():
            timer.cancel()
        self.cache.pop(uri, None)
        self.running.pop(uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # ----------------------------------------------------------------- positions

    def position(self, entry: Entry, line: int, col: int, *, end_of_line: bool = False) -> types.Position:
        """An analyzer position (1-based line, byte column) in the client's units."""
        text = line_text(entry.lines, line)
        char = len(text.rstrip()) if end_of_line else byte_col_to_char(text, col)
        doc = self.workspace.get_text_document(entry.uri)
        return doc.position_codec.position_to_client_units(
            entry.lines, types.Position(line=max(line - 1, 0), character=min(char, len(text))))

    def span_range(self, entry: Entry, span) -> types.Range:
        start = self.position(entry, span.line, span.col)
        if span.end_line is not None and span.end_col is not None:
            end = self.position(entry, span.end_line, span.end_col)
        else:
            end = self.position(entry, span.line, 0, end_of_line=True)
            if end.character < start.character:
                end = start
        return types.Range(start=start, end=end)

    def lsp_diagnostic(self, entry: Entry, d) -> types.Diagnostic:
        return types.Diagnostic(
            range=self.span_range(entry, d.span),
            message=d.message,
            severity=_SEVERITY.get(d.severity, types.DiagnosticSeverity.Warning),
            code=d.code,
            source=SOURCE,
        )


def _overlaps(a: types.Range, b: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _fact_for_line(analysis: Analysis, line: int):
    """The LineFact covering 1-based ``line`` (a statement may span lines when ``end_line`` is known)."""
    fact = analysis.lines.get(line)
    if fact is not None:
        return fact
    for f in analysis.lines.values():
        end_line = getattr(f, "end_line", None)
        if end_line is not None and f.line <= line <= end_line:
            return f
    return None


def _noqa_edit(entry: Entry, line: int, code: str) -> tuple[types.Position, str] | None:
    text = line_text(entry.lines, line)
    m = re.search(r"#\s*noqa(?P<colon>\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:\s*,?\s*[A-Za-z]+[0-9]+)*))?", text, re.I)
    if m and not m.group("colon"):
        return None  # a bare noqa already suppresses everything
    if m:
        if code in {c.upper() for c in re.findall(r"[A-Za-z]+[0-9]+", m.group("codes"))}:
            return None
        return types.Position(line=line - 1, character=m.end("codes")), f", {code}"
    end = len(text.rstrip())
    return types.Position(line=line - 1, character=end), f"  # noqa: {code}"


def create_server() -> GradxrayServer:
    server = GradxrayServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: GradxrayServer, params: types.InitializeParams) -> None:
        ls.base_settings = _settings_from_options(params.initialization_options)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GradxrayServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GradxrayServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: GradxrayServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.cache.pop(uri, None)  # the configuration may have changed with the save
        ls.schedule(uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GradxrayServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    async def inlay_hints(ls: GradxrayServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        entry = await ls.entry_for(params.text_document.uri)
        if entry is None or entry.analysis.error:
            return []
        first, last = params.range.start.line + 1, params.range.end.line + 1
        hints = []
        for fact in sorted(entry.analysis.lines.values(), key=lambda f: f.line):
            if not fact.tensors:
                continue
            hint_line = getattr(fact, "end_line", None) or fact.line
            if not (first <= hint_line <= last):
                continue
            if fact.end_col:
                pos = ls.position(entry, hint_line, fact.end_col)
            else:
                pos = ls.position(entry, hint_line, 0, end_of_line=True)
            shape = render.inlay_shape_label(fact)
            memory = render.inlay_memory_label(fact)
            label: str | list[types.InlayHintLabelPart]
            if memory:
                label = [types.InlayHintLabelPart(value=shape),
                         types.InlayHintLabelPart(value=memory, tooltip=types.MarkupContent(
                             kind=types.MarkupKind.Markdown, value=render.saved_breakdown_markdown(fact)))]
            else:
                label = shape
            hints.append(types.InlayHint(position=pos, label=label, kind=types.InlayHintKind.Type,
                                         padding_left=len(fact.tensors) > 1))
        return hints

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: GradxrayServer, params: types.HoverParams) -> types.Hover | None:
        entry = await ls.entry_for(params.text_document.uri)
        if entry is None or entry.analysis.error:
            return None
        line = params.position.line + 1
        fact = _fact_for_line(entry.analysis, line)
        if fact is not None and fact.tensors:
            value = render.hover_markdown(fact)
        else:
            cls = next((c for c in entry.analysis.classes if c.line == line), None)
            if cls is None:
                return None
            s = entry.settings
            value = render.class_hover_markdown(cls, s.batch, s.dtype, s.optimizer)
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value))

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: GradxrayServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        entry = await ls.entry_for(params.text_document.uri)
        if entry is None or entry.analysis.error:
            return []
        s = entry.settings
        lenses = []
        for cls in entry.analysis.classes:
            pos = types.Position(line=max(cls.line - 1, 0), character=0)
            lenses.append(types.CodeLens(
                range=types.Range(start=pos, end=pos),
                command=types.Command(title=render.class_lens_title(cls, s.batch, s.dtype, s.optimizer),
                                      command="")))
        return lenses

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND], resolve_provider=False))
    async def code_actions(ls: GradxrayServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        entry = await ls.entry_for(uri)
        if entry is None or entry.analysis.error:
            return []
        only = [getattr(k, "value", k) for k in (params.context.only or [])]
        want_quick = not only or any(k.startswith(types.CodeActionKind.QuickFix.value) for k in only)
        want_all = not only or any(FIX_ALL_KIND.startswith(k) for k in only)
        actions: list[types.CodeAction] = []
        safe_edits: list[types.TextEdit] = []
        safe_ranges: list[types.Range] = []
        for d in entry.analysis.diagnostics:
            diag = ls.lsp_diagnostic(entry, d)
            fix_edits = None
            if d.fix is not None and d.fix.edits:
                fix_edits = [types.TextEdit(range=ls.span_range(entry, e.span), new_text=e.content)
                             for e in d.fix.edits]
                if d.fix.applicability == "safe" and not any(
                        _overlaps(e.range, r) for e in fix_edits for r in safe_ranges):
                    safe_edits += fix_edits
                    safe_ranges += [e.range for e in fix_edits]
            if not want_quick or not _overlaps(diag.range, params.range):
                continue
            if fix_edits:
                title = f"{d.fix.message} ({d.code})" if d.fix.applicability == "safe" else \
                    f"{d.fix.message} ({d.code}, unsafe)"
                actions.append(types.CodeAction(
                    title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
                    is_preferred=d.fix.applicability == "safe",
                    edit=types.WorkspaceEdit(changes={uri: fix_edits})))
            noqa = _noqa_edit(entry, d.span.line, d.code) if d.code else None
            if noqa is not None:
                pos, text = noqa
                pos = ls.workspace.get_text_document(uri).position_codec.position_to_client_units(entry.lines, pos)
                actions.append(types.CodeAction(
                    title=f"Suppress {d.code} on this line (# noqa)", kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(
                        range=types.Range(start=pos, end=pos), new_text=text)]})))
        if want_all and safe_edits:
            actions.append(types.CodeAction(title="gradxray: fix all safe fixes", kind=FIX_ALL_KIND,
                                            edit=types.WorkspaceEdit(changes={uri: safe_edits})))
        return actions

    return server


def main() -> None:  # pragma: no cover - ``gradxray lsp`` is the entry point
    create_server().start_io()
