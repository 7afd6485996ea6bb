"""An analysis leaves (almost) nothing to the cyclic garbage collector: it runs with the collector
paused (``gc_pause``) and frees its trace by reference counting, so the collection that follows it
has only the few objects that are cyclic by nature (the classes it made) to find.  A reference cycle
through the parsed file would leave every AST node of it to that collection (about 15,000 objects
and 7-10 ms after each analysis of the speed fixture)."""
import ast
import gc
import os

from gradxray.analyzer import analyze_source
from gradxray.analyzer.gc_pause import paused_gc
from gradxray.analyzer.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "bench", "fixtures", "large_model.py")


def _cyclic_garbage_of(fn) -> list:
    """The objects that only the cyclic collector frees after ``fn()`` (the collector off meanwhile)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        fn()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def test_an_analysis_leaves_no_syntax_tree_to_the_cyclic_collector():
    with open(FIXTURE, encoding="utf-8") as fh:
        source = fh.read()
    analyze_source(source, FIXTURE, Settings(), jobs=1)          # imports and per-process caches
    garbage = _cyclic_garbage_of(lambda: analyze_source(source, FIXTURE, Settings(), jobs=1))
    assert not [o for o in garbage if isinstance(o, ast.AST)]
    # what remains: the Python classes made for the file's module classes (a class refers to itself)
    assert len(garbage) < 1000, len(garbage)


def test_paused_gc_restores_the_collector_as_it_was():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()            # the outer block still holds it off
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()            # it was off before: it stays off
    finally:
        gc.enable()
