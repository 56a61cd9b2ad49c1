"""Which workers consume a job's task queue, and how many deliveries each holds unacked.

The management API counts unacked deliveries per channel, never per consumer; the worker's
name is only on its connection (the name it chose, :func:`environment.connection_name`). So
three listings, joined: the queue's consumers (channel and connection), the channels (unacked),
the connections (chosen names). One call each, whatever the number of workers.
"""

from __future__ import annotations

from filterjob_operator.adapters.broker.management import Management
from filterjob_worker.core.environment import worker_of


async def unacked_by_worker(management: Management, queue: str) -> dict[str, int]:
    """Every worker consuming ``queue`` (by worker id) with the deliveries it holds unacked (0 when idle).

    Raises what :class:`Management` raises when the API cannot be used.
    """
    consumers = await management.consumers(queue)
    channels = {c.get("name"): c for c in await management.channels()}
    names = {c.get("name"): c.get("user_provided_name") for c in await management.connections()}
    out: dict[str, int] = {}
    counted: set[object] = set()
    for consumer in consumers:
        details = consumer.get("channel_details") or {}
        if details.get("name") in counted:
            continue  # a second consumer on one channel: the channel's count is in already
        counted.add(details.get("name"))
        chosen = names.get(details.get("connection_name"))
        worker = worker_of(chosen) if isinstance(chosen, str) else None
        if worker is None:
            continue  # not a worker (a person's consumer, a listing watch)
        # A channel listed before its statistics are first sampled has no count yet: none held.
        unacked = (channels.get(details.get("name")) or {}).get("messages_unacknowledged") or 0
        out[worker] = out.get(worker, 0) + int(unacked)
    return out
