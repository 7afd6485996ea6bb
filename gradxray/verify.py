"""``gradxray verify TARGET``: the static estimate next to a real torch run of the same training step.

The one command that imports and executes user code (it says so on stderr first).  It computes
the estimate exactly as ``gradxray memory`` does, then imports TARGET's file, builds the model with
the same arguments, makes torch inputs of the estimate's shapes and dtypes, and measures one
training step with :mod:`gradxray.measure`: parameters, buffers, gradients, optimizer state
(steady state, after a warm-up step), bytes saved for backward and the peak of live memory (a
live-storage tracker on CPU; ``torch.cuda.max_memory_allocated`` minus the baseline on CUDA).

Tolerances: the peak may differ by ``--tolerance`` (default 5 %); the counted categories
(parameters, buffers, gradients, optimizer state, activations saved) are sums of storage sizes
the estimate models exactly, so they must match within ``--count-tolerance`` (default 0 %).

torch is imported only inside :func:`run_verify`; importing this module costs nothing.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Callable

TORCH_MISSING = "gradxray verify needs torch: pip install 'gradxray[torch]'"
DEFAULT_PEAK_TOLERANCE = 5.0        # percent
DEFAULT_COUNT_TOLERANCE = 0.0       # percent
AMP_DTYPES = {"off": None, "fp16": "float16", "bf16": "bfloat16"}   # --amp -> the autocast dtype
OPTIMIZERS = {   # --optimizer -> (torch.optim class name, keyword arguments): torch's defaults otherwise
    "sgd": ("SGD", {"lr": 1e-3}),
    "sgd-momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3}),
}


class VerifyError(Exception):
    """A user-facing failure (missing torch, no CUDA, the target cannot be imported or run): exit 2."""


def parse_percent(text: str) -> float:
    """``"5%"`` / ``"5"`` / ``"0.5 %"`` -> 5.0 / 5.0 / 0.5 (argparse type for the tolerances)."""
    import argparse

    body = text.strip().removesuffix("%").strip()
    try:
        value = float(body)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 5% or 0.5, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative percentage, got {text!r}")
    return value


def torch_available() -> bool:
    """Whether torch can be imported, without importing it (the estimate runs first, torch-free)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):   # ValueError: sys.modules["torch"] is None (import blocked)
        return False


def _import_torch():
    try:
        import torch
    except ImportError:
        raise VerifyError(TORCH_MISSING) from None
    return torch


# --------------------------------------------------------------------------------------------
# Building the real model
# --------------------------------------------------------------------------------------------


def _package_root(path: str) -> tuple[str, str]:
    """(folder to put on sys.path, dotted module name) for a file, following ``__init__.py`` up so
    that relative imports inside a package work."""
    folder, filename = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(filename)[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    return folder, ".".join(parts)


def import_target_file(path: str, extra_paths: list[str]):
    """Import ``path`` as a module with its folder (or its package's root) and ``extra_paths`` on
    sys.path.  Raises VerifyError with what went wrong."""
    root, dotted = _package_root(path)
    for folder in [root, *extra_paths][::-1]:
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        if "." in dotted:
            return importlib.import_module(dotted)
        name = dotted if dotted not in sys.modules else f"_gradxray_verify_{dotted}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise VerifyError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module      # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    except VerifyError:
        raise
    except SyntaxError as exc:
        raise VerifyError(f"{exc.filename or path}:{exc.lineno or 1}:{exc.offset or 1}: "
                          f"SyntaxError: {exc.msg}") from None
    except (Exception, SystemExit) as exc:
        raise VerifyError(f"{path}: importing it failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _default_config(annotation, module) -> Any:
    """A default instance of a dataclass / namedtuple annotation defined in ``module``, else None."""
    if isinstance(annotation, str):
        annotation = getattr(module, annotation.strip("'\""), None)
    if not inspect.isclass(annotation) or getattr(annotation, "__module__", None) != module.__name__:
        return None
    if dataclasses.is_dataclass(annotation) or (issubclass(annotation, tuple) and hasattr(annotation, "_fields")):
        return annotation()
    return None


_CONFIG_PARAMS = ("config", "cfg", "conf", "args", "hparams", "params", "model_config")


def _config_classes(module) -> list:
    return [v for v in vars(module).values() if inspect.isclass(v) and getattr(v, "__module__", None) ==
            module.__name__ and (dataclasses.is_dataclass(v) or (issubclass(v, tuple) and hasattr(v, "_fields")))]


def _args_through_config(cls, params, args: dict, module) -> dict:
    """``args`` naming fields of the file's config class (``GPT(config)``, ``--args '{"n_layer": 4}'``):
    the config built with them, as the estimate does; otherwise an error."""
    for p in params:
        ann = p.annotation
        if isinstance(ann, str):
            ann = getattr(module, ann.strip("'\""), None)
        candidates = [ann] if ann in _config_classes(module) else (
            _config_classes(module) if p.name in _CONFIG_PARAMS else [])
        for config_cls in candidates:
            fields = ({f.name for f in dataclasses.fields(config_cls)} if dataclasses.is_dataclass(config_cls)
                      else set(config_cls._fields))
            if set(args) <= fields:
                return {p.name: config_cls(**args)}
    raise VerifyError(f"--args {', '.join(sorted(args))}: not parameters of {cls.__name__}.__init__ "
                      f"nor fields of a config class it takes")


def constructor_kwargs(cls, args: dict, module) -> dict:
    """The keyword arguments the estimate constructs ``cls`` with: ``args`` when the constructor
    takes them all (or has ``**kwargs``), and a default instance of the file's config dataclass
    for a required parameter annotated with one."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return dict(args)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    kwargs = dict(args) if args and (has_var_kw or set(args) <= names) else {}
    if args and not kwargs:
        kwargs = _args_through_config(cls, params, args, module)
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty or p.name in kwargs:
            continue
        config = _default_config(p.annotation, module) if p.annotation is not p.empty else None
        if config is not None:
            kwargs[p.name] = config
    return kwargs


def build_model(module, name: str, args: dict, torch):
    """``Name`` from the imported file: an ``nn.Module`` class built like the estimate builds it, or a
    factory function called with ``args``."""
    obj = getattr(module, name, None)
    if obj is None:
        raise VerifyError(f"{module.__file__}: importing it defines no {name!r}")
    try:
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module):
            model = obj(**constructor_kwargs(obj, args, module))
        elif callable(obj):
            model = obj(**args)
        else:
            raise VerifyError(f"{name} is a {type(obj).__name__}, not an nn.Module class or a factory function")
    except VerifyError:
        raise
    except (Exception, SystemExit) as exc:
        raise VerifyError(f"building {name} failed: {_describe(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise VerifyError(f"{name}(...) returned a {type(model).__name__}, not an nn.Module")
    return model


def make_inputs(specs: dict[str, dict], device: str, torch) -> dict:
    """torch tensors with the estimate's input shapes and dtypes.  Floating inputs are standard
    normal; integer inputs are zeros (a valid index for any embedding or class target); boolean
    inputs are True (a mask that keeps everything).  Values do not change the memory of the step."""
    torch.manual_seed(0)
    out = {}
    for name, spec in specs.items():
        dtype = getattr(torch, spec["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise VerifyError(f"input {name}: unknown dtype {spec['dtype']!r}")
        shape = tuple(int(s) for s in spec["shape"])
        if dtype.is_floating_point or dtype.is_complex:
            out[name] = torch.randn(shape, dtype=dtype, device=device)
        elif dtype == torch.bool:
            out[name] = torch.ones(shape, dtype=dtype, device=device)
        else:
            out[name] = torch.zeros(shape, dtype=dtype, device=device)
    return out


def make_optimizer(kind: str | None, model, torch):
    if kind in (None, "none"):
        return None
    if kind not in OPTIMIZERS:
        raise VerifyError(f"--optimizer {kind}: not measured (use one of {', '.join(OPTIMIZERS)})")
    cls_name, kwargs = OPTIMIZERS[kind]
    params = [p for p in model.parameters() if p.requires_grad]
    return getattr(torch.optim, cls_name)(params, **kwargs)


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------

# (category, label, estimate from the `memory` report, measured field, checked with the peak tolerance)
CATEGORIES: list[tuple[str, str, Callable[[dict], int], str, bool]] = [
    ("params.count", "parameters", lambda r: r["params"]["count"], "param_count", False),
    ("params.bytes", "parameter bytes", lambda r: r["params"]["bytes"], "param_bytes", False),
    ("buffers_bytes", "buffers", lambda r: r["buffers_bytes"], "buffer_bytes", False),
    ("grads_bytes", "gradients", lambda r: r["grads_bytes"], "grads_bytes", False),
    ("optimizer_bytes", "optimizer state", lambda r: r.get("optimizer_bytes", 0), "optimizer_bytes", False),
    ("activations_saved_bytes", "activations saved", lambda r: r["activations_saved_bytes"],
     "activations_saved_bytes", False),
    ("peak_bytes", "peak", lambda r: r["peak_bytes"], "peak_bytes", True),
]


def relative_error_pct(estimate: int, measured: int) -> float | None:
    """(estimate - measured) / measured in percent; negative is an under-estimate.  None when
    nothing was measured but something was estimated (no finite relative error)."""
    if measured == 0:
        return 0.0 if estimate == 0 else None
    return 100.0 * (estimate - measured) / measured


def compare(report: dict, measured, optimizer: str | None, peak_tolerance: float,
            count_tolerance: float) -> list[dict]:
    rows = []
    for category, label, estimate_of, field_name, is_peak in CATEGORIES:
        if category == "optimizer_bytes" and optimizer in (None, "none"):
            continue
        estimate = int(estimate_of(report))
        value = int(getattr(measured, field_name))
        error = relative_error_pct(estimate, value)
        tolerance = peak_tolerance if is_peak else count_tolerance
        rows.append({"category": category, "label": label, "estimate": estimate, "measured": value,
                     "error_pct": None if error is None else round(error, 6),
                     "tolerance_pct": tolerance,
                     # a hair of slack so that "exactly at the tolerance" is not lost to rounding
                     "within": error is not None and abs(error) <= tolerance + 1e-9})
    return rows


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def run_verify(target: str, settings, *, peak_tolerance: float = DEFAULT_PEAK_TOLERANCE,
               count_tolerance: float = DEFAULT_COUNT_TOLERANCE,
               notice: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)) -> dict:
    """Estimate, then measure, ``target`` (``path.py:Name``) under ``settings``; the JSON-ready result.

    Raises VerifyError for what the user must fix; the estimate's own errors (``TargetError``)
    pass through."""
    from gradxray.analyzer.memory_report import memory_report

    if not torch_available():
        raise VerifyError(TORCH_MISSING)
    checkpoint = getattr(settings, "checkpoint", None) or "none"
    if checkpoint != "none":
        raise VerifyError(f"checkpoint = {checkpoint!r}: verify runs the model as written and does not apply "
                          "activation checkpointing; use checkpoint = \"none\"")
    device = settings.device or "cpu"
    # torch-free, exactly as `gradxray memory`; the batch-scaling analyses are not compared here
    options = {"scaling": False} if "scaling" in inspect.signature(memory_report).parameters else {}
    report = memory_report(target, settings, **options)
    torch = _import_torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise VerifyError("--device cuda: CUDA is not available here (torch.cuda.is_available() is False); "
                          "use --device cpu")
    path, _, name = target.rpartition(":")
    notice(f"gradxray verify: importing and running {path} with torch {torch.__version__} on {device} "
           "(this executes its code: verify only models you trust)")
    module = import_target_file(path, list(settings.roots) + list(settings.search_paths))

    from gradxray.measure import measure_step

    baseline = None
    if device == "cuda":
        torch.cuda.synchronize()
        baseline = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    model = build_model(module, name, dict(settings.args), torch)
    # --dtype other than float32 casts the floating parameters and buffers, as model.to(dtype) does
    dtype = getattr(torch, settings.dtype) if settings.dtype not in (None, "float32") else None
    try:
        model.to(device=device, dtype=dtype)
    except Exception as exc:
        raise VerifyError(f"moving {name} to {device}/{settings.dtype} failed: {_describe(exc)}") from None
    inputs = make_inputs(report["inputs"], device, torch)
    amp = getattr(settings, "amp", None) or "off"
    if amp not in AMP_DTYPES:
        raise VerifyError(f"--amp {amp}: unknown (use one of {', '.join(AMP_DTYPES)})")
    amp_dtype = getattr(torch, AMP_DTYPES[amp]) if AMP_DTYPES[amp] else None
    optimizer = make_optimizer(settings.optimizer, model, torch)
    try:
        measured = measure_step(model, inputs, loss=settings.loss or "auto", optimizer=optimizer,
                                cuda_baseline_bytes=baseline, autocast_dtype=amp_dtype)
    except (Exception, SystemExit) as exc:
        raise VerifyError(f"running {target} with torch failed: {_describe(exc)}") from None
    rows = compare(report, measured, settings.optimizer, peak_tolerance, count_tolerance)
    return {
        "target": target,
        "device": device,
        "dtype": report.get("dtype"),
        "batch": report.get("batch"),
        "optimizer": settings.optimizer or "none",
        "amp": amp,
        "loss": report.get("loss"),
        "inputs": report["inputs"],
        "torch": torch.__version__,
        "measured_with": measured.peak_source,
        "cuda_workspace_bytes": measured.cuda_workspace_bytes,
        "tolerance_pct": {"peak": peak_tolerance, "counts": count_tolerance},
        "rows": rows,
        "peak_phase": {"estimate": report.get("peak_phase"), "measured": measured.peak_phase},
        "unresolved": report.get("unresolved", []),
        "ok": all(r["within"] for r in rows),
    }


def _cell(row: dict, key: str) -> str:
    from gradxray.render import human_bytes

    value = row[key]
    if row["category"] == "params.count":
        return f"{value:,}"
    return f"{human_bytes(value)} ({value:,})"


def render_text(result: dict) -> str:
    """The table people read: category | estimate | measured | error | tolerance."""
    from gradxray.render import OPTIMIZER_DISPLAY, table

    optimizer = result["optimizer"]
    lines = [f"{result['target']}: estimate vs measured",
             f"  device {result['device']} · dtype {result['dtype']} · batch {result['batch']} · "
             f"{OPTIMIZER_DISPLAY.get(optimizer, optimizer)}"
             f"{'' if result.get('amp', 'off') == 'off' else ' · autocast ' + result['amp']} · torch {result['torch']} "
             f"(peak from {result['measured_with']})", ""]
    rows = [["category", "estimate", "measured", "error", "tolerance", ""]]
    for r in result["rows"]:
        error = ("n/a" if r["error_pct"] is None else "0.00 %" if r["error_pct"] == 0
                 else f"{r['error_pct']:+.2f} %")
        rows.append([r["label"], _cell(r, "estimate"), _cell(r, "measured"), error,
                     f"±{r['tolerance_pct']:g} %", "ok" if r["within"] else "OUTSIDE"])
    text = table(rows, "lrrrrl")
    lines += ["  " + text[0], "  " + "-" * len(text[0])] + ["  " + t for t in text[1:]]
    if result.get("cuda_workspace_bytes"):
        from gradxray.render import human_bytes

        lines.append(f"  the measured peak leaves out {human_bytes(result['cuda_workspace_bytes'])} of persistent "
                     "CUDA library workspaces (cuBLAS), allocated once by a warm-up step")
    phases = result["peak_phase"]
    if phases.get("measured"):
        lines.append(f"  peak during {phases.get('estimate')} (estimate), {phases.get('measured')} (measured)")
    unresolved = result["unresolved"]
    if unresolved:
        lines += ["", f"  the estimate is partial: {len(unresolved)} place(s) not traced, left out of its figures:"]
        lines += [f"    {u.get('file', '?')}:{u.get('line', '?')}: {u.get('reason', '')}" for u in unresolved[:10]]
        if len(unresolved) > 10:
            lines.append(f"    … {len(unresolved) - 10} more")
    outside = [r["label"] for r in result["rows"] if not r["within"]]
    lines.append("")
    if outside:
        lines.append(f"  {len(outside)} of {len(result['rows'])} outside tolerance: {', '.join(outside)}.")
    else:
        lines.append(f"  all {len(result['rows'])} within tolerance.")
    return "\n".join(lines)
