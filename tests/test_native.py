"""The compiled copies of the hot-path modules (gradxray/native.py, setup.py): found only while they match
their sources, off with GRADXRAY_PURE_PYTHON, and an analysis gives the same result either way."""
from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys

import pytest

from gradxray import native
from gradxray.analyzer import analyze_source
from gradxray.analyzer.config import settings_for_file
from tests.support.analysis_dump import dump

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def tree(tmp_path):
    """A package ``pkg`` with a module ``pkg.sub.mod`` and a package module ``pkg.sub.nested``."""
    pkg = tmp_path / "pkg"
    (pkg / "sub" / "nested").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("X = 1\n")
    (pkg / "sub" / "nested" / "__init__.py").write_text("Y = 2\n")
    return pkg


def fake_build(pkg, fullname: str) -> str:
    """An (empty) file where a build of ``fullname``'s current source would be."""
    source = open(native.source_file(fullname, str(pkg)), "rb").read()
    path = os.path.join(os.path.dirname(pkg), native.compiled_file(fullname, source))
    open(path, "wb").close()
    return path


def test_source_file_of_a_module_and_of_a_package(tree):
    assert native.source_file("pkg.sub.mod", str(tree)) == str(tree / "sub" / "mod.py")
    assert native.source_file("pkg.sub.nested", str(tree)) == str(tree / "sub" / "nested" / "__init__.py")


def test_a_build_sits_beside_the_sources_under_a_name_no_import_looks_for():
    path = native.compiled_file("gradxray.engine.function", b"x = 1\n")
    folder, name = os.path.split(path)
    assert folder == os.path.join("gradxray", "engine")
    assert name.startswith("function.") and name.endswith(SUFFIX)
    assert name not in {"function" + s for s in importlib.machinery.EXTENSION_SUFFIXES}
    # the digest covers the source and the build tag
    assert native.compiled_file("gradxray.engine.function", b"x = 2\n") != path


def test_finder_uses_a_build_of_the_current_source_only(tree):
    finder = native.CompiledModuleFinder(str(tree), names=["pkg.sub.mod", "pkg.sub.nested"])
    assert finder.find_spec("pkg.sub.mod") is None                  # nothing built
    assert finder.find_spec("pkg.other") is None                    # not a compiled module
    binary = fake_build(tree, "pkg.sub.mod")
    spec = finder.find_spec("pkg.sub.mod")
    assert spec.origin == binary and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    assert spec.submodule_search_locations is None
    assert finder.stale() == []
    (tree / "sub" / "mod.py").write_text("X = 3\n")                 # edited after the build
    assert finder.find_spec("pkg.sub.mod") is None
    assert finder.stale() == ["pkg.sub.mod"]
    assert native.builds_of("pkg.sub.mod", str(tree.parent)) == [binary]


def test_a_compiled_package_keeps_its_folder_for_submodules(tree):
    finder = native.CompiledModuleFinder(str(tree), names=["pkg.sub.nested"])
    fake_build(tree, "pkg.sub.nested")
    spec = finder.find_spec("pkg.sub.nested")
    assert spec.submodule_search_locations == [str(tree / "sub" / "nested")]


def test_pure_python_switch(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, native.CompiledModuleFinder)])
    monkeypatch.setenv(native.PURE_PYTHON_ENV, "1")
    assert native.install() is None
    assert not any(isinstance(f, native.CompiledModuleFinder) for f in sys.meta_path)
    assert "off" in native.status()
    monkeypatch.setenv(native.PURE_PYTHON_ENV, "0")
    finder = native.install()
    assert sys.meta_path[0] is finder and native.install() is finder     # installed once


def test_each_module_runs_compiled_exactly_when_a_build_of_its_source_exists():
    """The state of this installation: a module is an extension module iff its current source was built."""
    status = native.status()                    # imports them all
    for name in native.COMPILED:
        source = open(native.source_file(name), "rb").read()
        built = os.path.isfile(os.path.join(os.path.dirname(native.PACKAGE_DIR), native.compiled_file(name, source)))
        compiled = isinstance(sys.modules[name].__loader__, importlib.machinery.ExtensionFileLoader)
        assert compiled == (built and native.enabled()), (name, status)


def _dump(path: str, jobs) -> str:
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    return dump(analyze_source(source, path=path, settings=settings_for_file(path), jobs=jobs))


DUMP = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.test_native import _dump
from gradxray import native
dump = _dump(sys.argv[2], 1)
assert not native.loaded_compiled(), native.loaded_compiled()
print(dump)
"""

@pytest.mark.skipif(not native.built() or not native.enabled(), reason="nothing compiled in this installation")
@pytest.mark.parametrize("name", ["bench/fixtures/large_model.py", "examples/gpt.py", "examples/resnet.py"])
def test_compiled_and_pure_python_analyses_are_identical(name):
    path = os.path.join(ROOT, name)
    pure = subprocess.run([sys.executable, "-c", DUMP, ROOT, path], capture_output=True, text=True, check=True,
                          env=dict(os.environ, **{native.PURE_PYTHON_ENV: "1"}), cwd=ROOT).stdout.strip()
    assert _dump(path, 1) == pure
    assert native.loaded_compiled()


def test_version_says_how_many_modules_run_compiled():
    from gradxray import __version__
    out = subprocess.run([sys.executable, "-m", "gradxray", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"gradxray {__version__} (compiled modules: ")
    assert f"of {len(native.COMPILED)}" in out.stdout
    off = subprocess.run([sys.executable, "-m", "gradxray", "--version"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, **{native.PURE_PYTHON_ENV: "1"}))
    assert "compiled modules: off" in off.stdout


def test_no_compiled_module_counts_references():
    """Compiled code holds fewer references than the interpreter's frames (borrowed parameters and
    arguments), so a count taken there would differ: counting stays in engine.refcounts, run from source."""
    assert "gradxray.engine.refcounts" not in native.COMPILED
    for name in native.COMPILED:
        with open(native.source_file(name), encoding="utf-8") as fh:
            assert "getrefcount" not in fh.read(), name
