"""Every engine op against torch.autograd: values, gradients, the saved tensors (shape, dtype,
bytes by storage), and the shape backend's output shape."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from tests.support.opcheck import storage_multiset, torch_saved  # noqa: E402


def _bn_stats(dtype):
    return torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)


TARGET = torch.tensor([3, -1, 0, 6, 2, 2])

CASES = {
    "linear_2d": (lambda x, w, b: TF.linear(x, w, b), lambda x, w, b: F.linear(x, w, b), [(4, 8), (3, 8), (3,)]),
    "linear_3d": (lambda x, w, b: TF.linear(x, w, b), lambda x, w, b: F.linear(x, w, b), [(2, 4, 8), (3, 8), (3,)]),
    "linear_3d_no_bias": (lambda x, w: TF.linear(x, w), lambda x, w: F.linear(x, w), [(2, 4, 8), (3, 8)]),
    "linear_noncontiguous": (lambda x, w, b: TF.linear(x.transpose(0, 1), w, b),
                             lambda x, w, b: F.linear(x.transpose(0, 1), w, b), [(4, 2, 8), (3, 8), (3,)]),
    "gelu": (lambda x: TF.gelu(x), lambda x: F.gelu(x), [(2, 5)]),
    "gelu_tanh": (lambda x: TF.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), [(3, 4)]),
    "relu": (lambda x: TF.relu(x), lambda x: F.relu(x), [(2, 5)]),
    "layer_norm": (lambda x, w, b: TF.layer_norm(x, (8,), w, b), lambda x, w, b: F.layer_norm(x, (8,), w, b),
                   [(2, 3, 8), (8,), (8,)]),
    "add_broadcast": (lambda x, y: x + y, lambda x, y: x + y, [(2, 3, 8), (3, 8)]),
    "sub_broadcast": (lambda x, y: x - y, lambda x, y: x - y, [(2, 3, 1), (3, 8)]),
    "mul_broadcast": (lambda x, y: x * y, lambda x, y: x * y, [(2, 3, 8), (3, 8)]),
    "div": (lambda x, y: x / y, lambda x, y: x / y, [(4, 5), (4, 5)]),
    "mul_scalar": (lambda x: x * 3.0, lambda x: x * 3.0, [(4, 5)]),
    "sdpa_causal": (lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
                    lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [(2, 2, 5, 4)] * 3),
    "sdpa_transposed_inputs": (
        lambda q, k, v: TF.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)),
        lambda q, k, v: F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)),
        [(2, 5, 2, 4)] * 3),
    "conv2d_stride_pad": (lambda x, w, b: TF.conv2d(x, w, b, stride=2, padding=1),
                          lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [(2, 3, 8, 8), (4, 3, 3, 3), (4,)]),
    "conv2d_groups_dilation": (lambda x, w: TF.conv2d(x, w, None, padding=2, dilation=2, groups=2),
                               lambda x, w: F.conv2d(x, w, None, padding=2, dilation=2, groups=2),
                               [(2, 4, 7, 7), (6, 2, 3, 3)]),
    "max_pool2d": (lambda x: TF.max_pool2d(x, 3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 8, 8)]),
    "adaptive_avg_pool2d_1x1": (lambda x: TF.adaptive_avg_pool2d(x, (1, 1)), lambda x: F.adaptive_avg_pool2d(x, (1, 1)),
                                [(2, 3, 8, 8)]),
    "adaptive_avg_pool2d_2x3": (lambda x: TF.adaptive_avg_pool2d(x, (2, 3)), lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
                                [(2, 3, 8, 9)]),
    "batch_norm_train": (
        lambda x, w, b: TF.batch_norm(x, *_bn_stats(x.dtype), w, b, training=True),
        lambda x, w, b: F.batch_norm(x, *[gx.from_torch(t) for t in _bn_stats(torch.float64)], w, b, training=True),
        [(2, 3, 4, 4), (3,), (3,)]),
    "views": (lambda x: x.view(4, 6).t().contiguous().view(2, 12).transpose(0, 1).reshape(3, 8),
              lambda x: x.view(4, 6).t().contiguous().view(2, 12).transpose(0, 1).reshape(3, 8), [(2, 12)]),
    "split_one_used": (lambda x: x.split(2, dim=1)[1], lambda x: x.split(2, dim=1)[1], [(3, 6)]),
    "slicing": (lambda x: x[1:, None, ::2], lambda x: x[1:, None, ::2], [(4, 6)]),
    "select": (lambda x: x[1] * x[:, 2].sum(), lambda x: x[1] * x[:, 2].sum(), [(4, 6)]),
    "permute_flatten": (lambda x: x.permute(2, 0, 1).flatten(1), lambda x: x.permute(2, 0, 1).flatten(1), [(2, 3, 4)]),
    "sum_mean": (lambda x: x.sum(1) + x.mean(1), lambda x: x.sum(1) + x.mean(1), [(3, 4)]),
    "softmax": (lambda x: TF.softmax(x, -1), lambda x: F.softmax(x, -1), [(3, 7)]),
    "cross_entropy_ignore_index": (lambda x: TF.cross_entropy(x, TARGET, ignore_index=-1),
                                   lambda x: F.cross_entropy(x, gx.from_torch(TARGET), ignore_index=-1), [(6, 7)]),
    "embedding": (lambda w: TF.embedding(torch.tensor([[1, 2], [2, 0]]), w),
                  lambda w: F.embedding(gx.from_torch(torch.tensor([[1, 2], [2, 0]])), w), [(4, 3)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_torch(name):
    tfn, gfn, shapes = CASES[name]
    torch.manual_seed(0)
    tin = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    with gx.backend("torch"):
        gin = [gx.from_torch(t) for t in tin]
    tout, tsaved = torch_saved(tfn, tin)
    tracker = gx.memory.MemoryTracker()
    with tracker:
        gout = gfn(*gin)
    # forward values and dtype
    assert torch.allclose(tout, gout.data_, rtol=1e-10, atol=1e-12)
    assert gout.dtype.name == str(tout.dtype).replace("torch.", "")
    # saved tensors: same multiset of (shape, dtype), same new bytes by storage
    leaf_ptrs = {t.untyped_storage().data_ptr() for t in tin}
    theirs = storage_multiset(tsaved, leaf_ptrs)
    ours = sorted((r.shape, r.dtype, r.nbytes if r.new_storage and r.category != "param" and
                   not any(r.storage_uid == g._storage.uid for g in gin) else 0) for r in tracker.saved)
    assert ours == theirs
    # gradients with respect to every input
    grad = torch.randn_like(tout)
    tout.backward(grad)
    gout.backward(gx.from_torch(grad, requires_grad=False))
    for t, g in zip(tin, gin):
        assert torch.allclose(t.grad, g.grad.data_, rtol=1e-10, atol=1e-12)
    # the shape backend infers the same output shape without data
    with gx.backend("shape"):
        sin = [gx.empty(*s, dtype=gx.float64, requires_grad=True) for s in shapes]
    if name in ("batch_norm_train",):
        sout = F.batch_norm(sin[0], gx.zeros(3, dtype=gx.float64), gx.ones(3, dtype=gx.float64), sin[1], sin[2],
                            training=True)
    elif name.startswith("cross_entropy"):
        sout = F.cross_entropy(sin[0], gx.empty(6, dtype=gx.int64), ignore_index=-1)
    elif name == "embedding":
        sout = F.embedding(gx.empty(2, 2, dtype=gx.int64), sin[0])
    else:
        sout = gfn(*sin)
    assert tuple(int(s) for s in sout.shape) == tuple(tout.shape)
    assert sout.data_ is None


@pytest.mark.parametrize("operands", [
    ("f32", "i64"), ("i64", 2.5), ("f32", "f64_0d"), ("i64", "f64_0d"), ("bool", 3), ("f16", "bf16"), ("i32", True),
    ("u8", "i8"), ("f64", 2), ("i64_0d", 1.5),
])
def test_result_type_matches_torch(operands):
    names = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64", "i32": "int32",
             "u8": "uint8", "i8": "int8", "bool": "bool"}

    def make(spec, lib, empty):
        if not isinstance(spec, str):
            return spec
        name, zero_dim = spec.split("_")[0], spec.endswith("_0d")
        dtype = getattr(lib, "bool" if names[name] == "bool" else names[name])
        return empty(() if zero_dim else (2,), dtype=dtype)

    ours = gx.result_type(*(make(s, gx, gx.empty) for s in operands))
    theirs = torch.result_type(*(make(s, torch, torch.empty) for s in operands))
    assert ours.name == str(theirs).replace("torch.", "")
