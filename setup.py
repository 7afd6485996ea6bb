"""Build step beyond pyproject.toml: the compiled copies of the analysis hot path (see gradxray/native.py).

Each module in ``native.COMPILED`` is translated by Cython and compiled into
``<its package's folder>/<name>.<digest of its source><suffix>`` (in the source tree for an editable
install, in the wheel otherwise).  An editable install compiles only the modules whose build is not
there yet (same source, same build tag) and removes the builds of their older sources.  Without a C
compiler, or when a module fails to compile, the install goes on: those modules run from their sources.
"""
import importlib.util
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "gradxray")


def _native():
    # gradxray/native.py by path: importing the package would need its dependencies at build time
    spec = importlib.util.spec_from_file_location("_gradxray_native", os.path.join(PACKAGE, "native.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


native = _native()


def _source(fullname):
    with open(native.source_file(fullname, PACKAGE), "rb") as fh:
        return fh.read()


class build_native(build_ext):
    """build_ext for the compiled hot path: Cython first, the digest-named output, failures tolerated."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def get_ext_filename(self, fullname):
        # setuptools asks with the dotted name; the path is relative to build_lib or the source tree
        return native.compiled_file(fullname, _source(fullname))

    def get_ext_fullpath(self, ext_name):
        # distutils' own would ask get_ext_filename with the last part of the name only
        fullname = self.get_ext_fullname(ext_name)
        return os.path.join(HERE if self.inplace else os.path.abspath(self.build_lib), self.get_ext_filename(fullname))

    def _in_tree(self, fullname):
        """Where an editable install keeps the build of ``fullname``."""
        return os.path.join(HERE, self.get_ext_filename(fullname))

    def run(self):
        super().run()
        if self.inplace:
            for ext in self.extensions:
                current = self._in_tree(ext.name)
                for old in native.builds_of(ext.name, HERE):
                    if os.path.abspath(old) != current:
                        os.remove(old)

    def build_extensions(self):
        # an editable install finds the builds already in the source tree: only new sources are compiled
        todo = [ext for ext in self.extensions
                if not (self.editable_mode and os.path.isfile(self._in_tree(ext.name)))]
        if todo:
            try:
                from Cython.Build import cythonize
            except ImportError:
                self.warn("Cython is not installed: the analysis runs from its Python sources (slower)")
                todo = []
            else:
                todo = self._translate(cythonize, todo)
        self.extensions = todo
        super().build_extensions()

    def _translate(self, cythonize, extensions):
        """C sources from Cython for ``extensions`` (setuptools' own Extension objects keep their set-up);
        those Cython rejects are left out and run from source."""
        options = dict(compiler_directives=native.CYTHON_DIRECTIVES, quiet=True,
                       build_dir=os.path.join(self.build_temp, "cython"))
        try:
            translated = cythonize(extensions, nthreads=self.parallel or 1, **options)
        except Exception:           # one module failed: translate them one by one to keep the others
            translated = []
            for ext in extensions:
                try:
                    translated.extend(cythonize([ext], **options))
                except Exception as e:
                    self.warn(f"{ext.name} not translated by Cython ({e}); it runs from its Python source")
        c_sources = {c_ext.name: c_ext.sources for c_ext in translated}
        for ext in extensions:
            if ext.name in c_sources:
                ext.sources = c_sources[ext.name]
        return [ext for ext in extensions if ext.name in c_sources]

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:       # no compiler, a compiler error: that module runs from source
            self.warn(f"{ext.name} not compiled ({type(e).__name__}: {e}); it runs from its Python source")


def _extensions():
    if sys.platform == "win32" or sys.implementation.name != "cpython":    # gcc/clang flags below
        return []
    flags = ["-O2", "-g0"]          # after the interpreter's own -O3 -g: a faster compile, a smaller file
    return [Extension(name, [os.path.relpath(native.source_file(name, PACKAGE), HERE)],
                      extra_compile_args=flags) for name in native.COMPILED]


setup(ext_modules=_extensions(), cmdclass={"build_ext": build_native})
