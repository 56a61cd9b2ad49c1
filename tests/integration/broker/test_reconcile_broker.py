"""The reconciler's broker (``reconcile.amqp``) on the real RabbitMQ: one connection per attempt,
the job's queues declared, tasks enqueued from a cursor, counted, parked tasks read and re-driven."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection

from filterjob_operator.adapters import brokerref
from filterjob_operator.adapters.broker.enqueue import Cursor
from filterjob_operator.control.reconcile import amqp
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, MANAGEMENT_URL, make_tasks


async def test_an_attempts_broker_declares_enqueues_counts_and_closes(
    declared: Topology, images: Callable[..., tuple[Path, Path]]
) -> None:
    src, dst = images(3)
    tasks = make_tasks(declared, src, dst)
    broker = await amqp.connect(BROKER_URL, MANAGEMENT_URL, secret="s", name="filterjob test", topology=declared)
    try:
        await broker.declare()
        cursor = Cursor()
        await broker.publish(tasks, cursor=cursor)
        assert cursor.position == len(tasks)
        depths = await broker.depths(enqueued=len(tasks))
        assert (depths.ready, depths.outstanding, depths.parked) == (3, 3, 0)
        assert await broker.parked() == []
        assert await broker.redrive() == []
        assert await broker.stored_listing() is None
    finally:
        await broker.close()


async def test_a_management_url_that_cannot_be_used_closes_the_connection_it_came_with(
    declared: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[AbstractRobustConnection] = []
    connect = brokerref.connect

    async def recorded(url: str, **kwargs: Any) -> AbstractRobustConnection:
        opened.append(await connect(url, **kwargs))
        return opened[-1]

    monkeypatch.setattr(brokerref, "connect", recorded)
    with pytest.raises(ValueError, match="port"):
        await amqp.connect(BROKER_URL, "http://127.0.0.1:no-port/", secret="s", name="t", topology=declared)
    (connection,) = opened
    assert connection.is_closed


async def test_without_a_management_url_the_broker_still_counts(declared: Topology) -> None:
    """A finished job's re-drive opens no management API; counting then takes every task not ready as in flight."""
    broker = await amqp.connect(BROKER_URL, None, secret="s", name="filterjob test", topology=declared)
    try:
        await broker.declare()
        depths = await broker.depths(enqueued=2)
        assert (depths.ready, depths.unacked) == (0, 2)
    finally:
        await broker.close()
