"""Fixtures for tests against the real RabbitMQ: per-test topologies, real worker processes
(tests/helpers/workers.py) and an event log that tests await instead of sleeping
(tests/helpers/brokers.py). ``connection`` and ``channel`` are in tests/integration/conftest.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core.samples import make_samples
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, FAST_RETRY, EventLog
from tests.helpers.workers import WorkerFactory, WorkerProcess


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> Topology:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    return Topology.for_job(namespace="test", name=name, uid=uuid.uuid4().hex, retry=FAST_RETRY)


@pytest.fixture
async def declared(channel: AbstractChannel, topology: Topology) -> AsyncIterator[Topology]:
    await declare(channel, topology)
    yield topology
    await delete(channel, topology)


@pytest.fixture
async def events(connection: AbstractRobustConnection, declared: Topology) -> AsyncIterator[EventLog]:
    log = EventLog(declared)
    channel = await connection.channel()
    # Durable, so events published while the broker restarts are not lost to the test.
    queue = await channel.declare_queue(
        f"{declared.base}.test-events", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(declared.events, routing_key="#")
    await queue.bind(declared.dead_letters)
    await queue.consume(log.on_message, no_ack=True)
    yield log
    await channel.queue_delete(queue.name)


@pytest.fixture
def spawn_worker(declared: Topology) -> Iterator[WorkerFactory]:
    started: list[WorkerProcess] = []

    def spawn(**overrides: str) -> WorkerProcess:
        env = {
            "FILTERJOB_BROKER_URL": BROKER_URL,
            "FILTERJOB_QUEUE": declared.tasks,
            "FILTERJOB_CONCURRENCY": "1",
            "FILTERJOB_HEALTH_PORT": "0",  # any free one: it logs the one it bound
            "FILTERJOB_MAX_ATTEMPTS": str(declared.retry.max_attempts),
            "FILTERJOB_BACKOFF_SECONDS": str(declared.retry.backoff_seconds),
            "FILTERJOB_MAX_BACKOFF_SECONDS": str(declared.retry.max_backoff_seconds),
            "FILTERJOB_WORKER_ID": f"w{len(started)}",
            "FILTERJOB_GRACE_SECONDS": "20",
            **overrides,
        }
        worker = WorkerProcess(env)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.close()


@pytest.fixture
def images(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    def make(count: int, *, broken: int = 0, size: tuple[int, int] = (64, 48)) -> tuple[Path, Path]:
        src, dst = tmp_path / "in", tmp_path / "out"
        make_samples(src, count=count, broken=broken, size=size)
        return src, dst

    return make
