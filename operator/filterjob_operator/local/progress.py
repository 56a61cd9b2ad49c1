"""A run's progress queue: a durable queue bound to the job's final events and dead letters.

It sees every finished task, across worker kills and broker restarts; one consumer reads
it in order, so a marker published behind the events tells when all of them were read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from filterjob_operator.local.tally import Tally
from filterjob_worker.core.contract import CONTENT_TYPE
from filterjob_worker.core.envelope import finished_outcome
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.local")

#: Message id of the marker that tells the progress consumer has read everything before it.
FLUSH_MARKER = "filterjob-flush"
#: Longest wait, after an interrupt, for the count of the tasks finished meanwhile.
COUNT_TIMEOUT = 10.0


async def declare_progress(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    """A durable queue seeing every finished task: final events and dead letters."""
    queue = await channel.declare_queue(topology.progress, durable=True, arguments={"x-queue-type": "quorum"})
    for key in ("task.succeeded", "task.failed"):
        await queue.bind(topology.events, routing_key=key)
    await queue.bind(topology.dead_letters)
    return queue


def progress_consumer(
    topology: Topology, tally: Tally, flushed: asyncio.Event
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """The consumer of the progress queue: each finished task into ``tally``, ``flushed`` set at the marker."""

    async def on_progress(message: AbstractIncomingMessage) -> None:
        if message.message_id == FLUSH_MARKER:
            flushed.set()
        elif (outcome := finished_outcome(message, topology)) is not None:
            tally.finish(outcome)
        # An interrupt's count closes this channel under a delivery being acked: the message goes
        # back to the queue, where that count reads it (and counts its task once).
        with contextlib.suppress(aio_pika.exceptions.ChannelInvalidStateError):
            await message.ack()

    return on_progress


async def flush(channel: AbstractChannel, queue: str, flushed: asyncio.Event) -> None:
    """Wait until the progress consumer has read every event published so far: a marker goes
    through the queue behind them, and one consumer reads the queue in order."""
    message = aio_pika.Message(b"{}", message_id=FLUSH_MARKER, content_type=CONTENT_TYPE)
    await channel.default_exchange.publish(message, routing_key=queue)
    await flushed.wait()


async def count_finished(
    connection: AbstractRobustConnection, consuming: AbstractChannel | None, topology: Topology, tally: Tally
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
                queue = await channel.get_queue(topology.progress)
                while (message := await queue.get(fail=False)) is not None:
                    outcome = finished_outcome(message, topology)
                    if outcome is not None:
                        tally.finish(outcome)
                    await message.ack()
    except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as e:
        log.warning("could not count the tasks finished at the interrupt (%s); the summary may miss some", e)
