"""``gradxray memory --plot``: the live-memory timeline as SVG / self-contained HTML.

Through the real CLI on the bundled examples: the document parses, has one layer per memory
category, its phases, and a peak marker equal to the report's ``peak_bytes``; the series add up to
the tracker's totals; and, where Chromium is installed, the page renders to a non-blank picture in
which the categories' colours are visible.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from pathlib import Path

import pytest
from cli_helpers import assert_clean_error

import gradxray.engine as gx
from gradxray.engine.memory import MemoryTracker
from gradxray.plot import SERIES, timeline_html, timeline_svg
from gradxray.render import human_bytes

GPT = ("examples/gpt.py:GPT", "--batch", "2", "--dim", "T=64")
RESNET = ("examples/resnet.py:resnet18", "--batch", "2", "--dim", "H=32", "--dim", "W=32")
COLOURS = {sid: colour for sid, _label, _cats, colour in SERIES}
SVG_NS = "{http://www.w3.org/2000/svg}"


def plot(gradxray, target_args, out: Path, *extra: str) -> dict:
    proc = gradxray("memory", *target_args, "--format", "json", "--plot", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"wrote {out}"
    return json.loads(proc.stdout)


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def by_id(root: ET.Element) -> dict[str, ET.Element]:
    return {el.get("id"): el for el in root.iter() if el.get("id")}


def svg_of_html(html: str) -> ET.Element:
    """The inline <svg> element of the page (well-formed XML by construction)."""
    m = re.search(r"<svg\b.*?</svg>", html, re.S)
    assert m, "no inline svg"
    return ET.fromstring(m.group(0))


def check_chart(root: ET.Element, report: dict, expected_series: set[str]) -> None:
    ids = by_id(root)
    layers = {el.get("id").removeprefix("series-"): el for el in root.iter()
              if local(el.tag) == "g" and el.get("class") == "series"}
    assert set(layers) == expected_series
    for layer in layers.values():
        paths = [el for el in layer if local(el.tag) == "path"]
        assert len(paths) == 1 and paths[0].get("d", "").startswith("M") and paths[0].get("d").endswith("Z")
    # the legend's values at the peak add up to the peak
    assert sum(int(el.get("data-peak-bytes")) for el in layers.values()) == report["peak_bytes"]
    peak = ids["peak"]
    assert int(peak.get("data-bytes")) == report["peak_bytes"]
    assert peak.get("data-phase") == report["peak_phase"]
    label = "".join(t for el in peak.iter() if local(el.tag) == "text" for t in el.itertext())
    assert label.startswith(f"peak {human_bytes(report['peak_bytes'])} in {report['peak_phase']} at ")
    phases = [el.get("data-phase") for el in root.iter() if el.get("class") == "phase"]
    assert {"forward", "backward"} <= set(phases)
    assert phases.index("forward") < phases.index("backward")
    title = "".join(el.text or "" for el in root.iter() if el.get("class") == "title")
    assert report["target"] in title
    subtitle = "".join(el.text or "" for el in root.iter() if el.get("class") == "subtitle")
    assert f"batch {report['batch']}" in subtitle and report["dtype"] in subtitle


def check_timeline(report: dict) -> None:
    """The series are consistent with the report's own numbers."""
    tl = report["timeline"]
    series, xs = tl["series"], tl["x"]
    assert all(len(v) == len(xs) for v in series.values())
    assert all(min(v) >= 0 for v in series.values()), {c: min(v) for c, v in series.items()}
    totals = [sum(col) for col in zip(*series.values())]
    assert max(totals) == report["peak_bytes"] == tl["peak"]["bytes"]
    assert totals[xs.index(tl["peak"]["event"])] == report["peak_bytes"]
    assert set(series["param"]) == {report["params"]["bytes"]}      # parameters live all step long
    assert series["activation"][0] == 0 and series["activation"][-1] == 0
    assert series["param_grad"][0] == 0 and series["param_grad"][-1] == report["grads_bytes"]
    names = [p[0] for p in tl["phases"]]
    assert names[0] == "start" and "forward" in names and "backward" in names
    assert tl["phases"][-1][2] == tl["events"]


def test_svg_plot_of_gpt(gradxray, tmp_path):
    out = tmp_path / "gpt.svg"
    report = plot(gradxray, GPT, out)
    check_timeline(report)
    root = ET.parse(out).getroot()
    assert root.tag == SVG_NS + "svg"
    check_chart(root, report, {"parameters", "buffers_inputs", "param_grads", "activations", "activation_grads"})


def test_html_plot_of_resnet_is_self_contained(gradxray, tmp_path):
    out = tmp_path / "resnet.html"
    report = plot(gradxray, RESNET, out)
    check_timeline(report)
    assert report["buffers_bytes"] > 0 and report["timeline"]["series"]["buffer"][0] == report["buffers_bytes"]
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|//[a-z]|<link\b|\bsrc=|@import|url\(", html, re.I)
    check_chart(svg_of_html(html), report, {"parameters", "buffers_inputs", "param_grads", "activations",
                                            "activation_grads"})
    # the hover read-out's data: one value per drawn point for each series
    data = json.loads(re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>',
                                html, re.S).group(1))
    assert data["x"] == report["timeline"]["x"]
    assert [g["id"] for g in data["groups"]] == ["parameters", "buffers_inputs", "param_grads", "activations",
                                                 "activation_grads"]
    assert all(len(g["values"]) == len(data["x"]) for g in data["groups"])


def test_plot_with_an_optimizer_shows_its_state_and_step(gradxray, tmp_path):
    out = tmp_path / "gpt-adamw.svg"
    report = plot(gradxray, GPT, out, "--optimizer", "adamw")
    tl = report["timeline"]
    assert set(tl["series"]["optimizer"]) == {report["optimizer_bytes"]} and report["optimizer_bytes"] > 0
    assert max(tl["series"]["other"]) > 0                  # the step's temporaries
    totals = [sum(col) for col in zip(*tl["series"].values())]
    assert max(totals) == report["peak_bytes"]
    assert [p[0] for p in tl["phases"]][:4] == ["start", "forward", "backward", "optimizer"]
    check_chart(ET.parse(out).getroot(), report, {"parameters", "buffers_inputs", "optimizer_state", "param_grads",
                                                   "activations", "activation_grads", "temporaries"})


def test_report_without_plot_has_no_timeline(gradxray):
    proc = gradxray("memory", *GPT, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "timeline" not in json.loads(proc.stdout)


def test_plot_with_unknown_extension_is_a_clean_error(gradxray, tmp_path):
    out = tmp_path / "gpt.png"
    assert_clean_error(gradxray("memory", *GPT, "--plot", str(out)), "--plot")
    assert not out.exists()


def test_plot_to_unwritable_path_is_a_clean_error(gradxray, tmp_path):
    assert_clean_error(gradxray("memory", *GPT, "--plot", str(tmp_path / "missing" / "gpt.svg")), "cannot write")


# -- the tracker's timeline -------------------------------------------------------------------------

def test_long_timelines_are_thinned_keeping_the_peak_exact():
    with MemoryTracker() as tracker, gx.memory.phase("forward"):
        held = []
        for i in range(3000):
            t = gx.empty(1 + (i * 37) % 101)
            if i % 3:
                held.append(t)
            if len(held) > 40:
                del held[: (i * 13) % 30]
            del t
        del held
    full = tracker.category_timeline(max_points=10 ** 9)
    thin = tracker.category_timeline(max_points=200)
    assert full["events"] == thin["events"] > 5000 and len(full["x"]) == full["events"]
    assert len(thin["x"]) <= 200 + 3
    assert set(thin["x"]) <= set(full["x"])
    at = {x: i for i, x in enumerate(full["x"])}
    for k, x in enumerate(thin["x"]):
        assert thin["series"]["activation"][k] == full["series"]["activation"][at[x]]
    assert thin["peak"]["event"] in thin["x"]
    assert max(thin["series"]["activation"]) == tracker.peak_bytes == max(full["series"]["activation"])
    assert min(thin["series"]["activation"][1:]) == min(full["series"]["activation"][1:])


def test_storages_are_counted_under_their_final_category():
    """An optimizer allocates its state and then re-tags it: no series may go negative, and the state
    is "optimizer" from the moment it exists."""
    model = gx.nn.Linear(64, 32)
    opt = gx.optim.AdamW(model.parameters())
    with MemoryTracker() as tracker:
        for p in model.parameters():
            tracker.register(p._storage, "param")
        with gx.memory.phase("forward"):
            loss = model(gx.randn(8, 64)).sum()
        loss.backward()
        del loss
        opt.step()
    tl = tracker.category_timeline(relabel={p.grad._storage.uid: "param_grad" for p in model.parameters()})
    series = tl["series"]
    assert all(min(v) >= 0 for v in series.values()), {c: min(v) for c, v in series.items()}
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    state = series["optimizer"]
    assert state[-1] >= 2 * param_bytes and state[0] == 0
    assert "optimizer" in [p[0] for p in tl["phases"]]
    assert series["param_grad"][-1] == param_bytes


def test_renderers_refuse_a_report_without_timeline():
    with pytest.raises(ValueError):
        timeline_svg({"target": "x.py:M"})
    with pytest.raises(ValueError):
        timeline_html({"target": "x.py:M", "timeline": {"x": []}})


# -- what a person sees ------------------------------------------------------------------------------

def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for r in range(height):
        kind, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def blend(colour: str, background: str, alpha: float = 0.88) -> tuple[int, int, int]:
    fg = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    bg = [int(background[i:i + 2], 16) for i in (1, 3, 5)]
    return tuple(round(alpha * f + (1 - alpha) * b) for f, b in zip(fg, bg))


def screenshot(page: Path, png: Path, profile: Path) -> None:
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,700", page.as_uri()],
        capture_output=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
    assert png.is_file() and png.stat().st_size > 0, "chromium wrote no screenshot"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)")
@pytest.mark.parametrize("target_args, ext", [(GPT, ".html"), (RESNET, ".svg")], ids=["gpt-html", "resnet-svg"])
def test_plot_renders_in_a_browser(gradxray, tmp_path, target_args, ext):
    page = tmp_path / f"plot{ext}"
    plot(gradxray, target_args, page)
    png = tmp_path / "plot.png"
    screenshot(page, png, tmp_path / "profile")
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (1200, 700)
    pixels = Counter(row[i:i + 3] for row in rows for i in range(0, len(row), 3))
    assert len(pixels) > 50, "blank or nearly blank screenshot"

    def seen(rgb: tuple[int, int, int], tolerance: int = 6) -> int:
        return sum(n for px, n in pixels.items() if all(abs(p - q) <= tolerance for p, q in zip(px, rgb)))

    # the big layers are visible as areas over the backward band
    for sid in ("parameters", "activations", "param_grads"):
        assert seen(blend(COLOURS[sid], "#fbf1ea")) > 2000, sid
    assert seen(blend(COLOURS["activations"], "#eef3fa")) > 500      # activations grow in forward
    assert seen((0xB0, 0x00, 0x20), 40) > 50                          # the peak marker and its label


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Chromium (apt-get install chromium)")
def test_html_hover_reads_out_the_point_under_the_pointer(gradxray, tmp_path):
    page = tmp_path / "gpt.html"
    report = plot(gradxray, GPT, page)
    # move the pointer to the middle of the peak event's step, then copy the read-out into the DOM
    probe = """<script>
    var d = JSON.parse(document.getElementById('timeline-data').textContent);
    var svg = document.querySelector('#chart svg'), r = svg.getBoundingClientRect();
    var sx = d.left + (d.right - d.left) * (PEAK + 0.5) / d.n, sy = (d.top + d.bottom) / 2;
    svg.dispatchEvent(new MouseEvent('mousemove', {bubbles: true,
        clientX: r.left + sx * r.width / d.width, clientY: r.top + sy * r.height / d.height}));
    document.body.setAttribute('data-readout', document.getElementById('tip').textContent);
    </script></body>""".replace("PEAK", str(report["timeline"]["peak"]["event"]))
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", probe), encoding="utf-8")
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,700", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
    readout = re.search(r'data-readout="([^"]*)"', proc.stdout)
    assert readout, proc.stdout[-2000:]
    text = readout.group(1)
    assert text.startswith(f"{human_bytes(report['peak_bytes'])} live · event {report['timeline']['peak']['event']} "
                           f"· {report['peak_phase']}")
    for label in ("parameters", "activations", "gradients of activations", "parameter gradients"):
        assert label in text
