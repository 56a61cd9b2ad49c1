"""``filterjob watch``: a live feed of a job's task events (publish/subscribe).

The watcher binds its own exclusive, auto-deleted queue to the job's events
exchange and dead-letter exchange, so any number of watchers can come and go
without touching the job's queues or each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aio_pika.abc import AbstractIncomingMessage

from filterjob_operator import broker_errors
from filterjob_operator.local_broker import finished_outcome
from filterjob_worker.contract import Event
from filterjob_worker.errors import MalformedTask
from filterjob_worker.topology import Topology, declare

Printer = Callable[[Event], None]


def dead_letter_event(message: AbstractIncomingMessage, topology: Topology) -> Event:
    outcome = finished_outcome(message, topology)
    return Event(
        kind="failed",
        job="",
        task=message.message_id or "",
        input="",
        output="",
        attempt=0,
        worker="broker",
        reason=outcome.reason if outcome else None,
    )


async def watch(broker_url: str, topology: Topology, show: Printer, *, stop: asyncio.Event) -> None:
    # BrokerUnavailable if the broker cannot be reached; errors later are translated by the caller.
    connection = await broker_errors.connect_robust(broker_url, name="filterjob watch")
    try:
        channel = await connection.channel()
        # Idempotent: watching may start before the job's first run.
        await declare(channel, topology)
        events = await channel.get_exchange(topology.events, ensure=True)
        dead = await channel.get_exchange(topology.dead_letters, ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key="#")
        await queue.bind(dead)

        async def on_message(message: AbstractIncomingMessage) -> None:
            if message.exchange == topology.dead_letters:
                show(dead_letter_event(message, topology))
                return
            with contextlib.suppress(MalformedTask):  # not ours to judge; a watcher only shows
                show(Event.from_json(message.body))

        await queue.consume(on_message, no_ack=True)
        await stop.wait()
    finally:
        await connection.close()
