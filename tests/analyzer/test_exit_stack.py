"""``contextlib.ExitStack`` and ``@contextmanager`` generators in ``with`` statements: contexts entered
on a stack, exits run last first when it closes (HF transformers builds every sub-model inside
``ContextManagers([...])``), generator contexts of other files, several with-items."""
from __future__ import annotations

from analyzer_helpers import analyze_in_tree, facts, line_of, reasons, write_tree

MANAGERS = """\
from contextlib import ExitStack, contextmanager

PATCHES = {}


class ContextManagers:
    def __init__(self, context_managers):
        self.context_managers = context_managers
        self.stack = ExitStack()

    def __enter__(self):
        for context_manager in self.context_managers:
            self.stack.enter_context(context_manager)

    def __exit__(self, *args, **kwargs):
        self.stack.__exit__(*args, **kwargs)


@contextmanager
def apply_patches():
    if not PATCHES:
        yield
        return
    try:
        yield
    finally:
        PATCHES.clear()


@contextmanager
def scaled(k):
    yield k * 2
"""


def test_an_hf_style_stack_of_contexts_around_construction(tmp_path):
    src = """\
    import torch
    import torch.nn as nn
    from managers import ContextManagers, apply_patches

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            with ContextManagers([apply_patches(), torch.no_grad()]):
                self.fc = nn.Linear(4, 8)
                probe = self.fc.weight * 2
            self.frozen_inside = not probe.requires_grad

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    write_tree(tmp_path, {"managers.py": MANAGERS, "net.py": src})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []           # apply_patches: nothing but `return` after the yield it reached
    assert a.classes[0].params == 4 * 8 + 8
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "8"), "float32")]


def test_exits_run_last_first_when_the_stack_closes(tmp_path):
    src = """\
    import torch
    import torch.nn as nn
    from contextlib import ExitStack

    class Recorder:
        def __init__(self, log, name):
            self.log, self.name = log, name

        def __enter__(self):
            self.log.append("enter " + self.name)
            return len(self.log)

        def __exit__(self, *exc):
            self.log.append("exit " + self.name)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            log = []
            with ExitStack() as stack:
                first = stack.enter_context(Recorder(log, "a"))
                stack.callback(log.append, "callback")
                stack.enter_context(Recorder(log, "b"))
                inside = len(log)
            order = ["enter a", "enter b", "exit b", "callback", "exit a"]
            kept = ExitStack()
            kept.enter_context(Recorder(log, "c"))
            moved = kept.pop_all()
            kept.close()
            before_close = len(log)
            moved.close()
            self.fc = nn.Linear(4, 1 + first + inside + 10 * (log[:5] == order) + 100 * (len(log) - before_close))

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    write_tree(tmp_path, {"net.py": src})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    # first = 1 (the log's length after entering a), inside = 2, the order right (10), the moved exit ran
    # at moved.close() and not at kept.close() (100)
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", str(1 + 1 + 2 + 10 + 100)), "float32")]


def test_a_generator_whose_exit_code_would_run_late_is_reported(tmp_path):
    src = """\
    import torch
    import torch.nn as nn
    from contextlib import ExitStack, contextmanager

    @contextmanager
    def tracked(log):
        log.append("in")
        try:
            yield len(log)
        finally:
            log.append("out")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            log = []
            with ExitStack() as stack:
                n = stack.enter_context(tracked(log))
                self.fc = nn.Linear(4, n + len(log))

        def forward(self, x):  # gradxray: x=[B, 4]
            return self.fc(x)
    """
    write_tree(tmp_path, {"net.py": src})
    a = analyze_in_tree(tmp_path, "net.py")
    [u] = a.unresolved
    assert u.line == line_of(src, "n = stack.enter_context(tracked")
    assert "the code after its `yield` ran then" in u.reason
    assert a.classes[0].params == 4 * 3 + 3       # "out" was logged before the Linear was built


def test_a_generator_context_of_another_file_and_several_with_items(tmp_path):
    src = """\
    import torch
    import torch.nn as nn
    from managers import scaled

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            with scaled(2) as a, torch.no_grad(), scaled(a) as b:
                self.fc = nn.Linear(4, a + b)
                frozen = (self.fc.weight * 1).requires_grad

        def forward(self, x):  # gradxray: x=[B, 4]
            y = self.fc(x)
            return y
    """
    write_tree(tmp_path, {"managers.py": MANAGERS, "net.py": src})
    a = analyze_in_tree(tmp_path, "net.py")
    assert reasons(a) == []
    assert facts(a, line_of(src, "y = self.fc(x)")) == [("y", ("B", "12"), "float32")]    # a = 4, b = 8
