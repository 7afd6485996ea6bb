"""The language server's settings from ``initializationOptions``, and span conversion (no server process)."""
from __future__ import annotations

from gradxray.analyzer.positions import span_chars, split_lines
from gradxray.analyzer.results import Span
from gradxray.analyzer.settings import Settings
from gradxray.lsp_server.server import _settings_from_options


def test_options():
    s = _settings_from_options({"batch-size": 4, "dims": {"T": 128, "H": 0}, "device": "cuda",
                                "optimizer": "adamw", "dtype": 16, "select": ["gx1"], "ignore": ["gx901"]})
    assert s.batch == 4 and s.dims == {"T": 128, "H": 224, "W": 224}
    assert (s.device, s.optimizer, s.dtype) == ("cuda", "adamw", "float32")
    assert s.select == ["GX1"] and s.ignore == ["GX901"]
    assert _settings_from_options({"batchSize": 2}).batch == 2
    assert _settings_from_options(None) == Settings()
    # malformed: what came before the bad value is kept, the rest is left out
    s = _settings_from_options({"batch": 3, "dims": {"T": "x"}, "device": "cuda"})
    assert s.batch == 3 and s.dims == Settings().dims and s.device == "cpu"


def test_span_chars():
    lines = split_lines("é = x.detach()  \nz = 1\n")
    start = len("é = ".encode())
    assert span_chars(lines, Span("m.py", 1, start, 1, len("é = x.detach()".encode()))) == (1, 4, 1, 14)
    assert span_chars(lines, Span("m.py", 1, start)) == (1, 4, 1, 14)     # no end: the end of the line's text
    assert span_chars(lines, Span("m.py", 2, 5)) == (2, 5, 2, 5)          # never before the start
