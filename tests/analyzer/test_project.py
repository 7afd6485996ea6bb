"""The ast index: import forms, module classes, config dataclasses, roots."""
from __future__ import annotations

import textwrap

import pytest

from gradxray.analyzer.project import index_source, root_classes


def idx(src):
    return index_source(textwrap.dedent(src), "m.py")


@pytest.mark.parametrize("imports, base", [
    ("import torch", "torch.nn.Module"),
    ("import torch.nn as nn", "nn.Module"),
    ("from torch import nn", "nn.Module"),
    ("import torch.nn", "torch.nn.Module"),
    ("from torch.nn import Module", "Module"),
    ("from torch import nn as tnn", "tnn.Module"),
])
def test_module_base_import_forms(imports, base):
    i = idx(f"{imports}\n\nclass Net({base}):\n    pass\n")
    assert i.classes["Net"].is_module
    assert i.classes["Net"].bases == ["torch.nn.Module"]


def test_functional_aliases_and_dataclass():
    i = idx("""\
        from dataclasses import dataclass
        import dataclasses
        import torch.nn.functional as F
        from torch.nn import functional as G

        @dataclass
        class A:
            x: int = 1

        @dataclasses.dataclass(frozen=True)
        class B:
            y: int = 2

        class C:
            z = 3
    """)
    assert i.imports["F"] == "torch.nn.functional" and i.imports["G"] == "torch.nn.functional"
    assert i.classes["A"].is_dataclass and i.classes["B"].is_dataclass
    assert not i.classes["C"].is_dataclass and not i.classes["C"].is_module


def test_module_subclass_of_file_class_and_of_engine_layer():
    i = idx("""\
        import torch.nn as nn

        class Base(nn.Module):
            pass

        class Child(Base):
            pass

        class MyLinear(nn.Linear):
            pass

        class NotAModule:
            pass
    """)
    assert i.classes["Child"].is_module and i.classes["Child"].user_bases == ["Base"]
    assert i.classes["MyLinear"].is_module and i.classes["MyLinear"].engine_bases == ["torch.nn.Linear"]
    assert not i.classes["NotAModule"].is_module


def test_roots_exclude_submodules_used_directly_or_through_functions():
    i = idx("""\
        import torch.nn as nn

        class Leaf(nn.Module):
            pass

        class Built(nn.Module):
            pass

        def make_built():
            return Built()

        class Top(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = Leaf()
                self.b = make_built()

        class Other(nn.Module):
            pass

        class Abstract(nn.Module):
            def forward(self, x):
                raise NotImplementedError

        class Concrete(Abstract):
            pass

        def factory():
            return Top()
    """)
    assert [c.name for c in root_classes(i)] == ["Top", "Other", "Concrete"]


def test_syntax_error_raises():
    with pytest.raises(SyntaxError):
        idx("class X(:\n")
