"""The local runner: a FilterJob on this machine with a process pool, no cluster.

The main process plans tasks and keeps a bounded number in flight (so a million
inputs never sit in the pool's queue at once); worker processes run exactly the
per-task function the broker workers run. A worker process that dies gives the
tasks it held one more try each, one at a time in a replaced pool, so an input that
kills every process that reads it is the only one that fails.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from filterjob_operator import sources
from filterjob_operator.interrupts import Interrupts
from filterjob_operator.spec import FilterJob
from filterjob_operator.summary import Failure, RunSummary
from filterjob_worker import processing, storage
from filterjob_worker.codec import DEFAULT_LIMITS, Limits
from filterjob_worker.contract import Task
from filterjob_worker.errors import WorkerDied

#: Tasks submitted per worker process ahead of completion: enough to keep every
#: process busy, few enough that memory stays flat for any job size.
IN_FLIGHT_PER_WORKER = 2
#: A task that was in flight when a worker process died runs again, alone; if a process
#: dies while it runs alone, after this many deaths in all, it is failed, not retried.
MAX_DEATHS = 1


class Listener:
    """Receives progress; the CLI draws a bar, tests record."""

    def started(self, total: int) -> None:
        """Called once with the number of selected inputs."""

    def advanced(self, outcome: processing.Outcome | None) -> None:
        """Called once per task; ``None`` means skipped."""

    def queued(self, ready: int, unacked: int) -> None:
        """Broker mode, where the management API answers: tasks waiting and being worked on."""


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    workers: int = os.cpu_count() or 1
    skip_existing: bool = False
    limits: Limits = DEFAULT_LIMITS


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
    job: FilterJob, *, options: LocalOptions = LocalOptions(), listener: Listener | None = None
) -> RunSummary:
    """Process every input of ``job``; returns the summary (never raises for bad images)."""
    listener = listener or Listener()
    start = time.perf_counter()
    summary, keys = begin_run(job, listener, skip_existing=options.skip_existing)
    source_root = job.spec.source.uri

    def record(outcome: processing.Outcome | None, task: Task) -> None:
        summary.add(outcome, task.input.removeprefix(source_root))
        listener.advanced(outcome)

    tasks = sources.plan(job, keys)
    recorded: set[str] = set()

    def record_once(outcome: processing.Outcome | None, task: Task) -> None:
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


def begin_run(job: FilterJob, listener: Listener, *, skip_existing: bool) -> tuple[RunSummary, list[str]]:
    """The start every runner shares: list the inputs, announce the total, count the
    skipped ones (``--skip-existing``: their output exists); returns the keys to run."""
    inputs = sources.scan_inputs(job)
    keys = inputs.keys
    summary = RunSummary(
        total=len(keys),
        destination=job.spec.destination.uri,
        unlisted=[Failure(input=u.path, reason=u.reason) for u in inputs.skipped],
    )
    if not keys:
        summary.warnings.append(sources.empty_message(job))
    listener.started(summary.total)
    if not skip_existing:
        return summary, keys
    to_run = []
    for key in keys:
        if storage.exists(sources.make_task(job, key).output):
            summary.add(None, key)
            listener.advanced(None)
        else:
            to_run.append(key)
    return summary, to_run


def _drive(
    tasks: Iterator[Task],
    options: LocalOptions,
    record: Callable[[processing.Outcome | None, Task], None],
    *,
    since_ns: int,
) -> int:
    """Run every task; returns how often the pool had to be replaced.

    Interrupted (``KeyboardInterrupt``, raised only while it waits for the pool, so no task is
    half counted or half submitted), it starts nothing more, waits for the tasks the pool
    holds, and records each one that wrote its output (``since_ns``: the run's start) before
    raising again.
    """
    limit = options.workers * IN_FLIGHT_PER_WORKER
    pool = _pool(options.workers)
    in_flight: dict[Future[processing.Outcome], Task] = {}
    # Tasks that were in flight when a worker process died: we cannot tell which one
    # killed it, so each runs again alone in a fresh pool, where a death is its own.
    # (Retried side by side, an input that kills every process would fail the others.)
    again: deque[Task] = deque()
    died_with: Counter[str] = Counter()
    restarts = 0

    def room() -> bool:
        if again or any(task.task in died_with for task in in_flight.values()):
            return not in_flight
        return len(in_flight) < limit

    interrupts = Interrupts()
    try:
        with interrupts.held():
            while True:
                try:
                    while room():
                        task = again.popleft() if again else next(tasks, None)
                        if task is None:
                            break
                        try:
                            in_flight[pool.submit(processing.process, task, limits=options.limits)] = task
                        except BrokenProcessPool:
                            again.appendleft(task)
                            raise
                    if not in_flight:
                        return restarts
                    with interrupts.waiting():
                        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    broken = False
                    for future in done:
                        if isinstance(future.exception(), BrokenProcessPool):
                            broken = True
                        else:
                            record(future.result(), in_flight.pop(future))
                    if not broken:
                        continue
                except BrokenProcessPool:
                    pass
                # A worker process died: the pool is unusable and its in-flight tasks are lost.
                _after_death(in_flight, died_with, again, record)
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(options.workers)
                restarts += 1
    except KeyboardInterrupt:
        # Interrupted: start nothing more, but the images the pool already holds finish;
        # count each one, so every output written is in the summary.
        pool.shutdown(wait=True, cancel_futures=True)
        _record_finished(in_flight, record, since_ns=since_ns)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _after_death(
    in_flight: dict[Future[processing.Outcome], Task],
    died_with: Counter[str],
    again: deque[Task],
    record: Callable[[processing.Outcome | None, Task], None],
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
    in_flight: dict[Future[processing.Outcome], Task],
    record: Callable[[processing.Outcome | None, Task], None],
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
            record(processing.Outcome.of(task), task)


def _died(task: Task) -> processing.Outcome:
    return processing.Outcome.of(
        task, error=WorkerDied("a worker process died while processing this image (out of memory?)")
    )
