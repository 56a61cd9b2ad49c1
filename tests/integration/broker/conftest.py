"""Fixtures for tests against the real RabbitMQ: per-test topologies, real worker
processes, and an event log that tests await instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from filterjob_operator import broker
from filterjob_operator.samples import make_samples
from filterjob_worker.contract import Event, Task
from filterjob_worker.topology import RetryPolicy, Topology, declare, delete

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(BROKER_URL, client_properties={"connection_name": "filterjob tests"})
    yield conn
    await conn.close()


@pytest.fixture
async def channel(connection: AbstractRobustConnection) -> AbstractChannel:
    return await connection.channel(publisher_confirms=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> Topology:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    return Topology.for_job(namespace="test", name=name, uid=uuid.uuid4().hex, retry=FAST_RETRY)


@pytest.fixture
async def declared(channel: AbstractChannel, topology: Topology) -> AsyncIterator[Topology]:
    await declare(channel, topology)
    yield topology
    await delete(channel, topology)


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


class WorkerProcess:
    """A real ``python -m filterjob_worker`` with its JSON log lines collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.health_port = int(env["FILTERJOB_HEALTH_PORT"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filterjob_worker"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # A session of its own: close() ends its pool processes too, which would otherwise
            # outlive a killed worker and hold its stderr open.
            start_new_session=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.raw.append(line)
                with contextlib.suppress(ValueError):  # a non-JSON line is kept in raw only
                    self.lines.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Block until a log line matches (or the process ends); returns the line."""

        def found() -> dict[str, Any] | None:
            return next((line for line in self.lines if predicate(line)), None)

        with self._changed:
            ok = self._changed.wait_for(lambda: found() is not None or not self._reader.is_alive(), timeout)
            line = found()
        if not ok or line is None:
            raise AssertionError(f"log line not seen; worker said:\n{''.join(self.raw)[-3000:]}")
        return line

    async def consuming(self, within: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_log, lambda line: line.get("msg", "").startswith("consuming"), within)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def messages(self) -> list[str]:
        return [str(line.get("msg", "")) for line in self.lines]


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def spawn_worker(declared: Topology) -> Iterator[WorkerFactory]:
    started: list[WorkerProcess] = []

    def spawn(**overrides: str) -> WorkerProcess:
        env = {
            "FILTERJOB_BROKER_URL": BROKER_URL,
            "FILTERJOB_QUEUE": declared.tasks,
            "FILTERJOB_CONCURRENCY": "1",
            "FILTERJOB_HEALTH_PORT": str(free_port()),
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


@pytest.fixture
def images(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    def make(count: int, *, broken: int = 0, size: tuple[int, int] = (64, 48)) -> tuple[Path, Path]:
        src, dst = tmp_path / "in", tmp_path / "out"
        make_samples(src, count=count, broken=broken, size=size)
        return src, dst

    return make


async def publish(channel: AbstractChannel, topology: Topology, tasks: list[Task]) -> None:
    await broker.publish_tasks(channel, topology, tasks)
