"""Local broker mode: a FilterJob through RabbitMQ with local worker processes.

``filterjob run JOB.yaml --broker amqp://…`` declares the job's topology (fresh),
starts N worker processes running the pods' entrypoint, enqueues one task per
input and follows the job to the end through a durable progress queue bound to
the job's events and dead letters (:mod:`.progress`), counting distinct task ids
(:mod:`.tally`) while :mod:`.follow` keeps the workers running. ``filterjob redrive
JOB.yaml`` does the same for the job's parked tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters import broker_errors, sources
from filterjob_operator.adapters.broker.backlog import Backlog
from filterjob_operator.adapters.broker.enqueue import publish_tasks
from filterjob_operator.adapters.broker.parked import redrive
from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.local.follow import follow
from filterjob_operator.local.options import BrokerOptions
from filterjob_operator.local.progress import count_finished, declare_progress
from filterjob_operator.local.start import Listener, begin_run
from filterjob_operator.local.summary import RunSummary
from filterjob_operator.local.supervisor import GaveUp, Supervisor
from filterjob_operator.local.tally import Tally, count_written
from filterjob_worker.core.contract import JobFinished
from filterjob_worker.core.envelope import event_message
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.local")

#: Wait between attempts to publish again after losing the broker.
REPUBLISH_DELAY = 1.0
#: Seconds an interrupted run spends telling watchers that it ended.
ANNOUNCE_TIMEOUT = 2.0


class WorkersFailed(Exception):
    """The supervisor gave up on the workers; the run stopped early (``summary`` holds what finished)."""

    def __init__(self, failure: GaveUp, summary: RunSummary) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.summary = summary


async def run_with_broker(
    job: FilterJob,
    *,
    options: BrokerOptions,
    listener: Listener | None = None,
    supervisor_ready: asyncio.Queue[Supervisor] | None = None,
) -> RunSummary:
    """Run ``job`` through the broker; returns the same summary as local mode.

    Raises :class:`BrokerUnavailable` before anything starts if the broker cannot be
    reached or refuses us, and :class:`WorkersFailed` if the workers cannot run.
    """
    listener = listener or Listener()
    session = await _Session.open(job, options, name="run")
    async with session:
        summary, to_run = begin_run(job, listener, skip_existing=options.skip_existing)
        session.summary = summary
        with broker_errors.translated(options.broker_url):
            session.channel = channel = await fresh_topology(session.connection, session.topology)
            progress = await declare_progress(channel, session.topology)
            await progress.purge()
        tally = session.count(summary, listener, {sources.task_id(job, key): key for key in to_run})
        enqueue = functools.partial(_enqueue, session.connection, job, to_run, tally)
        failure = await follow(channel, progress, job, options, listener, tally, enqueue, supervisor_ready)
        if failure is not None:
            raise WorkersFailed(failure, tally.summary)
        await session.announce()
    return session.summary


async def redrive_with_broker(
    job: FilterJob, *, options: BrokerOptions, listener: Listener | None = None
) -> RunSummary:
    """Move the job's parked tasks back to its task queue and run workers until they are done.

    The summary counts the re-driven tasks only. Raises :class:`BrokerUnavailable` if the
    broker cannot be reached or the job has no queues (it never ran, or they were cleaned).
    """
    listener = listener or Listener()
    session = await _Session.open(job, options, name="redrive")
    topology = session.topology
    async with session:
        with broker_errors.translated(options.broker_url):
            session.channel = channel = await session.connection.channel(publisher_confirms=True)
            await channel.get_queue(topology.parked, ensure=True)  # no queues: say so before declaring any
            # Bound before the tasks move, so no task can finish unseen.
            progress = await declare_progress(channel, topology)
            await progress.purge()
            moved = await redrive(session.connection, topology)
        listener.started(len(moved))
        keys = {parked.task: parked.input.removeprefix(job.spec.source.uri) or parked.task for parked in moved}
        tally = session.count(RunSummary(total=len(moved)), listener, keys)
        if moved:
            failure = await follow(channel, progress, job, options, listener, tally, _enqueued(tally), None)
            if failure is not None:
                raise WorkersFailed(failure, tally.summary)
            await session.announce()
        else:
            await channel.queue_delete(topology.progress)
    return session.summary


class _Session:
    """One run through the broker: its connection, its summary and what an interrupt does.

    An interrupt (Ctrl-C, SIGTERM as a cancel) counts what the stopped workers finished
    and wrote, and tells watchers the run ended; the summary is returned either way.
    """

    def __init__(self, job: FilterJob, connection: AbstractRobustConnection) -> None:
        self.job = job
        self.topology = topology_of(job)
        self.connection = connection
        self.summary = RunSummary()
        self.tally: Tally | None = None
        self.channel: AbstractChannel | None = None
        self._start = time.perf_counter()
        self._started_ns = time.time_ns()

    @classmethod
    async def open(cls, job: FilterJob, options: BrokerOptions, *, name: str) -> _Session:
        # First: a wrong URL or password is one message, before any listing or worker.
        return cls(job, await broker_errors.connect_robust(options.broker_url, name=f"filterjob {name} {job.key}"))

    def count(self, summary: RunSummary, listener: Listener, tasks: dict[str, str]) -> Tally:
        """Count ``tasks`` (task id → input key) into ``summary``."""
        self.summary = summary
        self.tally = Tally(self.job, summary, listener)
        for task_id, key in tasks.items():
            self.tally.expect(task_id, key)
        return self.tally

    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        interrupted = kind is not None and issubclass(kind, KeyboardInterrupt | asyncio.CancelledError)
        try:
            if interrupted:
                self.summary.interrupted = True
                if self.tally is not None:
                    await count_finished(self.connection, self.channel, self.topology, self.tally)
                    count_written(self.job, self.tally, since_ns=self._started_ns)
                # Best effort: watchers stop on it; an interrupted run must still end quickly.
                with contextlib.suppress(aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError):
                    async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                        await self.announce()
        finally:
            await self.connection.close()
            self.summary.seconds = time.perf_counter() - self._start
        return interrupted

    async def announce(self) -> None:
        await announce_finished(self.connection, self.topology, self.job, self.summary)


async def announce_finished(
    connection: AbstractRobustConnection, topology: Topology, job: FilterJob, summary: RunSummary
) -> None:
    """Publish the run's end (``job.finished``) on the events exchange, for watchers."""
    phase = "Interrupted" if summary.interrupted else ("Succeeded" if summary.ok else "Failed")
    event = JobFinished(
        job=job.key,
        phase=phase,
        total=summary.total,
        succeeded=summary.succeeded,
        failed=summary.failed,
        skipped=summary.skipped,
    )
    channel = await connection.channel(publisher_confirms=True)
    try:
        exchange = await channel.get_exchange(topology.events, ensure=False)
        await exchange.publish(event_message(event), routing_key=event.routing_key)
    finally:
        await channel.close()


async def fresh_topology(connection: AbstractRobustConnection, topology: Topology) -> AbstractChannel:
    """Declare the job's topology and empty its queues: a run starts from nothing.

    Exchanges (and so ``filterjob watch`` subscribers) survive from run to run; if
    the queues were declared with other arguments (a changed retry policy), they
    are deleted and declared anew.
    """
    channel = await connection.channel(publisher_confirms=True)
    try:
        await declare(channel, topology)
    except aio_pika.exceptions.ChannelPreconditionFailed:
        channel = await connection.channel(publisher_confirms=True)
        await delete(channel, topology)
        await declare(channel, topology)
    for name in topology.queues:
        await (await channel.get_queue(name)).purge()
    return channel


def _enqueued(tally: Tally) -> Callable[[], Awaitable[None]]:
    """Every task is in the queue already (re-driven)."""

    async def enqueued() -> None:
        tally.all_enqueued()

    return enqueued


async def _enqueue(connection: AbstractRobustConnection, job: FilterJob, keys: list[str], tally: Tally) -> None:
    """Publish every task, resuming from the confirmed cursor if the broker goes away.

    Tasks between the cursor and the failure may be published twice; the tally
    counts distinct task ids, and outputs are idempotent, so that is harmless.
    """
    topology = topology_of(job)
    channel = await connection.channel(publisher_confirms=True)
    backlog = Backlog(keys)
    while True:
        try:
            await publish_tasks(channel, topology, sources.plan(job, backlog.pending()), cursor=backlog.cursor)
            break
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as e:
            log.warning("publishing interrupted at task %d of %d (%s); resuming", backlog.position, len(keys), e)
            await asyncio.sleep(REPUBLISH_DELAY)  # backoff while the robust connection reconnects
    await channel.close()
    tally.all_enqueued()
