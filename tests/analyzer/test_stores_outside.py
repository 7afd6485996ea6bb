"""project.stores_outside: whether a function's own body changes state beyond its locals.

The flag is set for every function by the walk that collects the names a class or function reads
(one walk of the file instead of one more per function); here it is compared with the rule applied
to each function by itself, over real source files (the project's, the bundled models, torch.nn)."""
from __future__ import annotations

import ast
import glob
import os

import pytest

from gradxray.analyzer.project import MUTATING_METHODS, NESTED_SCOPES, _referenced_names, stores_outside

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(glob.glob(os.path.join(REPO, "gradxray", "**", "*.py"), recursive=True)
               + glob.glob(os.path.join(REPO, "bench", "fixtures", "*.py"))
               + glob.glob(os.path.join(REPO, "examples", "*.py")))


def _torch_nn_files() -> list[str]:
    import importlib.util
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = list(spec.submodule_search_locations)[0]
    return sorted(glob.glob(os.path.join(root, "nn", "**", "*.py"), recursive=True))


def _rule(fnode) -> bool:
    """The rule, applied to one function alone: its parameters, the names its body binds and the
    nested definitions it names are its locals; a global / nonlocal statement, a store into an item
    or attribute of another name, a mutating method call or setattr on one changes outside state."""
    a = fnode.args
    local = {p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if p is not None}
    nodes, stack = [], list(fnode.body) if not isinstance(fnode, ast.Lambda) else [fnode.body]
    while stack:
        n = stack.pop()
        if type(n) in NESTED_SCOPES:
            if not isinstance(n, ast.Lambda):
                local.add(n.name)
            continue
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            local.add(n.id)
        nodes.append(n)
        stack.extend(ast.iter_child_nodes(n))

    def root_name(e):                       # `a.b[c].d` -> "a"; None when the chain starts elsewhere
        return root_name(e.value) if isinstance(e, (ast.Attribute, ast.Subscript)) else getattr(e, "id", None)

    written: list = []                      # expressions whose root object the function changes
    for n in nodes:
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            return True
        if isinstance(n, (ast.Assign, ast.Delete)):
            written += [t.value for t in n.targets if isinstance(t, (ast.Attribute, ast.Subscript))]
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)) and isinstance(n.target, (ast.Attribute, ast.Subscript)):
            written.append(n.target.value)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATING_METHODS:
            written.append(n.func.value)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr" and n.args:
            written.append(n.args[0])
    return any(root_name(e) is not None and root_name(e) not in local for e in written)


def _functions(tree) -> list:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]


def _flags_from_the_names_walk(source: str) -> list[bool]:
    """Flags as an analysis gets them: _referenced_names on each top-level statement and class body
    item, then stores_outside (cached) for every function."""
    tree = ast.parse(source)
    for stmt in tree.body:
        for part in (stmt.body if isinstance(stmt, ast.ClassDef) else [stmt]):
            _referenced_names(part)
    funcs = _functions(tree)
    walked = [f for f in funcs if not isinstance(f, ast.Lambda)]
    assert all(hasattr(f, "_gx_stores_outside") for f in walked)     # no function left for a walk of its own
    return [stores_outside(f) for f in funcs]


@pytest.mark.parametrize("path", FILES + _torch_nn_files(), ids=lambda p: os.path.relpath(p, REPO)
                         if p.startswith(REPO) else "torch/" + p.rsplit("/torch/", 1)[-1])
def test_the_names_walk_flags_every_function_as_the_rule_does(path):
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    expected = [_rule(f) for f in _functions(ast.parse(source))]
    assert _flags_from_the_names_walk(source) == expected


CASES = {
    "def f(x):\n    x.a = 1\n    return x": False,
    "def f():\n    REG['a'] = 1": True,
    "def f():\n    REG = {}\n    REG['a'] = 1": False,
    "def f():\n    global G\n    G = 1": True,
    "def f():\n    def g():\n        nonlocal_ = 1\n    return g": False,
    "def f():\n    items.append(1)": True,
    "def f(items):\n    items.append(1)": False,
    "def f():\n    setattr(obj, 'a', 1)": True,
    "def f():\n    out = [x for x in xs]\n    out.append(1)": False,
    "def f():\n    g = lambda: REG.clear()\n    return g": False,          # the lambda's own body, not f's
    "def f():\n    class C:\n        REG.append(1)\n    return C": False,    # a class body belongs to no function
    "def f():\n    del CACHE[k]": True,
    "def f():\n    CACHE.x += 1": True,
    "def f(a=REG.append(1)):\n    return a": False,                       # a default is the outer scope's
    "async def f():\n    async with lock:\n        STATE.v = 1": True,
}


@pytest.mark.parametrize("source,expected", CASES.items(), ids=range(len(CASES)))
def test_cases(source, expected):
    tree = ast.parse(source)
    _referenced_names(tree.body[0])
    assert stores_outside(tree.body[0]) is expected
    assert _rule(ast.parse(source).body[0]) is expected
    fresh = ast.parse(source).body[0]            # asked directly, with no walk before
    assert stores_outside(fresh) is expected


def test_nested_functions_and_lambdas_get_their_own_flags():
    source = "def outer():\n    def inner():\n        REG.add(1)\n    h = lambda: CACHE.pop()\n    return inner, h\n"
    tree = ast.parse(source)
    _referenced_names(tree.body[0])
    outer = tree.body[0]
    inner = outer.body[0]
    lam = outer.body[1].value
    assert (stores_outside(outer), stores_outside(inner), stores_outside(lam)) == (False, True, True)
