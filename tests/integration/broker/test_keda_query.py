"""What KEDA's rabbitmq scaler reads for a ``mode: keda`` job, asked of the real management API the way
the scaler asks (KEDA v2.21 ``getQueueInfoViaHTTP`` with ``useRegex``, summed): the ready and unacked
messages of the job's task and retry queues, and of no other queue."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote_plus, urlsplit

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractChannel

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.control.builders import keda
from filterjob_worker.core.topology import RetryPolicy, Topology
from tests.helpers.brokers import MANAGEMENT_URL

#: Retry delays far longer than the test: what is published into a retry queue stays there.
SLOW_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=600, max_backoff_seconds=600)


def job_topology(name: str) -> Topology:
    return Topology.for_job(namespace="test", name=name, uid=uuid.uuid4().hex, retry=SLOW_RETRY)


@pytest.fixture
async def two_jobs(channel: AbstractChannel) -> AsyncIterator[tuple[Topology, Topology]]:
    """A job, and a neighbour whose queue names start the same (its name extends the first's)."""
    ours, neighbour = job_topology("keda-query"), job_topology("keda-query-2")
    for topology in (ours, neighbour):
        await declare(channel, topology)
    yield ours, neighbour
    for topology in (ours, neighbour):
        await delete(channel, topology)


async def keda_reads(pattern: str) -> int:
    """The scaler's number: the sum of ``messages`` (ready + unacked) of the queues the regex matches,
    from the URL it builds out of ``host`` (the operator's Secret) and the default vhost."""
    parts = urlsplit(keda.host_url(MANAGEMENT_URL))
    url = (
        f"{parts.scheme}://{parts.hostname}:{parts.port}/api/queues/%2F"
        f"?page=1&use_regex=true&pagination=false&name={quote_plus(pattern)}&page_size=100"
    )
    credentials = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url) as response,
    ):
        response.raise_for_status()
        found = await response.json()
    assert found["page_count"] <= 1  # KEDA refuses an answer of more pages
    return sum(int(queue.get("messages", 0)) for queue in found["items"])


async def wait_for_reading(pattern: str, expected: int, within: float = 20.0) -> int:
    """The management API's statistics are sampled every few seconds: read until they show ``expected``."""
    async with asyncio.timeout(within):
        while True:
            seen = await keda_reads(pattern)
            if seen == expected:
                return seen
            await asyncio.sleep(0.5)


async def test_keda_counts_ready_unacked_and_retrying_tasks_of_the_job_only(
    channel: AbstractChannel, two_jobs: tuple[Topology, Topology]
) -> None:
    ours, neighbour = two_jobs
    exchange = channel.default_exchange

    async def publish(queue: str, count: int) -> None:
        for n in range(count):
            await exchange.publish(aio_pika.Message(f"{queue} {n}".encode()), routing_key=queue)

    await publish(ours.tasks, 3)
    await publish(ours.retry_queues[0], 2)
    await publish(ours.retry_queues[1], 1)
    await publish(ours.parked, 4)  # failed for good: no worker is needed for them
    await publish(neighbour.tasks, 5)
    # One task in flight: delivered, not acked, as a busy worker holds it.
    queue = await channel.get_queue(ours.tasks, ensure=False)
    held = await queue.get(no_ack=False, timeout=10)
    assert held is not None

    assert await wait_for_reading(keda.queue_pattern(ours), 3 + 2 + 1) == 6
    assert await wait_for_reading(keda.queue_pattern(neighbour), 5) == 5
    await held.ack()
    assert await wait_for_reading(keda.queue_pattern(ours), 5) == 5
