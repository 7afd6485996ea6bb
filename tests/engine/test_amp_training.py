"""Mixed-precision training with the engine equals torch's: 20 steps under CPU bf16 autocast with a GradScaler,
SGD-momentum and AdamW, float32 parameters, on an MLP, a small CNN with BatchNorm and a 2-block pre-norm
transformer (causal SDPA, GELU, LayerNorm), on the engine's torch backend against torch itself.

Every step compares the autograd graph built from the scaled loss (its nodes in depth-first order, and the
dtype of every tensor each node saved), the loss, the scaler's scale and growth tracker and the gradients'
dtypes; at the end every parameter, buffer and optimizer state tensor.  Two steps get a non-finite gradient
injected after backward, so the scaler must skip them and back off.  A separate test compares the bytes saved
for backward in one step, by storage, with and without autocast (what the analyzer's AMP what-if reports).

Tolerance: none.  On the torch backend every forward, backward and optimizer kernel is the aten kernel torch
itself runs on the same inputs (bf16 GEMMs included), so the runs are bit-identical and compared exactly.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.interop import load_torch_state  # noqa: E402
from tests.support import train_models  # noqa: E402

STEPS = 20
BATCHES = 4            # a small data set, cycled: memorizable, so the loss must go down
# torch's default initial scale, but growth after every 3 clean steps so that 20 steps both grow and back off
SCALER_OPTIONS = dict(init_scale=2.0 ** 16, growth_interval=3)
# after backward on these steps one gradient element is overwritten, so the step must be skipped
BAD_GRADIENTS = {4: math.inf, 13: math.nan}


class Lib:
    """What a model definition and a mixed-precision training step need from a framework."""

    def __init__(self, module, nn, functional, optim, grad_scaler):
        self.nn, self.F, self.optim, self.GradScaler = nn, functional, optim, grad_scaler
        self.autocast, self.no_grad, self.bfloat16 = module.autocast, module.no_grad, module.bfloat16


TORCH = Lib(torch, torch.nn, torch.nn.functional, torch.optim, torch.amp.GradScaler)
GX = Lib(gx, gx.nn, gx.nn.functional, gx.optim, gx.amp.GradScaler)


# -- the models (float32 parameters: torch's default dtype) -------------------------------------------

def build_mlp(lib):
    return train_models.build_mlp(lib)


def build_cnn(lib):
    return train_models.build_cnn(lib)


def build_transformer(lib):
    return train_models.build_transformer(lib)


def mlp_batches(gen):
    return [(torch.randn(8, 6, generator=gen), torch.randn(8, 3, generator=gen)) for _ in range(BATCHES)]


def cnn_batches(gen):
    return [(torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 5, (6,), generator=gen))
            for _ in range(BATCHES)]


def lm_batches(gen):
    # whole token rows: inputs and targets are sliced from them inside the step, in each library, so the
    # embedding saves a view of the (3, 7) row storage in both, as a real training loop does
    return [(torch.randint(0, 11, (3, 7), generator=gen), None) for _ in range(BATCHES)]


def lm_step_inputs(tokens, _):
    return tokens[:, :-1], tokens[:, 1:]


def lm_loss(lib, out, y):
    return lib.F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


MODELS = {
    # name -> (builder, batches, (x, y) -> (input, target) inside the step, loss(lib, output, target))
    "mlp": (build_mlp, mlp_batches, lambda x, y: (x, y), lambda lib, out, y: lib.F.mse_loss(out, y)),
    "cnn_batchnorm": (build_cnn, cnn_batches, lambda x, y: (x, y), lambda lib, out, y: lib.F.cross_entropy(out, y)),
    "transformer": (build_transformer, lm_batches, lm_step_inputs, lm_loss),
}

OPTIMIZERS = {
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1)),
}


# -- reading the graphs ------------------------------------------------------------------------------

def _dtype_name(dtype) -> str:
    """"bfloat16" for torch.bfloat16 and gx.bfloat16 alike."""
    return str(dtype).replace("torch.", "").replace("gx.", "")


def _walk(root):
    """The nodes reachable from ``root``'s grad_fn, depth first, inputs in ``next_functions`` order."""
    nodes, seen, stack = [], {}, [root.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node          # held, so that a torch node wrapper's id is not reused during the walk
        nodes.append(node)
        stack.extend(reversed([f for f, _ in node.next_functions if f is not None]))
    return nodes


def _torch_saved_dtypes(node):
    """(saved name, dtype) of every tensor a torch node saved, read from its ``_saved_<name>`` attributes."""
    pairs = []
    for attr in dir(node):
        if not attr.startswith("_saved_"):
            continue
        value = getattr(node, attr)
        values = value if isinstance(value, (list, tuple)) else [value]
        pairs += [(attr[len("_saved_"):], _dtype_name(v.dtype)) for v in values if isinstance(v, torch.Tensor)]
    return sorted(pairs)


def _engine_saved_dtypes(node):
    """(saved name, dtype) of every tensor an engine node saved (its names are torch's saved names)."""
    return sorted((s.name, s.tensor.dtype.name) for s in getattr(node, "saved", ()) if s is not None)


def torch_graph(root):
    return [(n.name().replace("torch::autograd::", ""), _torch_saved_dtypes(n)) for n in _walk(root)]


def engine_graph(root):
    return [(n.name(), _engine_saved_dtypes(n)) for n in _walk(root)]


# -- one training run --------------------------------------------------------------------------------

def _to_engine(t):
    if t is None:
        return None
    with gx.backend("torch"):
        return gx.from_torch(t)


def _train(lib, model, optimizer, scaler, batches, step_inputs, loss_fn, to_lib):
    """``STEPS`` mixed-precision steps; per step: (graph, loss, scale, growth tracker, output and loss dtypes,
    gradient dtypes)."""
    history = []
    model.train()
    for step in range(STEPS):
        x, y = step_inputs(*(to_lib(t) for t in batches[step % len(batches)]))
        optimizer.zero_grad()
        with lib.autocast("cpu", dtype=lib.bfloat16):
            out = model(x)
            loss = loss_fn(lib, out, y)
        scaled = scaler.scale(loss)
        graph = (torch_graph if lib is TORCH else engine_graph)(scaled)   # before backward frees the saved tensors
        scaled.backward()
        if step in BAD_GRADIENTS:
            first = next(iter(model.parameters()))
            with lib.no_grad():
                first.grad.view(-1)[0] = BAD_GRADIENTS[step]
        grad_dtypes = [_dtype_name(p.grad.dtype) for p in model.parameters()]
        scaler.step(optimizer)
        scaler.update()
        history.append(dict(graph=graph, loss=float(loss.item()), scale=scaler.get_scale(),
                            growth_tracker=scaler.state_dict()["_growth_tracker"],
                            dtypes=(_dtype_name(out.dtype), _dtype_name(loss.dtype)), grad_dtypes=grad_dtypes))
    return history


def _values(t) -> np.ndarray:
    data = t.data_ if isinstance(t, gx.Tensor) else t.detach()
    return data.numpy()


def _models(model_name):
    build = MODELS[model_name][0]
    torch.manual_seed(0)
    t_model = build(TORCH)
    with gx.backend("torch"):
        g_model = build(GX)
    load_torch_state(g_model, t_model)
    return t_model, g_model


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_amp_training_matches_torch(model_name, optimizer):
    _, make_batches, step_inputs, loss_fn = MODELS[model_name]
    cls_name, options = OPTIMIZERS[optimizer]
    t_model, g_model = _models(model_name)
    t_opt = getattr(torch.optim, cls_name)(t_model.parameters(), **options)
    g_opt = getattr(gx.optim, cls_name)(g_model.parameters(), **options)
    batches = make_batches(torch.Generator().manual_seed(1))

    theirs = _train(TORCH, t_model, t_opt, TORCH.GradScaler("cpu", **SCALER_OPTIONS), batches, step_inputs,
                    loss_fn, lambda t: t)
    ours = _train(GX, g_model, g_opt, GX.GradScaler("cpu", **SCALER_OPTIONS), batches, step_inputs, loss_fn,
                  _to_engine)

    for step, (g, t) in enumerate(zip(ours, theirs)):
        g_graph = g["graph"]
        assert [n for n, _ in g_graph] == [n for n, _ in t["graph"]], f"step {step}: graph nodes differ"
        for node, (g_node, t_node) in enumerate(zip(g_graph, t["graph"])):
            assert g_node == t_node, f"step {step}, node {node}: saved dtypes {g_node} != torch {t_node}"
        assert g["dtypes"] == t["dtypes"], f"step {step}: output/loss dtypes"
        assert g["grad_dtypes"] == t["grad_dtypes"] == ["float32"] * len(t["grad_dtypes"]), f"step {step}"
        assert (g["loss"], g["scale"], g["growth_tracker"]) == (t["loss"], t["scale"], t["growth_tracker"]), \
            f"step {step}: (loss, scale, growth tracker) differ from torch"

    # not vacuous: torch's own run casts to bf16, skips the injected steps (backs off), grows, and learns
    assert any(dtype == "bfloat16" for _, saved in theirs[0]["graph"] for _, dtype in saved)
    scales = [t["scale"] for t in theirs]
    for step in BAD_GRADIENTS:
        assert scales[step] == scales[step - 1] * 0.5 and theirs[step]["growth_tracker"] == 0
    assert max(scales) > SCALER_OPTIONS["init_scale"]
    losses = [t["loss"] for t in theirs]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-BATCHES:]) < sum(losses[:BATCHES])

    g_params, t_params = dict(g_model.named_parameters()), dict(t_model.named_parameters())
    assert list(g_params) == list(t_params)
    for name, tp in t_params.items():
        assert g_params[name].dtype is gx.float32
        np.testing.assert_array_equal(_values(g_params[name]), _values(tp), err_msg=name)
    g_buffers = dict(g_model.named_buffers())
    for name, tb in t_model.named_buffers():
        np.testing.assert_array_equal(_values(g_buffers[name]), _values(tb), err_msg=name)
    for (name, tp), gp in zip(t_params.items(), g_params.values()):
        t_state, g_state = t_opt.state[tp], g_opt.state[gp]
        assert list(g_state) == list(t_state), name
        for key, value in t_state.items():
            np.testing.assert_array_equal(_values(g_state[key]), _values(value), err_msg=f"{name} {key}")


def _one_step_graphs(model_name):
    _, make_batches, step_inputs, loss_fn = MODELS[model_name]
    t_model, g_model = _models(model_name)
    batch = make_batches(torch.Generator().manual_seed(1))[0]
    graphs = []
    for lib, model, to_lib, read in ((TORCH, t_model, lambda t: t, torch_graph),
                                     (GX, g_model, _to_engine, engine_graph)):
        x, y = step_inputs(*(to_lib(t) for t in batch))
        with lib.autocast("cpu", dtype=lib.bfloat16):
            graphs.append(read(loss_fn(lib, model(x), y)))
    return graphs


@pytest.mark.parametrize("model_name", ["mlp", "transformer", "cnn_batchnorm"])
def test_graph_node_names_equal_torch_exactly(model_name):
    """The node names as the engine reports them, without the renaming the training test applies."""
    t_graph, g_graph = _one_step_graphs(model_name)
    assert [n for n, _ in g_graph] == [n for n, _ in t_graph]


# -- saved-tensor bytes of one step ----------------------------------------------------------------

def _torch_saved_bytes(model, run):
    """(multiset of (shape, dtype, new bytes), total): every tensor torch saves while ``run`` builds the graph,
    each storage counted once and parameters and buffers not at all (they are not activations)."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    seen = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    records = []
    for t in saved:
        key = t.untyped_storage().data_ptr()
        records.append((tuple(t.shape), _dtype_name(t.dtype), 0 if key in seen else t.untyped_storage().nbytes()))
        seen.add(key)
    return sorted(records), sum(r[2] for r in records)


def _engine_saved_bytes(run):
    with gx.memory.MemoryTracker() as tracker:
        run()
    records = [(r.shape, r.dtype, r.nbytes if r.new_storage and r.category not in ("param", "buffer") else 0)
               for r in tracker.saved]
    return sorted(records), tracker.saved_activation_bytes()


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_saved_bytes_of_one_step_equal_torch(model_name):
    _, make_batches, step_inputs, loss_fn = MODELS[model_name]
    t_model, g_model = _models(model_name)
    batch = make_batches(torch.Generator().manual_seed(1))[0]
    totals = {}
    for enabled in (True, False):
        def step(lib, model, scaler, to_lib):
            x, y = step_inputs(*(to_lib(t) for t in batch))
            with lib.autocast("cpu", dtype=lib.bfloat16, enabled=enabled):
                loss = loss_fn(lib, model(x), y)
            return scaler.scale(loss)

        t_scaler, g_scaler = TORCH.GradScaler("cpu"), GX.GradScaler("cpu")
        theirs, t_total = _torch_saved_bytes(t_model, lambda: step(TORCH, t_model, t_scaler, lambda t: t))
        ours, g_total = _engine_saved_bytes(lambda: step(GX, g_model, g_scaler, _to_engine))
        assert ours == theirs, f"autocast={enabled}: saved tensors differ from torch"
        assert g_total == t_total
        totals[enabled] = t_total
    assert 0 < totals[True] < totals[False]          # autocast saves bf16 activations: fewer bytes
