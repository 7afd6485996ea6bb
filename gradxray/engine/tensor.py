"""Tensor and Storage.

A Tensor is a view (shape, strides, offset) of a Storage.  A Storage is the unit
of memory: it reports its allocation to the active memory trackers when created
and its release when the last tensor referencing it goes away (CPython reference
counting mirrors torch's intrusive refcounts, so the live set matches torch's as
long as the engine holds references exactly where torch does).

``data`` is the backend array for this view (a torch tensor on the torch
backend) or None on the shape backend.
"""
from __future__ import annotations

import itertools
from types import MappingProxyType

from . import memory
from .memo import remember
from .symbolic import SymInt, concrete_prod, sym_prod, sym_text

_uids = itertools.count(1)


# the hooks of a tensor or a graph node until one is registered: few ever have one (graph.own_hooks)
NO_HOOKS = MappingProxyType({})

# argument types that are never a tensor nor hold one: an op's sizes, dims and flags, skipped by the
# per-argument scans every op makes (an identity test of the type before any isinstance)
NOT_TENSOR_TYPES = frozenset({int, float, bool, str, type(None), SymInt})


class Size(tuple):
    """torch.Size: a tuple of ints (possibly SymInts)."""

    def numel(self) -> int:
        # immutable, and shared by a tensor's views and aliases: the (symbolic) product is computed once
        numel = self.__dict__.get("_numel")
        if numel is None:
            numel = self._numel = sym_prod(self)
        return numel

    def __repr__(self):
        return "gx.Size([" + ", ".join(sym_text(d) for d in self) + "])"


class device:
    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        spec = str(spec)
        if ":" in spec:
            spec, idx = spec.split(":", 1)
            index = int(idx)
        if spec not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, meta device type at start of device string: {spec}")
        self.type = spec
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def __repr__(self):
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


class Storage:
    """A block of memory: nbytes on a device, tracked from allocation to release."""

    __slots__ = ("nbytes", "device", "uid", "category", "location", "module", "version", "_trackers",
                 "__weakref__")

    def __init__(self, nbytes: int, dev: device, category: str = "activation"):
        self.nbytes = int(nbytes)
        self.device = dev
        self.uid = next(_uids)
        self.category = category
        # memory's module globals read directly: one storage per tensor an op makes
        self.location = memory._location
        modules = memory._module_stack
        self.module = modules[-1] if modules else ""
        self.version = 0            # torch's version counter, shared by all views of the storage
        trackers = memory._trackers
        self._trackers = tuple(trackers)
        for t in trackers:
            t.on_alloc(self)

    def __del__(self):
        for t in self._trackers:
            t.on_free(self)


_contiguous_cache: dict[tuple, tuple[int, ...]] = {}


def contiguous_strides(shape) -> tuple[int, ...]:
    # plain ints whatever the sizes are (a SymInt hashes and compares as its value), so the result
    # can be shared by every tensor of the same shape; models use few distinct shapes
    key = tuple(shape)
    cached = _contiguous_cache.get(key)
    if cached is not None:
        return cached
    strides = []
    acc = 1
    for s in reversed(key):
        strides.append(acc)
        acc = acc * max(int(s), 1)
    return remember(_contiguous_cache, key, tuple(reversed(strides)))


class Tensor:
    """An n-dimensional tensor on the engine's autograd graph."""

    # Autograd state starts at these class-level defaults and is set per tensor only where it differs:
    # every op makes tensors, and most of them never change these.
    requires_grad = False
    grad_fn = None
    _output_nr = 0
    _base = None
    _grad_accumulator = None           # weakref to the AccumulateGrad node of a leaf
    _inference = False                 # made under inference_mode
    # leaf tensor hooks, run before accumulation (a non-leaf's are on its grad_fn), and hooks run after:
    # shared, read-only and empty until one is registered (graph.own_hooks)
    _hooks = NO_HOOKS
    _post_accumulate_hooks = NO_HOOKS

    def __init__(self, shape, dtype, dev, storage: Storage, stride=None, offset=0, data=None):
        self._shape = shape = shape if type(shape) is Size else Size(shape)     # immutable: shared, not copied
        self.dtype = dtype
        self.device = dev
        self._storage = storage
        self._stride = contiguous_strides(shape) if stride is None else stride if type(stride) is tuple else \
            tuple(stride)
        self._offset = offset
        self.data_ = data
        self.grad = None                   # an instance attribute: ``del t.grad`` is valid code

    # -- construction helpers (used by kernels) -------------------------
    @staticmethod
    def _new(shape, dtype, dev, data=None, stride=None, category=None):
        if not category:                     # memory's phase read directly: one storage per tensor an op makes
            category = "grad" if memory._phase == "backward" else "activation"
        st = Storage(concrete_prod(shape) * dtype.itemsize, dev, category)
        return Tensor(shape, dtype, dev, st, stride, 0, data)

    def _view(self, shape, stride, offset, data=None):
        t = Tensor(shape, self.dtype, self.device, self._storage, stride, offset, data)
        t._base = self._base if self._base is not None else self
        return t

    def _alias(self):
        """A new Tensor object on the same storage and geometry, without autograd history."""
        t = Tensor(self._shape, self.dtype, self.device, self._storage, self._stride, self._offset, self.data_)
        t._base = self._base
        return t

    # -- metadata -------------------------------------------------------
    @property
    def shape(self) -> Size:
        return self._shape

    def size(self, dim=None):
        if dim is None:
            return self._shape
        return self._shape[wrap_dim(dim, self.dim())]

    def stride(self, dim=None):
        if dim is None:
            return self._stride
        return self._stride[wrap_dim(dim, self.dim())]

    def storage_offset(self):
        return self._offset

    def dim(self) -> int:
        return len(self._shape)

    ndimension = dim

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def numel(self) -> int:
        return self._shape.numel()

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return int(self.numel()) * self.dtype.itemsize

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def _version(self) -> int:
        return self._storage.version

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_contiguous(self, memory_format=None) -> bool:
        if 0 in self._shape:             # no elements (tested without building the symbolic numel)
            return True
        expected = 1
        for s, st in zip(reversed(self._shape), reversed(self._stride)):
            if int(s) == 1:
                continue
            if int(st) != expected:
                return False
            expected *= int(s)
        return True

    def is_non_overlapping_and_dense(self) -> bool:
        return non_overlapping_and_dense(self._shape, self._stride)

    def untyped_storage(self) -> Storage:
        return self._storage

    @property
    def has_data(self) -> bool:
        return self.data_ is not None

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return int(self._shape[0])

    def __repr__(self):
        dims = ", ".join(sym_text(d) for d in self._shape)
        extra = ""
        if self.grad_fn is not None:
            extra = f", grad_fn=<{self.grad_fn.name()}>"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        if self.data_ is not None:
            return f"gx.tensor({self.data_.tolist() if self.numel() <= 8 else '...'}, shape=[{dims}], dtype={self.dtype.name}{extra})"
        return f"gx.Tensor(shape=[{dims}], dtype={self.dtype.name}, device={self.device}{extra})"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        if self.data_ is None:
            raise RuntimeError("the truth value of a data-less (shape backend) tensor is unknown")
        return bool(self.data_.item())

    def item(self):
        if self.data_ is None:
            raise RuntimeError("item() needs data; this tensor lives on the shape backend")
        return self.data_.item()

    def tolist(self):
        if self.data_ is None:
            raise RuntimeError("tolist() needs data; this tensor lives on the shape backend")
        return self.data_.tolist()

    # -- autograd -------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True):
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if requires_grad and self._inference:
            raise RuntimeError("Setting requires_grad=True on inference tensor outside InferenceMode is not allowed.")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd import backward
        backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def register_hook(self, hook):
        """``hook(grad) -> grad | None`` runs on this tensor's gradient before it is used."""
        from .graph import _add_hook, own_hooks
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            return _add_hook(own_hooks(self, "_hooks"), hook)
        return _add_hook(own_hooks(self.grad_fn, "tensor_pre_hooks").setdefault(self._output_nr, {}), hook)

    def register_post_accumulate_grad_hook(self, hook):
        from .graph import _add_hook, own_hooks
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        return _add_hook(own_hooks(self, "_post_accumulate_hooks"), hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` (a copy, as torch makes)."""
        import weakref
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            from .graph import own_hooks
            own_hooks(self.grad_fn, "retains_grad")[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self._output_nr in self.grad_fn.retains_grad

    def is_inference(self) -> bool:
        return self._inference

    def detach(self):
        """A history-free tensor on the same storage and version counter.  Not a differentiable view:
        in-place changes to it never rebase this tensor's history (torch's ``detach()._base`` is None)."""
        t = self._alias()
        t._base = None
        return t

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def numpy(self):
        if self.data_ is None:
            raise RuntimeError("numpy() needs data; this tensor lives on the shape backend")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        from .backends import to_numpy
        return to_numpy(self)


def non_overlapping_and_dense(shape, stride) -> bool:
    """The elements fill a block of memory exactly, in some dim order (torch's is_non_overlapping_and_dense)."""
    expected = 1
    for st, n in sorted((int(st), int(n)) for n, st in zip(shape, stride) if int(n) != 1):
        if st != expected:
            return False
        expected *= n
    return True


def wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


class Parameter(Tensor):
    """nn.Parameter: a leaf that requires grad, counted as a parameter."""

    def __new__(cls, data=None, requires_grad=True):
        return object.__new__(cls)

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from .creation import empty
            data = empty(0)
        Tensor.__init__(self, data._shape, data.dtype, data.device, data._storage, data._stride,
                        data._offset, data.data_)
        self._storage.category = "param"
        for t in self._storage._trackers:
            a = t.live.get(self._storage.uid)
            if a is not None:
                a.category = "param"
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


class _BufferMeta(type):
    # torch's Buffer is a marker: isinstance(t, Buffer) holds for a tensor flagged by Buffer(...)
    def __instancecheck__(cls, instance):
        return isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False)


class Buffer(Tensor, metaclass=_BufferMeta):
    """nn.Buffer (torch >= 2.5): ``Buffer(data, persistent=True)`` gives ``data`` detached (a plain tensor,
    same storage), flagged so that assigning it to a module attribute registers a buffer with that
    persistence, as ``register_buffer`` does."""

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            from .creation import empty
            data = empty(0)
        t = data.detach().requires_grad_(data.requires_grad)
        t.persistent = persistent
        t._is_buffer = True
        return t
