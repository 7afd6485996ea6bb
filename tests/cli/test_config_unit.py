"""``[tool.gradxray]`` discovery and validation."""
from __future__ import annotations

import pytest

from gradxray.analyzer.config import ConfigError, find_config, parse_input_spec, settings_for_file


def _project(tmp_path, body: str):
    (tmp_path / "pyproject.toml").write_text(body)
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    f = pkg / "model.py"
    f.write_text("x = 1\n")
    return f


def test_full_table(tmp_path):
    f = _project(tmp_path, """
[project]
name = "demo"

[tool.gradxray]
select = ["GX1", "gx9"]
ignore = ["GX901"]
per-file-ignores = { "pkg/sub/*.py" = ["GX101"], "other.py" = ["GX2"] }
batch-size = 4
dims = { T = 1024, H = 32 }
device = "cuda"
dtype = "bfloat16"
optimizer = "adamw"
inputs = { x = "[B, 3, H, W] float32", idx = "[B,T]:long" }
""")
    s = settings_for_file(str(f))
    assert s.select == ["GX1", "GX9"]
    assert s.ignore == ["GX901", "GX101"]
    assert s.batch == 4 and s.dims == {"T": 1024, "H": 32, "W": 224}
    assert (s.device, s.dtype, s.optimizer) == ("cuda", "bfloat16", "adamw")
    assert s.inputs == {"x": "[B, 3, H, W]:float32", "idx": "[B, T]:int64"}
    assert s.dim_bindings()["B"] == 4


def test_nearest_with_table_wins(tmp_path):
    f = _project(tmp_path, "[tool.gradxray]\nbatch-size = 2\n")
    # a nearer pyproject without [tool.gradxray] is skipped
    (f.parent / "pyproject.toml").write_text("[project]\nname = 'inner'\n")
    assert settings_for_file(str(f)).batch == 2
    (f.parent / "pyproject.toml").write_text("[tool.gradxray]\nbatch-size = 3\n")
    assert settings_for_file(str(f)).batch == 3


def test_no_config(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("")
    cfg = find_config(str(f))
    assert cfg.path is None or not str(cfg.path).startswith(str(tmp_path))


@pytest.mark.parametrize("body, needle", [
    ("[tool.gradxray]\nbatch-size = 'eight'\n", "batch-size"),
    ("[tool.gradxray]\nbatch-size = 0\n", "positive integer"),
    ("[tool.gradxray]\nselect = ['E501']\n", "unknown rule selector 'E501'"),
    ("[tool.gradxray]\ndevice = 'tpu'\n", "expected one of cpu, cuda"),
    ("[tool.gradxray]\ncolour = 'red'\n", "unknown key"),
    ("[tool.gradxray]\ninputs = { x = '3, 224' }\n", "inputs.x"),
    ("[tool.gradxray\n", "invalid TOML"),
])
def test_bad_config(tmp_path, body, needle):
    f = _project(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        settings_for_file(str(f))
    msg = str(info.value)
    assert needle in msg and "pyproject.toml" in msg and "\n" not in msg


def test_input_spec():
    assert parse_input_spec("[B, 3, 224, 224]") == "[B, 3, 224, 224]:float32"
    assert parse_input_spec("[B,T]:torch.int64") == "[B, T]:int64"
    assert parse_input_spec(" [B, T] bool ") == "[B, T]:bool"
    for bad in ("B, T", "[B, T]:floaty", "[B, T"):
        with pytest.raises(ValueError):
            parse_input_spec(bad)
