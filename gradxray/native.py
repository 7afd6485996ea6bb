"""Compiled copies of the modules on the analysis hot path, used only while they match their sources.

The analyzer and the engine are plain Python.  At install time (``setup.py``: ``build_ext``) the
modules listed in ``COMPILED`` are also compiled with Cython -- the same source, no type declarations,
Python semantics kept (``annotation_typing`` off: an ``int`` annotation must not turn into a C type
that rejects a symbolic size) -- which saves the bytecode dispatch of the pure-Python interpreter loop
(about a quarter of the instructions of an analysis: ``bench/instruction_count.py`` counts both,
``bench/analysis_speed.py`` times both).

A compiled module lives beside its package's sources under a name that carries a digest of the exact
source it was built from (and of ``BUILD_TAG``): ``engine/function.<digest>.cpython-311-x86_64-linux-gnu.so``
for ``engine/function.py``, ``engine/nn.<digest>...so`` for ``engine/nn/__init__.py`` -- a name the
normal import system never looks for.  The finder installed by ``gradxray/__init__`` loads
it only while the ``.py`` file still has that content: an edited module is imported from its source,
never from a stale build, so an edit takes effect at once and a rebuild (``pip install -e .``) only
brings the speed back.  ``GRADXRAY_PURE_PYTHON=1`` in the environment turns the compiled copies off.
Where nothing was compiled (no C compiler at install time, another interpreter) everything runs from
source, only slower.
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys

# the analysis hot path (bench/analysis_speed.py --profile): the interpreter and the values it
# handles, root discovery, the engine core (tensors, ops, autograd graph, memory tracking) and the
# shape kernels of the common layers
COMPILED = (
    "gradxray.analyzer.astwalk",
    "gradxray.analyzer.inputs",
    "gradxray.analyzer.interpreter",
    "gradxray.analyzer.line_facts",
    "gradxray.analyzer.project",
    "gradxray.analyzer.torch_api",
    "gradxray.analyzer.training_step",
    "gradxray.analyzer.values",
    "gradxray.engine.amp",
    "gradxray.engine.autograd",
    "gradxray.engine.backends",
    "gradxray.engine.backends.numpy_kernels",
    "gradxray.engine.creation",
    "gradxray.engine.dtypes",
    "gradxray.engine.flops",
    "gradxray.engine.function",
    "gradxray.engine.graph",
    "gradxray.engine.layout",
    "gradxray.engine.memory",
    "gradxray.engine.nn",
    "gradxray.engine.nn.functional",
    "gradxray.engine.ops",
    "gradxray.engine.ops._kernel",
    "gradxray.engine.ops.attention",
    "gradxray.engine.ops.conv_pool",
    "gradxray.engine.ops.linalg",
    "gradxray.engine.ops.nn",
    "gradxray.engine.ops.norms",
    "gradxray.engine.ops.pointwise",
    "gradxray.engine.ops.reduce",
    "gradxray.engine.ops.shapes",
    "gradxray.engine.ops.views",
    "gradxray.engine.symbolic",
    "gradxray.engine.tensor",
)

# changes whenever what a build produces from the same source changes (the Cython pin in
# pyproject.toml, the directives below): builds made otherwise are then not loaded
BUILD_TAG = b"cython-3.3.1;annotation_typing=False;binding=True;language_level=3"
CYTHON_DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PURE_PYTHON_ENV = "GRADXRAY_PURE_PYTHON"


def source_file(fullname: str, package_dir: str = PACKAGE_DIR) -> str:
    """The ``.py`` file of one of the package's modules (``gradxray.engine.nn`` -> ``.../engine/nn/__init__.py``)."""
    parts = fullname.split(".")[1:]
    base = os.path.join(package_dir, *parts)
    package_init = os.path.join(base, "__init__.py")
    return package_init if os.path.isfile(package_init) else base + ".py"


DIGEST_BYTES = 10


def source_digest(source: bytes) -> str:
    return hashlib.blake2b(source + b"\0" + BUILD_TAG, digest_size=DIGEST_BYTES).hexdigest()


def compiled_file(fullname: str, source: bytes) -> str:
    """Where a build of ``fullname`` from ``source`` is stored, relative to the package's parent directory
    (``gradxray/engine/function.<digest><suffix>``)."""
    *package, leaf = fullname.split(".")
    return os.path.join(*package, f"{leaf}.{source_digest(source)}{importlib.machinery.EXTENSION_SUFFIXES[0]}")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


class CompiledModuleFinder:
    """A ``sys.meta_path`` finder: the compiled copy of a ``COMPILED`` module built from its current
    source, or nothing (the normal finders import the source)."""

    def __init__(self, package_dir: str = PACKAGE_DIR, names=COMPILED):
        self.package_dir = package_dir
        self.names = frozenset(names)

    def build_of(self, fullname: str) -> str | None:
        """The compiled copy of ``fullname``'s current source, if there is one."""
        source = _read(source_file(fullname, self.package_dir))
        if source is None:
            return None
        binary = os.path.join(os.path.dirname(self.package_dir), compiled_file(fullname, source))
        return binary if os.path.isfile(binary) else None

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        binary = self.build_of(fullname)
        if binary is None:
            return None
        src = source_file(fullname, self.package_dir)
        loader = importlib.machinery.ExtensionFileLoader(fullname, binary)
        is_package = os.path.basename(src) == "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname, binary, loader=loader,
            submodule_search_locations=[os.path.dirname(src)] if is_package else None)

    def stale(self) -> list[str]:
        """Modules with a compiled copy of another version of their source only (edited since the build)."""
        root = os.path.dirname(self.package_dir)
        return [name for name in sorted(self.names) if self.build_of(name) is None and builds_of(name, root)]


def builds_of(fullname: str, root: str) -> list[str]:
    """The compiled copies of ``fullname`` under ``root`` (the package's parent directory), of any source."""
    *package, leaf = fullname.split(".")
    folder = os.path.join(root, *package)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    length = len(leaf) + 1 + 2 * DIGEST_BYTES + len(suffix)          # leaf.<digest><suffix>
    return [os.path.join(folder, f) for f in names
            if len(f) == length and f.startswith(leaf + ".") and f.endswith(suffix)]


def enabled() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")


def install() -> CompiledModuleFinder | None:
    """Put the finder first on ``sys.meta_path`` (once), unless turned off by the environment."""
    if not enabled():
        return None
    for finder in sys.meta_path:
        if isinstance(finder, CompiledModuleFinder):
            return finder
    finder = CompiledModuleFinder()
    sys.meta_path.insert(0, finder)
    return finder


def built() -> list[str]:
    """The ``COMPILED`` modules with a build of their current source in this installation."""
    finder = CompiledModuleFinder()
    return [name for name in COMPILED if finder.build_of(name)]


def loaded_compiled() -> list[str]:
    """The ``COMPILED`` modules imported so far that run compiled."""
    return [name for name in COMPILED
            if name in sys.modules and isinstance(getattr(sys.modules[name], "__loader__", None),
                                                   importlib.machinery.ExtensionFileLoader)]


def status() -> str:
    """One line for ``gradxray --version``: how many hot-path modules run compiled."""
    if not enabled():
        return f"compiled modules: off ({PURE_PYTHON_ENV} is set)"
    import importlib as _importlib
    for name in COMPILED:
        _importlib.import_module(name)
    compiled = loaded_compiled()
    finder = next((f for f in sys.meta_path if isinstance(f, CompiledModuleFinder)), None)
    stale = finder.stale() if finder is not None else []
    text = f"compiled modules: {len(compiled)} of {len(COMPILED)}"
    if stale:
        text += f" ({len(stale)} edited since the build, run from source: reinstall to rebuild)"
    elif not compiled:
        text += " (none built: pure Python, slower)"
    return text
