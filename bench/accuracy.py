"""Memory accuracy (issue 5): gradxray's static estimate of a training step against the same step run with
torch on the CPU (float32, train mode), beside the two estimates a user has without gradxray.

Per model and batch size, one table:

* the forward + backward peak: gradxray's estimate, the measured live-storage peak, and torchinfo's
  "Estimated Total Size" (inputs + forward outputs x 2 + parameters), with their relative errors;
* activations saved for backward: gradxray's estimate against the saved-tensor hooks;
* the peak of a steady-state iteration with an AdamW step: gradxray's estimate, the measured peak,
  and accelerate's rule of thumb for Adam training (4 x the parameter bytes: parameters, gradients
  and two optimizer states), with their relative errors.

The models are those of ``tests/corpus/test_accuracy.py`` (torchvision and HF models from small
configs) plus the two bundled examples; ``--all-torchvision`` adds every other torchvision classifier
that traces.  A model the analyzer does not trace completely is listed with its first reason and
left out of the summary.  torchinfo is optional (``n/a`` without it).

Run: python bench/accuracy.py [--models resnet18,gpt2] [--batches 1,2] [--all-torchvision]
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.corpus.harness import CorpusModel, corpus  # noqa: E402
from tests.corpus.test_accuracy import SIDE, SIDES, accuracy_models, compare  # noqa: E402

EXAMPLE_DIMS = {"gpt": {"T": 64}, "resnet": {"H": 32, "W": 32}}


def example_models() -> list[CorpusModel]:
    """The bundled examples (examples/gpt.py, examples/resnet.py) as corpus entries."""
    def builder(name, cls):
        def build():
            spec = importlib.util.spec_from_file_location(f"bench_example_{name}",
                                                          os.path.join(ROOT, "examples", f"{name}.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return getattr(mod, cls)()
        return build

    return [
        CorpusModel("examples", "gpt (example)", os.path.join(ROOT, "examples", "gpt.py"), "GPT",
                    {"idx": "[B, T]:int64", "targets": "[B, T]:int64"}, EXAMPLE_DIMS["gpt"], builder("gpt", "GPT")),
        CorpusModel("examples", "resnet (example)", os.path.join(ROOT, "examples", "resnet.py"), "ResNet",
                    {"x": "[B, 3, H, W]:float32"}, EXAMPLE_DIMS["resnet"], builder("resnet", "ResNet")),
    ]


def other_torchvision(skip: set[str]) -> list[CorpusModel]:
    """Every other torchvision classifier, at the accuracy set's image side where it accepts it."""
    out = []
    for cm in corpus("torchvision"):
        if cm.name in skip:
            continue
        side = SIDES.get(cm.name, SIDE if not cm.name.startswith(("vit_", "swin", "maxvit", "inception"))
                         else cm.dims["H"])
        out.append(dataclasses.replace(cm, dims={"H": side, "W": side}))
    return out


def torchinfo_estimate(model, inputs) -> int | None:
    """torchinfo's "Estimated Total Size" in bytes (None when torchinfo is absent or fails on the model)."""
    try:
        import torchinfo
    except ImportError:
        return None
    try:
        stats = torchinfo.summary(model, input_data=inputs, mode="train", verbose=0, device="cpu")
    except Exception:
        return None
    return int(stats.total_input + stats.total_output_bytes + stats.total_param_bytes)


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.2f}"


def _err(estimate: int | None, measured: int) -> float | None:
    return None if estimate is None or not measured else (estimate - measured) / measured


def _pct(e: float | None) -> str:
    return "n/a" if e is None else f"{e:+.2%}"


COLUMNS = [("model", 22, "<"), ("B", 2, ">"), ("measured", 9, ">"), ("gradxray", 9, ">"), ("err", 8, ">"),
           ("torchinfo", 9, ">"), ("err", 9, ">"), ("saved meas", 10, ">"), ("saved gx", 9, ">"),
           ("adamw meas", 10, ">"), ("gradxray", 9, ">"), ("err", 8, ">"), ("4xparams", 9, ">"), ("err", 9, ">")]


def _row(values) -> str:
    return "  ".join(f"{str(v):{align}{width}}" for v, (_, width, align) in zip(values, COLUMNS))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated model names (default: the accuracy set and the examples)")
    ap.add_argument("--batches", default="1,2", help="comma-separated batch sizes (default 1,2)")
    ap.add_argument("--all-torchvision", action="store_true", help="add every other torchvision classifier")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    batches = [int(b) for b in args.batches.split(",")]
    models = accuracy_models() + example_models()
    if args.all_torchvision and importlib.util.find_spec("torchvision") is not None:
        models += other_torchvision({cm.name for cm in models})
    if args.models:
        wanted = set(args.models.split(","))
        models = [cm for cm in models if cm.name in wanted or cm.name.split(" ")[0] in wanted]
    if importlib.util.find_spec("torchinfo") is None:
        print("torchinfo is not installed: its column reads n/a (pip install torchinfo)")
    print("bytes in MiB; err = (estimate - measured) / measured; peaks: forward + backward (gradients start "
          "as None), AdamW: a steady-state iteration including the step")
    print(_row([c for c, _, _ in COLUMNS]))
    peak_errors, adamw_errors, info_errors, rule_errors, untraced = [], [], [], [], []
    saved_exact = saved_total = 0
    for cm in models:
        for batch in batches:
            try:
                plain = compare(cm, batch, keep_model=True)
            except Exception as e:          # the analyzer refused the target, or torch failed on it
                untraced.append(f"{cm.name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                break
            if not plain.traced:
                untraced.append(f"{cm.name}: {plain.unresolved[0][:160]}")
                break
            adamw = compare(cm, batch, "adamw")
            m, est = plain.measured, plain.estimate
            info = torchinfo_estimate(plain.torch_model, plain.torch_inputs)
            rule = 4 * m.param_bytes
            errs = (plain.peak_error, _err(info, m.peak_bytes), adamw.peak_error,
                    _err(rule, adamw.measured.peak_bytes))
            peak_errors.append(errs[0])
            adamw_errors.append(errs[2])
            if errs[1] is not None:
                info_errors.append(errs[1])
            rule_errors.append(errs[3])
            saved_total += 1
            saved_exact += est["activations_saved_bytes"] == m.activations_saved_bytes
            print(_row([cm.name, batch, _mib(m.peak_bytes), _mib(est["peak_bytes"]), _pct(errs[0]),
                        _mib(info), _pct(errs[1]), _mib(m.activations_saved_bytes),
                        _mib(est["activations_saved_bytes"]), _mib(adamw.measured.peak_bytes),
                        _mib(adamw.estimate["peak_bytes"]), _pct(errs[2]), _mib(rule), _pct(errs[3])]),
                  flush=True)
            in_place_peak, taken_out = plain.instrument_peak
            if est["peak_bytes"] != m.peak_bytes and taken_out:
                print(f"    measured peak includes {taken_out} bytes of gradient accumulated out of place under "
                      f"the tracker (a plain torch run adds in place); without them: {in_place_peak} bytes, "
                      f"estimate {'equal' if in_place_peak == est['peak_bytes'] else 'differs'}")
    print()
    for label, errors in (("gradxray forward+backward peak", peak_errors), ("gradxray AdamW step peak", adamw_errors),
                          ("torchinfo Estimated Total Size", info_errors), ("4 x parameters (Adam)", rule_errors)):
        if errors:
            absolute = [abs(e) for e in errors]
            under = sum(e < 0 for e in errors)
            print(f"{label:32s} median |err| {statistics.median(absolute):8.2%}  max |err| {max(absolute):8.2%}  "
                  f"under-estimates {under}/{len(errors)}")
    if saved_total:
        print(f"{'gradxray saved activations':32s} equal to the saved-tensor hooks in {saved_exact}/{saved_total} runs")
    if untraced:
        print(f"\nnot traced completely ({len(untraced)}), left out:")
        for line in untraced:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
