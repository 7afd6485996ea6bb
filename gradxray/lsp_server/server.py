"""The gradxray language server (pygls 2.x).

Handlers only render :class:`gradxray.analyzer.results.Analysis`; they never
compute.  One analysis per document version, run in a single worker thread
(so the event loop keeps answering), cached; hover, inlay hints, code lens and
code actions for that version reuse it (and wait for it when it is running).
A save analyses the same version again only when its configuration changed.

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
* imports across files: the server shares the analyzer's project index (one per
  search path).  didOpen / didChange / didSave give it the document's text
  (unsaved text included), didClose sends it back to the file on disk; every
  open document whose analysis the change made stale (the importers of the
  changed file, directly or not) is analysed again and its diagnostics are
  published again (inlay hints and hovers follow the new analysis).  Index
  updates run on the analysis thread, so they never race an analysis.

Settings: ``initializationOptions`` (``batch``/``batch-size``, ``dims``,
``device``, ``dtype``, ``optimizer``, ``loss``, ``select``, ``ignore``, ``roots``,
``search-paths``/``searchPaths``) are the defaults; the nearest ``[tool.gradxray]``
applies over them.
"""
from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from gradxray import __version__, render
from gradxray.analyzer.config import CHOICE_KEYS, Config, ConfigError, check_folders, settings_for_file
from gradxray.analyzer.incremental import TraceCache
from gradxray.analyzer.positions import byte_col_to_char, line_text, span_chars, split_lines
from gradxray.analyzer.results import Analysis, LineFact
from gradxray.analyzer.rules import noqa_insertion
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


_trace_cache = TraceCache()      # the traces of root classes, reused while what they read is unchanged


def _analyze(source: str, path: str, settings: Settings) -> Analysis:
    """Analyse a document; the traces of root classes an edit did not touch are reused."""
    from gradxray.analyzer import analyze_source

    try:
        return analyze_source(source, path, settings, cache=_trace_cache)
    except Exception as exc:  # the analyzer promises not to raise; never take the server down
        log.exception("analysis of %s failed", path)
        return Analysis(path=path, error=f"internal error: {type(exc).__name__}: {exc}")


def _settings_from_options(options) -> Settings:
    """The defaults given as ``initializationOptions``; what is malformed is left out."""
    overrides = Config()
    if isinstance(options, dict):
        try:
            batch = options.get("batch", options.get("batch-size", options.get("batchSize")))
            if isinstance(batch, int) and batch > 0:
                overrides.batch = batch
            dims = options.get("dims")
            if isinstance(dims, dict):
                overrides.dims = {str(k): int(v) for k, v in dims.items() if int(v) > 0}
            for key in CHOICE_KEYS:
                if isinstance(options.get(key), str):
                    setattr(overrides, key, options[key])
            for key in ("select", "ignore"):
                if isinstance(options.get(key), list):
                    setattr(overrides, key, [str(c).upper() for c in options[key]])
            for attr, names in (("roots", ("roots",)), ("search_paths", ("search-paths", "searchPaths"))):
                value = next((options[n] for n in names if n in options), None)
                if value is not None:
                    setattr(overrides, attr, check_folders(value, os.getcwd(), ConfigError))
        except (TypeError, ValueError, ConfigError):
            log.warning("ignoring malformed initializationOptions: %r", options)
    return overrides.settings_for()


class GradxrayServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(SOURCE, __version__)
        self.base_settings = Settings()
        self.cache: dict[str, Entry] = {}
        self.running: dict[str, tuple[int | None, asyncio.Future, int]] = {}   # (version, task, epoch)
        self.timers: dict[str, asyncio.Task] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradxray-analysis")
        self._shown_errors: set[str] = set()
        # per document, bumped when its analysis goes stale without a new version (an imported file
        # changed): an analysis started before the bump must not be cached
        self.epochs: dict[str, int] = {}
        self.search_path_sets: set[tuple[str, ...]] = set()   # the project indexes the analyses use

    # ----------------------------------------------------------------- settings

    def settings_for(self, path: str | None) -> Settings:
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
        if run is not None and run[0] == version and version is not None and run[2] == self.epochs.get(uri, 0):
            return await asyncio.shield(run[1])
        # a pending debounce timer is left alone: it finds this run (or its result) and publishes.
        # Shielded: a caller cancelled by a newer edit or a save must not cancel the analysis.
        return await asyncio.shield(self._start(uri, source, version, doc.path))

    def _start(self, uri: str, source: str, version: int | None, path: str | None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        settings = self.settings_for(path)
        self.search_path_sets.add(tuple(settings.search_paths))
        epoch = self.epochs.get(uri, 0)
        fut = loop.run_in_executor(self.executor, _analyze, source, path or uri, settings)

        async def finish() -> Entry:
            analysis = await fut
            entry = Entry(uri, version, analysis, split_lines(source), settings)
            current = self.cache.get(uri)
            fresh = epoch == self.epochs.get(uri, 0)
            if fresh and (current is None or current.version is None or version is None
                          or current.version <= version):
                self.cache[uri] = entry
            run = self.running.get(uri)
            if run is not None and run[1] is task:
                del self.running[uri]
            return entry

        task = asyncio.ensure_future(finish())
        self.running[uri] = (version, task, epoch)
        return task

    def schedule(self, uri: str, delay: float, refresh_views: bool = False) -> None:
        """Analyse the document after ``delay`` and publish its diagnostics; ``refresh_views``: also
        ask the client to request inlay hints and code lenses again (they are pulled, not pushed)."""
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
            if doc.version != entry.version or self.cache.get(uri) is not entry:
                return  # a newer edit or an imported file's change is pending; it will publish
            self.publish(entry)
            if refresh_views:
                self.refresh_views()

        task = asyncio.ensure_future(run())
        self.timers[uri] = task
        task.add_done_callback(lambda t: self.timers.pop(uri, None) if self.timers.get(uri) is t else None)

    # ----------------------------------------------------------------- the project index

    def sync_project(self, uri: str, text: str | None) -> None:
        """Tell the project indexes that the document's file now holds ``text`` (None: what is on
        disk), then analyse again the other open documents that this made stale."""
        path = self.workspace.get_text_document(uri).path
        if not path:
            return
        search_path_sets = set(self.search_path_sets) | {tuple(self.settings_for(path).search_paths)}

        def update() -> set[str]:  # on the analysis thread: the index is never used by two threads
            from gradxray.analyzer.project import project_index

            stale: set[str] = set()
            for search_paths in search_path_sets:
                stale |= project_index(search_paths).update(path, text)
            return stale

        future = asyncio.wrap_future(self.executor.submit(update))

        def done(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is not None:
                if not f.cancelled():
                    log.error("project index update for %s failed: %r", path, f.exception())
                return
            self.invalidate(f.result(), changed=uri)

        future.add_done_callback(done)

    def invalidate(self, stale_paths: set[str], changed: str) -> None:
        """Analyse again the open documents (other than ``changed``, which its own edit schedules)
        whose file is among ``stale_paths``."""
        stale = {os.path.normcase(os.path.abspath(p)) for p in stale_paths}
        for uri, doc in list(self.workspace.text_documents.items()):
            if uri == changed or not doc.path or os.path.normcase(os.path.abspath(doc.path)) not in stale:
                continue
            self.epochs[uri] = self.epochs.get(uri, 0) + 1
            self.cache.pop(uri, None)
            self.running.pop(uri, None)   # left to finish; its stale result is not cached
            self.schedule(uri, DEBOUNCE_S, refresh_views=True)

    def refresh_views(self) -> None:
        """``workspace/inlayHint/refresh`` and ``workspace/codeLens/refresh``, where the client supports them."""
        workspace = self.client_capabilities.workspace
        if workspace is None:
            return
        if workspace.inlay_hint is not None and workspace.inlay_hint.refresh_support:
            self.workspace_inlay_hint_refresh(None)
        if workspace.code_lens is not None and workspace.code_lens.refresh_support:
            self.workspace_code_lens_refresh(None)

    def publish(self, entry: Entry) -> None:
        analysis = entry.analysis
        diagnostics = [] if analysis.error else [self.lsp_diagnostic(entry, d) for d in analysis.diagnostics]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=entry.uri, version=entry.version, diagnostics=diagnostics))

    def forget(self, uri: str) -> None:
        timer = self.timers.pop(uri, None)
        if timer is not None and not timer.done():
            timer.cancel()
        self.cache.pop(uri, None)
        run = self.running.pop(uri, None)
        if run is not None:
            run[1].cancel()  # its result must not be cached for a document that is gone
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # ----------------------------------------------------------------- positions

    def client_position(self, entry: Entry, line: int, char: int) -> types.Position:
        """A 1-based line and a character column in the client's units."""
        return self.workspace.position_codec.position_to_client_units(
            entry.lines, types.Position(line=line - 1, character=char))

    def position(self, entry: Entry, line: int, col: int | None) -> types.Position:
        """An analyzer position (1-based line, byte column; None: the end of the line's text)
        in the client's units."""
        text = line_text(entry.lines, line)
        char = len(text.rstrip()) if col is None else byte_col_to_char(text, col)
        return self.client_position(entry, line, char)

    def span_range(self, entry: Entry, span) -> types.Range:
        line, char, end_line, end_char = span_chars(entry.lines, span)
        return types.Range(start=self.client_position(entry, line, char),
                           end=self.client_position(entry, end_line, end_char))

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


def _fact_for_line(analysis: Analysis, line: int) -> LineFact | None:
    """The LineFact covering 1-based ``line`` (a statement may span lines when ``end_line`` is known)."""
    fact = analysis.lines.get(line)
    if fact is not None:
        return fact
    for f in analysis.lines.values():
        if f.end_line is not None and f.line <= line <= f.end_line:
            return f
    return None


def create_server() -> GradxrayServer:
    server = GradxrayServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: GradxrayServer, params: types.InitializeParams) -> None:
        ls.base_settings = _settings_from_options(params.initialization_options)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GradxrayServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.sync_project(params.text_document.uri, params.text_document.text)
        ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GradxrayServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.sync_project(uri, ls.workspace.get_text_document(uri).source)
        ls.schedule(uri, DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: GradxrayServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        cached = ls.cache.get(uri)
        if cached is not None and cached.settings != ls.settings_for(ls.workspace.get_text_document(uri).path):
            del ls.cache[uri]  # the configuration changed: analyse this version again
        ls.sync_project(uri, ls.workspace.get_text_document(uri).source)
        ls.schedule(uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GradxrayServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.sync_project(uri, None)   # unsaved edits are gone: importers see the file on disk again
        ls.forget(uri)

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
            hint_line = fact.end_line or fact.line
            if not (first <= hint_line <= last):
                continue
            pos = ls.position(entry, hint_line, fact.end_col or None)
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
            noqa = noqa_insertion(line_text(entry.lines, d.span.line), d.code) if d.code else None
            if noqa is not None:
                char, text = noqa
                pos = ls.client_position(entry, d.span.line, char)
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
