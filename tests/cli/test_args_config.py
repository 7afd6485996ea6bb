"""``--args`` naming fields of a model's config class: the config is built with them (the bundled
GPT takes ``config=None``), and arguments that fit nothing are an error, never silently dropped."""
from __future__ import annotations

import json

from cli_helpers import gradxray  # noqa: F401  (fixture)


def _report(gradxray, *args):
    proc = gradxray("memory", "examples/gpt.py:GPT", "--batch", "2", "--dim", "T=32", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_args_reach_the_config_class(gradxray):
    default = _report(gradxray)
    small = _report(gradxray, "--args", '{"n_layer": 2, "n_embd": 64, "n_head": 2}')
    # GPT-style count: embeddings + per block (2 LayerNorms, qkv, proj, MLP) + final LayerNorm (tied head)
    vocab, block, d, n = 50304, 256, 64, 2
    per_block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert small["params"]["count"] == vocab * d + block * d + n * per_block + 2 * d
    assert small["params"]["count"] < default["params"]["count"]


def test_args_that_fit_nothing_are_an_error(gradxray):
    proc = gradxray("memory", "examples/gpt.py:GPT", "--args", '{"n_lay": 2}')
    assert proc.returncode == 2
    assert "n_lay" in proc.stderr and "config" in proc.stderr and "Traceback" not in proc.stderr
