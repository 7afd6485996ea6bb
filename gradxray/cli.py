"""``gradxray`` command line: check | memory | verify | rules | rule | lsp.

Exit status: 0 clean, 1 findings, 2 error (missing file, bad configuration,
bad flag, bad target, internal failure).  Errors are one line on stderr
(``gradxray: error: ...``), never a traceback; set ``GRADXRAY_DEBUG=1`` to see one.

``check`` and a file with a syntax error: like ruff, the error is reported as a
finding (``path:row:col: SyntaxError: ...``; in JSON ``"code": null``), the
other files are still checked, and the exit status is 1.

Findings of severity *information* / *hint* (the GX9xx analysis notes) are
printed but never make ``check`` exit 1.

This module imports nothing heavy at start: the analyzer is imported by
``check``/``memory``, pygls only by ``lsp``, and torch only by ``verify`` (when it runs).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field

from gradxray import __version__

PROG = "gradxray"
EXCLUDED_DIRS = {
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache",
    ".nox", ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox", ".venv",
    ".vscode", "__pycache__", "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules",
    "site-packages", "venv",
}
FAILING_SEVERITIES = {"error", "warning"}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2 (as is the analyzer's ``ConfigError``)."""


def _debug() -> bool:
    return os.environ.get("GRADXRAY_DEBUG", "") not in ("", "0")


def _err(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


# =========================================================================== check

@dataclass
class Finding:
    filename: str
    code: str | None
    message: str
    severity: str
    row: int
    column: int              # 1-based, characters
    end_row: int
    end_column: int
    fix: dict | None = None
    name: str = ""

    @property
    def fix_applicability(self) -> str | None:
        return self.fix["applicability"] if self.fix else None

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "severity": self.severity,
                "filename": self.filename,
                "location": {"row": self.row, "column": self.column},
                "end_location": {"row": self.end_row, "column": self.end_column},
                "fix": self.fix}


@dataclass
class FileResult:
    filename: str
    findings: list[Finding] = field(default_factory=list)
    fixed: int = 0


def collect_files(paths: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.endswith(".egg-info"))
                for f in sorted(files):
                    if f.endswith((".py", ".pyi")):
                        add(os.path.normpath(os.path.join(root, f)))
        else:
            add(os.path.normpath(p))
    return out


def read_source_encoding(path: str) -> tuple[str, str]:
    """(text with its newlines kept, encoding): PEP 263 cookie or BOM, default UTF-8."""
    import io
    import tokenize

    with open(path, "rb") as f:
        data = f.read()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    if encoding == "utf-8-sig":
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"), "utf-8-sig"
    return data.decode(encoding), encoding


def read_source(path: str) -> str:
    return read_source_encoding(path)[0]


def _span_rows(lines: list[str], span) -> tuple[int, int, int, int]:
    """A span as 1-based (row, column, end row, end column), columns in characters."""
    from gradxray.analyzer.positions import span_chars

    row, char, end_row, end_char = span_chars(lines, span)
    return row, char + 1, end_row, end_char + 1


def _fix_json(lines: list[str], fix) -> dict | None:
    if fix is None:
        return None
    edits = []
    for e in fix.edits:
        r, c, er, ec = _span_rows(lines, e.span)
        edits.append({"content": e.content, "location": {"row": r, "column": c},
                      "end_location": {"row": er, "column": ec}})
    return {"applicability": fix.applicability, "message": fix.message, "edits": edits}


def _syntax_finding(filename: str, source: str, error: str) -> Finding:
    import ast

    try:
        ast.parse(source, filename)
    except SyntaxError as exc:
        row = exc.lineno or 1
        col = exc.offset or 1
        end_row = getattr(exc, "end_lineno", None) or row
        end_col = getattr(exc, "end_offset", None) or col
        if (end_row, end_col) < (row, col):
            end_row, end_col = row, col
        return Finding(filename, None, f"SyntaxError: {exc.msg}", "error", row, max(col, 1),
                       end_row, max(end_col, 1), name="syntax-error")
    except (ValueError, MemoryError, RecursionError) as exc:
        return Finding(filename, None, f"SyntaxError: {exc}", "error", 1, 1, 1, 1, name="syntax-error")
    msg = error if error.startswith(("SyntaxError", "Error")) else f"Error: {error}"
    return Finding(filename, None, msg, "error", 1, 1, 1, 1, name="syntax-error")


def _findings(filename: str, source: str, analysis) -> list[Finding]:
    from gradxray.analyzer.positions import split_lines
    from gradxray.analyzer.rules import get_rule

    if analysis.error:
        return [_syntax_finding(filename, source, analysis.error)]
    lines = split_lines(source)
    out = []
    for d in analysis.diagnostics:
        r, c, er, ec = _span_rows(lines, d.span)
        rule = get_rule(d.code) if d.code else None
        out.append(Finding(filename, d.code, d.message, d.severity, r, c, er, ec,
                           _fix_json(lines, d.fix), name=rule.name if rule else ""))
    out.sort(key=lambda f: (f.row, f.column, f.code or ""))
    return out


def apply_fixes(source: str, diagnostics, unsafe: bool) -> tuple[str, int]:
    """Apply the fixes of ``diagnostics`` (safe ones; unsafe too when asked).  Overlapping fixes are skipped."""
    from gradxray.analyzer.positions import byte_col_to_char, split_lines

    lines = split_lines(source)
    starts = [0]
    for m in re.finditer(r"\r\n|\r|\n", source):
        starts.append(m.end())

    def offset(line: int, col: int) -> int:
        line = min(max(line, 1), len(starts))
        text = lines[line - 1] if line - 1 < len(lines) else ""
        return starts[line - 1] + byte_col_to_char(text, col)

    chosen: list[tuple[int, int, str]] = []
    fixed = 0
    for d in sorted(diagnostics, key=lambda d: (d.span.line, d.span.col)):
        fix = d.fix
        if fix is None or not fix.edits or (fix.applicability != "safe" and not unsafe):
            continue
        edits = []
        for e in fix.edits:
            s = offset(e.span.line, e.span.col)
            end_line = e.span.end_line if e.span.end_line is not None else e.span.line
            end_col = e.span.end_col if e.span.end_col is not None else e.span.col
            edits.append((s, max(s, offset(end_line, end_col)), e.content))
        if any(not (b[1] <= a[0] or a[1] <= b[0]) or (a[0] == a[1] == b[0] == b[1])
               for a in edits for b in chosen):
            continue
        chosen.extend(edits)
        fixed += 1
    for s, e, content in sorted(chosen, key=lambda t: (t[0], t[1]), reverse=True):
        source = source[:s] + content + source[e:]
    return source, fixed


def _flag_folders(values: list[str] | None, flag: str) -> list[str]:
    """``--root`` / ``--search-path`` values (relative to the current folder) -> absolute folders."""
    from gradxray.analyzer.config import check_folders

    if not values:
        return []
    return check_folders(values, os.getcwd(), lambda msg: CliError(f"bad {flag}: {msg}"))


def apply_path_flags(settings, args):
    """``--root`` / ``--search-path`` go before the configured folders: the command line wins."""
    from gradxray.analyzer.config import Config

    flags = Config(roots=_flag_folders(args.root, "--root"),
                   search_paths=_flag_folders(args.search_path, "--search-path"))
    return flags.settings_for(None, settings)


def _settings_for(path: str, args):
    from gradxray.analyzer.config import check_selectors, settings_for_file

    settings = apply_path_flags(settings_for_file(path), args)
    if args.select:
        settings.select = check_selectors(",".join(args.select), key="--select")
    if args.extend_select and settings.select:  # an empty selection already means ALL
        settings.select = list(settings.select) + check_selectors(",".join(args.extend_select), key="--extend-select")
    if args.ignore:
        settings.ignore = list(settings.ignore) + check_selectors(",".join(args.ignore), key="--ignore")
    return settings


def check_file(path: str, args) -> tuple[FileResult, bool]:
    """Analyse one file.  Returns its result and whether a per-file error (exit 2) happened."""
    from gradxray.analyzer import analyze_source

    res = FileResult(path)
    try:
        source, encoding = read_source_encoding(path)
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        _err(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        return res, True
    settings = _settings_for(path, args)

    def analyze(text: str):
        try:
            return analyze_source(text, path, settings, jobs=getattr(args, "jobs", None))
        except Exception as exc:  # the analyzer promises not to raise; a bug must not print a traceback
            if _debug():
                raise
            _err(f"{path}: internal error while analysing: {type(exc).__name__}: {exc}")
            return None

    analysis = analyze(source)
    if analysis is not None and args.fix and not analysis.error:
        new_source, fixed = apply_fixes(source, analysis.diagnostics, args.unsafe_fixes)
        if fixed:
            try:
                with open(path, "w", encoding=encoding, newline="") as f:
                    f.write(new_source)
            except OSError as exc:
                _err(f"{path}: cannot write: {exc.strerror or exc}")
                return res, True
            res.fixed = fixed
            source = new_source
            analysis = analyze(source)
    if analysis is None:
        return res, True
    res.findings = _findings(path, source, analysis)
    return res, False


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


_GH_LEVEL = {"error": "error", "warning": "warning", "information": "notice", "hint": "notice"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "information": "note", "hint": "note"}


def _sarif(findings: list[Finding]) -> dict:
    from gradxray.analyzer.rules import all_rules

    rules = [{"id": r.code, "name": r.name,
              "shortDescription": {"text": r.summary},
              "fullDescription": {"text": r.docs},
              "help": {"text": r.docs, "markdown": r.docs},
              "defaultConfiguration": {"level": _SARIF_LEVEL.get(r.severity, "warning")},
              "properties": {"fix": r.fix}} for r in all_rules()]
    results = []
    for f in findings:
        uri = f.filename.replace(os.sep, "/")
        if os.path.isabs(f.filename):
            try:
                rel = os.path.relpath(f.filename)
                if not rel.startswith(".."):
                    uri = rel.replace(os.sep, "/")
            except ValueError:
                pass
        results.append({
            "ruleId": f.code or "syntax-error",
            "level": _SARIF_LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": uri},
                "region": {"startLine": f.row, "startColumn": f.column,
                           "endLine": f.end_row, "endColumn": f.end_column}}}],
        })
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": PROG, "version": __version__, "rules": rules}},
                      "results": results}]}


def _statistics(findings: list[Finding], fmt: str) -> str:
    counts: dict[tuple[str, str], list] = {}
    for f in findings:
        key = (f.code or "", f.name or ("syntax-error" if f.code is None else ""))
        entry = counts.setdefault(key, [0, False])
        entry[0] += 1
        entry[1] = entry[1] or f.fix_applicability == "safe"
    rows = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0][0]))
    if fmt == "json":
        return json.dumps([{"code": code or None, "name": name, "count": n, "fixable": fx}
                           for (code, name), (n, fx) in rows], indent=2)
    if not rows:
        return ""
    w = max(len(str(n)) for _, (n, _f) in rows)
    cw = max(len(code) for (code, _), _ in rows)
    return "\n".join(f"{n:>{w}}\t{code:<{cw}}\t{'[*]' if fx else '[ ]'} {name}"
                     for (code, name), (n, fx) in rows)


def cmd_check(args) -> int:
    paths = args.paths or ["."]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        for p in missing:
            _err(f"{p}: No such file or directory")
        return 2
    files = collect_files(paths)
    if not files:
        print(f"{PROG}: warning: no Python files found under {', '.join(paths)}", file=sys.stderr)
    results: list[FileResult] = []
    had_error = False
    for path in files:
        res, err = check_file(path, args)
        had_error |= err
        results.append(res)
    findings = [f for r in results for f in r.findings]
    fixed = sum(r.fixed for r in results)
    fmt = args.output_format
    out = sys.stdout
    if args.statistics:
        text = _statistics(findings, "json" if fmt == "json" else "text")
        if text:
            print(text, file=out)
    elif fmt == "json":
        print(json.dumps([f.to_json() for f in findings], indent=2), file=out)
    elif fmt == "sarif":
        print(json.dumps(_sarif(findings), indent=2), file=out)
    elif fmt == "github":
        for f in findings:
            level = _GH_LEVEL.get(f.severity, "warning")
            title = f"{PROG} ({f.code})" if f.code else PROG
            props = (f"title={_gh_escape(title, True)},file={_gh_escape(f.filename, True)},"
                     f"line={f.row},col={f.column},endLine={f.end_row},endColumn={f.end_column}")
            head = f"{f.code} " if f.code else ""
            print(f"::{level} {props}::{_gh_escape(f'{f.filename}:{f.row}:{f.column}: {head}{f.message}')}",
                  file=out)
    else:
        for f in findings:
            mark = " [*]" if f.fix_applicability == "safe" else ""
            head = f"{f.code}{mark} " if f.code else ""
            print(f"{f.filename}:{f.row}:{f.column}: {head}{f.message}", file=out)
        n = len(findings)
        if n:
            word = "finding" if n == 1 else "findings"
            extra = f" ({fixed} fixed, {n} remaining)" if fixed else ""
            print(f"Found {n} {word}{extra}.", file=out)
            safe = sum(1 for f in findings if f.fix_applicability == "safe")
            unsafe = sum(1 for f in findings if f.fix_applicability == "unsafe")
            if safe and not args.fix:
                print(f"[*] {safe} fixable with the `--fix` option.", file=out)
            if unsafe and not (args.fix and args.unsafe_fixes):
                print(f"({unsafe} hidden fix{'es' if unsafe != 1 else ''} can be enabled with "
                      f"the `--fix --unsafe-fixes` options.)", file=out)
        elif fixed:
            print(f"Found {fixed} finding{'s' if fixed != 1 else ''} ({fixed} fixed, 0 remaining).", file=out)
        elif not had_error:
            print("All checks passed!", file=out)
    if had_error:
        return 2
    if args.exit_zero:
        return 0
    failing = any(f.code is None or f.severity in FAILING_SEVERITIES for f in findings)
    return 1 if failing else 0


# =========================================================================== memory

_TARGET = re.compile(r"^(?P<file>.+?\.pyi?):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def parse_target(target: str) -> tuple[str, str]:
    """``path.py:Name`` → (path, Name), checking that the file exists and defines Name."""
    import ast

    m = _TARGET.match(target)
    if not m:
        raise CliError(f"bad target {target!r}: expected path.py:Name (a module class or a factory function)")
    path, name = m.group("file"), m.group("name")
    if not os.path.isfile(path):
        raise CliError(f"{path}: No such file or directory")
    try:
        tree = ast.parse(read_source(path), path)
    except SyntaxError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.offset}: SyntaxError: {exc.msg}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    if name not in defined:
        classes = sorted(n.name for n in tree.body if isinstance(n, ast.ClassDef))
        hint = f" (classes there: {', '.join(classes)})" if classes else ""
        raise CliError(f"{path} has no class or function named {name!r}{hint}")
    return path, name


def _parse_dims(values: list[str]) -> dict[str, int]:
    dims = {}
    for v in values or []:
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+)\s*$", v)
        if not m or int(m.group(2)) <= 0:
            raise CliError(f"bad --dim {v!r}: expected NAME=POSITIVE_INT, e.g. T=1024")
        dims[m.group(1)] = int(m.group(2))
    return dims


def _parse_inputs(values: list[str]) -> dict[str, str]:
    from gradxray.analyzer.config import parse_input_spec

    out = {}
    for v in values or []:
        name, eq, spec = v.partition("=")
        name = name.strip()
        if not eq or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise CliError(f"bad --input {v!r}: expected name=[B,3,224,224]:float32")
        try:
            out[name] = parse_input_spec(spec)
        except ValueError as exc:
            raise CliError(f"bad --input {v!r}: {exc}") from None
    return out


def _parse_args_literal(text: str | None) -> dict:
    import ast

    if text is None:
        return {}
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise CliError(f"bad --args {text!r}: not a Python literal ({type(exc).__name__})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CliError(f"bad --args {text!r}: expected a dict of keyword arguments, e.g. \"{{'n_layer': 12}}\"")
    return value


def memory_settings(args, path: str):
    """The file's settings with the command-line flags applied over them."""
    from gradxray.analyzer.config import Config, settings_for_file

    base = settings_for_file(path)
    dims = _parse_dims(args.dim)
    batch = dims.pop("B", None)
    if args.batch is not None:
        if args.batch <= 0:
            raise CliError(f"bad --batch {args.batch}: must be positive")
        batch = args.batch
    flags = Config(batch=batch, dims=dims, inputs=_parse_inputs(args.input), device=args.device,
                   dtype=args.dtype, optimizer=args.optimizer, loss=args.loss, amp=getattr(args, "amp", None))
    settings = apply_path_flags(flags.settings_for(None, base), args)
    settings.args.update(_parse_args_literal(args.args))
    if getattr(args, "checkpoint", None) is not None:
        settings.checkpoint = args.checkpoint.strip() or "none"
    return settings


PLOT_FORMATS = (".svg", ".html", ".htm")


def cmd_memory(args) -> int:
    path, _name = parse_target(args.target)
    plot_ext = os.path.splitext(args.plot)[1].lower() if args.plot else None
    if args.plot is not None and plot_ext not in PLOT_FORMATS:
        raise CliError(f"bad --plot {args.plot!r}: the extension picks the format, one of .svg, .html")
    settings = memory_settings(args, path)
    budget = parse_size(args.budget, "--budget") if args.budget is not None else None
    if args.depth is not None and args.depth < 0:
        raise CliError(f"bad --depth {args.depth}: must be 0 or more")
    from gradxray.analyzer.memory_report import memory_report  # the engine: only once the flags are good
    from gradxray.render import memory_report_text

    show_progress = args.progress or sys.stderr.isatty()
    progress = (lambda msg: print(msg, file=sys.stderr, flush=True)) if show_progress else None
    try:
        report = memory_report(args.target, settings, timeline=args.plot is not None, budget=budget,
                               progress=progress)
    except Exception as exc:  # TargetError, or what the model raises when its training step is simulated
        if _debug():
            raise
        msg = " ".join((str(exc) or type(exc).__name__).split())
        _err(msg if path in msg else f"{args.target}: {msg}")
        return 2
    if args.plot is not None:
        write_plot(report, args.plot, plot_ext)
    if args.format == "json":
        print(dumps_compact(report))
    else:
        print(memory_report_text(report, settings.optimizer, depth=args.depth))
    return 0


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str, flag: str) -> int:
    """``24GiB``, ``512MiB``, ``8e9``, ``16GB`` → bytes (GB decimal, GiB binary, a bare number is bytes)."""
    m = _SIZE.match(text or "")
    unit = m.group(2).lower() if m else ""
    if not m or unit not in SIZE_UNITS:
        raise CliError(f"bad {flag} {text!r}: expected a size such as 24GiB, 512MiB, 16GB or 8e9 (bytes)")
    value = int(float(m.group(1)) * SIZE_UNITS[unit])
    if value <= 0:
        raise CliError(f"bad {flag} {text!r}: must be more than 0 bytes")
    return value


def write_plot(report: dict, out: str, ext: str) -> None:
    from gradxray.plot import timeline_html, timeline_svg

    text = timeline_svg(report) if ext == ".svg" else timeline_html(report)
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise CliError(f"cannot write --plot {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}", file=sys.stderr)


# =========================================================================== verify

class _VerifyArgs(argparse.Namespace):
    """verify's flags, read by ``memory_settings``: a `memory` flag verify does not offer reads as unset."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def cmd_verify(args) -> int:
    """Estimate, then import and run the target with torch: estimate vs measured, exit 1 outside tolerance."""
    path, _name = parse_target(args.target)
    settings = memory_settings(_VerifyArgs(**vars(args)), path)
    from gradxray.verify import VerifyError, render_text, run_verify

    try:
        result = run_verify(args.target, settings, peak_tolerance=args.tolerance,
                            count_tolerance=args.count_tolerance)
    except VerifyError as exc:
        _err(str(exc))
        return 2
    except Exception as exc:  # the estimate's TargetError, or what the model raises when it is simulated
        if _debug():
            raise
        msg = " ".join((str(exc) or type(exc).__name__).split())
        _err(msg if path in msg else f"{args.target}: {msg}")
        return 2
    print(dumps_compact(result) if args.format == "json" else render_text(result))
    return 0 if result["ok"] else 1


_SCALAR_LIST = re.compile(r"\[\n\s*((?:-?[\d.eE+]+|null|true|false)(?:,\n\s*(?:-?[\d.eE+]+|null|true|false))*)\n\s*\]")


def dumps_compact(obj) -> str:
    """Indented JSON with lists of numbers (shapes) kept on one line."""
    text = json.dumps(obj, indent=2, default=_json_default)
    return _SCALAR_LIST.sub(lambda m: "[" + ", ".join(p.strip() for p in m.group(1).split(",")) + "]", text)


def _json_default(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


# =========================================================================== rules

def cmd_rules(args) -> int:
    from gradxray.analyzer.rules import all_rules
    from gradxray.render import table

    rules = all_rules()
    if args.format == "json":
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "fix": r.fix,
                           "message": r.message, "summary": r.summary} for r in rules], indent=2))
        return 0
    rows = [[r.code, r.name, r.severity, f"fix: {r.fix}", r.summary] for r in rules]
    for line in table(rows, "lllll"):
        print(line)
    return 0


def cmd_rule(args) -> int:
    from gradxray.analyzer.rules import get_rule

    rule = get_rule(args.code)
    if rule is None:
        _err(f"unknown rule code {args.code!r} (see `{PROG} rules`)")
        return 2
    if args.format == "json":
        print(json.dumps({"code": rule.code, "name": rule.name, "severity": rule.severity,
                          "fix": rule.fix, "message": rule.message, "docs": rule.docs}, indent=2))
        return 0
    print(f"# {rule.name} ({rule.code})\n")
    print(f"Severity: {rule.severity} · Fix: {rule.fix}\n")
    print(f"Message: {rule.message}\n")
    print(rule.docs)
    return 0


# =========================================================================== lsp

def cmd_lsp(args) -> int:
    try:
        from gradxray.lsp_server.server import create_server
    except ModuleNotFoundError as exc:
        _err(f"the language server needs pygls and lsprotocol ({exc.name} is missing)")
        return 2
    server = create_server()
    if args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not port.isdigit():
            _err(f"bad --tcp {args.tcp!r}: expected HOST:PORT")
            return 2
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0


# =========================================================================== parser

def _add_path_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", action="append", metavar="DIR",
                   help="a folder absolute imports are also looked up in, like a workspace root (repeatable)")
    p.add_argument("--search-path", action="append", metavar="DIR",
                   help="a folder of installed packages to read sources from, before sys.path (repeatable)")


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """How a target is built and fed: the flags `memory` and `verify` share."""
    p.add_argument("--batch", type=int, help="batch size (binds the dim B)")
    p.add_argument("--dim", action="append", metavar="NAME=N", help="bind a symbolic dim, e.g. T=1024 (repeatable)")
    p.add_argument("--input", action="append", metavar="NAME=SHAPE[:DTYPE]",
                   help="an input's shape, e.g. x=[B,3,224,224]:float32 (repeatable)")
    p.add_argument("--args", metavar="DICT",
                   help="constructor keyword arguments (or fields of the config class it takes) as a Python literal dict")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {n}")
    return n


def _percent(text: str) -> float:
    from gradxray.verify import parse_percent

    return parse_percent(text)


class _VersionAction(argparse.Action):
    """``--version``: the version and how many hot-path modules run compiled (that imports them, so only
    when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from gradxray import native
        print(f"{PROG} {__version__} ({native.status()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="What PyTorch autograd will do with your model: shapes, saved-for-backward "
                    "memory and gradient flow, without running it.")
    p.add_argument("--version", action=_VersionAction, help="print the version and whether the analysis runs compiled")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="lint files or folders (recursively, *.py)")
    c.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    c.add_argument("--select", action="append", metavar="CODES",
                   help="comma-separated rule codes or prefixes to enable (replaces the configured selection)")
    c.add_argument("--extend-select", action="append", metavar="CODES",
                   help="codes or prefixes to enable on top of the selection")
    c.add_argument("--ignore", action="append", metavar="CODES",
                   help="comma-separated rule codes or prefixes to disable (added to the configured ones)")
    c.add_argument("--output-format", choices=("text", "json", "sarif", "github"), default="text")
    c.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    c.add_argument("--statistics", action="store_true", help="count findings per rule instead of listing them")
    c.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    c.add_argument("--unsafe-fixes", action="store_true", help="with --fix, apply unsafe fixes too")
    c.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                   help="processes tracing a file's root classes (default: one per CPU for large files; 1: none forked)")
    _add_path_flags(c)
    c.set_defaults(func=cmd_check)

    m = sub.add_parser("memory", help="training-step memory and FLOPs of a model, without running it")
    m.add_argument("target", metavar="TARGET", help="path.py:Name (an nn.Module class or a factory function)")
    _add_model_flags(m)
    m.add_argument("--optimizer", choices=("none", "sgd", "sgd-momentum", "adam", "adamw"),
                   help="with an optimizer the step is a steady-state iteration: zero_grad(set_to_none=True), "
                        "forward, backward, step(), its state already allocated")
    m.add_argument("--amp", choices=("off", "fp16", "bf16"),
                   help="what-if: forward and loss under torch.autocast with this dtype (backward outside it)")
    m.add_argument("--budget", metavar="SIZE",
                   help="a memory budget (24GiB, 512MiB, 16GB, 8e9): report the largest batch whose peak fits")
    m.add_argument("--progress", action="store_true",
                   help="print a line per analysis on stderr (the default when stderr is a terminal)")
    m.add_argument("--depth", type=int, metavar="N",
                   help="module table down to this depth (default 2; JSON always lists every module)")
    m.add_argument("--device", choices=("cpu", "cuda"))
    m.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"))
    m.add_argument("--loss", choices=("auto", "sum", "mean", "cross_entropy", "mse"))
    m.add_argument("--checkpoint", metavar="none|blocks|sqrt|PATHS",
                   help="what-if: activation checkpointing (use_reentrant=False) of the repeated blocks, of "
                        "sqrt(N) segments of them, or of comma-separated module paths (globs per component, "
                        "e.g. transformer.h.*)")
    m.add_argument("--format", choices=("text", "json"), default="text")
    m.add_argument("--plot", metavar="OUT.svg|OUT.html",
                   help="also write the live-memory timeline of the step as SVG or self-contained HTML")
    _add_path_flags(m)
    m.set_defaults(func=cmd_memory)

    v = sub.add_parser("verify", help="import and run the model with torch: the estimate next to the measured step")
    v.add_argument("target", metavar="TARGET", help="path.py:Name, as for `memory` (its file is imported and run)")
    _add_model_flags(v)
    v.add_argument("--optimizer", choices=("none", "sgd", "sgd-momentum", "adam", "adamw"))
    v.add_argument("--amp", choices=("off", "fp16", "bf16"), help="run forward and loss under torch.autocast")
    v.add_argument("--device", choices=("cpu", "cuda"), help="where to run it (cuda only when available)")
    v.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"))
    v.add_argument("--loss", choices=("auto", "sum", "mean", "cross_entropy", "mse"))
    v.add_argument("--tolerance", type=_percent, default="5%", metavar="PCT",
                   help="allowed relative error of the peak (default 5%%)")
    v.add_argument("--count-tolerance", type=_percent, default="0%", metavar="PCT",
                   help="allowed relative error of parameters, buffers, gradients, optimizer state and "
                        "activations saved (default 0%%: exact)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    _add_path_flags(v)
    v.set_defaults(func=cmd_verify)

    r = sub.add_parser("rules", help="the rule catalogue")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.set_defaults(func=cmd_rules)

    r1 = sub.add_parser("rule", help="one rule's documentation")
    r1.add_argument("code", metavar="CODE", help="e.g. GX101")
    r1.add_argument("--format", choices=("text", "json"), default="text")
    r1.set_defaults(func=cmd_rule)

    s = sub.add_parser("lsp", help="run the language server (stdio by default)")
    s.add_argument("--stdio", action="store_true", help="use stdio (the default; accepted for LSP clients)")
    s.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead, for debugging")
    s.set_defaults(func=cmd_lsp)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        from gradxray.analyzer.config import ConfigError

        if isinstance(exc, (CliError, ConfigError)):
            _err(str(exc))
            return 2
        if _debug():
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (set GRADXRAY_DEBUG=1 for a traceback)")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
