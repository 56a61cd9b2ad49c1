"""``filterjob watch``: a live feed of a job's task events (publish/subscribe).

The watcher binds its own exclusive, auto-deleted, server-named queue to the job's
events exchange and dead-letter exchange, so any number of watchers can come and go
without touching the job's queues or each other. It never declares the job's own
objects: it looks them up passively, so watching a job that does not exist (a typo,
a local file instead of the cluster job, a job not started yet) says so instead of
creating an empty exchange that nothing will ever publish to.

A watch ends by itself when the job ends: on the ``job.finished`` event (local
runs), when the job's events exchange is deleted, or when the caller's ``ended``
awaitable completes (a cluster job reaching a final phase, see :func:`cluster_finished`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from filterjob_operator.adapters import broker_errors
from filterjob_operator.core.status import FINISHED
from filterjob_worker.core.contract import JOB_FINISHED_KEY, Event, JobFinished, Task
from filterjob_worker.core.envelope import finished_outcome
from filterjob_worker.core.errors import MalformedMessage
from filterjob_worker.core.topology import Topology

Printer = Callable[[Event], None]
#: Seconds between checks that the job's events exchange still exists (nothing
#: announces its deletion to a bound queue).
EXCHANGE_CHECK_SECONDS = 2.0
#: Phases of a cluster FilterJob after which nothing more happens.
FINAL_PHASES = FINISHED
#: Seconds between reads of a cluster FilterJob's status phase.
PHASE_POLL_SECONDS = 2.0


class NoSuchJob(Exception):
    """The job's events exchange does not exist on the broker."""


class BrokerLost(ConnectionError):
    """The connection to the broker ended while watching."""


@dataclass(frozen=True)
class Ended:
    """Why a watch stopped by itself; ``finished`` carries the final counts when known."""

    why: str
    finished: JobFinished | None = None


def dead_letter_event(message: AbstractIncomingMessage, topology: Topology) -> Event:
    """A task the broker parked, as a ``failed`` event (its body is the task itself)."""
    outcome = finished_outcome(message, topology)
    try:
        task: Task | None = Task.from_json(message.body)
    except MalformedMessage:
        task = None
    return Event(
        kind="failed",
        job=task.job if task else "",
        task=message.message_id or (task.task if task else ""),
        input=task.input if task else "",
        output=task.output if task else "",
        attempt=0,
        worker="broker",
        reason=outcome.reason if outcome else None,
    )


def cluster_finished(job: Mapping[str, Any]) -> JobFinished | None:
    """The ``job.finished`` a cluster FilterJob's status amounts to once its phase is final, or
    None while it runs (pure)."""
    status = job.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if not isinstance(status, Mapping) or phase not in FINAL_PHASES:
        return None
    meta = job.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}

    def count(key: str) -> int:
        value = status.get(key)
        return value if isinstance(value, int) else 0

    return JobFinished(
        job=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        phase=str(phase),
        total=count("total"),
        succeeded=count("succeeded"),
        failed=count("failed"),
    )


async def cluster_end(read: Callable[[], Awaitable[Mapping[str, Any] | None]], key: str) -> Ended:
    """Follow a cluster FilterJob (``read`` returns it, None once deleted) to its final phase."""
    while True:
        job = await read()
        if job is None:
            return Ended(f"the FilterJob {key} was deleted")
        if (end := cluster_finished(job)) is not None:
            return Ended("finished", end)
        await asyncio.sleep(PHASE_POLL_SECONDS)  # a poll of the API; a watch stream would need a thread


async def _exists(connection: AbstractConnection, exchange: str) -> bool:
    """Whether ``exchange`` exists: a passive declaration, on a channel of its own (a miss closes it)."""
    channel = await connection.channel()
    try:
        await channel.get_exchange(exchange, ensure=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await channel.close()
    return True


async def _exchange_gone(connection: AbstractConnection, exchange: str, enough: asyncio.Event) -> bool:
    """True once ``exchange`` no longer exists; False once ``enough`` is set.

    Stopped by ``enough`` between checks, never cancelled: cancelling aiormq while it opens a
    channel can swallow the cancel (the watch then never ended) or make the broker close the
    whole connection. A check in flight takes one round trip to the broker.
    """
    while not enough.is_set():
        if not await _exists(connection, exchange):
            return True
        # A poll: the broker sends bound queues no notice of an exchange's deletion.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXCHANGE_CHECK_SECONDS):
                await enough.wait()
    return False


async def _subscribe(connection: AbstractConnection, topology: Topology) -> AbstractQueue:
    """The watcher's own queue, bound to the job's exchanges (never declared here)."""
    if not await _exists(connection, topology.events):
        raise NoSuchJob(topology.events)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(topology.events, routing_key="#")
    # A job declared without its dead-letter exchange still has a feed of its events.
    if await _exists(connection, topology.dead_letters):
        await queue.bind(topology.dead_letters)
    return queue


async def watch(
    broker_url: str,
    topology: Topology,
    show: Printer,
    *,
    stop: asyncio.Event,
    ready: Callable[[], None] = lambda: None,
    ended: Callable[[], Awaitable[Ended]] | None = None,
) -> Ended | None:
    """Show the job's events until ``stop`` is set (None) or the job ends (why it ended).

    Raises :class:`NoSuchJob` if the job's events exchange does not exist; connection
    errors propagate (the caller reports them).
    """
    # Not a robust connection: its reconnect loop would outlive a failed first attempt (and
    # Ctrl-C). A watch that loses the broker says so and ends instead. BrokerUnavailable if
    # the broker cannot be used at all.
    connection = await broker_errors.connect(broker_url, name="filterjob watch")
    lost = asyncio.Event()
    connection.close_callbacks.add(lambda *_: lost.set())
    try:
        queue = await _subscribe(connection, topology)
        finished: asyncio.Future[JobFinished] = asyncio.get_running_loop().create_future()

        async def on_message(message: AbstractIncomingMessage) -> None:
            if message.exchange == topology.dead_letters:
                show(dead_letter_event(message, topology))
                return
            if message.routing_key == JOB_FINISHED_KEY:
                with contextlib.suppress(MalformedMessage):
                    end = JobFinished.from_json(message.body)
                    if not finished.done():
                        finished.set_result(end)
                return
            with contextlib.suppress(MalformedMessage):  # not ours to judge; a watcher only shows
                show(Event.from_json(message.body))

        await queue.consume(on_message, no_ack=True)
        ready()
        return await _first_end(connection, topology, stop, finished, ended, lost)
    finally:
        await connection.close()


async def _first_end(
    connection: AbstractConnection,
    topology: Topology,
    stop: asyncio.Event,
    finished: asyncio.Future[JobFinished],
    ended: Callable[[], Awaitable[Ended]] | None,
    lost: asyncio.Event,
) -> Ended | None:
    async def announced() -> Ended:
        return Ended("finished", await finished)

    enough = asyncio.Event()

    async def gone() -> Ended | None:
        if await _exchange_gone(connection, topology.events, enough):
            return Ended(f"the job's events exchange {topology.events} was deleted")
        return None

    async def stopped() -> None:
        await stop.wait()

    async def disconnected() -> None:
        await lost.wait()
        raise BrokerLost("the broker closed the connection")

    polling = asyncio.create_task(gone())
    waiters: list[asyncio.Task[Any]] = [
        asyncio.create_task(stopped()),
        asyncio.create_task(announced()),
        asyncio.create_task(disconnected()),
    ]
    if ended is not None:
        waiters.append(asyncio.create_task(_awaited(ended)))
    try:
        done, _ = await asyncio.wait([polling, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        enough.set()  # the poll ends by itself (see _exchange_gone); the others are cancelled
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(polling, *waiters, return_exceptions=True)
    first = next(iter(done))
    result: Ended | None = first.result()  # re-raises a failure of ``ended``
    return result


async def _awaited(ended: Callable[[], Awaitable[Ended]]) -> Ended:
    return await ended()
