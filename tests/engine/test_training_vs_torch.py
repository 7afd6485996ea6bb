"""Training with the engine equals training with torch: 20 steps of SGD-momentum and AdamW, float64,
on an MLP, a small CNN with BatchNorm and a 2-block pre-norm transformer.  Each model is written
once against a torch-like namespace and built with both torch.nn and gx.nn; torch's initial
parameters are copied into the engine model.  The loss of every step and every parameter (and
buffer) at the end must agree at rtol 1e-9."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray.engine import backends  # noqa: E402
from gradxray.engine.interop import load_torch_state  # noqa: E402
from tests.support import train_models  # noqa: E402

STEPS = 20
BATCHES = 4            # a small data set, cycled: memorizable, so the loss must go down
RTOL = 1e-9


class Lib:
    """What a model definition needs from a framework: ``nn``, ``F`` and ``optim``."""

    def __init__(self, nn, functional, optim):
        self.nn, self.F, self.optim = nn, functional, optim


TORCH = Lib(torch.nn, torch.nn.functional, torch.optim)
GX = Lib(gx.nn, gx.nn.functional, gx.optim)


def mse(lib, out, y):
    if hasattr(lib.F, "mse_loss") and hasattr(GX.F, "mse_loss"):
        return lib.F.mse_loss(out, y)
    return ((out - y) * (out - y)).mean()


def build_mlp(lib):
    return train_models.build_mlp(lib, DTYPES[lib])


def build_cnn(lib):
    return train_models.build_cnn(lib, DTYPES[lib])


def build_transformer(lib):
    return train_models.build_transformer(lib, DTYPES[lib])


DTYPES = {TORCH: torch.float64, GX: gx.float64}


def mlp_batches(gen):
    return [(torch.randn(8, 6, dtype=torch.float64, generator=gen), torch.randn(8, 3, dtype=torch.float64,
                                                                                 generator=gen))
            for _ in range(BATCHES)]


def cnn_batches(gen):
    return [(torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=gen), torch.randint(0, 5, (6,), generator=gen))
            for _ in range(BATCHES)]


def lm_batches(gen):
    batches = []
    for _ in range(BATCHES):
        tokens = torch.randint(0, 11, (3, 7), generator=gen)
        batches.append((tokens[:, :-1], tokens[:, 1:]))
    return batches


MODELS = {
    # name -> (builder, batches, loss(lib, output, target))
    "mlp": (build_mlp, mlp_batches, mse),
    "cnn_batchnorm": (build_cnn, cnn_batches, lambda lib, out, y: lib.F.cross_entropy(out, y)),
    "transformer": (build_transformer, lm_batches,
                    lambda lib, out, y: lib.F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))),
}

OPTIMIZERS = {
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1)),
}


def _engine_tensor(t, backend):
    """A copy of torch tensor ``t`` on the engine backend ``backend``."""
    with gx.backend(backend):
        return gx.tensor(t.numpy())


def _load_state(g_model, t_model, backend):
    """torch's parameters and buffers into the engine model, on the engine model's backend."""
    load_torch_state(g_model, t_model)
    # load_torch_state stores torch tensors whatever the module's backend; move them to the test's
    for t in [*g_model.parameters(), *g_model.buffers()]:
        if backends.data_kind(t) != backend:
            with gx.backend(backend):
                t.data_ = gx.from_torch(t.data_).data_


def _values(t) -> np.ndarray:
    return np.asarray(t.tolist(), dtype=np.float64)


def _train(lib, model, opt, batches, loss_fn, to_lib):
    losses = []
    model.train()
    for step in range(STEPS):
        x, y = batches[step % len(batches)]
        x, y = to_lib(x), to_lib(y)
        opt.zero_grad()
        loss = loss_fn(lib, model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def _require_backend(name):
    try:
        with gx.backend(name):
            pass
    except ValueError as e:
        pytest.skip(f"engine backend {name!r} is not available yet: {e}")


def _cases():
    for model_name in sorted(MODELS):
        for optimizer in sorted(OPTIMIZERS):
            for backend in ("torch", "numpy"):
                yield pytest.param(model_name, optimizer, backend, id=f"{model_name}-{optimizer}-{backend}")


@pytest.mark.parametrize("model_name, optimizer, backend", list(_cases()))
def test_training_matches_torch(model_name, optimizer, backend):
    _require_backend(backend)
    build, make_batches, loss_fn = MODELS[model_name]
    cls_name, options = OPTIMIZERS[optimizer]

    torch.manual_seed(0)
    t_model = build(TORCH)
    with gx.backend(backend):
        g_model = build(GX)
    _load_state(g_model, t_model, backend)
    t_opt = getattr(torch.optim, cls_name)(t_model.parameters(), **options)
    g_opt = getattr(gx.optim, cls_name)(g_model.parameters(), **options)
    batches = make_batches(torch.Generator().manual_seed(1))

    t_losses = _train(TORCH, t_model, t_opt, batches, loss_fn, lambda t: t)
    g_losses = _train(GX, g_model, g_opt, batches, loss_fn, lambda t: _engine_tensor(t, backend))

    assert all(math.isfinite(v) for v in t_losses)
    np.testing.assert_allclose(g_losses, t_losses, rtol=RTOL, atol=0)
    # the run really trains (the same batches score better at the end), so the comparison is not vacuous
    assert sum(t_losses[-BATCHES:]) < sum(t_losses[:BATCHES])

    g_params = dict(g_model.named_parameters())
    t_params = dict(t_model.named_parameters())
    assert list(g_params) == list(t_params)
    for name, tp in t_params.items():
        np.testing.assert_allclose(_values(g_params[name]), tp.detach().numpy(), rtol=RTOL, atol=1e-12,
                                   err_msg=name)
    g_buffers = dict(g_model.named_buffers())
    for name, tb in t_model.named_buffers():
        np.testing.assert_allclose(_values(g_buffers[name]), tb.numpy().astype(np.float64), rtol=RTOL, atol=1e-12,
                                   err_msg=name)
    # the optimizer state too: same keys per parameter, same values
    for (name, tp), gp in zip(t_params.items(), g_params.values()):
        t_state, g_state = t_opt.state[tp], g_opt.state[gp]
        assert list(g_state) == list(t_state), name
        for key, value in t_state.items():
            np.testing.assert_allclose(_values(g_state[key]), value.numpy().astype(np.float64), rtol=RTOL,
                                       atol=1e-12, err_msg=f"{name} {key}")
