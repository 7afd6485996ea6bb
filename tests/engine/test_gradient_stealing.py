"""Which leaf gradients AccumulateGrad steals and which gradient buffers are added into in place: the
storage each ``.grad`` ends up in (its size, and which leaves share one) is torch's, in the compiled
engine as from source (the decisions rest on reference counts, see engine/refcounts.py)."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray import native  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _leaves(ns, *shapes):
    return [ns.ones(*shape, requires_grad=True) for shape in shapes]


def shared_sum(ns):
    """The same gradient tensor flows to two leaves (AddBackward passes it on twice)."""
    a, b, c = _leaves(ns, (4, 3), (4, 3), (4, 3))
    ((a + b) * c).sum().backward()
    return a, b, c


def fresh_product(ns):
    x, = _leaves(ns, (5,))
    (x * 2).sum().backward()
    return x,


def class_token(ns, batch):
    """A class token expanded over the batch and concatenated (ViT): its gradient is a slice of cat's."""
    token, patches, weight = _leaves(ns, (1, 1, 8), (batch, 6, 8), (batch, 7, 8))
    y = ns.cat([token.expand(batch, -1, -1), patches], dim=1)
    (y * weight).sum().backward()
    return token, patches, weight


def used_twice(ns):
    """One leaf reached twice: its gradient buffer accumulates."""
    w, x1, x2 = _leaves(ns, (3, 3), (3, 3), (3, 3))
    (w * x1 + w * x2).sum().backward()
    return w, x1, x2


def transposed_weight(ns):
    """mm's gradient of a transposed weight is a transposed tensor: it must obey the leaf's layout."""
    x, w = _leaves(ns, (4, 5), (6, 5))
    (x @ w.t()).sum().backward()
    return x, w


SCENARIOS = {"shared_sum": shared_sum, "fresh_product": fresh_product, "class_token_b1": lambda ns: class_token(ns, 1),
             "class_token_b2": lambda ns: class_token(ns, 2), "used_twice": used_twice,
             "transposed_weight": transposed_weight}


def torch_layout(leaves):
    """(bytes of each grad's storage, index of the first leaf whose grad shares it)."""
    ptrs = [t.grad.untyped_storage().data_ptr() for t in leaves]
    return [(t.grad.untyped_storage().nbytes(), ptrs.index(p)) for t, p in zip(leaves, ptrs)]


def engine_layout(leaves):
    storages = [t.grad._storage for t in leaves]
    return [(s.nbytes, next(i for i, o in enumerate(storages) if o is s)) for s in storages]


@pytest.mark.parametrize("name", SCENARIOS)
def test_grad_storages_are_torchs(name):
    scenario = SCENARIOS[name]
    with gx.backend("numpy"):
        engine = engine_layout(scenario(gx))
    assert engine == torch_layout(scenario(torch))


LAYOUTS = """
import sys
sys.path.insert(0, sys.argv[1])
import gradxray.engine as gx
from tests.engine.test_gradient_stealing import SCENARIOS, engine_layout
with gx.backend("numpy"):
    print({name: engine_layout(s(gx)) for name, s in SCENARIOS.items()})
"""


def test_from_source_too():
    """The same decisions with every module run from source (this process may run compiled ones)."""
    out = subprocess.run([sys.executable, "-c", LAYOUTS, ROOT], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=dict(os.environ, **{native.PURE_PYTHON_ENV: "1"})).stdout
    with gx.backend("numpy"):
        here = {name: engine_layout(s(gx)) for name, s in SCENARIOS.items()}
    assert out.strip() == str(here)
