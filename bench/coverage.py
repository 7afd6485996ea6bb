"""Coverage of real model code (issue 4): the corpus of ``tests/corpus/harness.py`` -- every
torchvision classification builder, the listed timm architectures and HF transformers models from
small configs -- traced statically from the installed sources and compared with torch's forward
hooks.  Printed per package: models fully traced / missed / wrong / refused with the issue's
target, the top reasons for misses (the first place each model lost precision, grouped by file and
message), the static analysis time per model (median, max, and the slowest models), and for how
many models the analyzer finds the inputs with none declared (inferred from the layers that
consume them) and whether they are the declared ones.

Needs torchvision, timm and transformers installed (torch 2.14.1 + torchvision 0.29.1 resolve
here); packages that are absent are skipped.

Run: python bench/coverage.py [--package torchvision|timm|transformers] [--models a,b] [--verbose]
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import re
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.corpus.harness import corpus, discover_inputs, run_one  # noqa: E402
from tests.corpus.test_corpus import TARGETS  # noqa: E402


def _reason_key(reason: str) -> str:
    """Group reasons that differ only in their line number."""
    return re.sub(r":\d+:", ":", reason, count=1)[:150]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", choices=list(TARGETS), action="append")
    ap.add_argument("--models", help="comma-separated model names (default: all)")
    ap.add_argument("--verbose", action="store_true", help="one line per model")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    only = set(args.models.split(",")) if args.models else None
    summary = []
    for package in args.package or list(TARGETS):
        if importlib.util.find_spec(package) is None:
            print(f"{package}: not installed, skipped")
            continue
        models = [cm for cm in corpus(package) if only is None or cm.name in only]
        outcomes = []
        start = time.perf_counter()
        for i, cm in enumerate(models, 1):
            o = run_one(cm)
            outcomes.append(o)
            if args.verbose:
                first = (o.wrong or o.reasons or [""])[0]
                print(f"  [{i}/{len(models)}] {o.status:7s} {cm.name:34s} {o.seconds * 1000:7.0f} ms  {first[:110]}",
                      flush=True)
        wall = time.perf_counter() - start
        counts = collections.Counter(o.status for o in outcomes)
        traced = counts["traced"]
        share = traced / len(outcomes) if outcomes else 0.0
        times = [o.seconds for o in outcomes]
        print(f"\n{package}: {traced}/{len(outcomes)} fully traced ({share:.0%}; target {TARGETS[package]:.0%}), "
              f"{counts['miss']} missed, {counts['error']} refused, {counts['wrong']} with wrong shapes  "
              f"[corpus run {wall:.1f} s incl. torch]")
        if times:
            slow = sorted(outcomes, key=lambda o: -o.seconds)[:3]
            print(f"  analysis time per model: median {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms (slowest: "
                  + ", ".join(f"{o.model.name} {o.seconds * 1000:.0f} ms" for o in slow) + ")")
        reasons = collections.Counter(_reason_key(o.reasons[0]) for o in outcomes
                                      if o.status in ("miss", "error") and o.reasons)
        if reasons:
            print("  top reasons for misses (first lost place per model):")
            for reason, n in reasons.most_common(8):
                print(f"    {n:3d}  {reason}")
        for o in outcomes:
            if o.status == "wrong":
                print(f"  WRONG {o.model.name}: " + "; ".join(o.wrong[:3]))
        found = [discover_inputs(cm) for cm in models]
        fcounts = collections.Counter(d.status for d in found)
        print(f"  inputs found with none declared (from the layers that consume them): "
              f"{fcounts['found']}/{len(found)}, {fcounts['wrong']} wrong")
        for d in found:
            if d.status != "found":
                print(f"    {d.status} {d.model.name}: " + (f"found {d.found}, declared {d.declared}"
                                                          if d.status == "wrong" else d.detail[:120]))
        summary.append((package, traced, len(outcomes), counts["wrong"], fcounts["found"], fcounts["wrong"]))
    if summary:
        print("\npackage        traced   share  target  wrong   inputs found  wrong")
        for package, traced, n, wrong, found, found_wrong in summary:
            print(f"{package:13s} {traced:3d}/{n:<3d} {traced / n:6.0%}  {TARGETS[package]:6.0%}  {wrong:5d}"
                  f"   {found:3d}/{n:<3d}     {found_wrong:5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
