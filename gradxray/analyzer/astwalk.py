"""Walking ``ast`` trees by hand, visiting only the fields that can hold names.

The analysis walks every class and function of a file on each run (names they refer to, state they
change, whether they yield); ``ast.walk`` and ``ast.iter_child_nodes`` visit every field of every
node through nested generators, which costs about twice as much.  Which fields of a node class hold
nodes is read once from the grammar signature CPython gives each class as its docstring
(``BinOp(expr left, operator op, expr right)``): identifiers, strings, constants and the
context/operator singletons are skipped.  A class without a readable signature is walked field by
field, checking each value.
"""
from __future__ import annotations

import ast
import re

# grammar types that hold no node with a name in it
_LEAF_TYPES = frozenset({"identifier", "string", "constant", "int", "expr_context", "operator", "unaryop",
                         "cmpop", "boolop", "type_ignore"})
_SIGNATURE = re.compile(r"^\w+\((.*)\)$")

_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _node_fields(kind: type) -> tuple[str, ...] | None:
    """Fields of ``kind`` that can hold nodes, from its grammar signature; None when it has none."""
    doc = (kind.__doc__ or "").strip().splitlines()
    match = _SIGNATURE.match(doc[0]) if doc else None
    if match is None:
        return None if kind._fields else ()
    fields = []
    for part in match.group(1).split(","):
        typ, _, name = part.strip().rpartition(" ")
        if name and typ.rstrip("?*") not in _LEAF_TYPES:
            fields.append(name)
    return tuple(fields) if set(fields) <= set(kind._fields) else None


def push_children(stack: list, node) -> None:
    """Push ``node``'s child nodes that can hold names onto ``stack``."""
    kind = type(node)
    try:
        fields = _FIELDS[kind]
    except KeyError:
        fields = _FIELDS[kind] = _node_fields(kind)
    if fields is None:                     # no signature: every field, values checked
        for name in kind._fields:
            v = getattr(node, name, None)
            if type(v) is list:
                stack.extend(x for x in v if isinstance(x, ast.AST))
            elif isinstance(v, ast.AST):
                stack.append(v)
        return
    for name in fields:
        v = getattr(node, name, None)
        if type(v) is list:
            for x in v:
                if x is not None:          # a dict's ``**`` entry, a keyword-only argument's missing default
                    stack.append(x)
        elif v is not None:
            stack.append(v)
