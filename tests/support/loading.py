"""Importing a model file by path, as `gradxray verify` and the accuracy tests' torch twins do."""
from __future__ import annotations

import importlib.util
import sys


def load_module(path, name: str):
    """The module at ``path``, imported under ``name`` (registered in sys.modules: dataclasses look
    their module up by name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
