"""The hand walk of ast trees (astwalk.push_children) reaches every node that can hold a name,
as ast.walk does, over real source files: the project's own and the bundled models."""
from __future__ import annotations

import ast
import glob
import os

import pytest

from gradxray.analyzer.astwalk import push_children

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(glob.glob(os.path.join(REPO, "gradxray", "**", "*.py"), recursive=True)
               + glob.glob(os.path.join(REPO, "bench", "fixtures", "*.py"))
               + glob.glob(os.path.join(REPO, "examples", "*.py")))

# what the walk skips on purpose: nodes that hold no name (contexts, operators, ignores)
_NAMELESS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.type_ignore)


def _hand_walk(tree) -> list:
    seen, stack = [], [tree]
    while stack:
        node = stack.pop()
        seen.append(node)
        push_children(stack, node)
    return seen


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, REPO))
def test_reaches_what_ast_walk_reaches(path):
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    walked = _hand_walk(tree)
    assert all(isinstance(n, ast.AST) for n in walked)
    expected = {id(n) for n in ast.walk(tree) if not isinstance(n, _NAMELESS)}
    assert {id(n) for n in walked} == expected


def test_every_construct():
    source = '''
import a.b as c
from .d import e as f
global_ = {**g, h: [i async for i in j if k]}
@dec(l)
async def m(n, /, o: p = q, *r, s=t, u, **v) -> w:
    global x
    nonlocal_ = lambda y=z: y
    match aa:
        case Point(bb, cc=dd) | [ee, *ff] | {"k": gg, **hh} if ii:
            pass
    try:
        pass
    except jj as kk:
        raise ll from mm
    with nn as (oo, pp):
        yield f"{qq!r:{rr}}"
    del ss[tt:uu:vv]
    ww: xx[yy] = zz
'''
    tree = ast.parse(source)
    names = {n.id for n in _hand_walk(tree) if isinstance(n, ast.Name)}
    assert names == {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
