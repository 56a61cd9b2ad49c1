"""The enqueue window is counted from the resumable cursor: one confirm that lags holds the
producer, so tasks pulled ahead of the cursor never exceed the window.

The channel is a stand-in whose confirms the test releases one by one: a real broker
confirms in order and cannot be made to hold back a single confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from filterjob_operator.adapters.broker.enqueue import publish_tasks
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology


class HeldExchange:
    """Confirms every publish at once, except those the test holds until it releases them."""

    def __init__(self, held: set[int]) -> None:
        self.held = {f"t{i}": asyncio.Event() for i in held}
        self.published: list[str] = []
        self.fail: set[str] = set()

    async def publish(self, message: Any, routing_key: str) -> None:
        self.published.append(message.message_id)
        if message.message_id in self.held:
            await self.held[message.message_id].wait()
        if message.message_id in self.fail:
            raise ConnectionError("channel closed")


class Channel:
    def __init__(self, exchange: HeldExchange) -> None:
        self.default_exchange = exchange


def tasks(count: int, pulled: list[int]) -> Iterator[Task]:
    for i in range(count):
        pulled.append(i)
        yield Task(
            job="ns/j", job_uid="u", task=f"t{i}", input=f"file:///in/{i}", output=f"file:///out/{i}", filters=()
        )


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_a_lagging_first_confirm_holds_the_producer_at_the_window() -> None:
    window = 8
    exchange = HeldExchange(held={0})
    pulled: list[int] = []
    cursors: list[int] = []
    run = asyncio.create_task(
        publish_tasks(
            Channel(exchange),  # type: ignore[arg-type]
            Topology.for_job(namespace="ns", name="j", uid="u"),
            tasks(100, pulled),
            window=window,
            on_confirmed=cursors.append,
        )
    )
    await settle()
    # Tasks 1..7 are confirmed but task 0 is not: the cursor is 0, so nothing past the window goes.
    assert exchange.published == [f"t{i}" for i in range(window)]
    assert cursors == []
    assert len(pulled) == window + 1  # the next task is pulled, then waits for the cursor
    exchange.held["t0"].set()
    assert await run == 100
    assert cursors[0] == window  # 0 confirmed releases the whole run of confirmed tasks behind it
    assert cursors[-1] == 100
    assert exchange.published == [f"t{i}" for i in range(100)]


async def test_a_failed_publish_wakes_a_waiting_producer_and_raises() -> None:
    exchange = HeldExchange(held={0})
    exchange.fail = {"t0"}
    cursors: list[int] = []
    run = asyncio.create_task(
        publish_tasks(
            Channel(exchange),  # type: ignore[arg-type]
            Topology.for_job(namespace="ns", name="j", uid="u"),
            tasks(100, []),
            window=4,
            on_confirmed=cursors.append,
        )
    )
    await settle()
    exchange.held["t0"].set()
    with pytest.raises(ConnectionError):
        await run
    assert cursors == []  # the cursor never passes the task that failed
    assert len(exchange.published) == 4
