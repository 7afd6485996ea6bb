"""The project index: workspace roots, module resolution (absolute, relative, installed packages,
namespace packages, ``__init__`` re-exports), per-file caches and invalidation, and the interpreter
following imports into other files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gradxray.analyzer import analyze_source
from gradxray.analyzer.project import ProjectIndex, is_source_resolvable, workspace_roots
from gradxray.analyzer.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "crossfile"


@pytest.fixture
def tree(tmp_path):
    """A private copy of the cross-file fixture: a workspace (``app`` package) and a fake site folder."""
    shutil.copytree(FIXTURE, tmp_path / "crossfile")
    return tmp_path / "crossfile"


def _analyze(path: Path, site: Path, text: str | None = None):
    return analyze_source(path.read_text() if text is None else text, str(path), Settings(search_paths=[str(site)]))


def _facts_by_text(analysis, path: Path, text: str | None = None) -> dict[str, list]:
    lines = (path.read_text() if text is None else text).splitlines()
    return {lines[ln - 1].strip(): [(t.name, t.shape, t.dtype) for t in lf.tensors]
            for ln, lf in analysis.lines.items()}


# --- the interpreter follows imports ----------------------------------------------------------------

def test_multi_file_model_traces_like_the_same_model_in_one_file(tree):
    site = tree / "site"
    model = tree / "workspace" / "app" / "model.py"
    flat = tree / "flat_model.py"
    split, single = _analyze(model, site), _analyze(flat, site)
    assert split.error is None and single.error is None
    assert split.unresolved == [] and single.unresolved == []
    [a], [b] = split.classes, single.classes
    assert (a.name, a.params, a.param_bytes, a.peak_bytes, a.activations_saved_bytes, a.inputs) == \
        (b.name, b.params, b.param_bytes, b.peak_bytes, b.activations_saved_bytes, b.inputs)
    # encoder stem 16->32, 2 MLPs 32->128->32, LayerNorm 32, gated block 2x 32->32, head 32->10
    assert a.params == (16 * 32 + 32) + 2 * (32 * 128 + 128 + 128 * 32 + 32) + 64 + 2 * (32 * 32 + 32) + 330
    split_facts = _facts_by_text(split, model)
    single_facts = _facts_by_text(single, flat)
    assert split_facts == {k: single_facts[k] for k in split_facts}
    assert split_facts["logits = self.head(h)"] == [("logits", ("B", "10"), "float32")]
    # an imported file's lines never land on the analysed file's lines
    assert set(split.lines) == {ln for ln, text in enumerate(model.read_text().splitlines(), 1)
                                if text.strip() in split_facts}


def test_functions_constants_and_config_from_another_file(tree):
    site = tree / "site"
    model = tree / "workspace" / "app" / "model.py"
    src = model.read_text().replace(
        "from fakeblocks import GatedBlock\n",
        "from fakeblocks import GatedBlock\nfrom app.layers.mlp import hidden_width\nimport app.config as conf\n",
    ).replace(
        "        self.head = ClassifierHead(cfg.width, cfg.num_classes)\n",
        "        self.head = ClassifierHead(cfg.width, cfg.num_classes)\n"
        "        self.wide = nn.Linear(cfg.num_classes, hidden_width(cfg.num_classes, conf.EXPANSION + 1))\n",
    ).replace("        return logits\n", "        wide = self.wide(logits)\n        return wide\n")
    a = _analyze(model, site, src)
    assert a.unresolved == []
    facts = _facts_by_text(a, model, src)
    assert facts["wide = self.wide(logits)"] == [("wide", ("B", "50"), "float32")]


# --- unresolved imports: clear reasons, never a traceback ---------------------------------------

@pytest.mark.parametrize("import_line, reason", [
    ("from app.nope import Thing", "unresolved import `app.nope`: no module of that name"),
    ("from nosuchpackage_gx import Thing", "unresolved import `nosuchpackage_gx`"),
    ("from app.config import Thing", "cannot import `Thing` from `app.config`"),
    ("from app.nets import Thing", "cannot import `Thing` from `app.nets`"),
    ("from .nope import Thing", "unresolved import `.nope`: no such module next to this file"),
    ("from ..... import Thing", "cannot import `Thing` from `.....`"),   # a folder far up, without it
])
def test_unresolved_import_reason_at_the_use(tree, import_line, reason):
    model = tree / "workspace" / "app" / "model.py"
    src = model.read_text().replace("from fakeblocks import GatedBlock\n",
                                    f"from fakeblocks import GatedBlock\n{import_line}\n")
    src = src.replace("        return logits\n", "        logits = Thing(logits)\n        return logits\n")
    a = _analyze(model, tree / "site", src)
    assert a.error is None and a.classes
    use_line = src.splitlines().index("        logits = Thing(logits)") + 1
    found = [u for u in a.unresolved if u.line == use_line and reason in u.reason]
    assert found and found[0].file == str(model), a.unresolved
    assert not [u for u in a.unresolved if "internal error" in u.reason]


def test_star_reexport_honours_dunder_all(tree):
    model = tree / "workspace" / "app" / "model.py"
    src = model.read_text().replace("from app.nets import ClassifierHead, Encoder",
                                    "from app.nets import ClassifierHead, Encoder, NotExported")
    src = src.replace("        self.encoder = Encoder(cfg)\n", "        self.encoder = Encoder(cfg)\n"
                                                             "        self.hidden = NotExported()\n")
    a = _analyze(model, tree / "site", src)
    assert any("cannot import `NotExported` from `app.nets`" in u.reason for u in a.unresolved)
    assert a.classes[0].params > 0


def test_syntax_error_in_imported_file_is_a_reason(tree):
    (tree / "workspace" / "app" / "nets" / "heads.py").write_text("class Head(:\n")
    model = tree / "workspace" / "app" / "model.py"
    a = _analyze(model, tree / "site")
    assert a.error is None
    assert any("SyntaxError" in u.reason and "heads.py" in u.reason for u in a.unresolved)


def test_circular_imports_end_with_a_reason(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "left.py").write_text("from right import WIDTH\n")
    (tmp_path / "right.py").write_text("from left import WIDTH\n")
    model = tmp_path / "model.py"
    model.write_text("import torch.nn as nn\nfrom left import WIDTH\n\n\nclass Net(nn.Module):\n"
                     "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(WIDTH, 2)\n\n"
                     "    def forward(self, x):  # gradxray: x=[B, 2]\n        return self.fc(x)\n")
    a = _analyze(model, tmp_path)
    assert a.error is None
    assert any("circular import of `WIDTH`" in u.reason for u in a.unresolved), a.unresolved


# --- module resolution ------------------------------------------------------------------------------

def test_workspace_roots_stop_at_a_marker(tmp_path):
    (tmp_path / "proj" / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / ".git").mkdir()
    f = tmp_path / "proj" / "pkg" / "sub" / "m.py"
    assert workspace_roots(str(f)) == [str(tmp_path / "proj" / "pkg" / "sub"), str(tmp_path / "proj" / "pkg"),
                                       str(tmp_path / "proj")]
    assert workspace_roots(str(f), [str(tmp_path)])[-1] == str(tmp_path)


def test_workspace_roots_without_marker_is_the_file_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    f = tmp_path / "a" / "b" / "m.py"
    roots = workspace_roots(str(f))
    # a marker above tmp_path (if any) must not be reached through the whole file system here
    assert roots[0] == str(tmp_path / "a" / "b")
    assert all(str(tmp_path / "a" / "b").startswith(r) for r in roots)


def test_module_resolution(tree, tmp_path):
    site = tree / "site"
    ws = tree / "workspace"
    index = ProjectIndex([str(site)])
    roots = workspace_roots(str(ws / "app" / "model.py"))
    loc = index.find_module("app.nets", roots)
    assert loc.file == str(ws / "app" / "nets" / "__init__.py") and loc.package_dirs == (str(ws / "app" / "nets"),)
    assert index.find_module("app.layers.mlp", roots).file == str(ws / "app" / "layers" / "mlp.py")
    assert index.find_module("fakeblocks.gated", roots).file == str(site / "fakeblocks" / "gated.py")
    assert index.find_module("app.nope", roots) is None
    # relative, two levels up from app/layers/mlp.py
    mlp = str(ws / "app" / "layers" / "mlp.py")
    assert index.resolve_module("..config", mlp, roots).file == str(ws / "app" / "config.py")
    assert index.package_of(mlp, 2).package_dirs == (str(ws / "app"),)
    # namespace package split over two folders, and a compiled module (no source)
    for portion in ("one", "two"):
        (tmp_path / portion / "nspkg").mkdir(parents=True)
    (tmp_path / "one" / "nspkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "two" / "nspkg" / "b.py").write_text("B = 2\n")
    (tmp_path / "two" / "fastmod.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "two" / "fastmod.so").write_bytes(b"")
    ns_index = ProjectIndex([str(tmp_path / "one"), str(tmp_path / "two")])
    ns = ns_index.find_module("nspkg", [])
    assert ns.file is None and len(ns.package_dirs) == 2
    assert ns_index.find_module("nspkg.b", []).file == str(tmp_path / "two" / "nspkg" / "b.py")
    assert ns_index.find_module("fastmod", []).compiled
    assert not is_source_resolvable("torch.nn") and not is_source_resolvable("os.path")
    assert is_source_resolvable("timm.layers")


def test_compiled_module_is_a_reason(tree):
    site = tree / "site"
    (site / "fastmod.so").write_bytes(b"")
    model = tree / "workspace" / "app" / "model.py"
    src = model.read_text().replace("        return logits\n",
                                    "        logits = fastmod.f(logits)\n        return logits\n")
    a = _analyze(model, site, "import fastmod\n" + src)
    assert any("`fastmod` is a compiled module" in u.reason for u in a.unresolved), a.unresolved


# --- caches and invalidation ------------------------------------------------------------------------

def test_unchanged_files_are_not_parsed_again(tree):
    site = tree / "site"
    model = tree / "workspace" / "app" / "model.py"
    from gradxray.analyzer.project import project_index

    project = project_index([str(site)])
    before = project.parse_count
    first = _analyze(model, site)
    parsed = project.parse_count - before
    # config, nets/__init__, encoder, heads, mlp, fakeblocks/__init__, gated: the files that are read
    assert parsed == 7
    _analyze(model, site)
    assert project.parse_count - before == parsed
    # one changed file: only it is parsed again, and the analysis sees the new text (editor buffer)
    config = tree / "workspace" / "app" / "config.py"
    stale = project.update(str(config), config.read_text().replace("width: int = 32", "width: int = 64"))
    assert str(model) in stale
    second = _analyze(model, site)
    assert project.parse_count - before == parsed + 1
    assert second.classes[0].params != first.classes[0].params
    assert _facts_by_text(second, model, model.read_text())["h = self.encoder(x)"] == [("h", ("B", "64"), "float32")]


def test_update_reports_the_dependents(tree):
    site = tree / "site"
    ws = tree / "workspace" / "app"
    index = ProjectIndex([str(site)])
    for f in ws.rglob("*.py"):
        index.module_index(str(f))
    config = ws / "config.py"
    text = config.read_text()
    assert index.update(str(config), text) == set()            # same content: nothing is stale
    expected = {str(p) for p in (ws / "config.py", ws / "layers" / "mlp.py", ws / "nets" / "encoder.py",
                                 ws / "nets" / "__init__.py", ws / "model.py")}
    assert index.update(str(config), text + "\nEXTRA = 1\n") == expected
    heads = ws / "nets" / "heads.py"
    assert index.update(str(heads), heads.read_text() + "\n") == {
        str(heads), str(ws / "nets" / "__init__.py"), str(ws / "model.py")}
    # text=None: back to the file on disk, which differs from the last buffer
    assert str(config) in index.update(str(config))


def test_a_new_file_makes_unresolved_importers_stale(tree):
    ws = tree / "workspace" / "app"
    index = ProjectIndex([str(tree / "site")])
    user = ws / "user.py"
    user.write_text("from .extras import Thing\n")
    index.module_index(str(user))
    index.module_index(str(ws / "config.py"))
    new = ws / "extras.py"
    new.write_text("Thing = 1\n")
    assert index.update(str(new)) == {str(new), str(user)}
    assert index.resolve_module(".extras", str(user), []).file == str(new)
