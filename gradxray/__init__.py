__version__ = "0.1.0"

from . import native as _native

# the compiled copies of the hot-path modules, where a build matches their sources (see native)
_native.install()
