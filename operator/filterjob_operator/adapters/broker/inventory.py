"""What of a job exists on the broker (queues and exchanges, with counts), and removing it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from filterjob_worker.core.topology import Topology


@dataclass(frozen=True)
class Existing:
    """A queue or exchange of a job that exists on the broker."""

    name: str
    kind: str  # "queue" or "exchange"
    messages: int = 0
    consumers: int = 0


#: Retry queues probed beyond a topology's own (left by an earlier, longer retry policy).
MAX_RETRY_QUEUES = 100


async def existing(connection: AbstractConnection, topology: Topology, *, extra: Iterable[str] = ()) -> list[Existing]:
    """Every queue and exchange of the job that exists now, with counts (passive declares only).

    Retry queues are probed past the topology's own, up to the first missing one: a job
    whose retry policy shrank keeps the higher-numbered queues of the earlier one.
    """
    found: list[Existing] = []
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()

    async def probe(name: str, kind: str) -> bool:
        nonlocal channel, underlay
        try:
            if kind == "queue":
                ok = await underlay.queue_declare(name, passive=True)
                found.append(Existing(name, kind, int(ok.message_count or 0), int(ok.consumer_count or 0)))
            else:
                await underlay.exchange_declare(name, passive=True)
                found.append(Existing(name, kind))
        except ChannelNotFoundEntity:
            # The broker closed the channel with the answer; the next probe needs a new one.
            channel = await connection.channel()
            underlay = await channel.get_underlay_channel()
            return False
        return True

    try:
        for name in (topology.tasks, topology.parked, topology.inputs, topology.outputs, *extra):
            await probe(name, "queue")
        for n in range(MAX_RETRY_QUEUES):
            if not await probe(topology.retry_queue(n), "queue") and n >= topology.retry.retries:
                break
        for name in (topology.events, topology.dead_letters):
            await probe(name, "exchange")
    finally:
        if not channel.is_closed:
            await channel.close()
    return found


async def remove(connection: AbstractConnection, found: Iterable[Existing]) -> None:
    """Delete what :func:`existing` found (messages included)."""
    channel = await connection.channel()
    try:
        for item in found:
            if item.kind == "queue":
                await channel.queue_delete(item.name)
            else:
                await channel.exchange_delete(item.name)
    finally:
        await channel.close()
