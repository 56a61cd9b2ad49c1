"""The depth the External metrics API serves, read from the real RabbitMQ's management API in one call."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters.broker.depths import DepthUnknown, outstanding
from filterjob_operator.adapters.broker.management import Management
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import FAST_RETRY, MANAGEMENT_URL


async def test_the_served_depth_counts_ready_unacked_and_retrying_tasks(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    for queue, count in ((declared.tasks, 3), (declared.retry_queues[-1], 2), (declared.parked, 4)):
        for n in range(count):
            message = aio_pika.Message(f"{queue}-{n}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(message, routing_key=queue)
    holder = await connection.channel()
    held = await (await holder.declare_queue(declared.tasks, passive=True)).get(no_ack=False)
    assert held is not None  # in a worker's hands: unacked, and still outstanding
    async with Management(MANAGEMENT_URL) as management:
        # Statistics are collected every 5 s; wait for them, within a deadline. The retrying
        # tasks may meanwhile have moved back to the task queue: outstanding either way.
        deadline = time.monotonic() + 30
        while True:
            seen = await _depth(management, declared)
            if seen == 5 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        stats = await management.messages([declared.tasks, declared.parked])
    assert seen == 5  # parked tasks are no work left for the workers
    assert stats[declared.tasks].unacked == 1
    await held.ack()
    await holder.close()


async def _depth(management: Management, topology: Topology) -> int | None:
    try:
        return await outstanding(management, topology)
    except DepthUnknown:  # not sampled yet
        return None


async def test_a_job_whose_queues_do_not_exist_has_no_depth_rather_than_zero() -> None:
    missing = Topology.for_job(namespace="test", name="never-declared", uid=uuid.uuid4().hex, retry=FAST_RETRY)
    async with Management(MANAGEMENT_URL) as management:
        with pytest.raises(DepthUnknown, match=f"queue {missing.tasks} does not exist on the broker"):
            await outstanding(management, missing)
