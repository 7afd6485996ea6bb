"""Autograd core semantics against torch: graph release, accumulation, grad modes, errors, memory."""
import pytest

import gradxray.engine as gx


def _leaf(*shape):
    return gx.randn(*shape, requires_grad=True)


def test_second_backward_raises_unless_retain_graph():
    x = _leaf(3, 4)
    y = x.relu().sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_gradients_accumulate_into_leaves():
    torch = pytest.importorskip("torch")
    t = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with gx.backend("torch"):
        x = gx.from_torch(t)
    for _ in range(2):
        (x * x).sum().backward()
        (t * t).sum().backward()
    assert torch.allclose(x.grad.data_, t.grad)


def test_no_grad_and_detach_record_nothing():
    x = _leaf(2, 2)
    with gx.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    z = x.detach() * 2
    assert z.grad_fn is None and not z.requires_grad
    assert x.detach()._storage is x._storage


def test_inplace_on_leaf_requiring_grad_raises():
    x = _leaf(2, 2)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.add_(1.0)


def test_inplace_on_saved_tensor_raises_at_backward():
    x = _leaf(2, 3)
    y = x * 1.0
    z = y.relu()          # saves its result
    z.add_(1.0)           # modifies the saved result
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_views_share_storage_and_version():
    x = gx.randn(4, 6)
    v = x.view(6, 4).transpose(0, 1)
    assert v._storage is x._storage
    before = x._version
    v.add_(1.0)
    assert x._version == before + 1


def test_saved_tensors_are_released_after_backward():
    tracker = gx.memory.MemoryTracker()
    with tracker:
        x = _leaf(64, 64)
        w = _leaf(64, 64)
        h = gx.nn.functional.gelu(x @ w)       # saves x, w (mm) and the mm result (gelu)
        loss = h.sum()
        before = tracker.current_bytes
        loss.backward()
        del h, loss
        # after backward only the leaves and their gradients remain
        assert tracker.current_bytes == 4 * 64 * 64 * 4
    assert before > tracker.current_bytes


def test_tracker_peak_matches_hand_count_for_linear_chain():
    """4 x Linear(256, 256, bias=False) on x [4096, 256] (measured_here.md, validated on torch)."""
    tracker = gx.memory.MemoryTracker()
    layers = [gx.nn.Linear(256, 256, bias=False) for _ in range(4)]
    x = gx.empty(4096, 256)
    g = gx.empty(4096, 256)
    with tracker:
        h = x
        for layer in layers:
            h = layer(h)
        forward_peak = tracker.peak_bytes
        h.backward(g)
        assert forward_peak == 16_777_216
        assert tracker.peak_bytes == 21_495_808
        assert tracker.current_bytes == 5_242_880


def test_grad_requires_scalar_or_gradient():
    x = _leaf(3)
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        (x * 2).backward()


def test_dropped_graph_is_freed_by_refcounting_alone():
    """No reference cycles in the graph: memory is released exactly when torch would release it."""
    import gc
    tracker = gx.memory.MemoryTracker()
    gc.disable()
    try:
        with tracker:
            x = _leaf(32, 32)
            out = gx.nn.functional.gelu(x * 2.0).relu()
            assert tracker.current_bytes > 32 * 32 * 4
            del out
            assert tracker.current_bytes == 32 * 32 * 4
    finally:
        gc.enable()
