"""``[tool.gradxray]`` in the nearest ``pyproject.toml``.

The nearest ``pyproject.toml`` *that has a* ``[tool.gradxray]`` *table*, walking up
from the analysed file (ruff's rule: project files without the table are
skipped).  Keys (kebab case; snake case is accepted too)::

    [tool.gradxray]
    select = ["GX1", "GX2"]          # rule code prefixes; default: all ("ALL")
    ignore = ["GX901"]
    per-file-ignores = { "tests/*" = ["GX101"] }   # globs relative to the pyproject's folder
    batch-size = 8                   # binds the dim named B
    dims = { T = 1024, H = 224, W = 224 }
    device = "cuda"                  # cpu | cuda
    dtype = "float32"                # float32 | float16 | bfloat16 | float64
    optimizer = "adamw"              # none | sgd | sgd-momentum | adam | adamw
    loss = "auto"                    # auto | sum | mean | cross_entropy | mse
    amp = "off"                      # off | fp16 | bf16
    checkpoint = "blocks"            # none | blocks | sqrt | "module.path, other.*" (what-if)
    inputs = { x = "[B, 3, 224, 224] float32" }
    roots = ["src"]                  # more folders absolute imports are looked up in
    search-paths = [".venv/lib/python3.11/site-packages"]   # installed packages, before sys.path

Paths in ``roots`` and ``search-paths`` are relative to the pyproject's folder and
must be existing folders.

A malformed file or value raises :class:`ConfigError` with a one-line message
naming the file and the key; the CLI prints it and exits with status 2.
"""
from __future__ import annotations

import fnmatch
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from gradxray.analyzer.settings import Settings

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float16", "bfloat16", "float64")
OPTIMIZERS = ("none", "sgd", "sgd-momentum", "adam", "adamw")
LOSSES = ("auto", "sum", "mean", "cross_entropy", "mse")
AMP = ("off", "fp16", "bf16")
INPUT_DTYPES = {
    "float32": "float32", "float": "float32", "f32": "float32",
    "float16": "float16", "half": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "double": "float64", "f64": "float64",
    "int64": "int64", "long": "int64", "i64": "int64",
    "int32": "int32", "int": "int32", "i32": "int32",
    "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8",
    "bool": "bool", "b8": "bool",
    "complex64": "complex64", "complex128": "complex128",
}
CHOICE_KEYS = ("device", "dtype", "optimizer", "loss", "amp", "checkpoint")   # settings that take one string
KEYS = ("select", "ignore", "per-file-ignores", "batch-size", "dims", "device", "dtype",
        "optimizer", "loss", "amp", "checkpoint", "inputs", "roots", "search-paths")

_SELECTOR = re.compile(r"^(ALL|GX\d{0,3})$")
_DIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INPUT = re.compile(r"^\s*(\[[^\[\]]*\])\s*(?:[:\s]\s*([A-Za-z0-9_.]+))?\s*$")


class ConfigError(Exception):
    """A bad configuration value, file or flag.  ``str(exc)`` is the one-line message."""


@dataclass
class Config:
    """Settings overrides: a ``[tool.gradxray]`` table, or command-line flags / editor options
    gathered the same way.  :meth:`settings_for` is the one place they are applied."""

    path: str | None = None                       # the pyproject.toml it came from
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    batch: int | None = None
    dims: dict[str, int] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    optimizer: str | None = None
    loss: str | None = None
    amp: str | None = None
    checkpoint: str | None = None                 # none | blocks | sqrt | module paths
    inputs: dict[str, str] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)          # absolute folders
    search_paths: list[str] = field(default_factory=list)   # absolute folders

    @property
    def root(self) -> str | None:
        return os.path.dirname(self.path) if self.path else None

    def ignores_for(self, file: str) -> list[str]:
        """Codes ignored for ``file`` by ``per-file-ignores``."""
        if not self.per_file_ignores:
            return []
        absf = os.path.abspath(file)
        rel = os.path.relpath(absf, self.root) if self.root else absf
        rel = rel.replace(os.sep, "/")
        base = os.path.basename(absf)
        out: list[str] = []
        for pattern, codes in self.per_file_ignores.items():
            pat = pattern.replace("\\", "/")
            if (fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(base, pat)
                    or fnmatch.fnmatchcase(rel, pat.rstrip("/") + "/*")
                    or (pat.startswith("./") and fnmatch.fnmatchcase(rel, pat[2:]))):
                out.extend(codes)
        return out

    def settings_for(self, file: str | None = None, base: Settings | None = None) -> Settings:
        """Settings with this configuration applied over ``base`` (defaults when None)."""
        s = replace(base) if base is not None else Settings()
        s.dims = dict(s.dims)
        s.inputs = dict(s.inputs)
        s.args = dict(s.args)
        s.select = list(s.select)
        if self.select is not None:
            s.select = list(self.select)
        s.ignore = list(s.ignore) + list(self.ignore)
        if self.batch is not None:
            s.batch = self.batch
        s.dims.update(self.dims)
        for attr in CHOICE_KEYS:
            value = getattr(self, attr)
            if value is not None:
                setattr(s, attr, value)
        s.inputs.update(self.inputs)
        # this configuration's folders are searched before the ones of ``base``
        s.roots = _merged(self.roots, s.roots)
        s.search_paths = _merged(self.search_paths, s.search_paths)
        if file is not None:
            s.ignore += self.ignores_for(file)
        return s


def _merged(first: list[str], then: list[str]) -> list[str]:
    out: list[str] = []
    for p in [*first, *then]:
        if p not in out:
            out.append(p)
    return out


# --------------------------------------------------------------------------- validation helpers

def _err(where: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: [tool.gradxray] {key}: {msg}")


def check_selectors(values, where: str = "", key: str = "select") -> list[str]:
    if isinstance(values, str):
        values = [v for v in re.split(r"[,\s]+", values) if v]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _err(where, key, "expected a list of rule codes or prefixes like \"GX1\"")
    out = []
    for v in values:
        u = v.strip().upper()
        if not _SELECTOR.match(u):
            msg = f"unknown rule selector {v!r} (expected ALL, GX, GX1, GX10 or GX101)"
            raise _err(where, key, msg) if where else ConfigError(f"{key}: {msg}")
        out.append(u)
    return out


def parse_input_spec(spec: str) -> str:
    """``"[B, 3, 224, 224] float32"`` or ``"[B,3,224,224]:float32"`` → ``"[B, 3, 224, 224]:float32"``;
    ``"None"``: the argument passed as None (a pragma's ``targets=None``)."""
    if spec.strip() == "None":
        return "None"
    m = _INPUT.match(spec)
    if not m:
        raise ValueError(f"bad input shape {spec!r} (expected like [B, 3, 224, 224]:float32, or None)")
    dims = [d.strip() for d in m.group(1)[1:-1].split(",") if d.strip()]
    for d in dims:
        if not re.match(r"^[A-Za-z0-9_*+\-/ ()]+$", d):
            raise ValueError(f"bad dimension {d!r} in {spec!r}")
    dtype = m.group(2) or "float32"
    dtype = dtype.removeprefix("torch.")
    if dtype not in INPUT_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} in {spec!r}")
    return "[" + ", ".join(dims) + "]:" + INPUT_DTYPES[dtype]


def _positive_int(value, where, key) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _err(where, key, f"expected a positive integer, got {value!r}")
    return value


def _choice(value, choices, where, key) -> str:
    if value not in choices:
        raise _err(where, key, f"expected one of {', '.join(choices)}; got {value!r}")
    return value


def check_folders(values, base: str, describe) -> list[str]:
    """Folder paths (relative ones against ``base``) -> absolute paths of existing folders.
    ``describe(msg)`` makes the error for a bad value."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise describe("expected a list of folder paths")
    out = []
    for v in values:
        if not v.strip():
            raise describe("empty path")
        folder = os.path.normpath(os.path.join(base, os.path.expanduser(v)))
        if not os.path.isdir(folder):
            what = "not a folder" if os.path.exists(folder) else "no such folder"
            raise describe(f"{what}: {v!r}" + (f" ({folder})" if folder != v else ""))
        if folder not in out:
            out.append(folder)
    return out


def parse_table(table: dict, where: str) -> Config:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [tool.gradxray] must be a table")
    cfg = Config(path=where)
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        if key not in KEYS:
            raise _err(where, raw_key, f"unknown key (known keys: {', '.join(KEYS)})")
        if key == "select":
            cfg.select = check_selectors(value, where, raw_key)
        elif key == "ignore":
            cfg.ignore = check_selectors(value, where, raw_key)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise _err(where, raw_key, "expected a table of glob = [codes]")
            cfg.per_file_ignores = {str(g): check_selectors(v, where, f"{raw_key}.{g}")
                                    for g, v in value.items()}
        elif key == "batch-size":
            cfg.batch = _positive_int(value, where, raw_key)
        elif key == "dims":
            if not isinstance(value, dict):
                raise _err(where, raw_key, "expected a table like { T = 1024, H = 224 }")
            for name, size in value.items():
                if not _DIM.match(name):
                    raise _err(where, f"{raw_key}.{name}", "not a dimension name")
                cfg.dims[name] = _positive_int(size, where, f"{raw_key}.{name}")
            if "B" in cfg.dims:
                cfg.batch = cfg.dims.pop("B")
        elif key == "device":
            cfg.device = _choice(value, DEVICES, where, raw_key)
        elif key == "dtype":
            cfg.dtype = _choice(value, DTYPES, where, raw_key)
        elif key == "optimizer":
            cfg.optimizer = _choice(value, OPTIMIZERS, where, raw_key)
        elif key == "loss":
            cfg.loss = _choice(value, LOSSES, where, raw_key)
        elif key == "amp":
            cfg.amp = _choice(value, AMP, where, raw_key)
        elif key == "checkpoint":
            if not isinstance(value, str) or not value.strip():
                raise _err(where, raw_key, "expected \"none\", \"blocks\", \"sqrt\" or comma-separated module paths")
            cfg.checkpoint = value.strip()
        elif key == "inputs":
            if not isinstance(value, dict):
                raise _err(where, raw_key, "expected a table like { x = \"[B, 3, 224, 224] float32\" }")
            for name, spec in value.items():
                if not isinstance(spec, str):
                    raise _err(where, f"{raw_key}.{name}", "expected a string like \"[B, T] int64\"")
                try:
                    cfg.inputs[name] = parse_input_spec(spec)
                except ValueError as exc:
                    raise _err(where, f"{raw_key}.{name}", str(exc)) from None
        elif key in ("roots", "search-paths"):
            folders = check_folders(value, os.path.dirname(os.path.abspath(where)),
                                    lambda msg, k=raw_key: _err(where, k, msg))
            setattr(cfg, key.replace("-", "_"), folders)
    return cfg


# --------------------------------------------------------------------------- discovery

_FILE_CACHE: dict[str, tuple[float, Config | None]] = {}


def _read_pyproject(path: str) -> Config | None:
    """The config in ``path``, or None when it has no ``[tool.gradxray]``.  Cached by mtime."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    hit = _FILE_CACHE.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    table = data.get("tool", {}).get("gradxray") if isinstance(data.get("tool"), dict) else None
    cfg = parse_table(table, path) if table is not None else None
    _FILE_CACHE[path] = (mtime, cfg)
    return cfg


def find_config(start: str | os.PathLike) -> Config:
    """The configuration that applies to ``start`` (a file or a folder); empty when none."""
    p = Path(os.path.abspath(start))
    d = p if p.is_dir() else p.parent
    for folder in (d, *d.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            cfg = _read_pyproject(str(candidate))
            if cfg is not None:
                return cfg
    return Config()


def settings_for_file(file: str, base: Settings | None = None) -> Settings:
    """Settings for ``file``: ``base`` (defaults when None) with the nearest ``[tool.gradxray]``
    (per-file-ignores included) applied over it.  Command-line flags are applied after this."""
    return find_config(file).settings_for(file, base)
