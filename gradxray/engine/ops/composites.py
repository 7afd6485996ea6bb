"""The rest of the torch surface model code reaches for, each decomposed as torch decomposes it.

Composites (torch's CompositeImplicitAutograd ops and Python functionals) are written with the engine
ops torch's implementation calls, so their nodes and saved tensors are torch's: ``softmin`` is
softmax(-x), ``normalize`` is x / norm(x).clamp_min(eps).expand_as(x), ``cosine_similarity`` divides
each input by its (cloned, clamped) norm, ``outer`` is x.reshape(n, 1) * y, ``diff`` subtracts narrowed
slices, feature dropout multiplies by an [N, C, 1, ...] Bernoulli mask.  The ops with their own
derivative in torch (glu, pixel_shuffle/unshuffle, im2col/col2im, linalg_cross) are Functions; their
backward kernels are Functions too, so double backward works."""
from __future__ import annotations

import warnings

from .. import autograd
from .. import dtypes as _dt
from ..function import Function
from ..symbolic import sym_prod
from ..tensor import wrap_dim
from ._kernel import kernel, strides_like
from .pointwise import div, mul, neg, sub
from .shapes import broadcast_shapes
from .views import cat, expand, narrow, reshape, squeeze, unsqueeze, view_


# -- softmax family --------------------------------------------------------------------

def softmax(input, dim, dtype=None):
    """torch.softmax / Tensor.softmax: the functional one (a dtype casts first, as torch's does)."""
    from ..nn import functional as F
    return F.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):
    from ..nn import functional as F
    return F.log_softmax(input, dim, dtype=dtype)


def _legacy_softmax_dim(name, ndim):
    """torch's _get_softmax_dim for an omitted dim: 0 for 0-, 1- and 3-D inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _legacy_softmax_dim("softmin", input.dim())
    return softmax(neg(input), dim, dtype)


# -- normalisation and similarity -------------------------------------------------------

def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(||x||_p, eps) along ``dim``: norm (saves x and the norm), clamp_min (saves the norm),
    expand_as, div (saves the expanded denominator, and x where the denominator needs grad)."""
    if out is not None:
        raise NotImplementedError("normalize(out=...) is not supported")
    denom = expand(input.norm(p, dim, keepdim=True).clamp_min(eps), input.shape)
    return div(input, denom)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """torch 2.x's formulation: sum((x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps)), dim), where each
    norm is cloned and clamped in place without recording (so the clamp has no node)."""
    from .reduce import vector_norm
    common = _dt.result_type(x1, x2)
    if not common.is_floating_point:
        raise RuntimeError(f"expected common dtype to be floating point, yet common dtype is "
                           f"{_dt.scalar_type_name(common)}")
    x1 = x1 if x1.dtype.is_floating_point else x1.to(common)
    x2 = x2 if x2.dtype.is_floating_point else x2.to(common)
    if tuple(x1.shape) != tuple(x2.shape):          # at::expand_outplace expands both
        shape = broadcast_shapes(x1.shape, x2.shape)
        x1, x2 = expand(x1, shape), expand(x2, shape)
    x1_norm = vector_norm(x1, 2, dim, True).clone()
    x2_norm = vector_norm(x2, 2, dim, True).clone()
    with autograd.no_grad():
        x1_norm.clamp_min_(eps)
        x2_norm.clamp_min_(eps)
    return mul(div(x1, x1_norm), div(x2, x2_norm)).sum(dim)



# -- glu ----------------------------------------------------------------------------------

def _glu_halves(x, dim):
    half = x.shape[dim] // 2
    return narrow(x, dim, 0, half), narrow(x, dim, half, half)


class Glu(Function):
    """y = a * sigmoid(b) where (a, b) are the halves of x along ``dim``.  Saves: self."""

    saves = ("self",)

    @staticmethod
    def forward(ctx, x, dim):
        dim = wrap_dim(dim, x.dim())
        if int(x.shape[dim]) % 2:
            raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {int(x.shape[dim])}")
        shape = tuple(s // 2 if i == dim else s for i, s in enumerate(x.shape))
        ctx.save_for_backward(x)
        ctx.dim = dim
        # TensorIterator over the two halves: the output follows x's memory order
        return kernel("glu", (shape, x.dtype, strides_like(shape, x)), x, dim)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return GluBackward.apply(grad, x, ctx.dim), None


def _glu_backward_composite(grad, x, dim):
    """glu_backward written with engine ops: [g * s, g * a * s * (1 - s)] with s = sigmoid(b)."""
    a, b = _glu_halves(x, dim)
    s = b.sigmoid()
    return cat([mul(grad, s), mul(mul(mul(grad, a), s), sub(1, s))], dim)


class GluBackward(Function):
    """grad_input = glu_backward(grad, self, dim).  Saves: grad_output (only for self's gradient), self."""

    saves = ("grad_output", "self")

    @staticmethod
    def forward(ctx, grad, x, dim):
        ctx.save_for_backward(grad if ctx.needs_input_grad[1] else None, x)
        ctx.dim = dim
        return kernel("glu_backward", (x.shape, x.dtype), grad, x, dim)

    @staticmethod
    def backward(ctx, gg):
        from ._composite import composite_grads
        grad, x = ctx.saved_tensors
        g_grad = g_x = None
        if ctx.needs_input_grad[0]:
            # the kernel is linear in grad: its transpose maps gg = [gg_a, gg_b] to gg_a*s + gg_b*a*s*(1-s)
            a, b = _glu_halves(x, ctx.dim)
            gg_a, gg_b = _glu_halves(gg, ctx.dim)
            s = b.sigmoid()
            g_grad = mul(s, gg_a) + mul(mul(mul(gg_b, a), s), sub(1, s))
        if ctx.needs_input_grad[1]:
            (g_x,) = composite_grads(lambda x_: _glu_backward_composite(grad, x_, ctx.dim), [x], [True], [gg])
        return g_grad, g_x, None


def glu(input, dim=-1):
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    return Glu.apply(input, dim)


# -- feature dropout ------------------------------------------------------------------------

def _feature_dropout(input, p, training, inplace):
    """at::feature_dropout: noise = bernoulli(1 - p) of shape [N, C, 1, ...] (new_empty + bernoulli_ +
    div_), then input * noise (MulBackward0 saves the noise).  p == 1 multiplies by a 0-dim zero."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0 or not training or int(input.numel()) == 0:
        return input
    from ._kernel import inplace as run_inplace
    if input.dim() < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    if p == 1:
        noise = kernel("new_zeros", ((), input.dtype), input, [])
    else:
        shape = (input.shape[0], input.shape[1]) + (1,) * (input.dim() - 2)
        noise = kernel("new_empty", (shape, input.dtype), input, [int(s) for s in shape])
        run_inplace("bernoulli_", noise, 1 - p)
        run_inplace("div_", noise, 1 - p)
    return input.mul_(noise) if inplace else mul(input, noise)


def dropout1d(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    batched = input.dim() == 3
    if not batched:
        input = unsqueeze(input, 0)
    result = _feature_dropout(input, p, training, inplace)
    return result if batched else squeeze(result, 0)


def _warn_feature_dims(name, ndim, spatial):
    if ndim not in (spatial + 1, spatial + 2):
        warnings.warn(f"{name}: Received a {ndim}-D input to {name}, which is deprecated and will result in an "
                      f"error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead. Note that {name} exists to provide channel-wise dropout on inputs with "
                      f"{spatial} spatial dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      f"{spatial + 1}D or {spatial + 2}D inputs).", stacklevel=3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    _warn_feature_dims("dropout2d", input.dim(), 2)
    if input.dim() == 3:        # torch keeps its historical (N, C, L) reading of 3-D input here
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a "
                      "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace)


def dropout3d(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    _warn_feature_dims("dropout3d", input.dim(), 3)
    batched = input.dim() == 5
    if not batched:
        input = unsqueeze(input, 0)
    result = _feature_dropout(input, p, training, inplace)
    return result if batched else squeeze(result, 0)


# -- pixel shuffle ----------------------------------------------------------------------------

def _channels_last_like(x) -> bool:
    """A 4-D input laid out channels-last (torch's kernels then keep that layout)."""
    if x.dim() != 4 or x.is_contiguous():
        return False
    expected = 1
    for d in (1, 3, 2, 0):
        if int(x.shape[d]) != 1:
            if int(x.stride()[d]) != expected:
                return False
            expected *= int(x.shape[d])
    return True


def _channels_last_strides(shape):
    n, c, h, w = (int(s) for s in shape)
    return (h * w * c, 1, w * c, c)


def _pixel_meta(x, shape):
    return (shape, x.dtype, _channels_last_strides(shape)) if _channels_last_like(x) else (shape, x.dtype)


class PixelShuffle(Function):
    """(*, C r^2, H, W) -> (*, C, H r, W r).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, upscale_factor):
        if x.dim() < 3:
            raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                               f"{x.dim()} dimension(s)")
        if upscale_factor <= 0:
            raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {upscale_factor}")
        r = upscale_factor
        c, h, w = x.shape[-3:]
        if int(c) % (r * r):
            raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
                               f"of upscale_factor, but input.size(-3)={int(c)} is not divisible by {r * r}")
        ctx.factor = r
        shape = tuple(x.shape[:-3]) + (c // (r * r), h * r, w * r)
        return kernel("pixel_shuffle", _pixel_meta(x, shape), x, r)

    @staticmethod
    def backward(ctx, grad):
        return PixelUnshuffle.apply(grad, ctx.factor), None


class PixelUnshuffle(Function):
    """(*, C, H r, W r) -> (*, C r^2, H, W).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, downscale_factor):
        if x.dim() < 3:
            raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                               f"{x.dim()} dimension(s)")
        if downscale_factor <= 0:
            raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {downscale_factor}")
        r = downscale_factor
        c, h, w = x.shape[-3:]
        if int(h) % r:
            raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but "
                               f"input.size(-2)={int(h)} is not divisible by {r}")
        if int(w) % r:
            raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but "
                               f"input.size(-1)={int(w)} is not divisible by {r}")
        ctx.factor = r
        shape = tuple(x.shape[:-3]) + (c * r * r, h // r, w // r)
        return kernel("pixel_unshuffle", _pixel_meta(x, shape), x, r)

    @staticmethod
    def backward(ctx, grad):
        return PixelShuffle.apply(grad, ctx.factor), None


def pixel_shuffle(input, upscale_factor):
    return PixelShuffle.apply(input, upscale_factor)


def pixel_unshuffle(input, downscale_factor):
    return PixelUnshuffle.apply(input, downscale_factor)


# -- unfold / fold (im2col / col2im) ------------------------------------------------------------

def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _blocks(spatial, kernel_size, dilation, padding, stride):
    """Number of sliding blocks along each spatial dim."""
    return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                 for s, k, d, p, st in zip(spatial, kernel_size, dilation, padding, stride))


def _fmt(t):
    return "(" + ", ".join(str(int(v)) for v in t) + ")"


class Im2Col(Function):
    """(N, C, H, W) -> (N, C kh kw, L): the sliding blocks as columns (F.unfold).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, kernel_size, dilation, padding, stride):
        if x.dim() not in (3, 4) or any(int(s) == 0 for s in x.shape[-3:]):
            raise RuntimeError("Expected 3D or 4D (batch mode) tensor for input with possibly 0 batch size and "
                               f"non-zero dimensions for input, but got: {list(int(s) for s in x.shape)}")
        spatial = tuple(x.shape[-2:])
        blocks = _blocks(spatial, kernel_size, dilation, padding, stride)
        if any(int(b) < 1 for b in blocks):
            raise RuntimeError(f"Given input with spatial size {_fmt(spatial)}, kernel_size={_fmt(kernel_size)}, "
                               f"dilation={_fmt(dilation)}, padding={_fmt(padding)}, calculated shape of the array "
                               f"of sliding blocks as {_fmt(blocks)}, but its components must be at least one.")
        ctx.geometry = (kernel_size, dilation, padding, stride)
        ctx.spatial = spatial
        c = x.shape[-3]
        shape = tuple(x.shape[:-3]) + (c * kernel_size[0] * kernel_size[1], sym_prod(blocks))
        return kernel("im2col", (shape, x.dtype), x, list(kernel_size), list(dilation), list(padding), list(stride))

    @staticmethod
    def backward(ctx, grad):
        return Col2Im.apply(grad, ctx.spatial, *ctx.geometry), None, None, None, None


class Col2Im(Function):
    """(N, C kh kw, L) -> (N, C, H, W): columns summed back into the image (F.fold).  Saves: nothing."""

    @staticmethod
    def forward(ctx, x, output_size, kernel_size, dilation, padding, stride):
        if x.dim() not in (2, 3) or any(int(s) == 0 for s in x.shape[-2:]):
            raise RuntimeError("Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and "
                               f"non-zero dimensions for input, but got: {list(int(s) for s in x.shape)}")
        columns, n_blocks = x.shape[-2:]
        kh, kw = kernel_size
        if int(columns) % (kh * kw):
            raise RuntimeError(f"Expected size of input's dimension {x.dim() - 2} to be divisible by the product of "
                               f"kernel_size, but got input.size({x.dim() - 2})={int(columns)} and "
                               f"kernel_size={_fmt(kernel_size)}.")
        blocks = _blocks(output_size, kernel_size, dilation, padding, stride)
        if any(int(b) < 1 for b in blocks):
            raise RuntimeError(f"Given output_size={_fmt(output_size)}, kernel_size={_fmt(kernel_size)}, "
                               f"dilation={_fmt(dilation)}, padding={_fmt(padding)}, stride={_fmt(stride)}, "
                               f"calculated shape of the array of sliding blocks as {_fmt(blocks)}, but its "
                               "components must be at least one.")
        if int(blocks[0]) * int(blocks[1]) != int(n_blocks):
            raise RuntimeError(f"Given output_size={_fmt(output_size)}, kernel_size={_fmt(kernel_size)}, "
                               f"dilation={_fmt(dilation)}, padding={_fmt(padding)}, stride={_fmt(stride)}, "
                               f"expected size of input's dimension {x.dim() - 1} to match the calculated number "
                               f"of sliding blocks {int(blocks[0])} * {int(blocks[1])} = "
                               f"{int(blocks[0]) * int(blocks[1])}, but got input.size({x.dim() - 1})={int(n_blocks)}.")
        ctx.geometry = (kernel_size, dilation, padding, stride)
        shape = tuple(x.shape[:-2]) + (columns // (kh * kw),) + tuple(output_size)
        return kernel("col2im", (shape, x.dtype), x, list(output_size), list(kernel_size), list(dilation),
                      list(padding), list(stride))

    @staticmethod
    def backward(ctx, grad):
        return Im2Col.apply(grad, *ctx.geometry), None, None, None, None, None


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    return Im2Col.apply(input, _pair(kernel_size), _pair(dilation), _pair(padding), _pair(stride))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    return Col2Im.apply(input, _pair(output_size), _pair(kernel_size), _pair(dilation), _pair(padding), _pair(stride))


# -- outer, cross, diff -------------------------------------------------------------------------

def outer(input, vec2):
    """at::outer: input.reshape(n, 1) * vec2 (MulBackward0 saves both operands, guarded)."""
    for name, t in (("self", input), ("vec2", vec2)):
        if t.dim() != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.dim()}-D")
    return mul(reshape(input, input.shape[0], 1), vec2)


class LinalgCross(Function):
    """out = cross(self, other) along ``dim`` (broadcasting).  Saves: other (for self's gradient), self (for
    other's gradient)."""

    saves = ("other", "self")

    @staticmethod
    def forward(ctx, x, other, dim):
        if x.dim() != other.dim():
            raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
        d = wrap_dim(dim, x.dim())
        if int(x.shape[d]) != 3 or int(other.shape[d]) != 3:
            raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {int(x.shape[d])} and "
                               f"{int(other.shape[d])}")
        ctx.save_for_backward(other if ctx.needs_input_grad[0] else None, x if ctx.needs_input_grad[1] else None)
        ctx.dim = d
        shape = broadcast_shapes(x.shape, other.shape)
        return kernel("linalg_cross", (shape, _dt.result_type(x, other)), x, other, dim=d)

    @staticmethod
    def backward(ctx, grad):
        other, x = ctx.saved_tensors
        g_x = LinalgCross.apply(other, grad, ctx.dim) if ctx.needs_input_grad[0] else None
        g_other = LinalgCross.apply(grad, x, ctx.dim) if ctx.needs_input_grad[1] else None
        return g_x, g_other, None


def linalg_cross(input, other, *, dim=-1):
    return LinalgCross.apply(input, other, dim)


def cross(input, other, dim=None):
    """torch.cross: without ``dim``, the first dim of size 3 (deprecated, with torch's warning)."""
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.\nPlease either pass the dim "
                      "explicitly or simply use torch.linalg.cross.\nThe default value of dim will change to agree "
                      "with that of linalg.cross in a future release.", stacklevel=2)
        dim = next((i for i, s in enumerate(input.shape) if int(s) == 3), None)
        if dim is None:
            raise RuntimeError("no dimension of size 3 in input")
    return LinalgCross.apply(input, other, dim)


def _check_diff_operand(x, other, dim):
    if other is None:
        return
    if other.dim() != x.dim():
        raise RuntimeError("diff expects prepend or append to be the same dimension as input")
    for i in range(x.dim()):
        if i != dim and int(other.shape[i]) != int(x.shape[i]):
            raise RuntimeError("diff expects the shape of tensor to prepend or append to match that of input except "
                               f"along the differencing dimension; input.size({i}) = {int(x.shape[i])}, but got "
                               f"tensor.size({i}) = {int(other.shape[i])}")


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """at::diff: n rounds of narrow(1:) - narrow(:-1) (logical_xor for bool) after concatenating prepend and
    append; n == 0 is a copy (zeros_like + copy_)."""
    if input.dim() < 1:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    dim = wrap_dim(dim, input.dim())
    _check_diff_operand(input, prepend, dim)
    _check_diff_operand(input, append, dim)
    if n == 0:
        from ..creation import zeros_like
        return zeros_like(input).copy_(input)
    if prepend is not None or append is not None:
        input = cat([t for t in (prepend, input, append) if t is not None], dim)
    result, out_len = input, input.shape[dim] - 1
    for _ in range(min(n, int(input.shape[dim]))):
        later, earlier = narrow(result, dim, 1, out_len), narrow(result, dim, 0, out_len)
        result = later.logical_xor(earlier) if input.dtype is _dt.bool_ else sub(later, earlier)
        out_len = out_len - 1
    return result


def meshgrid(*tensors, indexing=None):
    """torch.meshgrid (at::meshgrid, composite): each 0- or 1-D input viewed as [-1 on its own axis, 1
    elsewhere] and expanded to the grid shape; ``indexing="xy"`` swaps the first two inputs and outputs.
    No ``indexing`` is "ij" with torch's warning."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.")
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    if not tensors:
        raise RuntimeError("torch.meshgrid expects a non-empty TensorList")
    for t in tensors:
        if t.dim() > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t.dim()}D")
        if t.dtype is not tensors[0].dtype:
            raise RuntimeError("torch.meshgrid: Expected all tensors in the tensor list to have the same dtype")
    refs = list(tensors)
    swap = indexing == "xy" and len(refs) >= 2
    if swap:
        refs[0], refs[1] = refs[1], refs[0]
    shape = [t.numel() for t in refs]
    grids = []
    for i, t in enumerate(refs):
        view_shape = [1] * len(refs)
        view_shape[i] = -1
        grids.append(expand(view_(t, view_shape), shape))
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


# -- registration ---------------------------------------------------------------------------------

def _register_linalg_cross():
    """torch.linalg.cross joins vector_norm in the engine's ``linalg`` namespace (made by the reductions)."""
    from .reduce import linalg
    linalg.cross = linalg_cross


_register_linalg_cross()

TENSOR_METHODS: dict = {
    "softmax": lambda self, dim, dtype=None: softmax(self, dim, dtype),
    "log_softmax": lambda self, dim, dtype=None: log_softmax(self, dim, dtype),
    "outer": lambda self, vec2: outer(self, vec2),
    "cross": lambda self, other, dim=None: cross(self, other, dim),
    "diff": lambda self, n=1, dim=-1, prepend=None, append=None: diff(self, n, dim, prepend, append),
}
TORCH_FUNCTIONS: dict = {
    "softmax": softmax, "log_softmax": log_softmax, "outer": outer, "cross": cross, "diff": diff,
    "pixel_shuffle": pixel_shuffle, "pixel_unshuffle": pixel_unshuffle, "cosine_similarity": cosine_similarity,
    "concat": lambda tensors, dim=0: cat(tensors, dim),
    "concatenate": lambda tensors, axis=0: cat(tensors, axis),
    "meshgrid": meshgrid,
}
FUNCTIONAL: dict = {
    "softmin": softmin, "normalize": normalize, "cosine_similarity": cosine_similarity, "glu": glu,
    "dropout1d": dropout1d, "dropout2d": dropout2d, "dropout3d": dropout3d, "pixel_shuffle": pixel_shuffle,
    "pixel_unshuffle": pixel_unshuffle, "unfold": unfold, "fold": fold,
}
