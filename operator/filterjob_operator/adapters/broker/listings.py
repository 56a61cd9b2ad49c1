"""A job's listing stored in the broker: its inputs (or outputs) queue, written, read and followed.

The format of the messages is :mod:`filterjob_operator.core.listing`'s; this module moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, DeliveryMode
from aio_pika.exceptions import ChannelNotFoundEntity

from filterjob_operator.adapters import broker_errors
from filterjob_operator.adapters.broker.topology import declare_inputs
from filterjob_operator.core import listing
from filterjob_worker.adapters.amqp import publish_confirmed
from filterjob_worker.core.contract import CONTENT_TYPE
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.operator")


@dataclass(frozen=True)
class Published:
    """What a pod command (the lister, the verifier) left in its job's listing queue."""

    queue: str
    keys: int
    messages: int
    error: str | None


async def publish_run(
    broker_url: str,
    topology: Topology,
    messages: list[bytes],
    *,
    queue_name: str,
    keys: int,
    error: str | None,
    who: str,
) -> Published:
    """Connect as ``who``, replace the listing in ``queue_name`` with ``messages``, and say what was left."""
    connection = await broker_errors.connect(broker_url, name=who)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        published = await publish_listing(channel, topology, messages, queue_name=queue_name)
    return Published(queue=queue_name, keys=keys, messages=published, error=error)


async def publish_listing(
    channel: AbstractChannel, topology: Topology, messages: Iterable[bytes], *, queue_name: str | None = None
) -> int:
    """Replace the job's listing with ``messages`` (see :mod:`listing`), each confirmed; how many.

    ``queue_name``: another listing queue than the inputs' (:attr:`Topology.outputs`).
    The queue is purged first: a lister that starts over leaves no part of an earlier run
    behind (except what a reader held at that moment, which :class:`listing.Reader` tells apart).
    """
    name = queue_name or topology.inputs
    queue = await declare_inputs(channel, topology, queue=name)
    await queue.purge()
    count = 0
    for body in messages:
        message = aio_pika.Message(body, content_type=CONTENT_TYPE, delivery_mode=DeliveryMode.PERSISTENT)
        await publish_confirmed(channel.default_exchange, message, routing_key=name)
        count += 1
    return count


def _add(reader: listing.Reader, message: AbstractIncomingMessage, queue: str) -> None:
    try:
        reader.add(message.body)
    except listing.ListingError as e:
        log.warning("ignoring a message of %s: %s", queue, e)


async def forget_listing(connection: AbstractConnection, topology: Topology, *, queue_name: str | None = None) -> None:
    """Drop the job's stored listing, so that its inputs are listed anew (or another listing queue's)."""
    channel = await connection.channel()
    try:
        await channel.queue_delete(queue_name or topology.inputs)
    finally:
        await channel.close()


async def stored_listing(connection: AbstractConnection, topology: Topology) -> listing.Listing | None:
    """The job's listing as stored in the broker now, if complete; read without removing anything."""
    channel = await connection.channel()
    reader = listing.Reader()
    try:
        try:
            queue = await channel.declare_queue(topology.inputs, passive=True)
        except ChannelNotFoundEntity:
            return None  # no lister ever ran for this job
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            _add(reader, message, topology.inputs)
    finally:
        if not channel.is_closed:
            await channel.close()
    return reader.listing


class ListingWatch:
    """Follows the job's inputs queue until a listing is complete, consuming nothing.

    A consumer that never acks, on a channel of its own: when the watch closes, every
    message returns to the queue, which keeps the listing for the next operator start.
    """

    def __init__(self, connection: AbstractConnection, topology: Topology, *, queue_name: str | None = None) -> None:
        self._connection = connection
        self._topology = topology
        self._queue = queue_name or topology.inputs
        self._reader = listing.Reader()
        self._arrived = asyncio.Event()
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> ListingWatch:
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=0)  # every message, however long the listing
        queue = await declare_inputs(self._channel, self._topology, queue=self._queue)
        await queue.consume(self._on_message, no_ack=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        _add(self._reader, message, self._queue)
        self._arrived.set()

    async def next(self, seconds: float) -> listing.Listing | None:
        """The listing once complete; None if it is not after ``seconds`` (or a message that did not complete it)."""
        if (found := self._reader.listing) is not None:
            return found
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._arrived.wait()
        return self._reader.listing
