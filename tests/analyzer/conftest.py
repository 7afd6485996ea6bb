from __future__ import annotations

import textwrap

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.settings import Settings


@pytest.fixture
def analyze():
    """analyze(src, **settings) -> Analysis of a dedented inline source."""
    def run(src: str, path: str = "model.py", **kw):
        return analyze_source(textwrap.dedent(src), path, Settings(**kw))
    return run
