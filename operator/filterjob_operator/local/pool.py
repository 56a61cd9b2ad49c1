"""The local runner: a FilterJob on this machine with a process pool, no cluster, no broker.

The main process plans tasks and keeps a bounded number in flight (so a million
inputs never sit in the pool's queue at once); worker processes run exactly the
per-task function the broker workers run. A worker process that dies gives the
tasks it held one more try each, one at a time in a replaced pool, so an input that
kills every process that reads it is the only one that fails.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from filterjob_operator.adapters import sources
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.local.interrupts import Interrupts
from filterjob_operator.local.options import LocalOptions
from filterjob_operator.local.start import Listener, begin_run
from filterjob_operator.local.summary import RunSummary
from filterjob_worker import processing
from filterjob_worker.adapters import storage
from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import WorkerDied
from filterjob_worker.core.outcome import Outcome

#: Tasks submitted per worker process ahead of completion: enough to keep every
#: process busy, few enough that memory stays flat for any job size.
IN_FLIGHT_PER_WORKER = 2
#: A task that was in flight when a worker process died runs again, alone; if a process
#: dies while it runs alone, after this many deaths in all, it is failed, not retried.
MAX_DEATHS = 1
DEFAULT_OPTIONS = LocalOptions()


def _prepare_pool_process() -> None:
    """A pool process ignores Ctrl-C (a terminal sends it to the whole process group): the
    main process decides, and lets the image at hand finish, so that what is on disk is
    what the summary counts. SIGTERM still ends it: the pool itself stops its processes so."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processing.prepare_process()


def _pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: no fork of a multi-threaded parent (the progress bar runs a thread).
    context = multiprocessing.get_context("forkserver")
    # "__main__" too: imported once by the forkserver instead of by every worker it forks.
    context.set_forkserver_preload(["__main__", "filterjob_worker.processing"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_prepare_pool_process)


def run_local(
    job: FilterJob, *, options: LocalOptions = DEFAULT_OPTIONS, listener: Listener | None = None
) -> RunSummary:
    """Process every input of ``job``; returns the summary (never raises for bad images)."""
    listener = listener or Listener()
    start = time.perf_counter()
    summary, keys = begin_run(job, listener, skip_existing=options.skip_existing)
    source_root = job.spec.source.uri

    def record(outcome: Outcome | None, task: Task) -> None:
        summary.add(outcome, task.input.removeprefix(source_root))
        listener.advanced(outcome)

    tasks = sources.plan(job, keys)
    recorded: set[str] = set()

    def record_once(outcome: Outcome | None, task: Task) -> None:
        # An interrupt can land between counting a task and forgetting it: count it once.
        if task.task not in recorded:
            recorded.add(task.task)
            record(outcome, task)

    try:
        restarts = _drive(tasks, options, record_once, since_ns=time.time_ns())
    except KeyboardInterrupt:
        summary.interrupted = True
        # A process killed while writing (SIGTERM to the whole group) leaves a temporary file.
        with contextlib.suppress(OSError):
            storage.remove_temp_files(job.spec.destination.uri)
    else:
        if restarts:
            # A killed process can leave a hidden temporary file behind (never a partial output).
            storage.remove_temp_files(job.spec.destination.uri)
    summary.seconds = time.perf_counter() - start
    return summary


def _drive(
    tasks: Iterator[Task],
    options: LocalOptions,
    record: Callable[[Outcome | None, Task], None],
    *,
    since_ns: int,
) -> int:
    """Run every task; returns how often the pool had to be replaced.

    Interrupted (``KeyboardInterrupt``, raised only while it waits for the pool, so no task is
    half counted or half submitted), it starts nothing more, waits for the tasks the pool
    holds, and records each one that wrote its output (``since_ns``: the run's start) before
    raising again.
    """
    driver = _Driver(options, record)
    interrupts = Interrupts()
    try:
        with interrupts.held():
            while driver.step(tasks, interrupts):
                pass
            return driver.restarts
    except KeyboardInterrupt:
        # Interrupted: start nothing more, but the images the pool already holds finish;
        # count each one, so every output written is in the summary.
        driver.pool.shutdown(wait=True, cancel_futures=True)
        _record_finished(driver.in_flight, record, since_ns=since_ns)
        raise
    finally:
        driver.pool.shutdown(wait=True, cancel_futures=True)


class _Driver:
    """The pool of one run and the tasks it holds, replaced when a worker process dies."""

    def __init__(self, options: LocalOptions, record: Callable[[Outcome | None, Task], None]) -> None:
        self.options = options
        self.record = record
        self.limit = options.workers * IN_FLIGHT_PER_WORKER
        self.pool = _pool(options.workers)
        self.in_flight: dict[Future[Outcome], Task] = {}
        # Tasks that were in flight when a worker process died: we cannot tell which one
        # killed it, so each runs again alone in a fresh pool, where a death is its own.
        # (Retried side by side, an input that kills every process would fail the others.)
        self.again: deque[Task] = deque()
        self.died_with: Counter[str] = Counter()
        self.restarts = 0

    def step(self, tasks: Iterator[Task], interrupts: Interrupts) -> bool:
        """Fill the pool, wait for a task to finish and record it; False once every task is done."""
        try:
            self._fill(tasks)
            if not self.in_flight:
                return False
            with interrupts.waiting():
                done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
            if not self._collect(done):
                return True
        except BrokenProcessPool:
            pass
        # A worker process died: the pool is unusable and its in-flight tasks are lost.
        _after_death(self.in_flight, self.died_with, self.again, self.record)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = _pool(self.options.workers)
        self.restarts += 1
        return True

    def _room(self) -> bool:
        if self.again or any(task.task in self.died_with for task in self.in_flight.values()):
            return not self.in_flight
        return len(self.in_flight) < self.limit

    def _fill(self, tasks: Iterator[Task]) -> None:
        while self._room():
            task = self.again.popleft() if self.again else next(tasks, None)
            if task is None:
                return
            try:
                self.in_flight[self.pool.submit(processing.process, task, limits=self.options.limits)] = task
            except BrokenProcessPool:
                self.again.appendleft(task)
                raise

    def _collect(self, done: set[Future[Outcome]]) -> bool:
        """Record the finished tasks; True if the pool broke (a worker process died)."""
        broken = False
        for future in done:
            if isinstance(future.exception(), BrokenProcessPool):
                broken = True
            else:
                self.record(future.result(), self.in_flight.pop(future))
        return broken


def _after_death(
    in_flight: dict[Future[Outcome], Task],
    died_with: Counter[str],
    again: deque[Task],
    record: Callable[[Outcome | None, Task], None],
) -> None:
    """The tasks a dead pool held: each runs again alone, or fails if it died alone too often."""
    alone = len(in_flight) == 1
    for task in in_flight.values():
        died_with[task.task] += 1
        if alone and died_with[task.task] > MAX_DEATHS:
            record(_died(task), task)
        else:
            again.append(task)
    in_flight.clear()


def _record_finished(
    in_flight: dict[Future[Outcome], Task],
    record: Callable[[Outcome | None, Task], None],
    *,
    since_ns: int,
) -> None:
    """Record the tasks of a stopped pool that wrote their output."""
    for future, task in in_flight.items():
        if future.cancelled():
            continue
        if future.exception() is None:
            record(future.result(), task)
        elif storage.written_since(task.output, since_ns):
            # Its process was killed after the output was in place (writes are atomic).
            record(Outcome.of(task), task)


def _died(task: Task) -> Outcome:
    return Outcome.of(task, error=WorkerDied("a worker process died while processing this image (out of memory?)"))
