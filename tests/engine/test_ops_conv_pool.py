"""Convolutions and pooling against torch.autograd: values, saved tensors, first and second order, shape backend."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from gradxray.engine.symbolic import sym_text  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def same(name, **kw):
    """The same call on torch.nn.functional and on the engine's functional."""
    return (lambda *a: getattr(TF, name)(*a, **kw)), (lambda *a: getattr(F, name)(*a, **kw))


def case(name, args, check=None, **kw):
    t, g = same(name, **kw)
    return (t, g, args, check or {})


CASES = {
    # convolutions, all through aten convolution (ConvolutionBackward0 saves input and weight)
    "conv1d": case("conv1d", [Arg((2, 3, 9)), Arg((4, 3, 3)), Arg((4,))]),
    "conv1d_stride_pad_dilation": case("conv1d", [Arg((2, 4, 11)), Arg((6, 2, 3)), Arg((6,))], stride=2, padding=2,
                                       dilation=2, groups=2),
    "conv1d_same_even_kernel": case("conv1d", [Arg((2, 3, 8)), Arg((4, 3, 4))], padding="same"),
    "conv1d_same_dilated": case("conv1d", [Arg((1, 2, 7)), Arg((3, 2, 3)), Arg((3,))], padding="same", dilation=2),
    "conv1d_valid": case("conv1d", [Arg((2, 3, 8)), Arg((4, 3, 3))], padding="valid"),
    "conv1d_unbatched": case("conv1d", [Arg((3, 8)), Arg((4, 3, 3)), Arg((4,))]),
    "conv2d": case("conv2d", [Arg((2, 3, 6, 7)), Arg((4, 3, 3, 2)), Arg((4,))]),
    "conv2d_stride_pad": case("conv2d", [Arg((2, 3, 8, 8)), Arg((4, 3, 3, 3)), Arg((4,))], stride=2, padding=1),
    "conv2d_tuple_args": case("conv2d", [Arg((1, 2, 9, 8)), Arg((2, 2, 3, 2))], stride=(2, 1), padding=(1, 0),
                              dilation=(1, 2)),
    "conv2d_groups_dilation": case("conv2d", [Arg((2, 4, 7, 7)), Arg((6, 2, 3, 3))], padding=2, dilation=2, groups=2),
    "conv2d_depthwise": case("conv2d", [Arg((2, 3, 5, 5)), Arg((3, 1, 3, 3)), Arg((3,))], padding=1, groups=3),
    "conv2d_same_asymmetric": case("conv2d", [Arg((1, 2, 5, 6)), Arg((3, 2, 2, 3))], padding="same"),
    "conv2d_noncontiguous_input": case("conv2d", [Arg((2, 3, 5, 6), transposed=True), Arg((4, 3, 2, 2))]),
    "conv2d_noncontiguous_weight": case("conv2d", [Arg((2, 3, 5, 5)), Arg((2, 3, 3, 4), transposed=True)]),
    "conv2d_frozen_weight": case("conv2d", [Arg((2, 3, 5, 5)), Arg((4, 3, 3, 3), requires_grad=False), Arg((4,))]),
    "conv2d_frozen_input": case("conv2d", [Arg((2, 3, 5, 5), requires_grad=False), Arg((4, 3, 3, 3))]),
    "conv2d_unbatched": case("conv2d", [Arg((3, 5, 5)), Arg((2, 3, 3, 3))], padding=1),
    "conv3d": case("conv3d", [Arg((1, 2, 4, 5, 4)), Arg((3, 2, 2, 3, 2)), Arg((3,))], stride=(1, 2, 1), padding=1),
    "conv_transpose1d": case("conv_transpose1d", [Arg((2, 3, 5)), Arg((3, 2, 3)), Arg((2,))], stride=2, padding=1,
                             output_padding=1),
    "conv_transpose2d": case("conv_transpose2d", [Arg((2, 4, 4, 3)), Arg((4, 3, 3, 2)), Arg((6,))], stride=2,
                             padding=(1, 0), output_padding=(1, 0), groups=2),
    "conv_transpose2d_dilation": case("conv_transpose2d", [Arg((1, 2, 3, 3)), Arg((2, 3, 2, 2))], dilation=2),
    # pooling: the 1d ops are the 2d kernels on an unsqueezed plane
    "max_pool2d": case("max_pool2d", [Arg((2, 3, 8, 8))], kernel_size=3, stride=2, padding=1),
    "max_pool2d_ceil": case("max_pool2d", [Arg((2, 3, 7, 6))], kernel_size=2, ceil_mode=True),
    "max_pool2d_dilation": case("max_pool2d", [Arg((1, 2, 9, 9))], kernel_size=(2, 3), stride=(1, 2), dilation=2),
    "max_pool2d_indices": case("max_pool2d", [Arg((2, 3, 6, 6))], kernel_size=2, return_indices=True),
    "max_pool2d_unbatched_noncontiguous": case("max_pool2d", [Arg((3, 6, 6), transposed=True)], kernel_size=2),
    "max_pool1d": case("max_pool1d", [Arg((2, 3, 9))], kernel_size=3, stride=2, padding=1),
    "max_pool1d_indices_ceil": case("max_pool1d", [Arg((2, 3, 8))], kernel_size=3, ceil_mode=True,
                                    return_indices=True),
    "avg_pool2d": case("avg_pool2d", [Arg((2, 3, 8, 8))], kernel_size=3, stride=2, padding=1),
    "avg_pool2d_exclude_pad_ceil": case("avg_pool2d", [Arg((2, 3, 7, 7))], kernel_size=3, stride=2, padding=1,
                                        ceil_mode=True, count_include_pad=False),
    "avg_pool2d_divisor": case("avg_pool2d", [Arg((1, 2, 6, 5))], kernel_size=(2, 3), divisor_override=4),
    "avg_pool2d_noncontiguous": case("avg_pool2d", [Arg((2, 3, 6, 6), transposed=True)], kernel_size=2),
    "avg_pool1d": case("avg_pool1d", [Arg((2, 3, 9))], kernel_size=3, stride=2, padding=1, count_include_pad=False),
    "avg_pool1d_ceil": case("avg_pool1d", [Arg((2, 3, 8))], kernel_size=3, ceil_mode=True),
    "adaptive_avg_pool2d_1x1": case("adaptive_avg_pool2d", [Arg((2, 3, 8, 8))], output_size=(1, 1)),
    "adaptive_avg_pool2d_2x3": case("adaptive_avg_pool2d", [Arg((2, 3, 8, 9))], output_size=(2, 3)),
    "adaptive_avg_pool2d_none": case("adaptive_avg_pool2d", [Arg((2, 3, 5, 7))], output_size=(3, None)),
    "adaptive_avg_pool1d": case("adaptive_avg_pool1d", [Arg((2, 3, 10))], output_size=4),
    "adaptive_avg_pool1d_1": case("adaptive_avg_pool1d", [Arg((2, 3, 10))], output_size=1),
    "adaptive_max_pool2d": case("adaptive_max_pool2d", [Arg((2, 3, 7, 8))], output_size=3),
    "adaptive_max_pool2d_indices": case("adaptive_max_pool2d", [Arg((2, 3, 7, 8))], output_size=(2, 5),
                                        return_indices=True),
    "adaptive_max_pool1d": case("adaptive_max_pool1d", [Arg((2, 3, 9))], output_size=4),
}

DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_pool_vs_torch(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **kwargs)


LOW_PRECISION = ["conv2d_stride_pad", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d_2x3",
                 "adaptive_max_pool2d"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_conv_pool_low_precision(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, second_order=False, **kwargs)


FLOP_CASES = {
    "conv2d_groups": (lambda x, w: TF.conv2d(x, w, stride=2, padding=1, groups=2), (2, 4, 9, 9), (6, 2, 3, 3)),
    "conv1d": (lambda x, w: TF.conv1d(x, w, dilation=2), (3, 2, 11), (5, 2, 3)),
    "conv3d": (lambda x, w: TF.conv3d(x, w), (1, 2, 4, 5, 4), (3, 2, 2, 3, 2)),
    "conv_transpose2d": (lambda x, w: TF.conv_transpose2d(x, w, stride=2, output_padding=1, groups=2),
                         (2, 4, 4, 3), (4, 3, 3, 2)),
}


@pytest.mark.parametrize("name", sorted(FLOP_CASES))
@pytest.mark.parametrize("needs", [(True, True), (False, True), (True, False)], ids=["both", "weight", "input"])
def test_conv_flops_match_torch_flop_counter(name, needs):
    from torch.utils.flop_counter import FlopCounterMode
    fn, x_shape, w_shape = FLOP_CASES[name]
    x = torch.randn(x_shape, requires_grad=needs[0])
    w = torch.randn(w_shape, requires_grad=needs[1])
    counter = FlopCounterMode(display=False)
    with counter:
        y = fn(x, w)
    forward_flops = counter.get_total_flops()
    with counter:
        y.backward(torch.ones_like(y))
    backward_flops = counter.get_total_flops()

    gx_x, gx_w = gx.from_torch(x.detach(), requires_grad=needs[0]), gx.from_torch(w.detach(), requires_grad=needs[1])
    engine_fn = {"conv2d_groups": lambda a, b: F.conv2d(a, b, stride=2, padding=1, groups=2),
                 "conv1d": lambda a, b: F.conv1d(a, b, dilation=2), "conv3d": F.conv3d,
                 "conv_transpose2d": lambda a, b: F.conv_transpose2d(a, b, stride=2, output_padding=1, groups=2)}[name]
    tracker = gx.memory.MemoryTracker()
    with tracker:
        out = engine_fn(gx_x, gx_w)
        assert sum(tracker.flops.values()) == forward_flops
        out.backward(gx.ones_like(out))
    assert sum(tracker.flops.values()) - forward_flops == backward_flops


ERRORS = {
    "conv_channels": (lambda: F.conv2d(gx.randn(2, 3, 8, 8), gx.randn(4, 2, 3, 3)),
                      r"Given groups=1, weight of size \[4, 2, 3, 3\], expected input\[2, 3, 8, 8\] to have 2 "
                      r"channels, but got 3 channels instead"),
    "conv_groups": (lambda: F.conv2d(gx.randn(2, 3, 8, 8), gx.randn(4, 1, 3, 3), groups=2),
                    r"Given groups=2, weight of size \[4, 1, 3, 3\], expected input\[2, 3, 8, 8\] to have 2 channels"),
    "conv_kernel_too_big": (lambda: F.conv2d(gx.randn(2, 3, 2, 2), gx.randn(4, 3, 3, 3)),
                            r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\). Kernel "
                            r"size can't be greater than actual input size"),
    "conv_same_strided": (lambda: F.conv2d(gx.randn(2, 3, 8, 8), gx.randn(4, 3, 3, 3), padding="same", stride=2),
                          "padding='same' is not supported for strided convolutions"),
    "conv_bad_padding_string": (lambda: F.conv2d(gx.randn(2, 3, 8, 8), gx.randn(4, 3, 3, 3), padding="foo"),
                                "Invalid padding string: 'foo'"),
    "conv_transpose_channels": (lambda: F.conv_transpose2d(gx.randn(2, 3, 8, 8), gx.randn(4, 3, 3, 3)),
                                r"Given transposed=1, weight of size \[4, 3, 3, 3\], expected input\[2, 3, 8, 8\] to "
                                r"have 4 channels, but got 3 channels instead"),
    "conv_transpose_output_padding": (
        lambda: F.conv_transpose2d(gx.randn(2, 3, 8, 8), gx.randn(3, 3, 3, 3), output_padding=1),
        "output padding must be smaller than either stride or dilation, but got output_padding_height: 1 "
        "output_padding_width: 1 stride_height: 1 stride_width: 1 dilation_height: 1 dilation_width: 1"),
    "max_pool_padding": (lambda: F.max_pool2d(gx.randn(2, 3, 8, 8), 3, padding=2),
                         "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and "
                         "dilation=1"),
    "max_pool_too_small": (lambda: F.max_pool2d(gx.randn(1, 1, 2, 2), 3),
                           r"Given input size: \(1x2x2\). Calculated output size: \(1x0x0\). Output size is too "
                           "small"),
    "avg_pool_too_small": (lambda: F.avg_pool2d(gx.randn(1, 1, 2, 2), 3),
                           r"Given input size: \(1x2x2\). Calculated output size: \(1x0x0\). Output size is too "
                           "small"),
    "max_pool1d_dims": (lambda: F.max_pool1d(gx.randn(2, 3, 4, 5), 2),
                        r"max_pool1d: Expected 2D or 3D \(batch mode\) tensor with optional 0 dim batch size for "
                        r"input, but got:\[2, 3, 4, 5\]"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_conv_pool_errors_match_torch(name):
    fn, message = ERRORS[name]
    with gx.backend("torch"), pytest.raises(RuntimeError, match=message):
        fn()


@pytest.mark.parametrize("output_size", [(2, 2), 3])
def test_adaptive_pool_needs_a_batch_or_channel_dim(output_size):
    with gx.backend("torch"), pytest.raises(ValueError, match="Input dimension should be at least 3"):
        F.adaptive_avg_pool2d(gx.randn(8, 8), output_size)
    with gx.backend("torch"), pytest.raises(ValueError, match="Input dimension should be at least 3"):
        F.adaptive_max_pool2d(gx.randn(8, 8), output_size)


def test_max_pool1d_without_grad_uses_the_kernel_without_indices():
    """torch's CPU max_pool1d only allocates indices when a gradient will be needed."""
    x = torch.randn(2, 3, 9)
    with gx.backend("torch"):
        gx_x = gx.from_torch(x)
    tracker = gx.memory.MemoryTracker()
    with tracker:
        out = F.max_pool1d(gx_x, 3)
    assert torch.equal(out.data_, TF.max_pool1d(x, 3))
    assert out.grad_fn is None
    assert tracker.peak_bytes == out.nbytes          # the output only: no int64 indices were allocated


def test_conv2d_symbolic_batch_flows_to_output():
    with gx.backend("shape"):
        batch = gx.SymInt(4, "B")
        x = gx.empty(batch, 3, 16, 16)
        y = F.conv2d(x, gx.empty(8, 3, 3, 3), padding=1)
        z = F.max_pool2d(y, 2)
    assert sym_text(z.shape[0]) == "B"
    assert tuple(int(s) for s in z.shape) == (4, 8, 8, 8)



# -- layouts: a 2-D convolution's outputs follow a channels-last input or weight, as torch's kernels do
LAYOUTS = {
    # name: (input NCHW, weight, the operand laid out channels-last, transposed, conv kwargs)
    "contiguous": ((2, 4, 6, 6), (8, 4, 3, 3), None, False, {}),
    "channels_last_input": ((2, 4, 6, 6), (8, 4, 3, 3), "input", False, {}),
    "channels_last_input_batch1_1x1": ((1, 3, 6, 6), (8, 3, 1, 1), "input", False, {}),
    "channels_last_input_depthwise": ((2, 4, 6, 6), (4, 1, 3, 3), "input", False, {"groups": 4}),
    "channels_last_weight": ((2, 4, 6, 6), (8, 4, 3, 3), "weight", False, {}),
    "channels_last_one_channel": ((2, 1, 6, 6), (8, 1, 3, 3), "input", False, {}),
    "channels_last_1x1_plane": ((2, 4, 1, 1), (8, 4, 1, 1), "input", False, {}),
    "transposed_channels_last_input": ((2, 4, 5, 5), (4, 8, 3, 3), "input", True, {"stride": 2}),
}


def _strides(t) -> tuple:
    """Strides of the dims of size > 1 (the others never matter: layout checks skip them)."""
    return tuple(int(st) if int(n) > 1 else None for n, st in zip(t.shape, t.stride()))


def _conv_step(lib, fn, x_shape, w_shape, channels_last, kw):
    """Leaves of logical shape NCHW (a channels-last one is created NHWC and permuted, as LayerNorm2d
    leaves it), a convolution and a backward; returns (output, input leaf, weight leaf)."""
    def leaf(shape, last):
        n, c, h, w = shape
        t = lib.zeros(n, h, w, c, requires_grad=True) if last else lib.zeros(*shape, requires_grad=True)
        return t, (t.permute(0, 3, 1, 2) if last else t)

    x_leaf, x = leaf(x_shape, channels_last == "input")
    w_leaf, w = leaf(w_shape, channels_last == "weight")
    y = fn(x, w, **kw)
    y.sum().backward()
    return y, x_leaf, w_leaf


@pytest.mark.parametrize("backend", ["shape", "numpy"])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_conv2d_output_and_gradient_layouts_match_torch(name, backend):
    x_shape, w_shape, channels_last, transposed, kw = LAYOUTS[name]
    torch_fn, engine_fn = (TF.conv_transpose2d, F.conv_transpose2d) if transposed else (TF.conv2d, F.conv2d)
    yt, xt, wt = _conv_step(torch, torch_fn, x_shape, w_shape, channels_last, kw)
    with gx.backend(backend):
        yg, xg, wg = _conv_step(gx, engine_fn, x_shape, w_shape, channels_last, kw)
    assert _strides(yg) == _strides(yt)
    # .grad keeps the leaf's layout: adopted when the kernel's gradient has it, copied into it otherwise
    assert _strides(xg.grad) == _strides(xt.grad)
    assert _strides(wg.grad) == _strides(wt.grad)


def test_conv_weight_gradient_from_a_channels_last_input_is_copied_into_the_weights_layout():
    """torch's convolution_backward returns a channels-last grad_weight for a channels-last input, which
    AccumulateGrad cannot adopt for a contiguous weight: it copies it, so both are live for a moment."""
    from gradxray.engine.memory import MemoryTracker
    from tests.support.torch_truth import LiveStorageTracker

    shapes = ((2, 8, 6, 6), (16, 8, 3, 3), "input", {})
    tracker_t = LiveStorageTracker(timeline=True)
    with tracker_t:
        _conv_step(torch, TF.conv2d, *shapes)
    with gx.backend("shape"), MemoryTracker() as tracker_g:
        _conv_step(gx, F.conv2d, *shapes)
    weight_bytes = 16 * 8 * 3 * 3 * 4
    copies = [e for e in tracker_t.timeline if e[0] == "alloc" and e[1] == "new_empty_strided"]
    assert [e[2] for e in copies] == [weight_bytes]
    assert tracker_g.peak_bytes == tracker_t.peak_bytes
