"""Text for people: units, dtype abbreviations, inlay-hint labels, hover markdown, memory report.

Pure functions over ``gradxray.analyzer.results`` (and the ``memory`` report
dict), shared by the CLI and the language server.  Nothing here computes an
analysis; stdlib only, so importing it is cheap.

Formats (documented in the design's *Editor surfaces*):

* inlay hint, one tensor:      ``: [B, T, 384] f32``
* inlay hint, several tensors: ``q: [B, T, 384] f32, k: [B, T, 384] f32, v: [B, T, 384] f32``
  (at most four; then ``, … +2 more``)
* memory part of the hint:     `` · 24.0 MiB saved`` (all calls of the line), tooltip = breakdown
* hover: one fenced block per tensor ``(tensor) q: [B, T, 384] float32``, ``---``,
  then a two-column table (saved for backward, saved by, forward/backward FLOPs,
  gradient reaches, shapes at the configured sizes).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from gradxray.analyzer.results import ClassSummary, LineFact, TensorFact

DTYPE_SHORT = {
    "float32": "f32", "float": "f32", "float16": "f16", "half": "f16", "bfloat16": "bf16",
    "float64": "f64", "double": "f64", "int64": "i64", "long": "i64", "int32": "i32",
    "int": "i32", "int16": "i16", "short": "i16", "int8": "i8", "uint8": "u8", "bool": "b8",
    "complex64": "c64", "complex128": "c128", "float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2",
}
OPTIMIZER_DISPLAY = {"none": "no optimizer", "sgd": "SGD", "sgd-momentum": "SGD+momentum",
                     "adam": "Adam", "adamw": "AdamW"}
MAX_HINT_TENSORS = 4


def short_dtype(dtype: str) -> str:
    d = (dtype or "").removeprefix("torch.")
    return DTYPE_SHORT.get(d, d or "?")


def long_dtype(dtype: str) -> str:
    return (dtype or "?").removeprefix("torch.")


def human_bytes(n: int | float | None) -> str:
    """``0 B``, ``512 B``, ``1.5 KiB``, ``24.0 MiB``, ``3.1 GiB`` (binary units, one decimal)."""
    if n is None:
        return "?"
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1024:
        return f"{sign}{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024.0
        if n < 1024:
            return f"{sign}{n:.1f} {unit}"
    return f"{sign}{n / 1024.0:.1f} TiB"


def human_count(n: int | None) -> str:
    """``950``, ``1.7K``, ``11.2M``, ``1.3B`` (decimal)."""
    if n is None:
        return "?"
    a = abs(n)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{n / div:.1f}{suffix}"
    return str(int(n))


def human_flops(n: int | None) -> str:
    """``0``, ``7.1 MFLOP``, ``1.11 GFLOP`` (decimal, three significant digits)."""
    if n is None:
        return "?"
    a = abs(n)
    for div, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{n / div:.3g} {prefix}FLOP"
    return f"{int(n)} FLOP"


def shape_list(shape: Iterable | None) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join(str(d) for d in shape) + "]"


def tensor_short(t: "TensorFact") -> str:
    return f"{t.shape_text()} {short_dtype(t.dtype)}"


# --------------------------------------------------------------------------- inlay hints

def inlay_shape_label(fact: "LineFact") -> str:
    ts = fact.tensors
    if not ts:
        return ""
    if len(ts) == 1:
        return ": " + tensor_short(ts[0])
    parts = [f"{t.name}: {tensor_short(t)}" for t in ts[:MAX_HINT_TENSORS]]
    if len(ts) > MAX_HINT_TENSORS:
        parts.append(f"… +{len(ts) - MAX_HINT_TENSORS} more")
    return ", ".join(parts)


def inlay_memory_label(fact: "LineFact") -> str:
    if fact.saved_bytes <= 0:
        return ""
    return f" · {human_bytes(fact.saved_bytes)} saved"


def _per_call(fact: "LineFact") -> str:
    total = human_bytes(fact.saved_bytes)
    if fact.calls > 1:
        return f"{total} ({human_bytes(fact.saved_bytes // fact.calls)} per call × {fact.calls} calls)"
    return total


def saved_breakdown_markdown(fact: "LineFact") -> str:
    """The inlay memory part's tooltip: total, then one table row per saving op (first call)."""
    lines = [f"**Saved for backward by this line:** {_per_call(fact)}", ""]
    if fact.saved:
        lines += ["| op | saves | shape | bytes |", "|:--|:--|:--|--:|"]
        for s in fact.saved:
            note = "" if s.nbytes else " (already held)"
            lines.append(f"| `{s.op}` | {s.what} | {shape_list(s.shape)} {long_dtype(s.dtype)} "
                         f"| {human_bytes(s.nbytes)}{note} |")
        if fact.calls > 1:
            lines += ["", f"_per op: first of {fact.calls} calls_"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- hover

def _saved_by(fact: "LineFact") -> str:
    """New storage per saving op (first call); tensors already held (parameters, aliases) are counted, not listed."""
    items = [f"`{s.op}` {s.what} {shape_list(s.shape)} {short_dtype(s.dtype)} · {human_bytes(s.nbytes)}"
             for s in fact.saved if s.nbytes]
    held = sum(1 for s in fact.saved if not s.nbytes)
    if held:
        items.append(f"+ {held} tensor{'s' if held != 1 else ''} already held (parameters, views)")
    return "<br>".join(items) if items else "—"


def _names(names: list[str], limit: int = 5) -> str:
    if len(names) <= limit:
        return ", ".join(f"`{n}`" for n in names)
    return ", ".join(f"`{n}`" for n in names[:limit]) + f" … and {len(names) - limit} more"


def hover_markdown(fact: "LineFact") -> str:
    blocks = [f"```python\n(tensor) {t.name}: {t.shape_text()} {long_dtype(t.dtype)}\n```"
              for t in fact.tensors]
    rows = []
    if fact.saved_bytes > 0:
        rows.append(("saved for backward", _per_call(fact)))
        rows.append(("saved by", _saved_by(fact)))
    else:
        rows.append(("saved for backward", "0 B (nothing)"))
    rows.append(("forward FLOPs", human_flops(fact.flops_forward)))
    rows.append(("backward FLOPs", human_flops(fact.flops_backward)))
    if fact.grad_params:
        n = len(fact.grad_params)
        rows.append(("gradient reaches", f"{n} parameter{'s' if n != 1 else ''}: {_names(fact.grad_params)}"))
    concrete = [t for t in fact.tensors if t.concrete_shape and tuple(map(str, t.concrete_shape)) != tuple(t.shape)]
    if concrete:
        rows.append(("at the configured sizes",
                     ", ".join(f"{t.name}: {shape_list(t.concrete_shape)}" for t in concrete)))
    if fact.calls > 1:
        rows.append(("runs", f"{fact.calls} times per forward"))
    table = ["| autograd | |", "|:--|:--|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(blocks) + "\n\n---\n\n" + "\n".join(table)


def class_hover_markdown(cls: "ClassSummary", batch: int | None = None, dtype: str | None = None,
                         optimizer: str | None = None) -> str:
    head = f"```python\n(module) {cls.name}: {human_count(cls.params)} params\n```"
    rows = [("parameters", f"{cls.params:,} · {human_bytes(cls.param_bytes)}"),
            ("activations saved", human_bytes(cls.activations_saved_bytes)),
            ("peak (training step)", human_bytes(cls.peak_bytes))]
    for name, (shape, dt) in cls.inputs.items():
        rows.append((f"input `{name}`", f"[{', '.join(shape)}] {long_dtype(dt)}"))
    cfg = []
    if batch is not None:
        cfg.append(f"B={batch}")
    if dtype:
        cfg.append(short_dtype(dtype))
    if optimizer:
        cfg.append(OPTIMIZER_DISPLAY.get(optimizer, optimizer))
    if cfg:
        rows.append(("configured", ", ".join(cfg)))
    table = ["| training step | |", "|:--|:--|"] + [f"| {k} | {v} |" for k, v in rows]
    return head + "\n\n---\n\n" + "\n".join(table)


def class_lens_title(cls: "ClassSummary", batch: int, dtype: str, optimizer: str) -> str:
    """``12.4M params · peak 3.1 GiB @ B=8 (fp32, AdamW)``."""
    dt = short_dtype(dtype).replace("f32", "fp32").replace("f16", "fp16").replace("f64", "fp64")
    return (f"{human_count(cls.params)} params · peak {human_bytes(cls.peak_bytes)} @ B={batch} "
            f"({dt}, {OPTIMIZER_DISPLAY.get(optimizer, optimizer)})")


# --------------------------------------------------------------------------- memory report (CLI)

def gradient_flow_lines(flow: dict | None) -> list[str]:
    """The memory report's gradient-flow section: a count, then one line per parameter none reaches."""
    if not flow:
        return []
    missing = flow.get("not_reached") or []
    frozen = flow.get("frozen") or 0
    head = f"  gradient flow: {flow.get('reached', 0)} parameter tensors reached"
    if frozen:
        head += f", {frozen} frozen (requires_grad=False)"
    if not missing:
        return ["", head + ", none cut off."]
    lines = ["", head + f", {len(missing)} not reached:"]
    for item in missing:
        where = f" at {item['file']}:{item['line']}" if item.get("line") else ""
        lines.append(f"    {item.get('param', '?')}: {item.get('reason', '?')}{where}")
    return lines


def table(rows: list[list[str]], align: str) -> list[str]:
    """Rows of cells as aligned text lines; ``align`` holds ``l`` or ``r`` per column."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)]
        out.append("  ".join(cells).rstrip())
    return out


AMP_DISPLAY = {"fp16": "AMP fp16", "bf16": "AMP bf16"}
DEFAULT_DEPTH = 2


def module_depth(path: str) -> int:
    """0 for the model itself, 1 for its children, ..."""
    return 0 if not path else path.count(".") + 1


def _peak_where(report: dict) -> str:
    phase = report.get("peak_phase")
    parts = [f"during {phase}"] if phase else []
    if report.get("peak_module"):
        parts.append(f"in {report['peak_module']}")
    loc = report.get("peak_location")
    if loc and loc.get("line"):
        parts.append(f"at {os.path.basename(str(loc.get('file') or '?'))}:{loc['line']}")
    return f"({', '.join(parts)})" if parts else ""


def memory_report_text(report: dict, optimizer: str | None = None, depth: int | None = None) -> str:
    """``gradxray memory``'s text output; ``optimizer`` is shown when the report names none.  The module
    table goes down to ``depth`` (default 2) and says how many deeper modules it leaves out."""
    g = report.get
    optimizer = g("optimizer") or optimizer or "none"
    config = [f"device {g('device', '?')}", f"dtype {g('dtype', '?')}", f"batch {g('batch', '?')}",
              OPTIMIZER_DISPLAY.get(optimizer, optimizer)]
    if g("amp") and g("amp") != "off":
        config.append(AMP_DISPLAY.get(g("amp"), g("amp")))
    head = [f"{g('target', '?')}", "  " + " · ".join(config)]
    inputs = g("inputs") or {}
    for name, spec in inputs.items():
        assumed = "  (assumed from the layer that first consumes it: set it with --input or a pragma)" \
            if spec.get("source") == "inferred" else ""
        head.append(f"  {'input':<9} {name}: {shape_list(spec.get('shape'))} {spec.get('dtype', '?')}{assumed}")
    outputs = g("outputs") or []
    for i, o in enumerate(outputs):
        label = "output" if len(outputs) == 1 else f"output {i}"
        head.append(f"  {label:<9} {shape_list(o.get('shape'))} {o.get('dtype', '?')}")
    if g("loss"):
        head.append(f"  {'loss':<9} {g('loss')}")
    params = g("params") or {}
    flops = g("flops") or {}
    summary = [
        ["parameters", f"{params.get('count', 0):,}", human_bytes(params.get("bytes", 0)), ""],
        ["buffers", "", human_bytes(g("buffers_bytes", 0)), ""],
        ["gradients", "", human_bytes(g("grads_bytes", 0)), ""],
        ["optimizer state", "", human_bytes(g("optimizer_bytes", 0)), ""],
        ["activations saved", "", human_bytes(g("activations_saved_bytes", 0)), "(for backward)"],
        ["peak", "", human_bytes(g("peak_bytes", 0)), _peak_where(report)],
    ]
    if g("per_sample_bytes") is not None:
        summary.append(["per extra sample", "", human_bytes(g("per_sample_bytes")), "(peak growth per unit of B)"])
    if g("budget_bytes") is not None:
        mb = g("max_batch")
        fits = ("?" if mb is None else "nothing fits" if mb == 0 else f"B = {mb}")
        summary.append(["largest batch", "", fits, f"(peak within {human_bytes(g('budget_bytes'))})"])
    summary += [
        ["FLOPs forward", "", human_flops(flops.get("forward")), ""],
        ["FLOPs backward", "", human_flops(flops.get("backward")), ""],
    ]
    ckpt = g("checkpoint") or {}
    if ckpt.get("modules"):
        regions = len(ckpt.get("segments") or ckpt["modules"])
        summary.append(["FLOPs recomputed", "", human_flops(ckpt.get("recompute_flops")),
                        f"(checkpoint {ckpt.get('policy')}: {regions} region{'s' if regions != 1 else ''})"])
    lines = head + [""] + ["  " + line for line in table(summary, "lrrl")]
    scaling = g("batch_scaling") or {}
    if scaling.get("note"):
        lines.append(f"  note: {scaling['note']}")
    modules = g("modules") or []
    if modules:
        limit = DEFAULT_DEPTH if depth is None else depth
        shown = [m for m in modules if module_depth(m.get("path") or "") <= limit]
        rows = [["module", "class", "params", "output shape", "saved", "flops"]]
        for m in shown:
            out_shape = m.get("output_shape")
            rows.append([m.get("path") or "(root)", str(m.get("class", "?")),
                         human_count(m.get("params", 0)),
                         shape_list(out_shape) if out_shape is not None else "-",
                         human_bytes(m.get("saved_bytes", 0)), human_flops(m.get("flops", 0))])
        text = table(rows, "llrlrr")
        lines += ["", "  " + text[0], "  " + "-" * len(text[0])] + ["  " + t for t in text[1:]]
        hidden = len(modules) - len(shown)
        if hidden:
            lines.append(f"  … {hidden} deeper module{'s' if hidden != 1 else ''} not shown (--depth N)")
    lines += gradient_flow_lines(g("gradient_flow"))
    unresolved = g("unresolved") or []
    if unresolved:
        lines += ["", f"  not traced ({len(unresolved)}); the figures above leave these out:"]
        for u in unresolved:
            lines.append(f"    {u.get('file', '?')}:{u.get('line', '?')}: {u.get('reason', '')}")
    else:
        lines += ["", "  forward fully traced."]
    return "\n".join(lines)
