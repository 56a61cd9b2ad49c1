"""Local broker mode: a FilterJob through RabbitMQ with local worker processes.

``filterjob run JOB.yaml --broker amqp://…`` declares the job's topology (fresh),
starts N worker processes running the pods' entrypoint, enqueues one task per
input and follows the job to the end through a durable progress queue bound to
the job's events and dead letters. Every task ends in a persistent, confirmed
event (or a dead letter) before its delivery is acked, so the progress queue
sees each task finish at least once, across worker kills and broker restarts;
counting distinct task ids makes the tally exact.

A task that never reports (purged from its queue behind the run's back, dropped by a
broker policy) would keep the tally waiting for ever, so the run also ends once the task
and retry queues hold nothing with every worker stopped (a stopped worker has settled
every delivery it held). Then the summary is checked against the destination
(``verification``): a task without its output and without a failure counts as failed,
``lost``, and so does one whose output was deleted after it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from filterjob_operator import broker_errors, sources, verification, verifier
from filterjob_operator.broker.depths import ready_counts
from filterjob_operator.broker.enqueue import Cursor, publish_tasks
from filterjob_operator.broker.management import Management, management_url_for, vhost_of
from filterjob_operator.broker.parked import redrive
from filterjob_operator.local import Listener, begin_run
from filterjob_operator.spec import FilterJob
from filterjob_operator.summary import Failure, RunSummary
from filterjob_operator.supervisor import GaveUp, Supervisor
from filterjob_operator.workerenv import topology_of, worker_env
from filterjob_worker import storage
from filterjob_worker.config import Var
from filterjob_worker.contract import CONTENT_TYPE, JobFinished
from filterjob_worker.envelope import event_message, finished_outcome
from filterjob_worker.processing import Outcome
from filterjob_worker.topology import Topology, declare, delete

log = logging.getLogger("filterjob.local")

#: Wait between attempts to publish again after losing the broker.
REPUBLISH_DELAY = 1.0
#: Seconds between refreshes of the queue depth shown with the progress bar.
DEPTH_REFRESH = 1.0
#: Seconds an interrupted run spends telling watchers that it ended.
ANNOUNCE_TIMEOUT = 2.0
#: Longest wait, after an interrupt, for the count of the tasks finished meanwhile.
COUNT_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class BrokerOptions:
    broker_url: str
    workers: int = 2
    concurrency: int = 1
    skip_existing: bool = False
    log_dir: str | None = None


def progress_queue(topology: Topology) -> str:
    return f"{topology.base}.progress"


async def declare_progress(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    """A durable queue seeing every finished task: final events and dead letters."""
    queue = await channel.declare_queue(progress_queue(topology), durable=True, arguments={"x-queue-type": "quorum"})
    for key in ("task.succeeded", "task.failed"):
        await queue.bind(topology.events, routing_key=key)
    await queue.bind(topology.dead_letters)
    return queue


class _Tally:
    """Distinct finished tasks; done when every published task has finished."""

    def __init__(self, job: FilterJob, summary: RunSummary, listener: Listener) -> None:
        self.summary = summary
        self.listener = listener
        self.source_root = job.spec.source.uri
        self.expected: set[str] = set()
        self.finished: set[str] = set()
        #: Finished tasks that reported a failure.
        self.failed: set[str] = set()
        #: Set whenever a task finishes (for waits that look again then).
        self.progressed = asyncio.Event()
        self.keys: dict[str, str] = {}
        self.enqueued = False
        self.done = asyncio.Event()

    def expect(self, task_id: str, key: str) -> None:
        self.expected.add(task_id)
        self.keys[task_id] = key

    def finish(self, outcome: Outcome) -> None:
        if outcome.task in self.finished or outcome.task not in self.keys:
            return
        self.finished.add(outcome.task)
        if not outcome.ok:
            self.failed.add(outcome.task)
        self.summary.add(outcome, self.keys[outcome.task])
        self.progressed.set()
        self.listener.advanced(outcome)
        self.check()

    def check(self) -> None:
        if self.enqueued and self.finished >= self.expected:
            self.done.set()


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


class WorkersFailed(Exception):
    """The supervisor gave up on the workers; the run stopped early (``summary`` holds what finished)."""

    def __init__(self, failure: GaveUp, summary: RunSummary) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.summary = summary


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
        self.tally: _Tally | None = None
        self.channel: AbstractChannel | None = None
        self._start = time.perf_counter()
        self._started_ns = time.time_ns()

    @classmethod
    async def open(cls, job: FilterJob, options: BrokerOptions, *, name: str) -> _Session:
        # First: a wrong URL or password is one message, before any listing or worker.
        return cls(job, await broker_errors.connect_robust(options.broker_url, name=f"filterjob {name} {job.key}"))

    def count(self, summary: RunSummary, listener: Listener, tasks: dict[str, str]) -> _Tally:
        """Count ``tasks`` (task id → input key) into ``summary``."""
        self.summary = summary
        self.tally = _Tally(self.job, summary, listener)
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
                    await _count_finished(self.connection, self.channel, self.topology, self.tally)
                    _count_written(self.job, self.tally, since_ns=self._started_ns)
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
        await _follow(channel, progress, job, options, listener, tally, enqueue, supervisor_ready)
        await session.announce()
    return session.summary


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
            await _follow(channel, progress, job, options, listener, tally, functools.partial(_enqueued, tally), None)
            await session.announce()
        else:
            await channel.queue_delete(progress_queue(topology))
    return session.summary


async def _enqueued(tally: _Tally) -> None:
    """Every task is in the queue already (re-driven)."""
    tally.enqueued = True
    tally.check()


#: Message id of the marker that tells the progress consumer has read everything before it.
FLUSH_MARKER = "filterjob-flush"


async def _follow(
    channel: AbstractChannel,
    progress: AbstractQueue,
    job: FilterJob,
    options: BrokerOptions,
    listener: Listener,
    tally: _Tally,
    enqueue: Callable[[], Awaitable[None]],
    supervisor_ready: asyncio.Queue[Supervisor] | None,
) -> None:
    """Start the workers, run ``enqueue`` and count finished tasks until the last one, or
    until nothing is left in the queues; then check the summary against the destination."""
    topology = topology_of(job)
    flushed = asyncio.Event()

    async def on_progress(message: AbstractIncomingMessage) -> None:
        if message.message_id == FLUSH_MARKER:
            flushed.set()
        elif (outcome := finished_outcome(message, topology)) is not None:
            tally.finish(outcome)
        # An interrupt's count closes this channel under a delivery being acked: the message goes
        # back to the queue, where that count reads it (and counts its task once).
        with contextlib.suppress(aio_pika.exceptions.ChannelInvalidStateError):
            await message.ack()

    consumer_tag = await progress.consume(on_progress)
    env = {**worker_env(job, concurrency=options.concurrency), Var.BROKER_URL: options.broker_url}
    env[Var.HEALTH_PORT] = "0"
    # Without a log directory, workers share this terminal: only their warnings show.
    env.setdefault(Var.LOG_LEVEL, "INFO" if options.log_dir else "WARNING")
    depth = asyncio.create_task(_show_depth(options.broker_url, topology, listener))
    work = asyncio.ensure_future(_enqueue_and_wait(enqueue, tally))
    supervisor: Supervisor | None = None
    emptied = False
    try:
        while not emptied:
            supervisor = Supervisor(options.workers, env, log_dir=options.log_dir)
            await supervisor.start()
            if supervisor_ready is not None:
                supervisor_ready.put_nowait(supervisor)
            gave_up = asyncio.ensure_future(supervisor.gave_up.wait())
            drained = asyncio.ensure_future(_until_drained(channel, topology, tally))
            try:
                await asyncio.wait({work, gave_up, drained}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (gave_up, drained):
                    waiting.cancel()
                await asyncio.gather(gave_up, drained, return_exceptions=True)
                await supervisor.stop()
            if work.done() or supervisor.failure is not None:
                break
            # The queues read empty and the workers are stopped: every delivery is settled, either
            # finished (its event is in the progress queue) or back in a queue (start workers again).
            emptied = not await _outstanding(channel, topology)
    finally:
        for waiting in (work, depth):
            waiting.cancel()
        await asyncio.gather(work, depth, return_exceptions=True)
    if not tally.done.is_set() and not emptied:
        if supervisor is not None and supervisor.failure is not None:
            raise WorkersFailed(supervisor.failure, tally.summary)
        work.result()  # the enqueueing error that ended the run
    if emptied:
        await _flush(channel, progress_queue(topology), flushed)
    await progress.cancel(consumer_tag)
    await channel.queue_delete(progress_queue(topology))
    if tally.keys:
        await asyncio.to_thread(_verify, job, tally)


async def _until_drained(channel: AbstractChannel, topology: Topology, tally: _Tally) -> None:
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


async def _flush(channel: AbstractChannel, queue: str, flushed: asyncio.Event) -> None:
    """Wait until the progress consumer has read every event published so far: a marker goes
    through the queue behind them, and one consumer reads the queue in order."""
    message = aio_pika.Message(b"{}", message_id=FLUSH_MARKER, content_type=CONTENT_TYPE)
    await channel.default_exchange.publish(message, routing_key=queue)
    await flushed.wait()


def _verify(job: FilterJob, tally: _Tally) -> None:
    """The summary as the destination has it: only outputs that exist count as succeeded."""
    observed = verifier.observe(job)
    tasks = [
        verification.Planned(task=task_id, input=key, output=verification.output_key(job, key))
        for task_id, key in tally.keys.items()
    ]
    verified = verification.verify(tasks, present=observed.present, failed=tally.failed)
    summary = tally.summary
    reason = verification.LOST
    if observed.problem is not None:
        summary.warnings.append(observed.problem)
        reason = f"{verification.LOST}, or in a part of the destination that cannot be listed (see the warning)"
    summary.succeeded = verified.succeeded
    summary.failures.extend(Failure(input=t.input, reason=reason) for t in verified.lost)


async def _enqueue_and_wait(enqueue: Callable[[], Awaitable[None]], tally: _Tally) -> None:
    await enqueue()
    await tally.done.wait()


async def _count_finished(
    connection: AbstractRobustConnection, consuming: AbstractChannel | None, topology: Topology, tally: _Tally
) -> None:
    """After an interrupt, count every task the stopped workers finished.

    Each finished task's event was confirmed into the progress queue before the
    worker acked it and exited, but deliveries may still be on their way to our
    consumer: closing its channel returns them to the queue, and reading the queue
    to the end counts them (distinct task ids, so nothing counts twice).
    """
    try:
        async with asyncio.timeout(COUNT_TIMEOUT):
            if consuming is not None:
                await consuming.close()
            channel = await connection.channel()
            async with channel:
                queue = await channel.get_queue(progress_queue(topology))
                while (message := await queue.get(fail=False)) is not None:
                    outcome = finished_outcome(message, topology)
                    if outcome is not None:
                        tally.finish(outcome)
                    await message.ack()
    except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as e:
        log.warning("could not count the tasks finished at the interrupt (%s); the summary may miss some", e)


def _count_written(job: FilterJob, tally: _Tally, *, since_ns: int) -> None:
    """Count the unfinished tasks whose output this run wrote all the same (a worker
    stopped between its atomic write and its event): the summary matches the disk."""
    for task_id, key in tally.keys.items():
        if task_id in tally.finished:
            continue
        task = sources.make_task(job, key)
        if storage.written_since(task.output, since_ns):
            tally.finish(Outcome.of(task))


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


async def _enqueue(connection: AbstractRobustConnection, job: FilterJob, keys: list[str], tally: _Tally) -> None:
    """Publish every task, resuming from the confirmed cursor if the broker goes away.

    Tasks between the cursor and the failure may be published twice; the tally
    counts distinct task ids, and outputs are idempotent, so that is harmless.
    """
    topology = topology_of(job)
    channel = await connection.channel(publisher_confirms=True)
    cursor = Cursor()
    while True:
        try:
            await publish_tasks(channel, topology, sources.plan(job, keys[cursor.position :]), cursor=cursor)
            break
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as e:
            log.warning("publishing interrupted at task %d of %d (%s); resuming", cursor.position, len(keys), e)
            await asyncio.sleep(REPUBLISH_DELAY)  # backoff while the robust connection reconnects
    await channel.close()
    tally.enqueued = True
    tally.check()
