"""One engine op against torch.autograd, in every respect the engine promises.

``check_op(torch_fn, gx_fn, args)`` runs the same function on torch and on the engine (torch
backend, or numpy with ``backend="numpy"``) and compares

* forward values and dtypes of every output,
* the multiset of saved tensors (shape, dtype, new bytes by storage) against what
  ``torch.autograd.graph.saved_tensors_hooks`` records,
* first-order gradients with respect to every input that requires grad,
* second-order gradients (a random vector-Hessian product through ``create_graph=True``,
  differentiated with respect to the inputs *and* the incoming gradients), where torch can,
* the shape backend's output shapes and dtypes (no data), and that its backward runs.

Arguments are given as :class:`Arg` specs (random tensors) or as concrete torch tensors
(indices, targets: passed unchanged, never requiring grad).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import gradxray.engine as gx

TOLERANCES = {  # (rtol, atol) for comparing engine and torch numerics
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}


@dataclass(frozen=True)
class Arg:
    """A random input tensor: shape, whether it requires grad, and how it is laid out / valued."""

    shape: tuple
    requires_grad: bool = True
    dtype: torch.dtype | None = None         # None: the case's dtype
    positive: bool = False                   # values in (0.5, 1.5): for log, sqrt, division
    transposed: bool = False                 # a non-contiguous leaf (the transpose of a contiguous one)
    unit: bool = False                       # values in (0.05, 0.95): probabilities

    def make(self, dtype, generator, device="cpu") -> torch.Tensor:
        dtype = self.dtype or dtype
        shape = tuple(reversed(self.shape)) if self.transposed else tuple(self.shape)
        if dtype.is_floating_point:
            t = torch.randn(shape, dtype=torch.float64, generator=generator, device="cpu")
            if self.positive:
                t = t.abs() * 0.5 + 0.5
            if self.unit:
                t = torch.rand(shape, dtype=torch.float64, generator=generator, device="cpu") * 0.9 + 0.05
            t = t.to(dtype)
        else:
            t = torch.randint(0, 5, shape, dtype=dtype, generator=generator, device="cpu")
        t = t.to(device)
        if self.transposed:
            t = t.permute(*reversed(range(t.dim())))
        return t.requires_grad_(self.requires_grad and dtype.is_floating_point)


def _from_torch(t, backend):
    if backend == "numpy":
        return gx.from_numpy(t.detach().numpy(), requires_grad=t.requires_grad)
    return gx.from_torch(t, requires_grad=t.requires_grad)


def _data(t):
    """Engine tensor data as a torch tensor (whatever the backend)."""
    d = t.data_
    return d if isinstance(d, torch.Tensor) else torch.from_numpy(gx.backends.to_numpy(t))


def _tensors(out):
    if isinstance(out, (tuple, list)):
        return [o for o in out if isinstance(o, (torch.Tensor, gx.Tensor))]
    return [out]


def _dtype_name(d) -> str:
    return str(d).replace("torch.", "").replace("gx.", "")


def torch_saved(fn, inputs):
    records = []

    def pack(t):
        records.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    return out, records


def storage_multiset(tensors, exclude):
    """(shape, dtype, new bytes) of torch's saved tensors, each storage counted once."""
    seen, out = set(), []
    for t in tensors:
        key = t.untyped_storage().data_ptr()
        new = key not in seen and key not in exclude
        seen.add(key)
        out.append((tuple(int(s) for s in t.shape), _dtype_name(t.dtype), t.untyped_storage().nbytes() if new else 0))
    return sorted(out)


def _engine_saved(tracker, inputs):
    input_uids = {g._storage.uid for g in inputs if isinstance(g, gx.Tensor)}
    return sorted((tuple(int(s) for s in r.shape), r.dtype,
                   r.nbytes if r.new_storage and r.category != "param" and r.storage_uid not in input_uids else 0)
                  for r in tracker.saved)


def _close(ours, theirs, what, rtol, atol):
    assert ours is not None, f"{what}: the engine gives None where torch gives a tensor"
    o = _data(ours)
    assert tuple(o.shape) == tuple(theirs.shape), f"{what}: shape {tuple(o.shape)} != torch {tuple(theirs.shape)}"
    assert _dtype_name(ours.dtype) == _dtype_name(theirs.dtype), f"{what}: dtype {ours.dtype} != {theirs.dtype}"
    a, b = o.double(), theirs.detach().double()
    ok = torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    assert ok, f"{what}: max abs diff {(a - b).abs().max().item():.3g}"


def check_op(torch_fn, gx_fn, args, *, dtype=torch.float64, second_order=True, saved=True, shape_backend=True,
             backend="torch", seed=0, tolerances=None, device="cpu"):
    """Compare ``gx_fn`` with ``torch_fn`` on the inputs described by ``args`` (see module doc).

    ``second_order``: also compare a vector-Hessian product (False for ops torch cannot
    differentiate twice).  ``saved``: compare saved tensors (off for the numpy backend's
    runs, whose kernels may save differently laid-out buffers).  ``shape_backend``: also
    run on data-less tensors (off for data-dependent output shapes).  ``device``: where the inputs
    live ("cuda" runs the same comparison on a GPU; concrete tensor arguments are moved there)."""
    rtol, atol = tolerances or TOLERANCES[dtype]
    gen = torch.Generator().manual_seed(seed)
    tin = [a.make(dtype, gen, device) if isinstance(a, Arg) else
           (a.to(device) if isinstance(a, torch.Tensor) else a) for a in args]
    with gx.backend(backend):
        gin = [_from_torch(t, backend) if isinstance(t, torch.Tensor) else t for t in tin]
    tout, tsaved = torch_saved(torch_fn, tin)
    tracker = gx.memory.MemoryTracker()
    with tracker:
        gout = gx_fn(*gin)
    touts, gouts = _tensors(tout), _tensors(gout)
    assert len(touts) == len(gouts), f"{len(gouts)} outputs, torch has {len(touts)}"
    for i, (t, g) in enumerate(zip(touts, gouts)):
        _close(g, t, f"output {i}", rtol, atol)
        assert str(g.device) == str(t.device).replace(":0", "") or str(g.device) == str(t.device), \
            f"output {i}: device {g.device} != torch {t.device}"
        assert bool(g.requires_grad) == bool(t.requires_grad), f"output {i}: requires_grad differs from torch"
    if saved:
        leaf_ptrs = {t.untyped_storage().data_ptr() for t in tin if isinstance(t, torch.Tensor)}
        assert _engine_saved(tracker, gin) == storage_multiset(tsaved, leaf_ptrs), "saved tensors differ from torch"

    # first order, keeping the graph for second order
    diff_t = [t for t in tin if isinstance(t, torch.Tensor) and t.requires_grad]
    diff_g = [g for g, t in zip(gin, tin) if isinstance(t, torch.Tensor) and t.requires_grad]
    pairs = [(t, g) for t, g in zip(touts, gouts) if t.requires_grad]
    if not diff_t or not pairs:
        return
    tgo = [torch.randn(t.shape, dtype=t.dtype, generator=gen, device="cpu").to(t.device).requires_grad_(second_order)
           for t, _ in pairs]
    with gx.backend(backend):
        ggo = [_from_torch(t, backend) for t in tgo]
    tg = torch.autograd.grad([t for t, _ in pairs], diff_t, tgo, create_graph=second_order, allow_unused=True)
    gg = gx.autograd.grad([g for _, g in pairs], diff_g, ggo, create_graph=second_order, allow_unused=True)
    for i, (t, g) in enumerate(zip(tg, gg)):
        if t is None:
            assert g is None or not _data(g).any(), f"grad {i}: torch has none, the engine a nonzero one"
            continue
        _close(g, t, f"grad of input {i}", rtol, atol)

    if second_order:
        _check_second_order(tg, gg, diff_t + tgo, diff_g + ggo, gen, backend, rtol, atol)
    if shape_backend:
        _check_shape_backend(gx_fn, args, tin, touts, dtype)


def _check_second_order(tg, gg, t_wrt, g_wrt, gen, backend, rtol, atol):
    terms_t, terms_g = [], []
    for t, g in zip(tg, gg):
        if t is None or not t.requires_grad:
            continue
        v = torch.randn(t.shape, dtype=t.dtype, generator=gen, device="cpu").to(t.device)
        with gx.backend(backend):
            gv = _from_torch(v, backend)
        terms_t.append((t * v).sum())
        assert g.requires_grad, "first-order gradient has no graph under create_graph=True (backward not differentiable)"
        terms_g.append((g * gv).sum())
    if not terms_t:
        return
    t2 = torch.autograd.grad(sum(terms_t), t_wrt, allow_unused=True)
    g2 = gx.autograd.grad(sum(terms_g[1:], terms_g[0]), g_wrt, allow_unused=True)
    for i, (t, g) in enumerate(zip(t2, g2)):
        if t is None:
            assert g is None or not _data(g).any(), f"second-order grad {i}: torch has none, the engine a nonzero one"
            continue
        _close(g, t, f"second-order grad {i}", rtol, atol)


def _check_shape_backend(gx_fn, args, tin, touts, dtype):
    with gx.backend("shape"):
        sin = []
        for a, t in zip(args, tin):
            if isinstance(t, torch.Tensor):
                s = gx.empty(*t.shape, dtype=gx.dtypes.from_name(_dtype_name(t.dtype)), device=str(t.device))
                sin.append(s.requires_grad_(t.requires_grad))
            else:
                sin.append(t)
        souts = _tensors(gx_fn(*sin))
    for i, (s, t) in enumerate(zip(souts, touts)):
        assert s.data_ is None
        assert tuple(int(d) for d in s.shape) == tuple(t.shape), f"shape backend output {i}: {tuple(s.shape)}"
        assert s.dtype.name == _dtype_name(t.dtype), f"shape backend output {i}: dtype {s.dtype.name}"
    diff = [(s, t) for s, t in zip(souts, touts) if t.requires_grad]
    if diff and any(isinstance(x, gx.Tensor) and x.requires_grad for x in sin):
        with gx.backend("shape"):
            grads = [gx.empty(*s.shape, dtype=s.dtype) for s, _ in diff]
        gx.autograd.backward([s for s, _ in diff], grads)
        for x in sin:
            if isinstance(x, gx.Tensor) and x.requires_grad and x.grad is not None:
                assert tuple(x.grad.shape) == tuple(x.shape)
