"""The engine on CUDA (torch backend) against torch.autograd on the same GPU: every op case of the
engine's op test modules, CUDA-specific kernels (flash and memory-efficient attention, fused dropout)
and the memory tracker against ``torch.cuda.max_memory_allocated``.  Skipped without a GPU."""
import importlib
import pathlib

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import gradxray.engine as gx  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402

HERE = pathlib.Path(__file__).parent

# exact float32 comparisons: no TensorFloat-32 in matmuls and convolutions
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def _op_cases():
    cases = []
    for path in sorted(HERE.glob("test_ops_*.py")):
        module = importlib.import_module(f"tests.engine.{path.stem}")
        for name, case in sorted(getattr(module, "CASES", {}).items()):
            if len(case) == 4:
                cases.append(pytest.param(case, id=f"{path.stem[9:]}::{name}"))
    return cases


@pytest.mark.parametrize("case", _op_cases())
def test_op_on_cuda_matches_torch(case):
    torch_fn, gx_fn, args, kwargs = case
    kwargs = dict(kwargs)
    kwargs.pop("backend", None)
    # tensors a case makes inside its functions (running stats, targets) are made on the GPU too
    with torch.device("cuda"):
        probe = [a.make(torch.float32, torch.Generator().manual_seed(0), "cuda") if isinstance(a, Arg) else
                 (a.to("cuda") if isinstance(a, torch.Tensor) else a) for a in args]
        try:
            torch_fn(*probe)
        except RuntimeError as e:
            if "same device" in str(e):
                pytest.skip(f"the case holds CPU tensors made at import time: {e}")
            raise
        check_op(torch_fn, gx_fn, args, dtype=torch.float32, device="cuda", **kwargs)


def _sdpa_pair(**kwargs):
    def tfn(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)

    def gfn(q, k, v):
        return gx.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)
    return tfn, gfn


@pytest.mark.parametrize("dtype,kwargs", [
    (torch.float16, {}), (torch.bfloat16, {"is_causal": True}),      # flash
    (torch.float32, {}), (torch.float32, {"is_causal": True}),       # memory-efficient
    (torch.float64, {}),                                             # math
])
def test_sdpa_cuda_kernel_choice_and_saved_tensors(dtype, kwargs):
    tfn, gfn = _sdpa_pair(**kwargs)
    tol = {torch.float16: (2e-2, 2e-2), torch.bfloat16: (5e-2, 5e-2), torch.float32: (1e-4, 1e-5),
           torch.float64: (1e-10, 1e-12)}[dtype]
    check_op(tfn, gfn, [Arg((2, 4, 64, 64)), Arg((2, 4, 80, 64)), Arg((2, 4, 80, 64))], dtype=dtype,
             device="cuda", second_order=False, tolerances=tol)


def test_engine_peak_matches_cuda_allocator_for_an_mlp_step():
    """Forward + backward of a 3-layer MLP: the engine's tracker (CUDA rounding) vs max_memory_allocated."""
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 1024)).cuda()
    x = torch.randn(512, 1024, device="cuda")
    tm(x).sum().backward()                  # warm-up: cuBLAS workspaces are allocated once, before the baseline
    tm.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    tm(x).sum().backward()
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - base
    with gx.backend("shape"):
        sm = gx.nn.Sequential(gx.nn.Linear(1024, 4096, device="cuda"), gx.nn.GELU(),
                              gx.nn.Linear(4096, 1024, device="cuda"))
    tracker = gx.memory.MemoryTracker(cuda_rounding=True)
    with tracker, gx.backend("shape"):
        xs = gx.empty(512, 1024, device="cuda")
        before = tracker.current_bytes
        sm(xs).sum().backward()
    estimated = tracker.peak_bytes - before
    print(f"MLP step on CUDA: measured peak above baseline {measured:,} B, engine estimate {estimated:,} B")
    assert abs(estimated - measured) <= 0.02 * measured
