"""Rule registry, rule selection and suppression.

Each rule lives in its own module ``gxNNN_<name>.py`` in this package (ruff
layout).  A rule module defines:

``CODE``      ``"GX101"``
``NAME``      ``"detach-cuts-gradient"`` (kebab case)
``MESSAGE``   one-line message template (``str.format`` fields documented in the module)
``SEVERITY``  ``"error" | "warning" | "information" | "hint"``
``FIX``       ``"safe" | "unsafe" | "none"`` (fix safety)
docstring     the rule's documentation, with the headings *What it does*,
              *Why is this bad?*, *Example*, *Use instead*, *References*
``check``     optional ``check(analysis, source, settings) -> Iterable[Diagnostic]``.
              Rules without ``check`` are emitted by the analyzer itself
              (e.g. GX901); the registry still knows their docs.

Modules are discovered by name, so adding a rule is adding a file.

:func:`run_rules` is called by the analyzer at the end of an analysis.  It runs
the selected rules and then filters *all* diagnostics (the analyzer's too) by

* ``select`` / ``ignore`` code prefixes from the settings (the most specific
  prefix wins; ``ALL`` matches every code; an empty ``select`` means ``ALL``);
* ``# noqa`` (every code) or ``# noqa: GX101, GX2..`` (those codes) in a comment
  on the diagnostic's first or last line;
* ``# gradxray: noqa`` (every code) or ``# gradxray: noqa: GX101`` (those codes)
  in a comment anywhere in the file.
"""
from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import re
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from gradxray.analyzer.results import Analysis, Diagnostic
    from gradxray.analyzer.settings import Settings

SEVERITIES = ("error", "warning", "information", "hint")
FIX_SAFETY = ("safe", "unsafe", "none")
_CODE_RE = re.compile(r"^GX\d{3}$")
_MODULE_RE = re.compile(r"^gx\d{3}_[a-z0-9_]+$")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    message: str
    severity: str
    fix: str
    docs: str
    module: str
    check: Callable[..., Iterable["Diagnostic"]] | None = None

    @property
    def summary(self) -> str:
        """First sentence of *What it does*, for catalogues."""
        m = re.search(r"What it does\s*\n+(.+?)(?:\n\s*\n|$)", self.docs, re.S)
        text = " ".join((m.group(1) if m else self.message).split())
        first = re.match(r"(.+?[.!?])(?:\s|$)", text)
        return first.group(1) if first else text


class RuleError(Exception):
    """A rule module is malformed (a bug in gradxray, caught by the tests)."""


_REGISTRY: dict[str, Rule] | None = None


def _load_rule(modname: str) -> Rule:
    mod = importlib.import_module(f"{__name__}.{modname}")
    try:
        code, name, message = mod.CODE, mod.NAME, mod.MESSAGE
        severity, fix = mod.SEVERITY, mod.FIX
    except AttributeError as exc:
        raise RuleError(f"rule module {modname} lacks {exc.name}") from None
    if not _CODE_RE.match(code) or not modname.startswith(code.lower() + "_"):
        raise RuleError(f"rule module {modname}: code {code!r} does not match the file name")
    if severity not in SEVERITIES:
        raise RuleError(f"rule {code}: bad severity {severity!r}")
    if fix not in FIX_SAFETY:
        raise RuleError(f"rule {code}: bad fix safety {fix!r}")
    docs = inspect.cleandoc(mod.__doc__ or "")
    return Rule(code=code, name=name, message=message, severity=severity, fix=fix,
                docs=docs, module=mod.__name__, check=getattr(mod, "check", None))


def registry() -> dict[str, Rule]:
    """All rules, by code, in code order."""
    global _REGISTRY
    if _REGISTRY is None:
        rules = {}
        for info in pkgutil.iter_modules(__path__):
            if _MODULE_RE.match(info.name):
                rule = _load_rule(info.name)
                if rule.code in rules:
                    raise RuleError(f"duplicate rule code {rule.code}")
                rules[rule.code] = rule
        _REGISTRY = dict(sorted(rules.items()))
    return _REGISTRY


def get_rule(code: str) -> Rule | None:
    return registry().get(code.strip().upper())


def all_rules() -> list[Rule]:
    return list(registry().values())


# --------------------------------------------------------------------------- selection

def _specificity(code: str, prefixes: Iterable[str]) -> int:
    best = -1
    for p in prefixes:
        p = p.strip().upper()
        if p == "ALL":
            best = max(best, 0)
        elif p and code.startswith(p):
            best = max(best, len(p))
    return best


def is_enabled(code: str | None, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> bool:
    """ruff-style selection: the most specific matching prefix wins; ties go to ``ignore``."""
    if not code:
        return True
    select = list(select) or ["ALL"]
    s = _specificity(code, select)
    if s < 0:
        return False
    return s > _specificity(code, ignore)


# --------------------------------------------------------------------------- suppression

_CODES = r"[A-Za-z]+[0-9]+(?:\s*,?\s*[A-Za-z]+[0-9]+)*"
_LINE_NOQA = re.compile(r"#\s*noqa(?:\s*:\s*(?P<codes>" + _CODES + r"))?", re.I)
_FILE_NOQA = re.compile(r"#\s*gradxray\s*:\s*noqa(?:\s*:\s*(?P<codes>" + _CODES + r"))?", re.I)


@dataclass
class Suppressions:
    file: set[str] | None            # None = every code; empty set = nothing
    lines: dict[int, set[str] | None]  # line -> codes (None = every code)

    def suppressed(self, code: str | None, line: int, end_line: int | None = None) -> bool:
        if code is None:
            return False
        if self.file is None or code in self.file:
            return True
        for ln in {line, end_line or line}:
            if ln in self.lines:
                codes = self.lines[ln]
                if codes is None or code in codes:
                    return True
        return False


def _comments(source: str) -> list[tuple[int, str]]:
    """(line, comment text) for every comment; falls back to a plain scan on broken source."""
    out: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out.append((tok.start[0], tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out = []
        for i, text in enumerate(source.splitlines(), 1):
            j = text.find("#")
            if j >= 0:
                out.append((i, text[j:]))
    return out


def _codes(group: str | None) -> set[str] | None:
    if group is None:
        return None
    return {c.upper() for c in re.findall(r"[A-Za-z]+[0-9]+", group)}


def parse_suppressions(source: str) -> Suppressions:
    file_codes: set[str] | None = set()
    lines: dict[int, set[str] | None] = {}
    if "noqa" not in source.lower():
        return Suppressions(file=file_codes, lines=lines)
    for line, text in _comments(source):
        fm = _FILE_NOQA.search(text)
        if fm:
            codes = _codes(fm.group("codes"))
            if codes is None or file_codes is None:
                file_codes = None
            else:
                file_codes |= codes
            continue
        m = _LINE_NOQA.search(text)
        if m:
            codes = _codes(m.group("codes"))
            prev = lines.get(line, set())
            lines[line] = None if codes is None or prev is None else prev | codes
    return Suppressions(file=file_codes, lines=lines)


def noqa_insertion(text: str, code: str) -> tuple[int, str] | None:
    """What to insert into a line's ``text``, and at which character, so that its ``# noqa``
    covers ``code``; None when it already does."""
    m = _LINE_NOQA.search(text)
    if m is None:
        return len(text.rstrip()), f"  # noqa: {code}"
    codes = _codes(m.group("codes"))
    if codes is None or code in codes:
        return None  # a bare noqa, or one that names the code
    return m.end("codes"), f", {code}"


# --------------------------------------------------------------------------- running

def run_rules(analysis: "Analysis", source: str, settings: "Settings | None" = None) -> "Analysis":
    """Run the selected rules on ``analysis`` and filter its diagnostics in place.

    Never raises because of a rule: a rule that fails is skipped (its failure is
    recorded as an ``Unresolved`` note so that it is visible, not silent).
    """
    from gradxray.analyzer.results import Unresolved

    if analysis.error:
        return analysis
    select = list(settings.select) if settings is not None else []
    ignore = list(settings.ignore) if settings is not None else []
    diagnostics = list(analysis.diagnostics)
    for rule in registry().values():
        if rule.check is None or not is_enabled(rule.code, select, ignore):
            continue
        try:
            diagnostics.extend(rule.check(analysis, source, settings))
        except Exception as exc:  # a bug in a rule must not take the analysis down
            analysis.unresolved.append(
                Unresolved(file=analysis.path, line=1,
                           reason=f"rule {rule.code} failed: {type(exc).__name__}: {exc}"))
    sup = parse_suppressions(source)
    kept = []
    seen = set()
    for d in diagnostics:
        if not is_enabled(d.code, select, ignore):
            continue
        if sup.suppressed(d.code, d.span.line, d.span.end_line):
            continue
        key = (d.code, d.span.line, d.span.col, d.span.end_line, d.span.end_col, d.message)
        if key in seen:
            continue
        seen.add(key)
        kept.append(d)
    kept.sort(key=lambda d: (d.span.line, d.span.col, d.code))
    analysis.diagnostics = kept
    return analysis


__all__ = ["Rule", "RuleError", "registry", "get_rule", "all_rules", "is_enabled",
           "parse_suppressions", "Suppressions", "noqa_insertion", "run_rules"]
