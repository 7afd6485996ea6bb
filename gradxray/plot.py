"""``gradxray memory --plot``: the live-memory timeline of a training step as SVG or HTML.

Renders the ``"timeline"`` part of a memory report (see ``MemoryTracker.category_timeline``):
a stacked step chart of the live bytes per category over every allocation and free, phases as
labelled bands, the peak marked with its size, phase and module.  Nothing here analyses
anything, and the output never references the network: the HTML is one self-contained file
(inline SVG, a little CSS, and a script for hover read-outs).
"""
from __future__ import annotations

import json
import math
from html import escape

from gradxray.render import OPTIMIZER_DISPLAY, human_bytes

# Stacked bottom to top: what lives all step long first, the short-lived last.
# (id, label, engine categories, colour)
SERIES = (
    ("parameters", "parameters", ("param",), "#4c72b0"),
    ("buffers_inputs", "buffers and inputs", ("buffer", "input"), "#8c8c8c"),
    ("optimizer_state", "optimizer state", ("optimizer",), "#8172b3"),
    ("param_grads", "parameter gradients", ("param_grad",), "#dd8452"),
    ("activations", "activations", ("activation",), "#55a868"),
    ("activation_grads", "gradients of activations", ("grad",), "#c44e52"),
    ("temporaries", "temporaries", ("other",), "#ccb974"),
)
EXTRA_COLOURS = ("#64b5cd", "#937860", "#da8bc3", "#8c613c")
PHASE_FILLS = {"forward": "#eef3fa", "loss": "#f6eefa", "backward": "#fbf1ea", "optimizer": "#f1eefa",
               "recompute": "#fcefc0"}
DEFAULT_PHASE_FILL = "#f3f3f3"

WIDTH, HEIGHT = 1200, 680
LEFT, TOP, RIGHT, BOTTOM = 96, 96, WIDTH - 290, HEIGHT - 64     # the plot area
CHAR_WIDTH = 0.56                                               # average glyph width / font size (sans-serif)

_UNITS = (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024), ("B", 1))


def _attr(text) -> str:
    return escape(str(text), quote=True)


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _nice_step(span: float, ticks: int) -> float:
    """A 1-2-2.5-5 x 10^k step giving about ``ticks`` intervals over ``span``."""
    raw = max(span, 1e-12) / ticks
    base = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * base:
            return m * base
    return 10 * base


def _byte_ticks(top: int) -> tuple[float, list[tuple[float, str]]]:
    """(axis maximum, [(bytes, label)]) with one binary unit for all labels: the lowest axis that
    a 1-2-2.5-5 step divides into 3 to 7 intervals."""
    unit_name, unit = next(((n, u) for n, u in _UNITS if top >= u), ("B", 1))
    span = top / unit
    base = 10 ** math.floor(math.log10(span / 7))
    candidates = []
    for step in (m * base * e for e in (1, 10) for m in (1, 2, 2.5, 5)):
        count = math.ceil(span / step)
        if 3 <= count <= 7:
            candidates.append((count * step, count, step))
    axis_max, count, step = min(candidates) if candidates else (math.ceil(span), 1, math.ceil(span))
    return axis_max * unit, [(i * step * unit, f"{_num(i * step)} {unit_name}" if i else "0")
                             for i in range(count + 1)]


def _groups(series: dict[str, list[int]]) -> list[dict]:
    """The drawn series: the known categories merged as in ``SERIES``, then any others as they are."""
    out, known = [], set()
    for sid, label, cats, colour in SERIES:
        known.update(cats)
        present = [c for c in cats if c in series]
        if present:
            values = [sum(col) for col in zip(*(series[c] for c in present))]
            out.append({"id": sid, "label": label, "categories": present, "colour": colour, "values": values})
    extra = [c for c in series if c not in known]
    for i, c in enumerate(extra):
        out.append({"id": "category-" + "".join(ch if ch.isalnum() else "-" for ch in c), "label": c,
                    "categories": [c], "colour": EXTRA_COLOURS[i % len(EXTRA_COLOURS)], "values": series[c]})
    return out


def _short_place(peak: dict, modules: list[dict]) -> str:
    """``transformer.h.0.attn (gpt.py:58)``; the model's class for its own top level."""
    where = peak.get("module") or next((m.get("class", "") for m in modules if m.get("path") == ""), "")
    file, line = peak.get("file"), peak.get("line")
    site = f"{str(file).replace(chr(92), '/').rsplit('/', 1)[-1]}:{line}" if file and line else ""
    if where and site:
        return f"{where} ({site})"
    return where or site or "the model's top level"


def peak_label(report: dict) -> str:
    """``peak 581.3 MiB in backward at transformer.h.0.attn (gpt.py:58)``."""
    peak = report["timeline"]["peak"]
    place = _short_place(peak, report.get("modules") or [])
    return f"peak {human_bytes(peak['bytes'])} in {peak.get('phase') or '?'} at {place}"


def _subtitle(report: dict) -> str:
    parts = []
    if report.get("batch") is not None:
        parts.append(f"batch {report['batch']}")
    for key in ("dtype", "device"):
        if report.get(key):
            parts.append(str(report[key]))
    opt = report.get("optimizer")
    if isinstance(opt, str):
        parts.append(OPTIMIZER_DISPLAY.get(opt, opt))
    if report.get("amp") not in (None, "off"):
        parts.append(f"AMP {report['amp']}")
    policy = (report.get("checkpoint") or {}).get("policy") if isinstance(report.get("checkpoint"), dict) else None
    if policy not in (None, "none"):
        parts.append(f"checkpoint {policy}")
    inputs = report.get("inputs") or {}
    parts.extend(f"{name} {info.get('shape')} {info.get('dtype')}" for name, info in inputs.items())
    return " · ".join(parts)


class _Chart:
    """Coordinates and the SVG body shared by the SVG and HTML outputs."""

    def __init__(self, report: dict):
        timeline = report.get("timeline")
        if not timeline or not timeline.get("x"):
            raise ValueError("the report has no memory timeline to plot")
        self.report = report
        self.timeline = timeline
        self.xs: list[int] = timeline["x"]
        self.n = max(int(timeline["events"]), self.xs[-1] + 1)
        self.groups = _groups(timeline["series"])
        self.totals = [sum(col) for col in zip(*(g["values"] for g in self.groups))]
        self.peak = timeline["peak"]
        peak_bytes = max(int(self.peak["bytes"]), max(self.totals))
        self.y_max, self.y_ticks = _byte_ticks(max(1, int(peak_bytes * 1.08)))
        self.peak_index = self.xs.index(self.peak["event"]) if self.peak.get("event") in self.xs else \
            max(range(len(self.totals)), key=self.totals.__getitem__)

    def px(self, event: float) -> float:
        return LEFT + (RIGHT - LEFT) * event / self.n

    def py(self, nbytes: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * nbytes / self.y_max

    # -- pieces ---------------------------------------------------------------------------------
    def _phases(self) -> list[str]:
        out = ['<g id="phases">']
        for name, start, end in self.timeline["phases"]:
            x0, x1 = self.px(start), self.px(end)
            fill = PHASE_FILLS.get(name, DEFAULT_PHASE_FILL)
            out.append(f'<g class="phase" data-phase="{_attr(name)}" data-start="{start}" data-end="{end}">'
                       f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 0.5):.1f}" height="{BOTTOM - TOP}" '
                       f'fill="{fill}"/>')
            if start > 0:
                out.append(f'<line x1="{x0:.1f}" y1="{TOP}" x2="{x0:.1f}" y2="{BOTTOM}" class="phase-edge"/>')
            if x1 - x0 >= len(name) * 12 * CHAR_WIDTH + 8:
                out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{TOP + 16}" class="phase-label">{_attr(name)}</text>')
            out.append("</g>")
        out.append("</g>")
        return out

    def _axes(self) -> list[str]:
        out = ['<g id="axes">']
        for value, label in self.y_ticks:
            y = self.py(value)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" class="tick" text-anchor="end">{label}</text>')
        step = max(1, int(_nice_step(self.n, 8)))
        for event in range(0, self.n + 1, step):
            x = self.px(event)
            out.append(f'<line x1="{x:.1f}" y1="{BOTTOM}" x2="{x:.1f}" y2="{BOTTOM + 5}" class="axis"/>')
            out.append(f'<text x="{x:.1f}" y="{BOTTOM + 19}" class="tick" text-anchor="middle">{event:,}</text>')
        out.append(f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" class="axis"/>')
        out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" class="axis"/>')
        shown = len(self.xs)
        thinned = f" ({shown:,} of {self.n:,} points drawn; the peak is exact)" if shown < self.n else ""
        out.append(f'<text x="{(LEFT + RIGHT) / 2:.1f}" y="{BOTTOM + 42}" class="axis-title" text-anchor="middle">'
                   f'allocations and frees since the step began{thinned}</text>')
        out.append(f'<text transform="translate({LEFT - 70},{(TOP + BOTTOM) / 2:.1f}) rotate(-90)" '
                   f'class="axis-title" text-anchor="middle">live memory</text>')
        out.append("</g>")
        return out

    def _area(self, lower: list[int], upper: list[int]) -> str:
        """A step-shaped band: each point's value holds until the next point."""
        ends = [*self.xs[1:], self.n]
        top = [f"M{self.px(self.xs[0]):.1f},{self.py(upper[0]):.1f}"]
        for k, end in enumerate(ends):
            top.append(f"H{self.px(end):.1f}")
            if k + 1 < len(upper) and upper[k + 1] != upper[k]:
                top.append(f"V{self.py(upper[k + 1]):.1f}")
        bottom = [f"V{self.py(lower[-1]):.1f}"]
        for k in range(len(lower) - 1, -1, -1):
            bottom.append(f"H{self.px(self.xs[k]):.1f}")
            if k > 0 and lower[k - 1] != lower[k]:
                bottom.append(f"V{self.py(lower[k - 1]):.1f}")
        return "".join(top) + "".join(bottom) + "Z"

    def _layers(self) -> list[str]:
        out = ['<g id="series">']
        lower = [0] * len(self.xs)
        for g in self.groups:
            upper = [a + b for a, b in zip(lower, g["values"])]
            at_peak = g["values"][self.peak_index]
            out.append(f'<g id="series-{g["id"]}" class="series" data-label="{_attr(g["label"])}" '
                       f'data-categories="{_attr(" ".join(g["categories"]))}" data-peak-bytes="{at_peak}" '
                       f'data-max-bytes="{max(g["values"])}">'
                       f'<title>{_attr(g["label"])}: {human_bytes(at_peak)} at the peak, '
                       f'{human_bytes(max(g["values"]))} at most</title>'
                       f'<path d="{self._area(lower, upper)}" fill="{g["colour"]}" class="layer"/></g>')
            lower = upper
        # the envelope, so that a peak one event wide still shows as a line up to the peak marker
        out.append(f'<path id="total" d="{self._outline(lower)}" class="total-line"/>')
        out.append("</g>")
        return out

    def _outline(self, totals: list[int]) -> str:
        ends = [*self.xs[1:], self.n]
        d = [f"M{self.px(self.xs[0]):.1f},{self.py(totals[0]):.1f}"]
        for k, end in enumerate(ends):
            d.append(f"H{self.px(end):.1f}")
            if k + 1 < len(totals) and totals[k + 1] != totals[k]:
                d.append(f"V{self.py(totals[k + 1]):.1f}")
        return "".join(d)

    def _peak(self) -> list[str]:
        k = self.peak_index
        x = (self.px(self.xs[k]) + self.px(self.xs[k + 1] if k + 1 < len(self.xs) else self.n)) / 2
        y = self.py(self.peak["bytes"])
        label = peak_label(self.report)
        width = len(label) * 13 * CHAR_WIDTH
        right_side = x + 10 + width <= RIGHT
        tx = x + 10 if right_side else max(LEFT + 4, x - 10 - width)
        ty = y - 12
        return [
            f'<g id="peak" data-bytes="{self.peak["bytes"]}" data-phase="{_attr(self.peak.get("phase") or "")}" '
            f'data-module="{_attr(self.peak.get("module") or "")}" data-event="{self.xs[self.peak_index]}">',
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}" class="peak-line"/>',
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{BOTTOM}" class="peak-line"/>',
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" class="peak-dot"/>',
            f'<rect x="{tx - 5:.1f}" y="{ty - 15:.1f}" width="{width + 10:.1f}" height="21" rx="3" class="peak-box"/>',
            f'<text x="{tx:.1f}" y="{ty:.1f}" class="peak-text">{_attr(label)}</text>',
            "</g>",
        ]

    def _legend(self) -> list[str]:
        x = RIGHT + 28
        out = [f'<g id="legend"><text x="{x}" y="{TOP - 4}" class="legend-title">at the peak</text>']
        y = TOP + 14
        for g in reversed(self.groups):             # top to bottom, as they are stacked
            label = g["label"]
            out.append(f'<g class="legend-entry" data-series="{g["id"]}">'
                       f'<rect x="{x}" y="{y}" width="14" height="14" rx="2" fill="{g["colour"]}"/>'
                       f'<text x="{x + 22}" y="{y + 11}" class="legend-label">{_attr(label)}</text>'
                       f'<text x="{x + 22}" y="{y + 28}" class="legend-value">'
                       f'{human_bytes(g["values"][self.peak_index])}</text></g>')
            y += 42
        out.append(f'<text x="{x}" y="{y + 10}" class="legend-total">total {human_bytes(self.peak["bytes"])}</text>')
        # the phase key: narrow bands (loss, recompute) have no room for their name
        y += 44
        out.append(f'<text x="{x}" y="{y}" class="legend-title">phases</text>')
        names = dict.fromkeys(name for name, _start, _end in self.timeline["phases"] if name not in ("start", "end"))
        for name in names:
            y += 20
            out.append(f'<g class="phase-key" data-phase="{_attr(name)}">'
                       f'<rect x="{x}" y="{y - 11}" width="14" height="14" rx="2" class="phase-swatch" '
                       f'fill="{PHASE_FILLS.get(name, DEFAULT_PHASE_FILL)}"/>'
                       f'<text x="{x + 22}" y="{y}" class="legend-value">{_attr(name)}</text></g>')
        out.append("</g>")
        return out

    def body(self) -> list[str]:
        report = self.report
        title = f"Live memory over one training step — {report.get('target', '')}"
        return [
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
            f'<text x="{LEFT - 70}" y="34" class="title">{_attr(title)}</text>',
            f'<text x="{LEFT - 70}" y="58" class="subtitle">{_attr(_subtitle(report))}</text>',
            *self._phases(), *self._layers(), *self._axes(), *self._peak(), *self._legend(),
        ]


_STYLE = """
.title{font:600 19px sans-serif;fill:#222}
.subtitle{font:13px sans-serif;fill:#666}
.tick{font:12px sans-serif;fill:#555}
.axis-title{font:12px sans-serif;fill:#666}
.axis{stroke:#888;stroke-width:1}
.grid{stroke:#000;stroke-opacity:.08;stroke-width:1}
.phase-edge{stroke:#999;stroke-width:1;stroke-dasharray:3 3}
.phase-label{font:600 12px sans-serif;fill:#666;text-anchor:middle;letter-spacing:.04em}
.layer{stroke:none;fill-opacity:.88}
.total-line{fill:none;stroke:#333;stroke-width:1;stroke-opacity:.7}
.peak-line{stroke:#b00020;stroke-width:1.2;stroke-dasharray:5 4}
.peak-dot{fill:#b00020;stroke:#fff;stroke-width:1.5}
.peak-box{fill:#fff;fill-opacity:.92;stroke:#b00020;stroke-width:1}
.peak-text{font:600 13px sans-serif;fill:#b00020}
.legend-title{font:600 12px sans-serif;fill:#666}
.legend-label{font:13px sans-serif;fill:#222}
.legend-value{font:12px sans-serif;fill:#666}
.legend-total{font:600 13px sans-serif;fill:#222}
.phase-swatch{stroke:#999;stroke-width:.8}
"""


def timeline_svg(report: dict) -> str:
    """A standalone SVG document of the report's memory timeline."""
    chart = _Chart(report)
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" id="gradxray-memory-timeline">',
        f"<style>{_STYLE}</style>",
        *chart.body(),
        "</svg>",
        "",
    ])


_HTML_STYLE = """
body{margin:0;padding:12px;background:#fff;font-family:sans-serif}
#chart{position:relative;width:%dpx;max-width:100%%}
#chart svg{display:block;width:100%%;height:auto}
#tip{position:absolute;pointer-events:none;display:none;background:#fff;border:1px solid #bbb;
  border-radius:4px;padding:6px 8px;font:12px sans-serif;color:#222;box-shadow:0 2px 6px rgba(0,0,0,.15);
  white-space:nowrap}
#tip .sw{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
#tip td{padding:0 4px}
#tip td.v{text-align:right}
""" % WIDTH

# Hover read-out: the point under the pointer (each point's value holds until the next one).
_SCRIPT = """
(function () {
  var d = JSON.parse(document.getElementById('timeline-data').textContent);
  var svg = document.querySelector('#chart svg'), tip = document.getElementById('tip');
  var cursor = document.getElementById('cursor');
  function esc(s) { return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;'); }
  function fmt(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + ' ' + units[i] : n + ' B';
  }
  function phaseAt(x) {
    for (var i = 0; i < d.phases.length; i++) {
      if (x >= d.phases[i][1] && x < d.phases[i][2]) return d.phases[i][0];
    }
    return '';
  }
  function hide() { tip.style.display = 'none'; cursor.setAttribute('visibility', 'hidden'); }
  svg.addEventListener('mousemove', function (ev) {
    var r = svg.getBoundingClientRect();
    var sx = (ev.clientX - r.left) * d.width / r.width, sy = (ev.clientY - r.top) * d.height / r.height;
    if (sx < d.left || sx > d.right || sy < d.top || sy > d.bottom) { hide(); return; }
    var event = (sx - d.left) / (d.right - d.left) * d.n, lo = 0, hi = d.x.length - 1;
    while (lo < hi) {                       // the last drawn point at or before the pointer
      var mid = (lo + hi + 1) >> 1;
      if (d.x[mid] <= event) lo = mid; else hi = mid - 1;
    }
    var total = 0, rows = '';
    for (var g = d.groups.length - 1; g >= 0; g--) {
      var s = d.groups[g];
      total += s.values[lo];
      rows += '<tr><td><span class="sw" style="background:' + s.colour + '"></span>' + esc(s.label) +
              '</td><td class="v">' + fmt(s.values[lo]) + '</td></tr>';
    }
    tip.innerHTML = '<b>' + fmt(total) + '</b> live &middot; event ' + d.x[lo] + ' &middot; ' +
                    esc(phaseAt(d.x[lo])) + '<br>' + esc(d.module[lo] || '(top level)') +
                    '<table>' + rows + '</table>';
    tip.style.display = 'block';
    var px = ev.clientX - r.left + 14, py = ev.clientY - r.top + 14;
    if (px + tip.offsetWidth > r.width) px = ev.clientX - r.left - tip.offsetWidth - 14;
    if (py + tip.offsetHeight > r.height) py = r.height - tip.offsetHeight;
    tip.style.left = px + 'px';
    tip.style.top = py + 'px';
    var cx = d.left + (d.right - d.left) * d.x[lo] / d.n;
    cursor.setAttribute('x1', cx);
    cursor.setAttribute('x2', cx);
    cursor.setAttribute('visibility', 'visible');
  });
  svg.addEventListener('mouseleave', hide);
})();
"""


def timeline_html(report: dict) -> str:
    """A self-contained HTML page: the chart inline, with hover read-outs; no network references."""
    chart = _Chart(report)
    data = {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": RIGHT, "top": TOP, "bottom": BOTTOM,
        "n": chart.n, "x": chart.xs, "module": chart.timeline.get("module") or [""] * len(chart.xs),
        "phases": chart.timeline["phases"],
        "groups": [{"id": g["id"], "label": g["label"], "colour": g["colour"], "values": g["values"]}
                   for g in chart.groups],
    }
    # inside <script>, "</" would end the element early; "\\/" is the same string to JSON
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = f"gradxray memory — {report.get('target', '')}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_attr(title)}</title>",
        f"<style>{_HTML_STYLE}{_STYLE}</style>",
        "</head><body>",
        '<div id="chart">',
        f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" id="gradxray-memory-timeline">',
        *chart.body(),
        f'<line id="cursor" x1="0" y1="{TOP}" x2="0" y2="{BOTTOM}" stroke="#333" stroke-width="1" '
        'visibility="hidden" pointer-events="none"/>',
        "</svg>",
        '<div id="tip"></div>',
        "</div>",
        f'<script type="application/json" id="timeline-data">{payload}</script>',
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
        "",
    ])
