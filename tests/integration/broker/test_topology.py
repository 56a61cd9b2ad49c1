"""A job's topology on the real RabbitMQ: idempotent declaration, the arguments the
broker really holds, retry delays, poison tasks parked, and deletion."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiohttp
import aiormq
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)

from filterjob_operator.adapters.broker.depths import ready_counts
from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import MANAGEMENT_URL


@pytest.fixture
async def management() -> AsyncIterator[aiohttp.ClientSession]:
    parts = urlsplit(MANAGEMENT_URL)
    credentials = base64.b64encode(f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()).decode()
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
    headers = {"Authorization": f"Basic {credentials}"}
    async with aiohttp.ClientSession(base, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def api_get(session: aiohttp.ClientSession, path: str, within: float = 10.0) -> Any:
    """GET a management API resource, waiting (bounded) for it to appear."""
    async with asyncio.timeout(within):
        while True:
            async with session.get(path) as response:
                if response.status != 404:
                    response.raise_for_status()
                    return await response.json()
            await asyncio.sleep(0.1)


def vhost_path(kind: str, name: str) -> str:
    return f"{kind}/%2F/{quote(name, safe='')}"


async def next_message(queue: AbstractQueue, within: float = 10.0) -> AbstractIncomingMessage:
    """The first message a consumer on ``queue`` receives (acknowledged)."""
    got: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def on_message(message: AbstractIncomingMessage) -> None:
        if not got.done():
            got.set_result(message)

    tag = await queue.consume(on_message, no_ack=True)
    try:
        return await asyncio.wait_for(got, within)
    finally:
        await queue.cancel(tag)


async def test_declare_is_idempotent(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    await channel.default_exchange.publish(aio_pika.Message(b"kept"), routing_key=declared.tasks)
    await declare(channel, declared)
    await declare(channel, declared)
    # A fresh channel: a robust channel answers passive declares of queues it declared from a cache.
    probe = await connection.channel()
    for name in declared.queues:
        queue = await probe.declare_queue(name, passive=True)
        assert queue.declaration_result.message_count == (1 if name == declared.tasks else 0), name
    await probe.declare_exchange(declared.events, ExchangeType.TOPIC, passive=True)
    await probe.declare_exchange(declared.dead_letters, ExchangeType.FANOUT, passive=True)
    await probe.close()


async def test_broker_holds_the_declared_arguments(declared: Topology, management: aiohttp.ClientSession) -> None:
    expected = declared.arguments()
    assert set(expected) == set(declared.queues)
    for name, arguments in expected.items():
        info = await api_get(management, vhost_path("queues", name))
        assert info["type"] == "quorum", name
        assert info["durable"] is True, name
        assert info["auto_delete"] is False, name
        assert info["arguments"] == arguments, name
    tasks = (await api_get(management, vhost_path("queues", declared.tasks)))["arguments"]
    assert tasks["x-delivery-limit"] == declared.delivery_limit
    assert tasks["x-dead-letter-exchange"] == declared.dead_letters
    assert tasks["x-dead-letter-strategy"] == "at-least-once"
    retry0 = (await api_get(management, vhost_path("queues", declared.retry_queue(0))))["arguments"]
    assert retry0["x-message-ttl"] == int(declared.retry.delay(0) * 1000)
    assert retry0["x-dead-letter-routing-key"] == declared.tasks

    events = await api_get(management, vhost_path("exchanges", declared.events))
    assert (events["type"], events["durable"]) == ("topic", True)
    dlx = await api_get(management, vhost_path("exchanges", declared.dead_letters))
    assert (dlx["type"], dlx["durable"]) == ("fanout", True)
    bindings = await api_get(management, vhost_path("queues", declared.parked) + "/bindings")
    assert declared.dead_letters in {b["source"] for b in bindings}


async def test_redeclaring_with_other_arguments_is_refused(
    connection: AbstractRobustConnection, declared: Topology
) -> None:
    """The arguments are really in force: the broker refuses a conflicting declaration."""
    arguments = {**declared.arguments()[declared.tasks], "x-delivery-limit": declared.delivery_limit + 1}
    channel = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-delivery-limit"):
        await channel.declare_queue(declared.tasks, durable=True, arguments=arguments)


async def test_retry_queue_expires_back_into_tasks(
    channel: AbstractChannel, declared: Topology, management: aiohttp.ClientSession
) -> None:
    tasks = await channel.declare_queue(declared.tasks, passive=True)
    ttl = declared.retry.delay(0)
    await channel.default_exchange.publish(
        aio_pika.Message(b'{"retry": 0}', message_id="m-retry", headers={"x-attempt": 2}),
        routing_key=declared.retry_queue(0),
    )
    message = await next_message(tasks, within=ttl + 10)

    assert message.body == b'{"retry": 0}'
    assert message.message_id == "m-retry"
    assert message.headers["x-attempt"] == 2
    deaths = message.headers["x-death"]
    assert isinstance(deaths, list)
    assert len(deaths) == 1
    death = deaths[0]
    assert death["queue"] == declared.retry_queue(0)
    assert death["reason"] == "expired"
    assert death["count"] == 1
    assert list(death["routing-keys"]) == [declared.retry_queue(0)]
    # Back by its TTL, not by a clock of ours: it died "expired" in the retry queue, whose TTL the
    # broker holds it to is the policy's first delay.
    retry0 = (await api_get(management, vhost_path("queues", declared.retry_queue(0))))["arguments"]
    assert retry0["x-message-ttl"] == int(ttl * 1000)


async def test_each_retry_queue_returns_to_tasks(channel: AbstractChannel, declared: Topology) -> None:
    tasks = await channel.declare_queue(declared.tasks, passive=True)
    for n, name in enumerate(declared.retry_queues):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), routing_key=name)
        message = await next_message(tasks, within=declared.retry.delay(n) + 10)
        assert message.body == str(n).encode()
        assert message.headers["x-death"][0]["queue"] == name


async def test_poison_message_is_parked_after_the_delivery_limit(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    parked = await channel.declare_queue(declared.parked, passive=True)
    await channel.default_exchange.publish(
        aio_pika.Message(b"poison", message_id="poison", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=declared.tasks,
    )

    consumer_channel = await connection.channel()
    await consumer_channel.set_qos(prefetch_count=1)
    tasks = await consumer_channel.declare_queue(declared.tasks, passive=True)
    deliveries: list[AbstractIncomingMessage] = []

    async def crash(message: AbstractIncomingMessage) -> None:
        deliveries.append(message)
        await message.nack(requeue=True)  # as if the worker died holding it

    tag = await tasks.consume(crash)
    try:
        message = await next_message(parked, within=30)
    finally:
        await tasks.cancel(tag)
        await consumer_channel.close()

    assert message.body == b"poison"
    assert message.message_id == "poison"
    assert message.exchange == declared.dead_letters
    assert len(deliveries) == declared.delivery_limit + 1
    assert [d.redelivered for d in deliveries] == [False] + [True] * declared.delivery_limit
    death = message.headers["x-death"][0]
    assert death["queue"] == declared.tasks
    assert death["reason"] == "delivery_limit"
    assert death["exchange"] == ""
    assert set((await ready_counts(channel, declared)).values()) == {0}


async def test_delete_removes_everything(connection: AbstractRobustConnection, topology: Topology) -> None:
    channel = await connection.channel()
    await declare(channel, topology)
    await channel.default_exchange.publish(aio_pika.Message(b"left over"), routing_key=topology.tasks)
    await delete(channel, topology)
    await delete(channel, topology)  # deleting again is harmless

    for name in topology.queues:
        probe = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="no queue"):
            await probe.declare_queue(name, passive=True)
    for name in (topology.events, topology.dead_letters):
        probe = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity, match="no exchange"):
            await probe.declare_exchange(name, passive=True)


async def test_counting_a_jobs_queues_can_be_cancelled_without_closing_the_channel(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    """A run stops its drain check by cancelling it, then flushes on the same channel: aiormq closes
    a channel whose call in flight is cancelled, so the count must finish its calls regardless."""
    channel = await connection.channel()
    await declare(channel, topology)
    underlay = await channel.get_underlay_channel()
    for steps in range(40):  # cancelled at every point of the first few calls' round trips
        counting = asyncio.ensure_future(ready_counts(channel, topology))
        for _ in range(steps % 8):
            await asyncio.sleep(0)
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        assert not underlay.is_closed, f"the channel was closed by a cancel after {steps % 8} steps"
    assert set((await ready_counts(channel, topology)).values()) == {0}
    await delete(channel, topology)
