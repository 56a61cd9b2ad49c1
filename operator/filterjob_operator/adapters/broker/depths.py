"""How many messages wait in a job's queues: exact ready counts, unacked from the management API."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aio_pika.abc import AbstractChannel

from filterjob_operator.adapters.broker.management import Management, QueueStats
from filterjob_operator.core.status import Depths, estimate_unacked
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.operator")


async def ready_counts(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    """Ready messages per queue, from passive declares (exact now; unacked not included).

    Safe to cancel: the declares go on to their answer (one round trip each) in a task of their
    own, because aiormq closes a channel whose call in flight is cancelled, and the caller's
    next use of the channel (a run's final flush) would fail.
    """
    counting = asyncio.ensure_future(_ready_counts(channel, topology))
    # Retrieved here, so a failure after the caller was cancelled is not reported as unretrieved.
    counting.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(counting)


async def _ready_counts(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    out: dict[str, int] = {}
    # Not channel.declare_queue(passive=True): a robust channel answers that from its cache of
    # queues it declared before, with the stale counts of that first declaration.
    underlay = await channel.get_underlay_channel()
    for name in topology.queues:
        result = await underlay.queue_declare(name, passive=True)
        out[name] = int(result.message_count or 0)
    return out


async def depths(
    channel: AbstractChannel, topology: Topology, management: Management | None, *, enqueued: int
) -> Depths:
    """Messages in a job's queues: exact ready counts, unacked estimated from the management API.

    ``enqueued``: tasks published so far. See :func:`status.estimate_unacked` for how stale
    statistics are read.
    """
    ready = await ready_counts(channel, topology)
    retrying = sum(ready[q] for q in topology.retry_queues)
    sample: QueueStats | None = None
    if management is not None:
        try:
            sample = await management.queue(topology.tasks)
        except (aiohttp.ClientError, TimeoutError) as e:
            # Without statistics nothing tells a busy worker from a finished task: every task not
            # ready counts as in flight (as before a first sample), so the job neither ends nor
            # loses its workers on a guess; it goes on once the API answers again.
            log.warning("management API unavailable, every task not ready counts as in flight until it answers: %s", e)
    unacked = estimate_unacked(
        ready=ready[topology.tasks],
        retrying=retrying,
        parked=ready[topology.parked],
        enqueued=enqueued,
        sampled=(sample.ready, sample.unacked) if sample is not None and sample.sampled else None,
    )
    return Depths(ready=ready[topology.tasks], unacked=unacked, retrying=retrying, parked=ready[topology.parked])


class DepthUnknown(Exception):
    """The management API answered, but not with every queue's counts."""


async def outstanding(management: Management, topology: Topology) -> int:
    """Ready + unacked + retrying of a job's task and retry queues, from one management API call:
    the depth the operator's own scaler goes by (:attr:`Depths.outstanding`), for the HPA.

    Raises :class:`DepthUnknown` rather than guess: a queue missing, or not sampled yet (its counts
    would read 0, and an HPA would scale the workers in on that).
    """
    names = [topology.tasks, *topology.retry_queues]
    found = await management.messages(names)
    for name in names:
        if name not in found:
            raise DepthUnknown(f"queue {name} does not exist on the broker (not declared yet, or deleted)")
        if not found[name].sampled:
            raise DepthUnknown(f"the broker has not sampled the statistics of queue {name} yet")
    return sum(found[name].messages for name in names)
