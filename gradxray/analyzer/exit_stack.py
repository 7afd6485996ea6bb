"""``contextlib.ExitStack`` for analysed code: contexts entered now, their exits run when the stack closes.

HF transformers builds every sub-model under ``with ContextManagers([apply_patches(), ...]):``, a class
that enters a list of contexts on an ExitStack.  Contexts the analysis runs itself (engine regions
such as ``torch.no_grad()``, classes of the analysed code with ``__enter__`` / ``__exit__``) are entered
at ``enter_context`` and exited, last first, at ``close()`` / ``__exit__``, as contextlib does.

A ``@contextmanager`` generator cannot pause at its ``yield`` in the analysis (a generator runs to
completion when called): entered on a stack it runs whole at ``enter_context``, which gives the value
it yields.  That is exact when nothing but ``return`` follows the ``yield`` it reached (no code after
it, no ``finally``, no enclosing ``with`` or loop): ``if not mapping: yield; return`` in
``apply_patches``.  Otherwise the code after the ``yield`` ran before the stack's other work instead of
after it, and the place is reported as lost precision.
"""
from __future__ import annotations

import ast

from .values import Builtin, GeneratorContext, UserFunction


class ExitStackValue:
    """An ExitStack of the analysed code (``contextlib.ExitStack()``)."""

    def __init__(self, interp):
        self.interp = interp
        self.exits: list = []          # run last first at close, with the exception triple (Interpreter.enter_context)

    def __repr__(self) -> str:
        return f"<ExitStack of {len(self.exits)}>"

    def member(self, name: str):
        """(attribute, None) or (None, reason), as Interpreter.lookup_attr gives them."""
        method = _METHODS.get(name)
        if method is None:
            return None, f"`ExitStack.{name}` is not supported"
        return Builtin(f"ExitStack.{name}", lambda interp, node, args, kwargs: method(self, node, args, kwargs)), None

    # the context protocol, for `with ExitStack() as stack:` (entered by the interpreter's own with)
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        exits, self.exits = self.exits, []
        for leave in reversed(exits):
            leave(None, None, None)

    # -- methods -----------------------------------------------------------------------------------
    def enter_context(self, node, args, kwargs):
        if len(args) != 1 or kwargs:
            return self.interp.unknown("`ExitStack.enter_context` takes one context manager", node)
        cm, interp = args[0], self.interp
        if isinstance(cm, GeneratorContext):
            value, reached = interp.run_generator_context(cm, node)
            if reached is not None and not _nothing_after(cm, reached):
                interp.unknown(f"`{_text(node)}`: a `@contextmanager` generator entered on an ExitStack runs "
                               f"whole when entered: the code after its `yield` ran then, not at the stack's exit",
                               node)
            return value
        value, leave = interp.enter_context(cm, node)
        if leave is not None:
            self.exits.append(leave)
        return value

    def callback(self, node, args, kwargs):
        if not args:
            return self.interp.unknown("`ExitStack.callback` takes a function", node)
        fn, rest = args[0], list(args[1:])
        self.exits.append(lambda *exc: self.interp.call(fn, rest, dict(kwargs), node))
        return fn

    def push(self, node, args, kwargs):
        if len(args) != 1 or kwargs:
            return self.interp.unknown("`ExitStack.push` takes one exit function", node)
        fn = args[0]
        self.exits.append(lambda *exc: self.interp.call(fn, list(exc), {}, node))
        return fn

    def pop_all(self, node, args, kwargs):
        moved = ExitStackValue(self.interp)
        moved.exits, self.exits = self.exits, []
        return moved

    def close_method(self, node, args, kwargs):
        self.close()
        return None

    def enter_method(self, node, args, kwargs):
        return self

    def exit_method(self, node, args, kwargs):
        self.close()
        return False


_METHODS = {
    "enter_context": ExitStackValue.enter_context, "callback": ExitStackValue.callback,
    "push": ExitStackValue.push, "pop_all": ExitStackValue.pop_all, "close": ExitStackValue.close_method,
    "__enter__": ExitStackValue.enter_method, "__exit__": ExitStackValue.exit_method,
}


def _new_exit_stack(interp, node, args, kwargs):
    if args or kwargs:
        return interp.unknown("`ExitStack()` takes no arguments", node)
    return ExitStackValue(interp)


EXIT_STACK = Builtin("contextlib.ExitStack", _new_exit_stack)


def _text(node) -> str:
    return ast.unparse(node) if isinstance(node, ast.AST) else "context"


# -- what runs after a yield -----------------------------------------------------------------------

def _nothing_after(cm: GeneratorContext, reached: ast.Yield) -> bool:
    """Whether, after the ``yield`` expression ``reached``, the generator function of ``cm`` runs no
    code: the ``yield`` is a statement of its own, followed (in its block and the blocks around it) by
    nothing or by a ``return``, with no ``finally``, ``else``, ``with`` or loop around it."""
    func = cm.function
    if not isinstance(func, UserFunction):
        return False
    fnode = func.node
    path = _path_to(fnode.body, reached)
    if path is None:
        return False
    # innermost first: (the block holding the statement, its index, the statement holding that block)
    for block, index, holder in reversed(path):
        for stmt in block[index + 1:]:
            if isinstance(stmt, ast.Return) and (stmt.value is None or isinstance(stmt.value, ast.Constant)):
                return _no_exit_code(path)
            if not _trivial(stmt):
                return False
        if holder is not None and not _leaves_plainly(holder, block):
            return False
    return True


def _trivial(stmt) -> bool:
    """``pass`` or a lone constant (a docstring, ``...``)."""
    return isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))


def _no_exit_code(path) -> bool:
    """A ``return`` after the yield: only the blocks around it that run code on the way out matter."""
    return all(holder is None or _leaves_plainly(holder, block) for block, _, holder in path)


def _leaves_plainly(holder, block) -> bool:
    """Leaving ``block`` of the compound statement ``holder`` runs no code of its own."""
    if isinstance(holder, ast.If):
        return True
    if isinstance(holder, ast.Try):
        return all(map(_trivial, holder.finalbody)) and (block is not holder.body or not holder.orelse)
    return False                     # with (its exit), for / while (the next iteration), match ...


def _path_to(block: list, target, holder=None):
    """[(block, index, holder)] from the function body down to the statement ``yield target``, or None."""
    for i, stmt in enumerate(block):
        if isinstance(stmt, ast.Expr) and stmt.value is target:
            return [(block, i, holder)]
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                found = _path_to(inner, target, stmt)
                if found is not None:
                    return [(block, i, holder), *found]
        for handler in getattr(stmt, "handlers", ()):
            found = _path_to(handler.body, target, stmt)
            if found is not None:
                return [(block, i, holder), *found]
    return None
