"""Root classes traced by forked workers: the analysis must be exactly the one-process analysis,
whatever process traced which root, and a worker that fails must cost nothing but time."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import gradxray.analyzer.parallel as parallel
from gradxray.analyzer import analyze_source
from gradxray.analyzer.config import settings_for_file
from gradxray.analyzer.incremental import TraceCache, writes_module_state
from gradxray.analyzer.project import index_source
from gradxray.analyzer.settings import Settings
from tests.support.analysis_dump import dump

from test_incremental import MODEL, LAYERS
from analyzer_helpers import write_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LARGE = os.path.join(REPO, "bench", "fixtures", "large_model.py")
EXAMPLES = [os.path.join(REPO, "examples", name) for name in ("gpt.py", "resnet.py")]

pytestmark = pytest.mark.skipif(not parallel.can_fork(), reason="needs fork and a single-threaded process")


def _square_slowly(n: int) -> tuple[int, int]:
    time.sleep(0.05)           # long enough that every worker takes some of the tasks
    return n * n, os.getpid()


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_results_come_back_in_task_order_from_several_processes():
    out = parallel.map_forked(_square_slowly, list(range(12)), jobs=3)
    assert [v for v, _ in out] == [n * n for n in range(12)]
    pids = {pid for _, pid in out}
    assert os.getpid() in pids and len(pids) >= 2
    assert _no_children_left()


def test_workers_can_be_left_exiting_for_the_caller_to_reap():
    exiting: list[int] = []
    out = parallel.map_forked(_square_slowly, list(range(6)), jobs=3, exiting=exiting)
    assert [v for v, _ in out] == [n * n for n in range(6)]
    assert len(exiting) == 2 and os.getpid() not in exiting
    parallel.reap(exiting)
    assert exiting == [] and _no_children_left()


def test_an_analysis_leaves_no_worker_behind():
    with open(LARGE, encoding="utf-8") as fh:
        analyze_source(fh.read(), LARGE, jobs=2)
    assert _no_children_left()


def test_what_a_failing_worker_did_not_return_is_done_here():
    parent = os.getpid()

    def work(n):
        if os.getpid() != parent:
            raise RuntimeError("a worker's bug")
        return _square_slowly(n)

    out = parallel.map_forked(work, list(range(6)), jobs=2)
    assert out == [(n * n, parent) for n in range(6)]
    assert _no_children_left()


def test_a_worker_that_dies_costs_only_time():
    parent = os.getpid()

    def work(n):
        if os.getpid() != parent:
            os._exit(3)
        return n + 1

    assert parallel.map_forked(work, list(range(5)), jobs=2) == [1, 2, 3, 4, 5]
    assert _no_children_left()


def test_workers_are_stopped_when_the_tasks_may_not_run_apart():
    parent = os.getpid()
    checked = []

    def proceed():
        checked.append(os.getpid())
        return False

    out = parallel.map_forked(_square_slowly, list(range(5)), jobs=3, proceed=proceed)
    assert out == [(n * n, parent) for n in range(5)]       # all here, in order
    assert checked == [parent]
    assert _no_children_left()


def _start_and_index(n: int) -> tuple[float, int]:
    started = time.perf_counter()
    time.sleep(0.1)
    return started, n


def test_the_queue_hands_out_tasks_in_the_order_asked_for():
    order = [5, 3, 4, 0, 2, 1]
    seconds: list = []
    out = parallel.map_forked(_start_and_index, list(range(6)), jobs=2, order=order, seconds=seconds)
    assert [n for _, n in out] == list(range(6))              # results still in task order
    # two processes take two tasks at a time, 0.1 s each: each pair of starts is a pair of the order
    by_start = [n for _, n in sorted(out)]
    assert [set(by_start[i:i + 2]) for i in (0, 2, 4)] == [set(order[i:i + 2]) for i in (0, 2, 4)]
    assert len(seconds) == 6 and all(0.09 < s < 5 for s in seconds)   # measured where each ran
    assert _no_children_left()


def test_an_order_must_name_every_task_once():
    with pytest.raises(ValueError, match="each of the 3 task indices once"):
        parallel.map_forked(_square_slowly, [1, 2, 3], jobs=2, order=[0, 0, 1])
    assert _no_children_left()


def test_durations_are_measured_in_one_process_too():
    seconds: list = []
    parallel.map_forked(_square_slowly, [1, 2], jobs=1, seconds=seconds)
    assert len(seconds) == 2 and all(s >= 0.05 for s in seconds)


def test_duration_history_hands_out_unknown_tasks_first_then_the_longest():
    history = parallel.DurationHistory()
    keys = ["a", "b", "c", "d", "e"]
    assert history.order(keys) == [0, 1, 2, 3, 4]                 # nothing known: as given
    history.record(["a", "b", "c"], [0.2, None, 0.5])             # b: not measured
    assert len(history) == 2
    assert history.order(keys) == [1, 3, 4, 2, 0]                 # b, d, e unknown; then c (0.5), a (0.2)
    history.record(["a"], [1.0])                                  # averaged with the 0.2 before: 0.6
    assert history.order(["a", "c"]) == [0, 1]
    history.record(["a"], [0.2])                                  # 0.4: now below c's 0.5
    assert history.order(["a", "c"]) == [1, 0]


def test_duration_history_forgets_the_least_recently_run():
    history = parallel.DurationHistory(limit=2)
    history.record(["a", "b"], [1.0, 2.0])
    history.record(["a"], [1.5])                                  # a is now the most recent
    history.record(["c"], [3.0])
    assert len(history) == 2
    assert history.order(["a", "b", "c"]) == [1, 2, 0]            # b forgotten: unknown, first


def test_worker_count():
    assert parallel.worker_count(None, 1, 10_000) == 1          # one root: nothing to share
    assert parallel.worker_count(1, 6, 10_000) == 1
    assert parallel.worker_count(4, 3, 10) == 3                 # asked for: at most one per root
    assert parallel.worker_count(None, 6, 50) == 1              # small roots: not worth a worker
    expected = min(parallel.available_cpus(), parallel.MAX_JOBS, 6)
    assert parallel.worker_count(None, 6, 10_000) == expected


def test_workers_are_chosen_only_on_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert parallel.worker_count(None, 6, 10_000) == 1
    assert parallel.worker_count(2, 6, 10_000) == 2                 # asked for explicitly


def test_no_worker_is_forked_while_another_thread_runs():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not parallel.can_fork()
        assert parallel.worker_count(4, 6, 10_000) == 1
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def spy(monkeypatch):
    """The worker counts analyze_source asked map_forked for (the queue orders in ``spy.orders``)."""
    calls = _Calls()
    real = parallel.map_forked

    def recording(work, tasks, jobs, **options):
        calls.append(jobs)
        calls.orders.append(options.get("order"))
        return real(work, tasks, jobs, **options)

    monkeypatch.setattr(parallel, "map_forked", recording)
    return calls


class _Calls(list):
    def __init__(self):
        super().__init__()
        self.orders: list = []


def test_the_roots_that_took_longest_are_handed_out_first(monkeypatch, spy):
    monkeypatch.setattr(parallel, "root_durations", parallel.DurationHistory())
    with open(LARGE, encoding="utf-8") as fh:
        source = fh.read()
    settings = settings_for_file(LARGE)
    first = analyze_source(source, LARGE, settings, jobs=2)
    names = [c.name for c in first.classes]
    assert spy.orders[0] == list(range(6))                  # nothing known yet: the file's order
    keys = [(LARGE, name) for name in names]
    assert len(parallel.root_durations) == 6                        # each root's duration measured
    monkeypatch.setattr(parallel, "root_durations", parallel.DurationHistory())
    parallel.root_durations.record(keys, [0.01, 0.02, 0.03, 0.04, 0.05, 0.5])  # ConvNeXt the longest
    second = analyze_source(source, LARGE, settings, jobs=2)
    assert spy.orders[1] == [5, 4, 3, 2, 1, 0]
    assert dump(second) == dump(first)                      # merged in the file's order all the same


@pytest.mark.parametrize("path", [LARGE, *EXAMPLES], ids=os.path.basename)
def test_parallel_analysis_equals_the_one_process_analysis(path, spy):
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    settings = settings_for_file(path)
    one = analyze_source(source, path, settings, jobs=1)
    two = analyze_source(source, path, settings, jobs=2)
    roots = len(two.classes)
    assert spy == [1, 2 if roots > 1 else 1]
    assert dump(two) == dump(one)
    if path == LARGE:
        assert [c.name for c in two.classes] == ["GPT", "ResNet", "VisionTransformer", "MlpMixer", "UNet",
                                                 "ConvNeXt"]
        assert not two.unresolved


def test_roots_that_may_change_module_state_are_traced_one_after_another(tmp_path, spy):
    # Tracked's constructor appends to a module list Gamma's constructor reads: in one process, as
    # the file's order has it
    write_tree(tmp_path, {"model.py": MODEL, "layers.py": LAYERS})
    path = str(tmp_path / "model.py")
    assert writes_module_state(index_source(MODEL, path))
    settings = Settings(roots=[str(tmp_path)])
    analysis = analyze_source(MODEL, path, settings, jobs=4)
    assert spy == [4]                                   # the workers started, then were stopped
    assert _no_children_left()
    gamma = next(c for c in analysis.classes if c.name == "Gamma")
    assert gamma.params == 3 * 2 + 2                     # len(_SEEN) + 1 outputs: Tracked ran first
    assert dump(analysis) == dump(analyze_source(MODEL, path, settings, jobs=1))


def test_results_traced_by_workers_are_cached_and_reused(tmp_path, spy):
    source = MODEL.replace("_SEEN.append(self)", "pass")    # no module state written: parallel
    write_tree(tmp_path, {"model.py": source, "layers.py": LAYERS})
    path = str(tmp_path / "model.py")
    settings = Settings(roots=[str(tmp_path)])
    cache = TraceCache()
    first = analyze_source(source, path, settings, cache=cache, jobs=2)
    assert spy == [2] and cache.misses == 4 and len(cache) == 4
    again = analyze_source(source, path, settings, cache=cache, jobs=2)
    assert cache.hits == 4 and spy == [2, 1]              # nothing left to trace
    assert dump(first) == dump(again) == dump(analyze_source(source, path, settings, jobs=1))


PRELOAD_SCRIPT = """
import sys
import gradxray.analyzer.parallel as parallel
from gradxray.analyzer import analyze_source
real = parallel.map_forked

def recording(work, tasks, jobs, **options):
    print(jobs, "numpy" in sys.modules)         # whether numpy came before the workers
    return real(work, tasks, jobs, **options)

parallel.map_forked = recording
path = sys.argv[1]
with open(path, encoding="utf-8") as fh:
    analyze_source(fh.read(), path, jobs=int(sys.argv[2]))
"""

TWO_ROOTS = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.scale = nn.Parameter({init})

        def forward(self, x):  # gradxray: x=[2, 4]
            return self.fc(x) * self.scale


    class B(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):  # gradxray: x=[2, 4]
            return self.fc(x)
""")


@pytest.mark.parametrize("init, jobs, preloaded", [
    ("torch.ones(4)", 2, True),          # constants likely: numpy imported once, before the workers fork
    ("torch.empty(4)", 2, False),        # no constant-making call in the file: nothing loaded ahead
    ("torch.ones(4)", 1, False),         # one process: imported when first needed, as before
])
def test_the_data_backend_is_loaded_before_workers_that_may_need_it(tmp_path, init, jobs, preloaded):
    path = tmp_path / "two.py"
    path.write_text(TWO_ROOTS.format(init=init))
    done = subprocess.run([sys.executable, "-c", PRELOAD_SCRIPT, str(path), str(jobs)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(jobs), str(preloaded)]


def test_cli_jobs_flag(tmp_path):
    def check(*flags):
        return subprocess.run([sys.executable, "-m", "gradxray", "check", "--output-format", "json", *flags, LARGE],
                              capture_output=True, text=True, cwd=REPO, timeout=300)

    one, two = check("--jobs", "1"), check("-j", "2")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout and not two.stderr
    bad = check("--jobs", "0")
    assert bad.returncode == 2 and "expected 1 or more" in bad.stderr and "Traceback" not in bad.stderr
