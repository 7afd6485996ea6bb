"""nn modules on the engine against torch.nn with the same parameters: outputs, every parameter's gradient,
saved tensors (bytes by storage), running-stat updates, state_dict keys, the shape backend's output shape;
and the Module API (registration, traversal, modes, state_dict round trips)."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn as tnn  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine import nn  # noqa: E402
from gradxray.engine.interop import load_torch_state  # noqa: E402
from tests.support.opcheck import _close, _engine_saved, storage_multiset, torch_saved  # noqa: E402

RTOL = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-6)}


def _pair(make_torch, make_gx, shapes, call=None, train=True, **extra):
    return (make_torch, make_gx, shapes, call, train, extra)


def _attn_call(need_weights, average=True):
    def call(m, x):
        return m(x, x, x, need_weights=need_weights, average_attn_weights=average)
    return call


def _cross_attn_call(m, q, kv):
    return m(q, kv, kv)


CASES = {
    "conv1d": _pair(lambda: tnn.Conv1d(3, 4, 3, stride=2, padding=1), lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1),
                    [(2, 3, 9)]),
    "conv2d": _pair(lambda: tnn.Conv2d(3, 4, 3, padding="same", bias=False),
                    lambda: nn.Conv2d(3, 4, 3, padding="same", bias=False), [(2, 3, 6, 6)]),
    "conv2d_groups": _pair(lambda: tnn.Conv2d(4, 6, (3, 2), groups=2, dilation=(2, 1)),
                           lambda: nn.Conv2d(4, 6, (3, 2), groups=2, dilation=(2, 1)), [(2, 4, 7, 5)]),
    "conv3d": _pair(lambda: tnn.Conv3d(2, 3, 2), lambda: nn.Conv3d(2, 3, 2), [(1, 2, 3, 4, 3)]),
    "conv_transpose1d": _pair(lambda: tnn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=1),
                              lambda: nn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=1), [(2, 3, 5)]),
    "conv_transpose2d": _pair(lambda: tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2),
                              lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2), [(2, 4, 3, 4)]),
    "conv_transpose2d_output_size": _pair(lambda: tnn.ConvTranspose2d(2, 3, 3, stride=2),
                                          lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), [(1, 2, 3, 3)],
                                          call=lambda m, x: m(x, output_size=[8, 8])),
    "batch_norm1d_train": _pair(lambda: tnn.BatchNorm1d(3), lambda: nn.BatchNorm1d(3), [(4, 3)]),
    "batch_norm1d_3d_input": _pair(lambda: tnn.BatchNorm1d(3, momentum=None), lambda: nn.BatchNorm1d(3, momentum=None),
                                   [(4, 3, 5)], repeat=3),
    "batch_norm2d_train": _pair(lambda: tnn.BatchNorm2d(3), lambda: nn.BatchNorm2d(3), [(2, 3, 4, 4)], repeat=2),
    "batch_norm2d_eval": _pair(lambda: tnn.BatchNorm2d(3), lambda: nn.BatchNorm2d(3), [(2, 3, 4, 4)], train=False),
    "batch_norm2d_no_running_stats": _pair(lambda: tnn.BatchNorm2d(3, track_running_stats=False),
                                           lambda: nn.BatchNorm2d(3, track_running_stats=False), [(2, 3, 4, 4)]),
    "batch_norm2d_no_running_stats_eval": _pair(lambda: tnn.BatchNorm2d(3, affine=False, track_running_stats=False),
                                                lambda: nn.BatchNorm2d(3, affine=False, track_running_stats=False),
                                                [(2, 3, 4, 4)], train=False),
    "batch_norm3d": _pair(lambda: tnn.BatchNorm3d(2), lambda: nn.BatchNorm3d(2), [(2, 2, 3, 2, 3)]),
    "group_norm": _pair(lambda: tnn.GroupNorm(2, 4), lambda: nn.GroupNorm(2, 4), [(2, 4, 3, 3)]),
    "instance_norm1d": _pair(lambda: tnn.InstanceNorm1d(3), lambda: nn.InstanceNorm1d(3), [(2, 3, 6)]),
    "instance_norm2d_affine_tracked": _pair(lambda: tnn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                            lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                            [(2, 3, 4, 4)], repeat=2),
    "instance_norm2d_tracked_eval": _pair(lambda: tnn.InstanceNorm2d(3, track_running_stats=True),
                                          lambda: nn.InstanceNorm2d(3, track_running_stats=True), [(2, 3, 4, 4)],
                                          train=False),
    "instance_norm1d_unbatched": _pair(lambda: tnn.InstanceNorm1d(3), lambda: nn.InstanceNorm1d(3), [(3, 6)]),
    "layer_norm": _pair(lambda: tnn.LayerNorm(6), lambda: nn.LayerNorm(6), [(2, 3, 6)]),
    "rms_norm": _pair(lambda: tnn.RMSNorm([3, 4]), lambda: nn.RMSNorm([3, 4]), [(2, 3, 4)]),
    "rms_norm_no_affine": _pair(lambda: tnn.RMSNorm(4, eps=1e-3, elementwise_affine=False),
                                lambda: nn.RMSNorm(4, eps=1e-3, elementwise_affine=False), [(2, 4)]),
    "max_pool1d": _pair(lambda: tnn.MaxPool1d(3, 2, 1), lambda: nn.MaxPool1d(3, 2, 1), [(2, 3, 8)]),
    "max_pool2d_indices": _pair(lambda: tnn.MaxPool2d(2, return_indices=True, ceil_mode=True),
                                lambda: nn.MaxPool2d(2, return_indices=True, ceil_mode=True), [(2, 3, 5, 5)]),
    "avg_pool1d": _pair(lambda: tnn.AvgPool1d(2), lambda: nn.AvgPool1d(2), [(2, 3, 8)]),
    "avg_pool2d": _pair(lambda: tnn.AvgPool2d(3, 2, 1, count_include_pad=False),
                        lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), [(2, 3, 7, 7)]),
    "adaptive_avg_pool1d": _pair(lambda: tnn.AdaptiveAvgPool1d(3), lambda: nn.AdaptiveAvgPool1d(3), [(2, 3, 8)]),
    "adaptive_avg_pool2d": _pair(lambda: tnn.AdaptiveAvgPool2d((2, None)), lambda: nn.AdaptiveAvgPool2d((2, None)),
                                 [(2, 3, 5, 4)]),
    "adaptive_max_pool2d": _pair(lambda: tnn.AdaptiveMaxPool2d(3), lambda: nn.AdaptiveMaxPool2d(3), [(2, 3, 7, 7)]),
    "flatten_unflatten": _pair(lambda: tnn.Sequential(tnn.Flatten(), tnn.Unflatten(1, (4, -1)), tnn.Identity()),
                               lambda: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (4, -1)), nn.Identity()),
                               [(2, 3, 2, 4)]),
    "small_cnn": _pair(lambda: tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(),
                                              tnn.MaxPool2d(2), tnn.Conv2d(4, 4, 3, groups=2), tnn.GroupNorm(2, 4),
                                              tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(4, 2)),
                       lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                             nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, groups=2), nn.GroupNorm(2, 4),
                                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
                       [(2, 3, 8, 8)]),
    "mha_need_weights": _pair(lambda: tnn.MultiheadAttention(8, 2), lambda: nn.MultiheadAttention(8, 2), [(5, 2, 8)],
                              call=_attn_call(True)),
    "mha_need_weights_per_head_batch_first": _pair(lambda: tnn.MultiheadAttention(8, 2, batch_first=True),
                                                   lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                                                   [(2, 5, 8)], call=_attn_call(True, average=False)),
    "mha_sdpa": _pair(lambda: tnn.MultiheadAttention(8, 4), lambda: nn.MultiheadAttention(8, 4), [(5, 2, 8)],
                      call=_attn_call(False)),
    "mha_sdpa_batch_first": _pair(lambda: tnn.MultiheadAttention(8, 2, batch_first=True),
                                  lambda: nn.MultiheadAttention(8, 2, batch_first=True), [(2, 5, 8)],
                                  call=_attn_call(False)),
    "mha_cross_attention": _pair(lambda: tnn.MultiheadAttention(8, 2, bias=False),
                                 lambda: nn.MultiheadAttention(8, 2, bias=False), [(4, 2, 8), (6, 2, 8)],
                                 call=_cross_attn_call),
    "encoder_layer_post_norm_relu": _pair(lambda: tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0),
                                          lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), [(5, 2, 8)]),
    "encoder_layer_pre_norm_gelu_batch_first": _pair(
        lambda: tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", norm_first=True,
                                            batch_first=True),
        lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", norm_first=True,
                                           batch_first=True), [(2, 5, 8)]),
}


def _outputs(out):
    return [o for o in (out if isinstance(out, tuple) else (out,)) if o is not None]


def _run_case(name, dtype):
    make_torch, make_gx, shapes, call, train, extra = CASES[name]
    call = call or (lambda m, *xs: m(*xs))
    torch.manual_seed(0)
    tmod = make_torch().to(dtype).train(train)
    with gx.backend("torch"):
        gmod = make_gx().to(gx.dtypes.from_name(str(dtype).replace("torch.", ""))).train(train)
    load_torch_state(gmod, tmod)
    assert list(gmod.state_dict().keys()) == list(tmod.state_dict().keys())
    rtol, atol = RTOL[dtype]
    for step in range(extra.get("repeat", 1)):      # repeated steps exercise running-stat updates
        xs = [torch.randn(s, dtype=dtype, requires_grad=True) for s in shapes]
        gxs = [gx.from_torch(x, requires_grad=True) for x in xs]
        tout, tsaved = torch_saved(lambda *a: call(tmod, *a), xs)
        tracker = gx.memory.MemoryTracker()
        with tracker:
            gout = call(gmod, *gxs)
        touts, gouts = _outputs(tout), _outputs(gout)
        assert len(touts) == len(gouts)
        for i, (t, g) in enumerate(zip(touts, gouts)):
            _close(g, t, f"{name} output {i}", rtol, atol)
        exclude = {x.untyped_storage().data_ptr() for x in xs} | \
            {p.untyped_storage().data_ptr() for p in tmod.parameters()}
        assert _engine_saved(tracker, gxs) == storage_multiset(tsaved, exclude), f"{name}: saved tensors differ"
        diff = [(t, g) for t, g in zip(touts, gouts) if t.requires_grad]
        grads = [torch.randn(t.shape, dtype=dtype) for t, _ in diff]
        torch.autograd.backward([t for t, _ in diff], grads)
        gx.autograd.backward([g for _, g in diff], [gx.from_torch(v) for v in grads])
        for i, (x, gxx) in enumerate(zip(xs, gxs)):
            _close(gxx.grad, x.grad, f"{name} input {i} grad", rtol, atol)
        gparams = dict(gmod.named_parameters())
        for pname, p in tmod.named_parameters():
            _close(gparams[pname].grad, p.grad, f"{name} grad of {pname}", rtol, atol)
        gbuffers = dict(gmod.named_buffers())
        for bname, b in tmod.named_buffers():
            if b.dtype.is_floating_point:
                _close(gbuffers[bname], b, f"{name} buffer {bname}", rtol, atol)
            else:
                assert gbuffers[bname].item() == b.item(), f"{name} buffer {bname}"
    return make_gx, shapes, call, train, touts


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_module_vs_torch(name, dtype):
    make_gx, shapes, call, train, touts = _run_case(name, dtype)
    with gx.backend("shape"):
        smod = make_gx().train(train)
        souts = _outputs(call(smod, *[gx.empty(*s, requires_grad=True) for s in shapes]))
    for s, t in zip(souts, touts):
        assert tuple(int(d) for d in s.shape) == tuple(t.shape), f"shape backend: {tuple(s.shape)}"


# -- the Module API -----------------------------------------------------------

class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.norm = nn.BatchNorm2d(2)
        self.register_buffer("scale", gx.ones(2), persistent=False)
        self.register_parameter("extra", nn.Parameter(gx.zeros(3)))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = _Block()
        self.b = self.a                   # the same block twice
        self.head = nn.Linear(2, 1)


def _net():
    with gx.backend("torch"):
        return _Net()


class _TorchBlock(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv = tnn.Conv2d(2, 2, 1)
        self.norm = tnn.BatchNorm2d(2)
        self.register_buffer("scale", torch.ones(2), persistent=False)
        self.register_parameter("extra", tnn.Parameter(torch.zeros(3)))


class _TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.a = _TorchBlock()
        self.b = self.a
        self.head = tnn.Linear(2, 1)


def _names(items):
    return [n for n, _ in items]


def test_traversal_matches_torch():
    net, ref = _net(), _TorchNet()
    for method, kwargs in [("named_parameters", {}), ("named_parameters", {"remove_duplicate": False}),
                           ("named_parameters", {"prefix": "net"}), ("named_buffers", {}),
                           ("named_buffers", {"remove_duplicate": False}), ("named_children", {}),
                           ("named_modules", {}), ("named_modules", {"remove_duplicate": False}),
                           ("named_modules", {"prefix": "root"})]:
        assert _names(getattr(net, method)(**kwargs)) == _names(getattr(ref, method)(**kwargs)), (method, kwargs)
    assert _names(net.a.named_parameters(recurse=False)) == _names(ref.a.named_parameters(recurse=False))
    assert _names(net.a.named_buffers(recurse=False)) == _names(ref.a.named_buffers(recurse=False))
    assert list(net.state_dict()) == list(ref.state_dict())
    assert len(list(net.parameters())) == len(list(ref.parameters())) == 7
    assert list(net.children())[0] is net.a and net.get_submodule("a.norm") is net.a.norm
    assert net.get_parameter("a.conv.bias") is net.a.conv.bias
    assert net.get_buffer("a.norm.running_var") is net.a.norm.running_var


def test_module_list_concatenation_matches_torch():
    for lib in (torch.nn, gx.nn):
        layers = lib.ModuleList([lib.ReLU()])
        same = layers
        layers += [lib.Tanh(), lib.GELU()]
        joined = layers + lib.ModuleList([lib.SiLU()])
        assert layers is same and [type(m).__name__ for m in layers] == ["ReLU", "Tanh", "GELU"]
        assert type(joined).__name__ == "ModuleList" and list(dict(joined.named_children())) == ["0", "1", "2", "3"]
        assert joined[3].__class__.__name__ == "SiLU" and joined[0] is layers[0]


def test_state_dict_round_trip_and_errors():
    net, other = _net(), _net()
    keys = list(net.state_dict())
    assert "a.scale" not in keys                     # non-persistent buffer
    assert "b.conv.weight" in keys                   # state_dict keeps duplicates under both names
    result = other.load_state_dict(net.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(other.head.weight.data_, net.head.weight.data_)
    assert other.head.weight.requires_grad and other.head.weight.grad_fn is None
    state = net.state_dict()
    del state["head.bias"]
    state["junk"] = state["head.weight"]
    with pytest.raises(RuntimeError, match=r'Error\(s\) in loading state_dict for _Net:\n\tMissing key\(s\) in '
                                           r'state_dict: "head.bias". \n\tUnexpected key\(s\) in state_dict: "junk". '):
        other.load_state_dict(state)
    result = other.load_state_dict(state, strict=False)
    assert result.missing_keys == ["head.bias"] and result.unexpected_keys == ["junk"]
    state = net.state_dict()
    with gx.backend("torch"):
        state["head.weight"] = gx.zeros(2, 2)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.weight: copying a param with shape "
                                           r"torch.Size\(\[2, 2\]\) from checkpoint, the shape in current model is "
                                           r"torch.Size\(\[1, 2\]\)."):
        other.load_state_dict(state)


def test_state_dict_keys_match_torch():
    torch_layer = tnn.TransformerEncoderLayer(8, 2, 16)
    with gx.backend("torch"):
        layer = nn.TransformerEncoderLayer(8, 2, 16)
    assert list(layer.state_dict()) == list(torch_layer.state_dict())
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in torch_layer.named_parameters()]
    assert [n for n, _ in layer.named_modules()] == [n for n, _ in torch_layer.named_modules()]
    bn_torch, bn = tnn.BatchNorm2d(3, track_running_stats=False), nn.BatchNorm2d(3, track_running_stats=False)
    assert list(bn.state_dict()) == list(bn_torch.state_dict())


def test_buffer_assignment_registers_like_torch():
    """nn.Buffer(t, persistent=...) assigned to an attribute registers a buffer (torch >= 2.5)."""
    if not hasattr(tnn, "Buffer"):
        pytest.skip("torch without nn.Buffer")

    def build(lib, zeros, ones):
        m = lib.Module()
        m.keep = lib.Buffer(zeros(3))
        m.scratch = lib.Buffer(ones(2), persistent=False)
        m.plain = zeros(1)
        return m

    ours, theirs = build(nn, gx.zeros, gx.ones), build(tnn, torch.zeros, torch.ones)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == ["keep", "scratch"]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["keep"]
    assert isinstance(ours.keep, nn.Buffer) and not isinstance(ours.plain, nn.Buffer)
    assert type(ours.keep) is gx.Tensor and type(theirs.keep) is torch.Tensor     # Buffer(...) is a plain tensor
    leaf = gx.ones(2, requires_grad=True)
    assert nn.Buffer(leaf).requires_grad and nn.Buffer(leaf).grad_fn is None
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        ours.plain = nn.Buffer(gx.zeros(1))
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        theirs.plain = tnn.Buffer(torch.zeros(1))


def test_setattr_getattr_delattr_semantics():
    net = _net()
    with gx.backend("torch"):
        net.head.bias = None                             # a parameter slot may be cleared
        assert net.head.bias is None and "bias" in net.head._parameters
        with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight' \(torch.nn.Parameter or "
                                            r"None expected\)"):
            net.head.weight = gx.zeros(1, 2)
        with pytest.raises(TypeError, match=r"cannot assign 'int' as child module 'head'"):
            net.head = 3
        with pytest.raises(TypeError, match=r"cannot assign 'int' as buffer 'scale'"):
            net.a.scale = 3
        net.a.scale = gx.zeros(2)                        # a tensor replaces the buffer, which stays a buffer
        assert "scale" in net.a._buffers
        net.head = nn.Identity()
        assert isinstance(net.get_submodule("head"), nn.Identity)
        del net.a.extra
        assert "extra" not in dict(net.a.named_parameters())
        with pytest.raises(AttributeError, match="'_Block' object has no attribute 'extra'"):
            net.a.extra
        with pytest.raises(KeyError, match="attribute 'conv' already exists"):
            net.a.register_buffer("conv", gx.zeros(1))
        with pytest.raises(KeyError, match="buffer name can.+t contain"):
            net.a.register_buffer("x.y", gx.zeros(1))
        with pytest.raises(TypeError, match=r"cannot assign 'int' object to parameter 'p' \(torch.nn.Parameter or "
                                            r"None required\)"):
            net.a.register_parameter("p", 3)
        with pytest.raises(TypeError, match="int is not a Module subclass"):
            net.add_module("m", 3)


def test_train_eval_requires_grad_apply_zero_grad_and_dtype():
    net = _net()
    assert net.eval() is net and not net.a.norm.training
    net.train()
    assert net.a.conv.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "_Block", "Linear", "_Net"]
    with gx.backend("torch"):
        out = net.head(gx.randn(3, 2)).sum()
    out.backward()
    assert net.head.weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert not net.head.weight.grad.data_.any()
    net.zero_grad()
    assert net.head.weight.grad is None
    net.to(gx.float64)
    assert net.head.weight.dtype is gx.float64 and isinstance(net.head.weight, nn.Parameter)
    assert net.a.norm.num_batches_tracked.dtype is gx.int64          # integer buffers keep their dtype
    assert net.a.norm.running_mean.dtype is gx.float64
    assert net.half().head.weight.dtype is gx.float16


def test_repr_matches_torch():
    pairs = [(nn.Conv2d(3, 4, 3, stride=2, padding=1, groups=1, bias=False),
              tnn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)),
             (nn.BatchNorm2d(3), tnn.BatchNorm2d(3)), (nn.GroupNorm(2, 4), tnn.GroupNorm(2, 4)),
             (nn.InstanceNorm2d(3), tnn.InstanceNorm2d(3)),
             (nn.BatchNorm1d(3, bias=False), tnn.BatchNorm1d(3, bias=False)), (nn.RMSNorm(4), tnn.RMSNorm(4)),
             (nn.Linear(2, 3), tnn.Linear(2, 3)), (nn.LayerNorm(4), tnn.LayerNorm(4)),
             (nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1), tnn.ConvTranspose2d(2, 3, 3, stride=2,
                                                                                           output_padding=1))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_loss_modules_wrap_the_functional_losses():
    import torch.nn.functional as TF
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.randn(4, 3, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    probs = torch.rand(4, 3, dtype=torch.float64) * 0.8 + 0.1
    pairs = [(nn.MSELoss(), tnn.MSELoss(), x, y), (nn.L1Loss(reduction="sum"), tnn.L1Loss(reduction="sum"), x, y),
             (nn.SmoothL1Loss(beta=0.5), tnn.SmoothL1Loss(beta=0.5), x, y),
             (nn.HuberLoss(delta=0.3), tnn.HuberLoss(delta=0.3), x, y),
             (nn.CrossEntropyLoss(), tnn.CrossEntropyLoss(), x, target),
             (nn.NLLLoss(reduction="none"), tnn.NLLLoss(reduction="none"), TF.log_softmax(x, 1), target),
             (nn.BCELoss(), tnn.BCELoss(), probs, (y > 0).double()),
             (nn.BCEWithLogitsLoss(), tnn.BCEWithLogitsLoss(), x, (y > 0).double()),
             (nn.KLDivLoss(reduction="batchmean"), tnn.KLDivLoss(reduction="batchmean"), TF.log_softmax(x, 1),
              probs)]
    for ours, theirs, a, b in pairs:
        expected = theirs(a, b)
        got = ours(gx.from_torch(a), gx.from_torch(b))
        _close(got, expected, type(ours).__name__, 1e-10, 1e-12)
    assert nn.MSELoss(size_average=False).reduction == "sum"


def test_module_errors_match_torch():
    with gx.backend("torch"):
        with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
            nn.BatchNorm2d(3)(gx.randn(2, 3, 4))
        with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
            nn.BatchNorm1d(3)(gx.randn(2, 3, 4, 4))
        with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
            nn.Conv2d(3, 4, 3, groups=2)
        with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
            nn.GroupNorm(3, 4)
        with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
            nn.TransformerEncoderLayer(8, 2, activation="tanh")


@pytest.mark.parametrize("name, shape", [("Dropout1d", (2, 3, 5)), ("Dropout2d", (2, 3, 4, 4)),
                                         ("Dropout3d", (2, 3, 2, 2, 2))])
def test_feature_dropout_modules_match_torch(name, shape):
    """Whole channels zeroed: with torch's RNG seeded alike the engine (torch backend) draws the same mask."""
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    expected = getattr(torch.nn, name)(p=0.4)(x)
    expected.sum().backward()
    with gx.backend("torch"):
        gxx = gx.from_torch(x.detach(), requires_grad=True)
    torch.manual_seed(0)
    module = getattr(gx.nn, name)(p=0.4)
    got = module(gxx)
    got.sum().backward()
    assert torch.equal(got.data_, expected.detach()) and torch.equal(gxx.grad.data_, x.grad)
    assert module.eval()(gxx) is gxx                       # eval: identity, as torch
    assert repr(module) == repr(getattr(torch.nn, name)(p=0.4))


RESET = {
    "Linear": (lambda m: m.Linear(4, 3), ("weight", "bias")),
    "Conv2d": (lambda m: m.Conv2d(2, 3, 3, groups=1), ("weight", "bias")),
    "ConvTranspose1d": (lambda m: m.ConvTranspose1d(4, 2, 3, groups=2), ("weight", "bias")),
    "LayerNorm": (lambda m: m.LayerNorm(5), ("weight", "bias")),
    "RMSNorm": (lambda m: m.RMSNorm(5), ("weight",)),
    "GroupNorm": (lambda m: m.GroupNorm(2, 4), ("weight", "bias")),
    "BatchNorm2d": (lambda m: m.BatchNorm2d(3), ("weight", "bias", "running_mean", "running_var",
                                                 "num_batches_tracked")),
}


@pytest.mark.parametrize("backend", ["numpy", "torch", "shape"])
@pytest.mark.parametrize("name", sorted(RESET))
def test_reset_parameters_reinitialises_like_torch(name, backend):
    """``reset_parameters()`` (what a subclass's ``super().reset_parameters()`` calls) exists where torch's
    module has it and redraws the same distribution: constants exactly, uniform draws within torch's bound;
    on the shape backend it changes nothing (there are no values)."""
    make, names = RESET[name]
    theirs = make(tnn)
    with gx.backend(backend):
        ours = make(nn)
        for n in names:                                        # disturb the state, then reset it
            if getattr(ours, n).data_ is not None:
                getattr(ours, n).data_[...] = 7
        ours.reset_parameters()
        if isinstance(ours, nn.BatchNorm2d):
            ours.reset_running_stats()
    with torch.no_grad():
        for n in names:
            getattr(theirs, n).fill_(7)
        theirs.reset_parameters()
    for n in names:
        mine, ref = getattr(ours, n), getattr(theirs, n)
        assert tuple(mine.shape) == tuple(ref.shape)
        if backend == "shape":
            assert mine.data_ is None
            continue
        got = torch.as_tensor(gx.backends.to_numpy(mine))
        if name in ("Linear", "Conv2d", "ConvTranspose1d"):
            fan_in = ref.shape[1] * (ref[0, 0].numel() if ref.dim() > 2 else 1) if n == "weight" else \
                theirs.weight.shape[1] * (theirs.weight[0, 0].numel() if theirs.weight.dim() > 2 else 1)
            bound = fan_in ** -0.5
            assert got.abs().max() <= bound and not torch.equal(got, torch.full_like(got, 7))
        else:
            assert torch.equal(got.to(ref.dtype), ref), n
