"""Instructions one analysis of a file executes (one process, warm), counted under valgrind.

Wall times on a shared machine move by up to 2x within minutes; an instruction count does not, so a
change to the hot path is compared by this count (before / after, same file).  Two fresh processes are
counted, one analysing the file ``FEW`` times and one ``MANY`` times after the same warm-up; the
difference divided by ``MANY - FEW`` is the count of one analysis, with start-up and imports cancelled
out.  The hash seed is fixed so that both processes take the same paths through dicts and sets.

Where the hot-path modules are compiled (gradxray/native.py), the analysis is counted a second time
with every module run from its source.

Run: python bench/instruction_count.py [--file PATH] [--ref GIT_REV]
(``--ref`` also counts the analysis as of another commit, checked out in a temporary worktree: a
fresh checkout has no compiled modules, so that count is from source.)
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILE = os.path.join(ROOT, "bench", "fixtures", "large_model.py")
sys.path.insert(0, ROOT)
from gradxray import native  # noqa: E402
FEW, MANY = 1, 5
PURE_PYTHON_ENV = native.PURE_PYTHON_ENV

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from gradxray.analyzer import analyze_source
from gradxray.analyzer.config import settings_for_file
path = sys.argv[2]
with open(path, encoding="utf-8") as fh:
    source = fh.read()
settings = settings_for_file(path)
for _ in range(2 + int(sys.argv[3])):          # two warm-up runs, then the counted ones
    analyze_source(source, path, settings, jobs=1)
"""


def instructions(code_root: str, path: str, runs: int, from_source: bool = False) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop(PURE_PYTHON_ENV, None)
    if from_source:
        env[PURE_PYTHON_ENV] = "1"
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, "-c", CHILD, code_root, path, str(runs)],
                         capture_output=True, text=True, env=env, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_analysis(code_root: str, path: str, from_source: bool = False) -> float:
    return (instructions(code_root, path, MANY, from_source)
            - instructions(code_root, path, FEW, from_source)) / (MANY - FEW)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=DEFAULT_FILE, help="the model file to analyse")
    parser.add_argument("--ref", help="also count the analysis as of this git revision")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count (Debian: apt install valgrind)")
        return 2
    path = os.path.abspath(args.file)
    name = os.path.relpath(path, ROOT)
    here = per_analysis(ROOT, path)
    print(f"{name}: {here / 1e6:.1f} million instructions per analysis (working tree, {native.status()})")
    if native.built():
        source = per_analysis(ROOT, path, from_source=True)
        print(f"{name}: {source / 1e6:.1f} million instructions per analysis (working tree, every module from "
              f"source); compiled / source = {here / source:.3f}")
    if args.ref:
        with tempfile.TemporaryDirectory() as tmp:
            tree = os.path.join(tmp, "ref")
            subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, args.ref], check=True,
                           capture_output=True)
            try:
                there = per_analysis(tree, path)       # a fresh checkout has no builds: from source
            finally:
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], capture_output=True)
        print(f"{os.path.relpath(path, ROOT)}: {there / 1e6:.1f} million instructions per analysis ({args.ref}); "
              f"working tree / {args.ref} = {here / there:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
