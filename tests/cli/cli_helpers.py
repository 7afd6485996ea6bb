from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).with_name("fake_cli.py")


def _run(cmd: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GRADXRAY_DEBUG", None)
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def gradxray():
    """The real CLI: ``python -m gradxray ...``."""
    def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
        return _run([sys.executable, "-m", "gradxray", *args], cwd)
    return run


@pytest.fixture
def fake_gradxray():
    """The real CLI with a stand-in analyzer and memory report (see fake_cli.py)."""
    def run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
        return _run([sys.executable, str(FAKE), *args], cwd)
    return run


def assert_clean_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and not proc.stdout, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gradxray: error: ") and needle in lines[0], lines[0]
