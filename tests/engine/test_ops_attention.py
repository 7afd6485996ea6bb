"""scaled_dot_product_attention against torch on CPU: the kernel torch picks (CPU flash or the math
composite) shows in the saved tensors, which must equal torch's exactly, with values and gradients."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402

MASK = torch.ones(5, 6, dtype=torch.bool).tril(diagonal=1)
FLOAT_MASK = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _sdpa(**kwargs):
    """(torch_fn, gx_fn) with the same keyword arguments; a dropout case seeds torch's RNG identically
    for both (the engine's torch backend draws its dropout mask with torch's bernoulli_)."""
    def with_mask(mask_lib, v):
        if isinstance(v, torch.Tensor) and mask_lib is gx:
            return gx.from_torch(v, requires_grad=False)
        return v

    def tfn(q, k, v):
        torch.manual_seed(0)
        kw = {n: (a.to(q.device, q.dtype if a.is_floating_point() else a.dtype) if isinstance(a, torch.Tensor) else a)
              for n, a in kwargs.items()}
        return TF.scaled_dot_product_attention(q, k, v, **kw)

    def gfn(q, k, v):
        torch.manual_seed(0)
        kw = {}
        for n, a in kwargs.items():
            if isinstance(a, torch.Tensor):
                a = a.to(getattr(torch, q.dtype.name)) if a.is_floating_point() else a
                a = a.to(str(q.device))
                kind = gx.backends.data_kind(q)
                if kind == "numpy":
                    a = gx.from_numpy(a.numpy(), requires_grad=False)
                elif kind == "torch":
                    a = gx.from_torch(a, requires_grad=False)
                else:
                    a = gx.empty(*a.shape, dtype=gx.dtypes.from_name(str(a.dtype).replace("torch.", "")),
                                 device=str(q.device))
            kw[n] = a
        return gx.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
    return tfn, gfn


def _case(shapes, second_order=False, **kwargs):
    tfn, gfn = _sdpa(**kwargs)
    return (tfn, gfn, [Arg(s) for s in shapes], {"second_order": second_order})


QKV = [(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 4)]
CASES = {
    "flash_cpu": _case(QKV),
    "flash_cpu_causal": _case(QKV, is_causal=True),
    "flash_cpu_bool_mask": _case(QKV, attn_mask=MASK),
    "flash_cpu_float_mask": _case(QKV, attn_mask=FLOAT_MASK),
    "flash_cpu_scale": _case(QKV, scale=0.3),
    "flash_cpu_gqa": _case([(2, 4, 5, 4), (2, 2, 6, 4), (2, 2, 6, 4)], enable_gqa=True),
    "math_3d": _case([(3, 5, 4), (3, 6, 4), (3, 6, 4)], second_order=True),
    "math_3d_causal": _case([(3, 5, 4), (3, 5, 4), (3, 5, 4)], second_order=True, is_causal=True),
    "math_dropout": _case(QKV, dropout_p=0.3),
    "math_dropout_bool_mask": _case(QKV, dropout_p=0.2, attn_mask=MASK),
    "math_dropout_causal": _case([(2, 1, 5, 4)] * 3, dropout_p=0.2, is_causal=True),
    "math_head_dims_differ": _case([(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)], second_order=True),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_sdpa_matches_torch(name, dtype):
    torch_fn, gx_fn, args, kwargs = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **kwargs)


def test_sdpa_bfloat16_math_path_computes_in_float32_like_torch():
    torch_fn, gx_fn, args, _ = _case([(3, 5, 4), (3, 6, 4), (3, 6, 4)])
    check_op(torch_fn, gx_fn, args, dtype=torch.bfloat16, second_order=False)


def test_noncontiguous_last_dim_takes_the_math_path_like_torch():
    # q with a transposed last dim: torch's CPU flash check fails, so the math path runs
    torch_fn, gx_fn, _, _ = _case(QKV)
    check_op(torch_fn, gx_fn, [Arg((2, 3, 5, 4), transposed=True), Arg((2, 3, 6, 4)), Arg((2, 3, 6, 4))],
             second_order=False)


def test_flash_cpu_double_backward_raises_like_torch():
    q, k, v = (gx.randn(1, 1, 3, 2, requires_grad=True) for _ in range(3))
    with gx.backend("torch"):
        q, k, v = (gx.from_torch(torch.randn(1, 1, 3, 2, dtype=torch.float64), requires_grad=True) for _ in range(3))
    out = gx.nn.functional.scaled_dot_product_attention(q, k, v)
    (gq,) = gx.autograd.grad(out.sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"):
        gq.sum().backward()


def test_mask_with_causal_is_an_error_like_torch():
    q = gx.empty(1, 1, 3, 2)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        gx.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=gx.empty(3, 3), is_causal=True)
