"""Which workers consume a job's task queue, and how many deliveries each holds unacked.

The management API counts unacked deliveries per channel, never per consumer; the worker's
name is only on its connection (the name it chose, :func:`environment.connection_name`). So
three listings, joined: the queue's consumers (channel and connection), the channels (unacked),
the connections (chosen names). One call each, whatever the number of workers.
"""

from __future__ import annotations

from typing import Any

from filterjob_operator.adapters.broker.management import Management
from filterjob_worker.core.environment import worker_of


async def unacked_by_worker(management: Management, queue: str) -> dict[str, int]:
    """Every worker consuming ``queue`` (by worker id) with the deliveries it holds unacked (0 when idle).

    Raises what :class:`Management` raises when the API cannot be used.
    """
    consumers = await management.consumers(queue)
    unacked = _by_name(await management.channels(), "messages_unacknowledged")
    names = _by_name(await management.connections(), "user_provided_name")
    out: dict[str, int] = {}
    counted: set[str] = set()
    for consumer in consumers:
        # Details of a channel being opened or closed can be an empty list rather than an object.
        details = consumer.get("channel_details")
        if not isinstance(details, dict):
            continue
        channel, connection = details.get("name"), details.get("connection_name")
        if not isinstance(channel, str) or not isinstance(connection, str) or channel in counted:
            continue  # a second consumer on one channel: the channel's count is in already
        chosen = names.get(connection)
        worker = worker_of(chosen) if isinstance(chosen, str) else None
        if worker is None:
            continue  # not a worker (a person's consumer, a listing watch)
        counted.add(channel)
        # A channel listed before its statistics are first sampled has no count yet: none held.
        held = unacked.get(channel)
        out[worker] = out.get(worker, 0) + (held if isinstance(held, int) and held > 0 else 0)
    return out


def _by_name(items: list[dict[str, Any]], key: str) -> dict[str, object]:
    """``key`` of each listed object, by the object's name."""
    return {name: item.get(key) for item in items if isinstance(name := item.get("name"), str)}
