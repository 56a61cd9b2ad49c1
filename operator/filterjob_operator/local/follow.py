"""The workers of a run through the broker, kept running until the last task is counted.

A task that never reports (purged from its queue behind the run's back, dropped by a
broker policy) would keep the tally waiting for ever, so the run also ends once the task
and retry queues hold nothing with every worker stopped (a stopped worker has settled
every delivery it held). Then the summary is checked against the destination
(:func:`filterjob_operator.local.tally.verify`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractQueue

from filterjob_operator.adapters.broker.depths import ready_counts
from filterjob_operator.adapters.broker.management import Management, management_url_for, vhost_of
from filterjob_operator.core.jobworkers import topology_of, worker_env
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.local.options import BrokerOptions
from filterjob_operator.local.progress import flush, progress_consumer
from filterjob_operator.local.start import Listener
from filterjob_operator.local.supervisor import GaveUp, Supervisor
from filterjob_operator.local.tally import Tally, verify
from filterjob_worker.core.environment import Var
from filterjob_worker.core.topology import Topology

#: Seconds between refreshes of the queue depth shown with the progress bar.
DEPTH_REFRESH = 1.0


@dataclass(frozen=True, kw_only=True)
class _Run:
    """What every round of workers of one run shares."""

    channel: AbstractChannel
    topology: Topology
    options: BrokerOptions
    env: dict[str, str]
    tally: Tally
    #: Enqueues every task, then waits until the tally is done.
    work: asyncio.Future[None]
    supervisor_ready: asyncio.Queue[Supervisor] | None


async def follow(
    channel: AbstractChannel,
    progress: AbstractQueue,
    job: FilterJob,
    options: BrokerOptions,
    listener: Listener,
    tally: Tally,
    enqueue: Callable[[], Awaitable[None]],
    supervisor_ready: asyncio.Queue[Supervisor] | None,
) -> GaveUp | None:
    """Start the workers, run ``enqueue`` and count finished tasks until the last one, or
    until nothing is left in the queues; then check the summary against the destination.

    Returns why the workers cannot run if the supervisor gave up on them (the run stopped
    early; the tally holds what finished).
    """
    topology = topology_of(job)
    flushed = asyncio.Event()
    consumer_tag = await progress.consume(progress_consumer(topology, tally, flushed))
    depth = asyncio.create_task(_show_depth(options.broker_url, topology, listener))
    work = asyncio.ensure_future(_enqueue_and_wait(enqueue, tally))
    run = _Run(
        channel=channel,
        topology=topology,
        options=options,
        env=_env(job, options),
        tally=tally,
        work=work,
        supervisor_ready=supervisor_ready,
    )
    try:
        failure, emptied = await _rounds(run)
    finally:
        for waiting in (work, depth):
            waiting.cancel()
        await asyncio.gather(work, depth, return_exceptions=True)
    if not tally.done.is_set() and not emptied:
        if failure is not None:
            return failure
        work.result()  # the enqueueing error that ended the run
    if emptied:
        await flush(channel, topology.progress, flushed)
    await progress.cancel(consumer_tag)
    await channel.queue_delete(topology.progress)
    if tally.keys:
        await asyncio.to_thread(verify, job, tally)
    return None


def _env(job: FilterJob, options: BrokerOptions) -> dict[str, str]:
    """The workers' environment: the pods' variables, this broker, no health port."""
    env = {**worker_env(job, concurrency=options.concurrency), Var.BROKER_URL: options.broker_url}
    env[Var.HEALTH_PORT] = "0"
    # Without a log directory, workers share this terminal: only their warnings show.
    env.setdefault(Var.LOG_LEVEL, "INFO" if options.log_dir else "WARNING")
    return env


async def _rounds(run: _Run) -> tuple[GaveUp | None, bool]:
    """Rounds of workers until the work is done, the workers cannot run, or the queues are
    empty with every worker stopped; returns the supervisor's failure and whether they emptied."""
    while True:
        supervisor = await _round(run)
        if run.work.done() or supervisor.failure is not None:
            return supervisor.failure, False
        # The queues read empty and the workers are stopped: every delivery is settled, either
        # finished (its event is in the progress queue) or back in a queue (start workers again).
        if not await _outstanding(run.channel, run.topology):
            return None, True


async def _round(run: _Run) -> Supervisor:
    """Workers until the work is done, they cannot run, or the queues read empty; stopped then."""
    supervisor = Supervisor(run.options.workers, run.env, log_dir=run.options.log_dir)
    await supervisor.start()
    if run.supervisor_ready is not None:
        run.supervisor_ready.put_nowait(supervisor)
    gave_up = asyncio.ensure_future(supervisor.gave_up.wait())
    drained = asyncio.ensure_future(_until_drained(run.channel, run.topology, run.tally))
    try:
        ends: set[asyncio.Future[Any]] = {run.work, gave_up, drained}
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in (gave_up, drained):
            waiting.cancel()
        await asyncio.gather(gave_up, drained, return_exceptions=True)
        await supervisor.stop()
    return supervisor


async def _until_drained(channel: AbstractChannel, topology: Topology, tally: Tally) -> None:
    """Return once every task is enqueued and the task and retry queues hold no ready message,
    with no task finishing for ``DEPTH_REFRESH`` seconds.

    Tasks may still be in flight at the workers then (stopping them settles those). The quiet
    second only spares a run whose last tasks are finishing a stop and restart of its workers:
    it then ends by its tally, before this returns.
    """
    while True:
        tally.progressed.clear()
        empty = tally.enqueued and not await _outstanding(channel, topology)
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the cancel that ends
        # this wait when the event is set at the same moment, and the run then never stopped its
        # workers after an interrupt (they went on to the last task).
        try:
            async with asyncio.timeout(DEPTH_REFRESH):
                await tally.progressed.wait()
        except TimeoutError:
            if empty:
                return


async def _outstanding(channel: AbstractChannel, topology: Topology) -> int:
    """Ready messages in the task and retry queues (exact; deliveries held by workers not included)."""
    ready = await ready_counts(channel, topology)
    return sum(ready[name] for name in (topology.tasks, *topology.retry_queues))


async def _enqueue_and_wait(enqueue: Callable[[], Awaitable[None]], tally: Tally) -> None:
    await enqueue()
    await tally.done.wait()


async def _show_depth(broker_url: str, topology: Topology, listener: Listener) -> None:
    """Queue depth from the management API, for the progress display (if it answers)."""
    queues = [topology.tasks, *topology.retry_queues]
    async with Management(management_url_for(broker_url), vhost=vhost_of(broker_url)) as management:
        if not await management.available():
            return
        while True:
            try:
                stats = [await management.queue(name) for name in queues]
            except (aiohttp.ClientError, TimeoutError):
                return
            listener.queued(sum(s.ready for s in stats), sum(s.unacked for s in stats))
            await asyncio.sleep(DEPTH_REFRESH)  # a display refresh; completion is event-driven
