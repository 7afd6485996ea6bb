"""Tracing a file's root classes in parallel: forked worker processes, this one among them.

A root's trace reads the file's definitions and writes only its own result (the property that lets
the language server reuse one root's result while tracing another, see ``incremental``), so the
roots of one file can be traced by copies of the interpreter made after the file is indexed: each
copy takes the next untraced root from a shared queue, and the results come back in root order.
Merged in that order they equal a one-process run's.  The queue serves the roots that took longest
the last time first (``DurationHistory``): taken in file order, the longest root of a file can come
last and leave the other processes idle while one traces it.

Workers are copies of this process made by ``fork`` (the interpreter's state is shared copy-on-write,
nothing is imported or rebuilt), so this runs only where that is safe and worth it: Linux (other
POSIX systems when asked for: macOS offers fork but it is unsafe there once system libraries have
started), a process with a single thread (forking a multi-threaded one can leave a lock held forever
in the child; the language server is one), more than one root to trace and more than one CPU.  A worker
that fails or dies costs nothing but time: whatever it did not return is traced here afterwards.
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_JOBS = 8
# a root of fewer lines traces in a few milliseconds, about what a worker costs to start and to
# send back: files whose roots are smaller than this together are traced in this process
MIN_PARALLEL_LINES = 400

_INDEX = struct.Struct("<I")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether this process may fork workers: POSIX and no other Python thread running."""
    return hasattr(os, "fork") and threading.active_count() == 1


def worker_count(requested: int | None, tasks: int, lines: int) -> int:
    """Processes to use (this one included) for ``tasks`` roots of ``lines`` source lines together.

    ``requested``: None chooses (on Linux, the CPUs this process may run on, at most MAX_JOBS, one for a
    small file; elsewhere one), 1 keeps everything in this process, N > 1 asks for N."""
    if tasks < 2 or not can_fork():
        return 1
    if requested is None:
        # elsewhere fork is offered but unsafe after some system libraries have started (macOS)
        if lines < MIN_PARALLEL_LINES or not sys.platform.startswith("linux"):
            return 1
        requested = min(available_cpus(), MAX_JOBS)
    return max(1, min(requested, tasks))


def lines_of(classes) -> int:
    """Source lines of some of the file's classes (``project.ClassInfo``): the size of their traces."""
    return sum((c.node.end_lineno or c.lineno) - c.lineno + 1 for c in classes)


def map_forked(work: Callable[[T], R], tasks: Sequence[T], jobs: int,
               proceed: Callable[[], bool] | None = None, exiting: list[int] | None = None,
               order: Sequence[int] | None = None, seconds: list | None = None) -> list[R]:
    """``[work(t) for t in tasks]`` computed by ``jobs`` processes: this one and ``jobs - 1`` forked
    copies, each taking the next task from a shared queue.  Results must pickle.  A task whose result
    did not come back from a worker (it raised, it died) is run here afterwards, so the list is
    complete either way; ``work`` itself should not raise (it is called again here if it does).

    ``proceed``: a check that the tasks may run apart, made here while the workers start (it costs
    time the workers use); when it says no, they are stopped and every task runs here, in order.

    ``exiting``: where to leave the process ids of workers that sent their results, for the caller to
    ``reap`` once it has done its own work; a worker's exit gives back its copy of this process's memory,
    which takes several milliseconds.  Without it they are reaped here.

    ``order``: the task indices in the order the queue hands them out (all of them; by default the
    tasks' order).  Tasks that run here because the workers were stopped or failed run in the tasks'
    order.  ``seconds``: a list of ``len(tasks)`` filled with how long each task took where it ran."""
    n = len(tasks)
    if seconds is not None:
        seconds[:] = [None] * n

    def here(i: int) -> R:
        result, took = _timed(work, tasks[i])
        if seconds is not None:
            seconds[i] = took
        return result

    if jobs <= 1 or n < 2:
        return [here(i) for i in range(n)]
    order = list(range(n)) if order is None else list(order)
    if sorted(order) != list(range(n)):
        raise ValueError(f"order must hold each of the {n} task indices once")
    queue_r, queue_w = os.pipe()
    # all indices written before any worker starts, in one write: each read of 4 bytes takes one
    os.write(queue_w, b"".join(_INDEX.pack(i) for i in order))
    os.close(queue_w)
    children: list[tuple[int, int]] = []           # (pid, read end of its result pipe)
    for _ in range(jobs - 1):
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:                                # the worker
            os.close(result_r)
            for _pid, fd in children:
                os.close(fd)
            code = 1
            try:
                done = [(i, *_timed(work, tasks[i])) for i in _take(queue_r)]
                payload = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(result_w, "wb") as out:
                    out.write(payload)
                code = 0
            finally:
                os._exit(code)                      # no atexit handlers, no flush of inherited buffers
        os.close(result_w)
        children.append((pid, result_r))
    if proceed is not None and not proceed():
        for pid, fd in children:
            os.kill(pid, signal.SIGKILL)
            os.close(fd)
            os.waitpid(pid, 0)
        os.close(queue_r)
        return [here(i) for i in range(n)]
    results: dict[int, R] = {}
    try:
        for i in _take(queue_r):
            results[i] = here(i)
    finally:
        os.close(queue_r)
        for pid, fd in children:
            with os.fdopen(fd, "rb") as inp:
                payload = inp.read()                # up to the end of the pipe, closed before the exit
            try:
                done = pickle.loads(payload)
            except Exception:
                continue                            # traced again below
            for i, result, took in done:
                results[i] = result
                if seconds is not None:
                    seconds[i] = took
        pids = [pid for pid, _ in children]
        if exiting is None:
            reap(pids)
        else:
            exiting.extend(pids)
    return [results[i] if i in results else here(i) for i in range(n)]


def _timed(work: Callable[[T], R], task: T) -> tuple[R, float]:
    """``work(task)`` and the seconds it took."""
    start = time.perf_counter()
    result = work(task)
    return result, time.perf_counter() - start


class DurationHistory:
    """How long each task (by a key, e.g. a file's root class) took when it ran before, to hand out the
    longest first: with a queue shared by a few processes, a long task taken last leaves the others
    idle until it ends.  A task's time is its latest time averaged with what was known of it before,
    half each (one run next to another process varies by a third and more).  Tasks never seen run
    before all others, in their given order: nothing is known of them, and one could be the longest.
    Holds at most ``limit`` keys, the least recently run forgotten first."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._seconds: dict[Hashable, float] = {}

    def order(self, keys: Sequence[Hashable]) -> list[int]:
        """Indices of ``keys``: unknown ones in their order, then the known ones, longest first."""
        known = self._seconds
        return sorted(range(len(keys)), key=lambda i: (keys[i] in known, -known.get(keys[i], 0.0), i))

    def record(self, keys: Sequence[Hashable], seconds: Sequence[float | None]) -> None:
        for key, took in zip(keys, seconds):
            if took is None:
                continue
            before = self._seconds.pop(key, None)   # re-inserted: the most recently run are kept
            self._seconds[key] = took if before is None else (before + took) / 2
        while len(self._seconds) > self.limit:
            del self._seconds[next(iter(self._seconds))]

    def __len__(self) -> int:
        return len(self._seconds)


# the durations of the root classes this process traced, by (file path, class name)
root_durations = DurationHistory()


def reap(pids: list[int]) -> None:
    """Wait for the exit of the workers ``pids`` (map_forked's ``exiting``) and forget them."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    pids.clear()


def _take(queue_fd: int):
    """Task indices from the shared queue until it is empty."""
    while True:
        data = os.read(queue_fd, _INDEX.size)
        if len(data) < _INDEX.size:
            return
        yield _INDEX.unpack(data)[0]
