"""Local broker mode: a FilterJob through RabbitMQ with local worker processes.

``filterjob run JOB.yaml --broker amqp://…`` declares the job's topology (fresh),
starts N worker processes running the pods' entrypoint, enqueues one task per
input and follows the job to the end through a durable progress queue bound to
the job's events and dead letters. Every task ends in a persistent, confirmed
event (or a dead letter) before its delivery is acked, so the progress queue
sees each task finish at least once, across worker kills and broker restarts;
counting distinct task ids makes the tally exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from filterjob_operator import broker, sources
from filterjob_operator.local import Listener, begin_run
from filterjob_operator.spec import FilterJob
from filterjob_operator.summary import RunSummary
from filterjob_operator.supervisor import Supervisor
from filterjob_operator.workerenv import topology_of, worker_env
from filterjob_worker import storage
from filterjob_worker.contract import Event
from filterjob_worker.errors import MalformedTask
from filterjob_worker.processing import Outcome
from filterjob_worker.topology import Topology, declare, delete

log = logging.getLogger("filterjob.local")

#: Wait between attempts to publish again after losing the broker.
REPUBLISH_DELAY = 1.0
#: Seconds between refreshes of the queue depth shown with the progress bar.
DEPTH_REFRESH = 1.0
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


def finished_outcome(message: AbstractIncomingMessage, topology: Topology) -> Outcome | None:
    """The outcome a progress message reports, or None if it is not one."""
    if message.exchange == topology.dead_letters:
        deaths = (message.headers or {}).get("x-death") or []
        reason = "delivery limit exceeded"
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            why = deaths[0].get("reason", "dead-lettered")
            why = why.decode() if isinstance(why, bytes) else str(why)
            reason = f"{why}: the task kept failing its workers"
        return Outcome(
            task=message.message_id or "",
            input="",
            output="",
            ok=False,
            seconds=0.0,
            reason=f"DeadLettered: {reason}",
        )
    try:
        event = Event.from_json(message.body)
    except MalformedTask:
        return None
    return Outcome(
        task=event.task,
        input=event.input,
        output=event.output,
        ok=event.kind == "succeeded",
        seconds=event.seconds,
        reason=event.reason,
    )


class _Tally:
    """Distinct finished tasks; done when every published task has finished."""

    def __init__(self, job: FilterJob, summary: RunSummary, listener: Listener) -> None:
        self.summary = summary
        self.listener = listener
        self.source_root = job.spec.source.uri
        self.expected: set[str] = set()
        self.finished: set[str] = set()
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
        self.summary.add(outcome, self.keys[outcome.task])
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


async def run_with_broker(
    job: FilterJob,
    *,
    options: BrokerOptions,
    listener: Listener | None = None,
    supervisor_ready: asyncio.Queue[Supervisor] | None = None,
) -> RunSummary:
    """Run ``job`` through the broker; returns the same summary as local mode."""
    listener = listener or Listener()
    start = time.perf_counter()
    started_ns = time.time_ns()
    summary, to_run = begin_run(job, listener, skip_existing=options.skip_existing)
    topology = topology_of(job)
    tally = _Tally(job, summary, listener)
    for key in to_run:
        tally.expect(sources.task_id(job, key), key)

    connection = await aio_pika.connect_robust(
        options.broker_url, client_properties={"connection_name": f"filterjob run {job.key}"}
    )
    channel: AbstractChannel | None = None
    try:
        channel = await fresh_topology(connection, topology)
        progress = await declare_progress(channel, topology)
        await progress.purge()

        async def on_progress(message: AbstractIncomingMessage) -> None:
            outcome = finished_outcome(message, topology)
            if outcome is not None:
                tally.finish(outcome)
            await message.ack()

        consumer_tag = await progress.consume(on_progress)
        env = {**worker_env(job, concurrency=options.concurrency), "FILTERJOB_BROKER_URL": options.broker_url}
        env["FILTERJOB_HEALTH_PORT"] = "0"
        # Without a log directory, workers share this terminal: only their warnings show.
        env.setdefault("FILTERJOB_LOG_LEVEL", "INFO" if options.log_dir else "WARNING")
        supervisor = Supervisor(options.workers, env, log_dir=options.log_dir)
        await supervisor.start()
        if supervisor_ready is not None:
            supervisor_ready.put_nowait(supervisor)
        depth = asyncio.create_task(_show_depth(options.broker_url, topology, listener))
        try:
            await _enqueue(connection, job, to_run, tally)
            await tally.done.wait()
        finally:
            depth.cancel()
            await supervisor.stop()
        await progress.cancel(consumer_tag)
        await channel.queue_delete(progress_queue(topology))
    except (KeyboardInterrupt, asyncio.CancelledError):
        summary.interrupted = True
        await _count_finished(connection, channel, topology, tally)
        _count_written(job, tally, since_ns=started_ns)
    finally:
        await connection.close()
    summary.seconds = time.perf_counter() - start
    return summary


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
    async with broker.Management(broker.management_url_for(broker_url)) as management:
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
    cursor = 0
    while True:
        start = cursor

        def confirmed(n: int, start: int = start) -> None:
            nonlocal cursor
            cursor = start + n

        try:
            await broker.publish_tasks(channel, topology, sources.plan(job, keys[start:]), on_confirmed=confirmed)
            break
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as e:
            log.warning("publishing interrupted at task %d of %d (%s); resuming", cursor, len(keys), e)
            await asyncio.sleep(REPUBLISH_DELAY)  # backoff while the robust connection reconnects
    await channel.close()
    tally.enqueued = True
    tally.check()
