"""The test broker and the ``filterjob`` command, for tests against the real RabbitMQ: its URLs,
fast retry delays, an event log that tests await instead of sleeping, tasks and their publishing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from filterjob_operator.adapters.broker.enqueue import publish_tasks
from filterjob_worker.core.contract import Event, Task
from filterjob_worker.core.topology import RetryPolicy, Topology

BROKER_URL = os.environ.get("FILTERJOB_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("FILTERJOB_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/")
#: Short delays so retry tests finish quickly: 0.2 s, 0.4 s, … capped at 1 s.
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=0.2, max_backoff_seconds=1.0)


FILTERJOB = str(Path(sys.executable).parent / "filterjob")


def filterjob(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The ``filterjob`` command as a user runs it; ``env`` is added to this environment."""
    return subprocess.run(
        [FILTERJOB, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole block, and that no one else can take.

    Bound by this socket but never listening: a connection to it is refused at once, and without
    SO_REUSEADDR no other socket may bind it meanwhile (a port closed after a check could be taken).
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port


class EventLog:
    """Every event and dead letter of a job, in arrival order; awaitable conditions."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.events: list[Event] = []
        self.dead_letters: list[AbstractIncomingMessage] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if message.exchange == self.topology.dead_letters:
            self.dead_letters.append(message)
        else:
            self.events.append(Event.from_json(message.body))
        async with self._changed:
            self._changed.notify_all()

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def finished(self) -> set[str]:
        done = {e.task for e in self.events if e.kind in ("succeeded", "failed")}
        return done | {m.message_id or "" for m in self.dead_letters}

    async def wait_for(self, predicate: Callable[[EventLog], bool], within: float = 60.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))


def make_tasks(
    topology: Topology, src: Path, dst: Path, filters: tuple[dict[str, Any], ...] = ({"name": "grayscale"},)
) -> list[Task]:
    """One task per file below ``src``, output under ``dst`` (PNG, same key)."""
    tasks = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        key = path.relative_to(src).as_posix()
        tasks.append(
            Task(
                job=topology.base,
                job_uid="test",
                task=key,
                input=path.as_uri(),
                output=(dst / key).with_suffix(".png").as_uri(),
                filters=filters,
            )
        )
    return tasks


async def publish(channel: AbstractChannel, topology: Topology, tasks: list[Task]) -> None:
    await publish_tasks(channel, topology, tasks)


async def ready_count(connection: AbstractRobustConnection, queue: str) -> int:
    """Ready messages in ``queue``, asked on a fresh channel (a robust channel answers a
    repeated declaration from its cache)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    finally:
        await channel.close()
    count = declared.declaration_result.message_count
    assert count is not None
    return count
