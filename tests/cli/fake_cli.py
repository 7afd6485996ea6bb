"""Run the real CLI with stand-ins for the analyzer and the memory report.

The stand-in analyzer (``tests/support/fake_analyzer.py``) marks every
``<expr>.detach()`` call as a gradient cut of two parameters and then runs the
real rules; the stand-in memory report returns a fixed dict.  This tests
everything the CLI renders independently of what the analyzer infers.
Usage: ``python tests/cli/fake_cli.py check ...``.
"""
from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gradxray.analyzer.results import Analysis, Diagnostic, Span  # noqa: E402
from gradxray.cli import main  # noqa: E402
from tests.support.fake_analyzer import install  # noqa: E402


def describe(a: Analysis, tree: ast.Module, source: str) -> None:
    """A GX901 note on each ``def forward_unknown``."""
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef) and n.name == "forward_unknown":
            a.diagnostics.append(Diagnostic("GX901", "No input shape known for `x` of `M.forward`",
                                            "information", Span(a.path, n.lineno, n.col_offset)))


FAKE_REPORT = {
    "target": None, "device": "cpu", "dtype": "float32", "batch": 2,
    "inputs": {"x": {"shape": [2, 3, 32, 32], "dtype": "float32"}},
    "params": {"count": 11173962, "bytes": 44695848}, "buffers_bytes": 38400,
    "grads_bytes": 44695848, "optimizer_bytes": 0, "activations_saved_bytes": 9437184,
    "peak_bytes": 100000000, "peak_phase": "backward",
    "flops": {"forward": 1110000000, "backward": 2220000000},
    "outputs": [{"shape": [2, 10], "dtype": "float32"}],
    "modules": [{"path": "", "class": "ResNet", "params": 11173962, "output_shape": [2, 10],
                 "saved_bytes": 9437184, "flops": 1110000000},
                {"path": "conv1", "class": "Conv2d", "params": 1728, "output_shape": [2, 64, 32, 32],
                 "saved_bytes": 24576, "flops": 7077888}],
    "unresolved": [],
}


def fake_memory_report(target: str, settings, **_options) -> dict:
    if "Boom" in target:
        raise ValueError("cannot construct Boom: missing argument 'dim'")
    report = dict(FAKE_REPORT, target=target, batch=settings.batch)
    report["settings"] = {"dims": settings.dims, "inputs": settings.inputs, "args": settings.args,
                          "optimizer": settings.optimizer, "device": settings.device}
    return report


install(["head.weight", "head.bias"], describe)
mod = types.ModuleType("gradxray.analyzer.memory_report")
mod.memory_report = fake_memory_report
sys.modules["gradxray.analyzer.memory_report"] = mod

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
