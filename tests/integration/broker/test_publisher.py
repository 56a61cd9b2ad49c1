"""Enqueueing tasks on the real RabbitMQ: persistent confirmed messages, a resumable
cursor, constant memory for any number of tasks, and queue stats that agree."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import time
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection, DeliveryMode
from aio_pika.exceptions import PublishError
from aiohttp import web

from filterjob_operator.adapters.broker.depths import depths as queue_depths
from filterjob_operator.adapters.broker.depths import ready_counts
from filterjob_operator.adapters.broker.enqueue import DEFAULT_WINDOW, publish_tasks
from filterjob_operator.adapters.broker.management import Management, QueueStats, management_url_for
from filterjob_worker.core.contract import CONTENT_TYPE, Task
from filterjob_worker.core.envelope import ATTEMPT_HEADER
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, MANAGEMENT_URL


def make_task(topology: Topology, index: int) -> Task:
    return Task(
        job="test/publisher",
        job_uid="uid",
        task=f"t{index:06d}",
        input=f"file:///data/in/{index:06d}.png",
        output=f"file:///data/out/{index:06d}.jpg",
        filters=({"name": "grayscale"},),
    )


def lazy_tasks(topology: Topology, count: int) -> Iterator[Task]:
    return (make_task(topology, i) for i in range(count))


async def drain(channel: AbstractChannel, topology: Topology) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.declare_queue(topology.tasks, passive=True)
    out = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(message)
    return out


async def test_publishes_persistent_task_messages(channel: AbstractChannel, declared: Topology) -> None:
    tasks = [make_task(declared, i) for i in range(20)]
    assert await publish_tasks(channel, declared, tasks) == 20

    messages = await drain(channel, declared)
    assert [m.message_id for m in messages] == [t.task for t in tasks]  # one queue keeps the order
    for task, message in zip(tasks, messages, strict=True):
        assert message.delivery_mode == DeliveryMode.PERSISTENT
        assert message.content_type == CONTENT_TYPE == "application/json"
        assert message.headers[ATTEMPT_HEADER] == 1
        assert message.routing_key == declared.tasks
        assert message.exchange == ""
        assert Task.from_json(message.body) == task


async def test_cursor_is_monotonic_and_ends_at_the_count(channel: AbstractChannel, declared: Topology) -> None:
    cursors: list[int] = []
    published = await publish_tasks(channel, declared, lazy_tasks(declared, 300), window=8, on_confirmed=cursors.append)
    assert published == 300
    assert cursors
    assert cursors == sorted(set(cursors))  # strictly increasing
    assert cursors[0] >= 1
    assert cursors[-1] == 300
    assert (await ready_counts(channel, declared))[declared.tasks] == 300


async def test_small_window_bounds_tasks_in_flight(channel: AbstractChannel, declared: Topology) -> None:
    window = 4
    pulled = 0
    max_ahead = 0

    def tasks() -> Iterator[Task]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield make_task(declared, i)

    def on_confirmed(cursor: int) -> None:
        nonlocal max_ahead
        max_ahead = max(max_ahead, pulled - cursor)

    assert await publish_tasks(channel, declared, tasks(), window=window, on_confirmed=on_confirmed) == 200
    # The producer runs at most a window ahead of the broker (+1: the task waiting for a slot).
    assert 1 <= max_ahead <= window + 1


async def test_nothing_to_publish(channel: AbstractChannel, declared: Topology) -> None:
    cursors: list[int] = []
    assert await publish_tasks(channel, declared, iter(()), on_confirmed=cursors.append) == 0
    assert cursors == []


async def test_unroutable_tasks_fail_loudly(
    channel: AbstractChannel, topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    """No tasks queue (job never declared, or deleted): an error, not tasks silently dropped."""
    cursors: list[int] = []
    with caplog.at_level(logging.ERROR), pytest.raises(PublishError, match="NO_ROUTE"):
        await publish_tasks(channel, topology, lazy_tasks(topology, 50), window=4, on_confirmed=cursors.append)
    assert cursors == []  # the resumable cursor never skips a task that was not enqueued
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.slow
async def test_publishing_many_tasks_takes_constant_memory(channel: AbstractChannel, declared: Topology) -> None:
    """100 000 tasks, built lazily: memory stays bounded by the window, whatever the count.

    tracemalloc slows allocation-heavy code ~3x, so it traces only the first ``traced``
    tasks (~50 windows, plenty for a leak to show) and the rest runs at full speed; the
    count of live Task objects is checked through the whole run.
    """
    count, traced, window = 100_000, 12_000, DEFAULT_WINDOW
    pulled = 0
    alive = 0
    max_alive = 0
    max_ahead = 0
    last_cursor = 0
    memory: dict[str, int] = {}

    def released() -> None:
        nonlocal alive
        alive -= 1

    def tasks() -> Iterator[Task]:
        nonlocal pulled, alive
        for i in range(count):
            if i == 2_000:
                memory["early"] = tracemalloc.get_traced_memory()[0]
            elif i == traced:
                memory["late"], memory["peak"] = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            task = make_task(declared, i)
            weakref.finalize(task, released)
            alive += 1
            pulled += 1
            yield task

    def on_confirmed(cursor: int) -> None:
        nonlocal max_alive, max_ahead, last_cursor
        assert cursor > last_cursor
        last_cursor = cursor
        max_alive = max(max_alive, alive)
        max_ahead = max(max_ahead, pulled - cursor)

    tracemalloc.start()
    try:
        published = await publish_tasks(channel, declared, tasks(), on_confirmed=on_confirmed)
    finally:
        tracemalloc.stop()

    assert published == count
    assert last_cursor == count
    # Measured: peak 2.05 MB; between 2 000 and 12 000 tasks traced memory moves by under
    # 0.1 MB (a leak of 100 bytes a task would add 1 MB); 257 tasks alive at most.
    assert memory["peak"] < 6 * 2**20, memory
    assert memory["late"] - memory["early"] < 2**20, memory
    assert max_alive <= window + 1
    assert max_ahead <= window + 1
    assert (await ready_counts(channel, declared))[declared.tasks] == count


async def test_ready_counts_and_management_agree(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    await publish_tasks(channel, declared, lazy_tasks(declared, 25))
    await channel.default_exchange.publish(aio_pika.Message(b"p"), routing_key=declared.parked)
    assert await ready_counts(channel, declared) == {
        declared.tasks: 25,
        **dict.fromkeys(declared.retry_queues, 0),
        declared.parked: 1,
    }

    # One task taken and not yet acknowledged: not ready any more, but unacked.
    holder = await connection.channel()
    held = await (await holder.declare_queue(declared.tasks, passive=True)).get(no_ack=False)
    assert held is not None
    assert (await ready_counts(channel, declared))[declared.tasks] == 24

    # (ready, unacked) per queue; consumers are not compared: a quorum queue counts the
    # basic.get above as one.
    expected = {declared.tasks: (24, 1), declared.parked: (1, 0), **dict.fromkeys(declared.retry_queues, (0, 0))}
    async with Management(MANAGEMENT_URL) as management:
        assert await management.available()
        # Management statistics are collected every 5 s; wait for them, within a deadline.
        deadline = time.monotonic() + 30
        while True:
            stats = {name: await management.queue(name) for name in expected}
            seen = {name: (s.ready, s.unacked) for name, s in stats.items()}
            if seen == expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    assert seen == expected
    assert stats[declared.tasks].messages == 25
    assert stats[declared.tasks].sampled
    await held.ack()
    await holder.close()


async def test_management_url_for_reaches_the_broker_api() -> None:
    async with Management(management_url_for(BROKER_URL)) as management:
        assert await management.available()


def test_management_url_for_keeps_credentials() -> None:
    url = management_url_for("amqps://filter%40job:p%3Aw%2Fd%25@rabbit.svc:5671/vhost")
    assert url == "http://filter%40job:p%3Aw%2Fd%25@rabbit.svc:15672/"
    assert management_url_for("amqp://rabbit") == "http://guest:guest@rabbit:15672/"


@contextlib.asynccontextmanager
async def management_stand_in(
    queue: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A stand-in management API on a free port answering ``/api/queues/...`` with ``queue``; its host:port."""
    app = web.Application()
    app.router.add_get("/api/queues/{vhost}/{name}", queue)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_management() -> AsyncIterator[tuple[str, list[str]]]:
    """A stand-in management API on a free port that records Authorization headers."""
    seen: list[str] = []

    async def queue(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        assert request.match_info["vhost"] == "/"
        return web.json_response({"messages_ready": 7, "messages_unacknowledged": 2, "consumers": 1})

    async with management_stand_in(queue) as address:
        yield address, seen


async def test_management_sends_decoded_credentials(fake_management: tuple[str, list[str]]) -> None:
    address, seen = fake_management
    url = management_url_for("amqp://filter%40job:p%3Aw%2Fd%25@rabbit/").replace("rabbit:15672", address)
    async with Management(url) as management:
        assert await management.queue("fj.a.b.c.tasks") == QueueStats(ready=7, unacked=2)
    assert seen == ["Basic " + base64.b64encode(b"filter@job:p:w/d%").decode()]


async def test_depths_count_tasks_taken_since_a_stale_stats_sample_as_in_flight(
    channel: AbstractChannel, declared: Topology, fake_management: tuple[str, list[str]]
) -> None:
    # The stand-in API answers a sample taken when 7 tasks were ready and 2 in flight; since
    # then workers took 4 of them, so 3 are ready now and the 4 taken count as in flight.
    await publish_tasks(channel, declared, lazy_tasks(declared, 3))
    address, _ = fake_management
    async with Management(f"http://guest:guest@{address}/") as management:
        depths = await queue_depths(channel, declared, management, enqueued=9)
    assert (depths.ready, depths.unacked, depths.outstanding) == (3, 2 + 4, 9)


async def test_depths_before_a_first_stats_sample_count_every_task_not_ready_as_in_flight(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    # Until RabbitMQ samples a new queue's statistics, the management API leaves its counts out
    # (as this stand-in does): 2 tasks a worker took must not read as 2 tasks done.
    async def unsampled(request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "consumers": 1})

    await publish_tasks(channel, declared, lazy_tasks(declared, 5))
    holder = await connection.channel()
    queue = await holder.get_queue(declared.tasks)
    held = [await queue.get(no_ack=False) for _ in range(2)]
    async with (
        management_stand_in(unsampled) as address,
        Management(f"http://guest:guest@{address}/") as management,
    ):
        assert not (await management.queue(declared.tasks)).sampled
        depths = await queue_depths(channel, declared, management, enqueued=5)
    assert (depths.ready, depths.unacked, depths.outstanding) == (3, 2, 5)
    for message in held:
        assert message is not None
        await message.ack()
    await holder.close()


async def test_depths_without_a_reachable_management_api_count_every_task_not_ready_as_in_flight(
    channel: AbstractChannel, declared: Topology, connection: AbstractRobustConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """No statistics: a held delivery and a finished task look alike, so both count as in flight."""
    await publish_tasks(channel, declared, lazy_tasks(declared, 4))
    holder = await connection.channel()
    queue = await holder.get_queue(declared.tasks)
    held = await queue.get(no_ack=False)
    done = await queue.get(no_ack=False)
    await done.ack()
    with socket.socket() as s:  # bound, never listening, for the whole test: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        async with Management(f"http://guest:guest@127.0.0.1:{port}/") as management:
            depths = await queue_depths(channel, declared, management, enqueued=4)
    assert (depths.ready, depths.unacked, depths.outstanding) == (2, 2, 4)
    assert "management API unavailable, every task not ready counts as in flight" in caplog.text
    await held.ack()
    await holder.close()
