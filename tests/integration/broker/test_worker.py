"""The worker service against the real RabbitMQ, run as real ``python -m filterjob_worker`` processes.

Poison messages, graceful shutdown, fair dispatch and backpressure, metrics and
health endpoints, structured logs and configuration errors. Tests await events,
log lines, HTTP conditions and process exits; they never sleep in place of a wait.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection, DeliveryMode
from prometheus_client.parser import text_string_to_metric_families

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core.samples import make_image
from filterjob_worker.adapters.storage import to_path
from filterjob_worker.core.contract import CONTENT_TYPE
from filterjob_worker.core.envelope import ATTEMPT_HEADER, REASON_HEADER, WORKER_HEADER
from filterjob_worker.core.topology import Topology
from tests.helpers import hostile
from tests.helpers.brokers import BROKER_URL, FAST_RETRY, MANAGEMENT_URL, EventLog, make_tasks, publish
from tests.helpers.gates import Gates
from tests.helpers.workers import WorkerFactory, WorkerProcess

# -- helpers ----------------------------------------------------------------------


class ParkedLog:
    """Messages arriving in a job's ``.parked`` queue, consumed (and so removed) as they come."""

    def __init__(self) -> None:
        self.messages: list[AbstractIncomingMessage] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int, within: float = 30.0) -> list[AbstractIncomingMessage]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return self.messages


@pytest.fixture
async def parked(connection: AbstractRobustConnection, declared: Topology) -> AsyncIterator[ParkedLog]:
    log = ParkedLog()
    channel = await connection.channel()
    queue = await channel.get_queue(declared.parked, ensure=True)
    tag = await queue.consume(log.on_message, no_ack=True)
    yield log
    await queue.cancel(tag)  # before ``declared`` deletes the queue under the consumer
    await channel.close()


@pytest.fixture
async def events(events: EventLog, channel: AbstractChannel) -> AsyncIterator[EventLog]:
    """The conftest's event log, whose durable queue is deleted afterwards (the conftest leaves it)."""
    yield events
    await channel.queue_delete(f"{events.topology.base}.test-events")


async def wait_log(worker: WorkerProcess, predicate: Callable[[dict[str, Any]], bool], within: float = 30.0) -> None:
    await asyncio.to_thread(worker.wait_log, predicate, within)


async def terminate(worker: WorkerProcess, within: float = 30.0) -> int:
    """SIGTERM a worker and wait for it to exit; returns its exit code."""
    worker.proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(worker.proc.wait, within)


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def http_json(url: str) -> tuple[int, Any]:
    status, text = await http_get(url)
    return status, json.loads(text)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text exposition (``name`` is the sample's name)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def output_exists(task_output: str) -> bool:
    return to_path(task_output).is_file()


def assert_clean_logs(worker: WorkerProcess, name: str) -> None:
    """Every line one JSON object naming the worker; task lines carry their context; no password."""
    raw = "".join(worker.raw)
    assert ":guest@" not in raw
    assert worker.raw
    for text in worker.raw:
        line = json.loads(text)
        assert isinstance(line, dict), text
        assert {"ts", "level", "logger", "msg"} <= line.keys(), text
        assert line["worker"] == name, text
    task_lines = [line for line in worker.lines if str(line["msg"]).startswith("task ")]
    assert task_lines
    for line in task_lines:
        assert {"job", "task", "attempt", "worker"} <= line.keys(), line
        assert isinstance(line["attempt"], int)


# -- 1. poison messages -------------------------------------------------------------


async def _good_task_still_served(
    channel: AbstractChannel, declared: Topology, events: EventLog, tmp_path: Path
) -> None:
    """A good task published after a poison one succeeds: the worker kept serving."""
    src = tmp_path / "after-in"
    src.mkdir()
    make_image((64, 48), seed=1).save(src / "good-after.jpg")
    (good,) = make_tasks(declared, src, tmp_path / "after-out")
    await publish(channel, declared, [good])
    await events.wait_for(lambda log: good.task in {e.task for e in log.of("succeeded")}, within=30)
    assert output_exists(good.output)


async def test_a_task_whose_parked_queue_is_gone_is_never_acked_and_is_parked_once_the_queue_is_back(
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    declared: Topology,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    """Before, the broker returned the parked copy as unroutable, the worker acked the delivery
    anyway, and the task was gone from every queue."""
    src, dst = images(0, broken=1)
    (task,) = make_tasks(declared, src, dst)
    worker = spawn_worker()
    await worker.consuming()
    await channel.queue_delete(declared.parked)  # deleted behind the worker's back
    await publish(channel, declared, [task])
    line = await asyncio.to_thread(
        worker.wait_log, lambda line: str(line.get("msg", "")).startswith("could not settle a delivery")
    )
    assert f"returned a message for queue {declared.parked!r} (NO_ROUTE" in line["msg"]
    assert line["level"] == "error"

    await declare(channel, declared)  # the parked queue is back, bound to the dead letters again
    log = ParkedLog()
    parked_channel = await connection.channel()
    queue = await parked_channel.get_queue(declared.parked)
    tag = await queue.consume(log.on_message, no_ack=True)
    try:
        (message,) = await log.wait_for(1)
    finally:
        await queue.cancel(tag)
        await parked_channel.close()
    assert message.body == task.to_json()
    assert await terminate(worker) == 0


@pytest.mark.parametrize("kind", ["malformed", "unknown-filter", "corrupt-image"])
async def test_permanent_poison_is_parked_at_once_and_worker_keeps_serving(
    kind: str,
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    parked: ParkedLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    worker = spawn_worker()
    src, dst = images(1, broken=1)  # broken[0] is a corrupt JPEG
    if kind == "malformed":
        message_id, body = "not-json", b'{"v": 1, "job": '
        await channel.default_exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                content_type=CONTENT_TYPE,
                delivery_mode=DeliveryMode.PERSISTENT,
                headers={ATTEMPT_HEADER: 1},
            ),
            routing_key=declared.tasks,
        )
    else:
        good = next(t for t in make_tasks(declared, src, dst) if not t.task.startswith("broken/"))
        if kind == "unknown-filter":
            task = dataclasses.replace(good, task="bad-filter", filters=({"name": "no-such-filter"},))
        else:
            task = next(t for t in make_tasks(declared, src, dst) if t.task.startswith("broken/"))
        message_id, body = task.task, task.to_json()
        await publish(channel, declared, [task])

    (message,) = await parked.wait_for(1)
    headers = message.headers or {}
    reason = str(headers[REASON_HEADER])
    assert message.message_id == message_id
    assert message.body == body
    assert headers[ATTEMPT_HEADER] == 1
    assert headers[WORKER_HEADER] == "w0"
    assert isinstance(headers["x-failed-at"], int)
    if kind == "malformed":
        assert reason.startswith("not a valid task message: body is not JSON")
    elif kind == "unknown-filter":
        assert reason.startswith("filters[0]: name is unknown filter")
        assert "unknown filter 'no-such-filter'" in reason
    else:
        assert reason.startswith("not a usable image: ")

    await _good_task_still_served(channel, declared, events, tmp_path)
    assert not events.of("retrying")
    failed = events.of("failed")
    if kind == "malformed":
        assert failed == []  # undecodable: no task to report on, only the parked message
    else:
        assert [(e.task, e.attempt, e.reason) for e in failed] == [(message_id, 1, reason)]
    assert await terminate(worker) == 0


@hostile.LARGE_REPRS
async def test_hostile_messages_all_end_parked_with_a_reason_and_the_worker_keeps_consuming(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    parked: ParkedLog,
    spawn_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    """Bodies and headers drawn by hypothesis (a fixed seed) next to those the fuzz tests found: before,
    a body such as 5000 digits escaped the decoder, its delivery was never settled, and a worker whose
    prefetch such deliveries filled stopped consuming."""
    valid = {
        "v": 1,
        "job": "test/hostile",
        "jobUid": "u",
        "task": "a.png",
        "input": (tmp_path / "in" / "missing.png").as_uri(),
        "output": (tmp_path / "out" / "a.jpg").as_uri(),
        "filters": [{"name": "blur", "radius": 2}],
    }
    found = [
        b"1" * 5000,
        hostile.deep_body(100_000),
        hostile.dumps({**valid, "task": "\ud800"}),
        hostile.dumps({**valid, "task": "t" * 300}),
        hostile.dumps({**valid, "input": "s3://bucket/a.png"}),
        hostile.dumps({**valid, "input": "file:///in/a%00b.png"}),
    ]
    bodies = found + hostile.drawn(hostile.near_valid_bodies(valid), count=30, seed=17)
    headers = hostile.drawn(hostile.HEADERS, count=len(bodies), seed=17)
    found_headers = [{"x-attempt": "9" * 30}, {"x-custom": bytearray(b"\xff")}, {"x-death": [{"reason": 5}]}]
    worker = spawn_worker()  # concurrency 1, prefetch 2: two stuck deliveries would stop it
    for n, body in enumerate(bodies):
        wire = hostile.wire_headers({**headers[n], **(found_headers[n] if n < len(found_headers) else {})})
        message = aio_pika.Message(body, message_id=f"hostile-{n}", headers=wire, delivery_mode=DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key=declared.tasks)

    await parked.wait_for(len(bodies), within=90)
    assert Counter(m.body for m in parked.messages) == Counter(bodies)
    for message in parked.messages:
        reason = (message.headers or {}).get(REASON_HEADER)
        assert hostile.reason_problem(reason) is None, (message.body[:100], reason)
    await _good_task_still_served(channel, declared, events, tmp_path)
    assert await terminate(worker) == 0


async def test_transient_failure_is_retried_with_backoff_then_parked(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    parked: ParkedLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    worker = spawn_worker()
    src, dst = images(1)
    (template,) = make_tasks(declared, src, dst)
    sock_path = tmp_path / "in.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))  # open(2) on a socket file fails with ENXIO: a transient error
        task = dataclasses.replace(template, task="socket", input=sock_path.as_uri())
        await worker.consuming()
        await publish(channel, declared, [task])
        await events.wait_for(lambda log: len(log.of("retrying")) + len(log.of("failed")) == FAST_RETRY.max_attempts)
        (message,) = await parked.wait_for(1)

    max_attempts = FAST_RETRY.max_attempts
    retrying = events.of("retrying")
    assert [e.attempt for e in retrying] == list(range(1, max_attempts))
    assert all(e.task == "socket" and "No such device or address" in str(e.reason) for e in retrying)
    (failed,) = events.of("failed")
    assert failed.attempt == max_attempts
    assert str(failed.reason).startswith("cannot read")

    headers = message.headers or {}
    assert headers[ATTEMPT_HEADER] == max_attempts
    assert str(headers[REASON_HEADER]).startswith("cannot read")
    assert message.body == task.to_json()
    assert message.message_id == "socket"
    # It really went through the delay queues, each once and in order (x-death lists the most
    # recent first), and each expired back into the task queue.
    deaths = [(str(d["queue"]), str(d["reason"]), int(d["count"])) for d in reversed(headers["x-death"])]
    assert deaths == [(q, "expired", 1) for q in declared.retry_queues]

    # Exponential backoff, from what happened rather than from the clock: the worker asked for
    # 0.2 s then 0.4 s, and the broker holds a message in each delay queue for just that long.
    delays = [line["msg"] for line in worker.lines if str(line["msg"]).startswith("task failed, retry in")]
    assert [d.split(":")[0] for d in delays] == [
        f"task failed, retry in {FAST_RETRY.delay(n):.1f} s" for n in range(max_attempts - 1)
    ]
    api, auth = _management()
    ttls = []
    async with aiohttp.ClientSession(headers=auth) as session:
        for queue in declared.retry_queues:
            async with session.get(api + "queues/%2F/" + quote(queue, safe="")) as response:
                response.raise_for_status()
                ttls.append((await response.json())["arguments"]["x-message-ttl"])
    assert ttls == [round(FAST_RETRY.delay(n) * 1000) for n in range(max_attempts - 1)]

    await _good_task_still_served(channel, declared, events, tmp_path)
    assert await terminate(worker) == 0


# -- 2. graceful shutdown -----------------------------------------------------------


@pytest.mark.slow
async def test_sigterm_finishes_the_in_flight_task_and_returns_nothing(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    src, dst = images(4)
    tasks = make_tasks(declared, src, dst)
    names = [task.task for task in tasks]
    # Every input is a gate: the worker holds its task there until the test lets it go on, so the
    # task is still in flight when the SIGTERM lands, however fast the machine.
    gates = Gates(src, names)
    gates.close()
    first = spawn_worker(FILTERJOB_CONCURRENCY="1", FILTERJOB_PREFETCH="1")
    await first.consuming()
    await publish(channel, declared, tasks)

    held, fd = await asyncio.to_thread(gates.first_reached, names)
    _, text = await http_get(first.health_url + "/metrics")
    assert metric(text, "filterjob_tasks_in_flight") == 1
    assert metric(text, "filterjob_tasks_total", outcome="succeeded") == 0

    first.proc.send_signal(signal.SIGTERM)
    # Draining: not ready any more (so no new traffic), still alive, still finishing.
    while True:
        status, ready = await http_json(first.health_url + "/readyz")
        if status == 503:
            break
        assert first.proc.poll() is None, "exited before /readyz reported draining"
        await asyncio.sleep(0.02)  # polling interval: the signal may not be handled yet
    assert ready["ready"] is False
    assert ready["reason"].startswith("draining")
    status, _ = await http_json(first.health_url + "/healthz")
    assert status == 200
    assert first.proc.poll() is None  # the in-flight task is held at its gate
    gates.release(held, fd)
    assert await asyncio.to_thread(first.proc.wait, 30) == 0
    first.close()

    assert "draining 1 in-flight tasks (grace 20 s)" in first.messages()
    assert first.messages()[-1] == "worker stopped"
    assert not any("did not finish" in m for m in first.messages())
    await events.wait_for(lambda log: len(log.of("succeeded")) >= 1)
    (done,) = events.of("succeeded")
    assert done.worker == "w0"
    assert output_exists(done.output)

    second = spawn_worker(FILTERJOB_CONCURRENCY="1", FILTERJOB_PREFETCH="1")
    rest = [name for name in names if name != held]
    while rest:
        name, fd = await asyncio.to_thread(gates.first_reached, rest)
        gates.release(name, fd)
        rest.remove(name)
    await events.wait_for(lambda log: len(log.finished()) == len(tasks), within=60)
    succeeded = events.of("succeeded")
    assert Counter(e.task for e in succeeded) == Counter(t.task for t in tasks)  # each exactly once
    assert not any(e.redelivered for e in events.events)
    assert not events.of("retrying")
    assert not events.of("failed")
    assert Counter(e.worker for e in succeeded) == {"w0": 1, "w1": len(tasks) - 1}
    assert all(output_exists(t.output) for t in tasks)
    assert await terminate(second) == 0


# -- 3. fair dispatch and backpressure ------------------------------------------------


def _management() -> tuple[str, dict[str, str]]:
    parts = urlsplit(MANAGEMENT_URL)
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}/api/"
    return base, {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


@pytest.mark.slow
async def test_fair_dispatch_and_prefetch_bound_unacked(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    prefetch, count = 1, 8
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    names = [f"t{i}.png" for i in range(count)]
    for seed, name in enumerate(names):
        make_image((40, 30), seed).save(src / name)
    tasks = make_tasks(declared, src, dst)
    # Every input is a gate: a worker holds its task there until the test lets it go on,
    # so what each worker holds is decided by the test, not by how fast images are.
    gates = Gates(src, names)
    gates.close()
    workers = [spawn_worker(FILTERJOB_PREFETCH=str(prefetch), FILTERJOB_CONCURRENCY="1") for _ in range(2)]
    for worker in workers:
        await worker.consuming()
    await publish(channel, declared, tasks)
    waiting = list(names)

    async def next_gate() -> tuple[str, int]:
        name, fd = await asyncio.to_thread(gates.first_reached, waiting)
        waiting.remove(name)
        return name, fd

    held = [await next_gate(), await next_gate()]  # concurrency 1: one gate per worker

    # -- backpressure: while both are held, the broker shows what each one holds.
    names_of_workers = {f"filterjob-worker w{i}" for i in range(len(workers))}
    api, auth = _management()
    consumers: dict[str, dict[str, Any]] = {}  # connection name → consumer, as the broker reports it
    unacked: dict[str, list[int]] = {name: [] for name in names_of_workers}
    queue: dict[str, Any] = {}

    async def get(session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(api + path) as response:
            response.raise_for_status()
            return await response.json()

    async def sample(session: aiohttp.ClientSession) -> None:
        # The broker names connections by peer; the workers' own names are "user provided".
        # Details of objects still being created or torn down can be empty lists: skip them.
        named = {c["name"]: c.get("user_provided_name") for c in await get(session, "connections")}
        for consumer in await get(session, "consumers"):
            details = consumer.get("channel_details") or {}
            connection = named.get(details.get("connection_name"))
            if consumer["queue"]["name"] == declared.tasks and connection in names_of_workers:
                consumers[connection] = consumer
        for stats in await get(session, "channels"):
            connection = named.get((stats.get("connection_details") or {}).get("name"))
            if connection in names_of_workers and "messages_unacknowledged" in stats:
                unacked[connection].append(int(stats["messages_unacknowledged"]))
        queue.update(await get(session, "queues/%2F/" + quote(declared.tasks, safe="")))

    def reported() -> bool:
        # Statistics are emitted every few seconds and may still describe the time before (or
        # between) the deliveries; the held state does not change, so they come to show it:
        # each worker holding something, the queue counting a delivery to each.
        return (
            consumers.keys() == names_of_workers
            and all(values and values[-1] > 0 for values in unacked.values())
            and queue.get("messages_unacknowledged", 0) >= len(workers)
        )

    async with aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=10)) as session:
        deadline = time.monotonic() + 30
        await sample(session)
        while not reported():
            assert time.monotonic() < deadline, f"the management API never showed the held tasks: {unacked} {queue}"
            await asyncio.sleep(0.25)  # polling interval of the management API
            await sample(session)

    for consumer in consumers.values():
        assert consumer["prefetch_count"] == prefetch
        assert consumer["ack_required"] is True
    for connection, values in unacked.items():
        assert values[-1] == prefetch, (connection, values)  # the bound is reached ...
        assert max(values) <= prefetch, (connection, values)  # ... and never exceeded
    ready, in_flight = queue.get("messages_ready"), queue["messages_unacknowledged"]
    assert (ready, in_flight) == (count - 2 * prefetch, 2 * prefetch), queue  # the rest waits in the queue

    # -- fairness: release the gate held longest, one at a time. The worker just freed must
    # take the next task while the other is still busy: the shares alternate exactly.
    finished: list[str] = []  # workers, in the order their tasks succeeded
    while held:
        name, fd = held.pop(0)
        gates.release(name, fd)
        await events.wait_for(lambda log, task=name: task in log.finished())
        (done,) = (e for e in events.of("succeeded") if e.task == name)
        finished.append(done.worker)
        if waiting:
            held.append(await next_gate())
    first, second = finished[:2]
    assert first != second, finished
    assert finished == [first, second] * (count // 2)
    assert Counter(e.task for e in events.of("succeeded")) == Counter(names)
    assert not any(e.redelivered for e in events.events)
    assert all(output_exists(t.output) for t in tasks)
    for worker in workers:
        assert await terminate(worker) == 0


# -- 4 and 5. metrics, health endpoints and logs ---------------------------------------------


async def test_metrics_health_and_logs_after_a_mixed_run(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    good, bad = 6, 4
    src, dst = images(good, broken=bad)
    tasks = make_tasks(declared, src, dst)
    # DEBUG: successes are logged per task only at that level.
    worker = spawn_worker(FILTERJOB_CONCURRENCY="2", FILTERJOB_LOG_LEVEL="DEBUG")
    await worker.consuming()
    status, ready = await http_json(worker.health_url + "/readyz")
    assert (status, ready["ready"], ready["reason"]) == (200, True, "consuming")

    await publish(channel, declared, tasks)
    await events.wait_for(lambda log: len(log.finished()) == good + bad)
    assert len(events.of("succeeded")) == good
    assert len(events.of("failed")) == bad

    status, text = await http_get(worker.health_url + "/metrics")
    assert status == 200
    assert metric(text, "filterjob_tasks_total", outcome="succeeded") == good
    assert metric(text, "filterjob_tasks_total", outcome="parked") == bad
    assert metric(text, "filterjob_tasks_total", outcome="retried") == 0
    assert metric(text, "filterjob_parked_total", cause="permanent") == bad
    assert metric(text, "filterjob_task_duration_seconds_count") == good + bad
    assert metric(text, "filterjob_task_duration_seconds_sum") > 0
    assert metric(text, "filterjob_tasks_in_flight") == 0
    assert metric(text, "filterjob_worker_health", state="healthy") == 1

    status, health = await http_json(worker.health_url + "/healthz")
    assert (status, health) == (200, {"state": "healthy", "reason": "ok"})
    status, ready = await http_json(worker.health_url + "/readyz")
    assert (status, ready["ready"], ready["state"]) == (200, True, "healthy")

    assert await terminate(worker) == 0
    worker.close()
    assert_clean_logs(worker, "w0")
    start = next(line for line in worker.lines if str(line["msg"]).startswith("worker starting"))
    assert "guest:***@" in start["msg"]  # the URL is logged, its password is not
    logged = {(line["task"], line["attempt"]) for line in worker.lines if "task" in line}
    assert logged == {(t.task, 1) for t in tasks}


async def test_a_worker_given_port_0_serves_on_a_free_port_and_logs_which(spawn_worker: WorkerFactory) -> None:
    worker = spawn_worker(FILTERJOB_HEALTH_PORT="0")
    await worker.consuming()
    (serving,) = [line for line in worker.lines if str(line.get("msg", "")).startswith("serving /healthz")]
    assert serving["msg"] == f"serving /healthz, /readyz and /metrics on port {serving['port']}"
    assert serving["port"] > 0
    status, ready = await http_json(f"http://127.0.0.1:{serving['port']}/readyz")
    assert (status, ready["reason"]) == (200, "consuming")
    assert await terminate(worker) == 0


async def test_unreachable_broker_logs_json_without_the_password(spawn_worker: WorkerFactory) -> None:
    # Nothing listens on port 1: connecting fails and the error is logged, scrubbed.
    worker = spawn_worker(FILTERJOB_BROKER_URL="amqp://guest:guest@127.0.0.1:1/")
    await wait_log(worker, lambda line: str(line.get("msg", "")).startswith("cannot start consuming"))
    status, health = await http_json(worker.health_url + "/healthz")
    assert (status, health["state"]) == (200, "degraded")
    status, ready = await http_json(worker.health_url + "/readyz")
    assert (status, ready["reason"]) == (503, "not connected to the broker")
    assert await terminate(worker) == 0
    worker.close()
    raw = "".join(worker.raw)
    assert ":guest@" not in raw
    assert "guest:***@" in raw
    for text in worker.raw:
        assert json.loads(text)["worker"] == "w0"


# -- start-up before the job's queues exist ---------------------------------------------


@pytest.mark.slow
async def test_worker_waits_for_its_queues_without_leaking_connections(
    channel: AbstractChannel,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    late = Topology.for_job(namespace="test", name="late-topology", uid=uuid.uuid4().hex, retry=FAST_RETRY)
    worker = spawn_worker(FILTERJOB_QUEUE=late.tasks)

    def failures() -> int:
        return sum(str(line.get("msg", "")).startswith("cannot start consuming") for line in worker.lines)

    await wait_log(worker, lambda _: failures() >= 2)
    assert f"no queue '{late.tasks}'" in next(m for m in worker.messages() if m.startswith("cannot start"))
    await declare(channel, late)
    try:
        await worker.consuming()
        # Each failed start closed its connection: the broker sees exactly one (stats may lag).
        api, auth = _management()
        deadline = time.monotonic() + 15
        async with aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                async with session.get(api + "connections") as response:
                    response.raise_for_status()
                    names = [c.get("user_provided_name") for c in await response.json()]
                if names.count("filterjob-worker w0") == 1:
                    break
                assert time.monotonic() < deadline, f"worker connections: {names.count('filterjob-worker w0')}"
                await asyncio.sleep(0.25)  # polling interval of the management API
        assert not any("connection lost" in m for m in worker.messages())
        src, dst = images(1)
        (task,) = make_tasks(late, src, dst)
        log = EventLog(late)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(late.events, routing_key="#")
        await queue.consume(log.on_message, no_ack=True)
        await publish(channel, late, [task])
        await log.wait_for(lambda seen: len(seen.of("succeeded")) == 1)
        assert output_exists(task.output)
        assert await terminate(worker) == 0
    finally:
        await delete(channel, late)


# -- 6. configuration errors -------------------------------------------------------------


VARIABLES = (
    "FILTERJOB_BROKER_URL",
    "FILTERJOB_QUEUE",
    "FILTERJOB_CONCURRENCY",
    "FILTERJOB_PREFETCH",
    "FILTERJOB_HEALTH_PORT",
    "FILTERJOB_LOG_LEVEL",
    "FILTERJOB_MAX_ATTEMPTS",
    "FILTERJOB_BACKOFF_SECONDS",
    "FILTERJOB_MAX_BACKOFF_SECONDS",
    "FILTERJOB_GRACE_SECONDS",
    "FILTERJOB_EXECUTOR",
    "FILTERJOB_WORKER_ID",
)
GOOD_ENV = {"FILTERJOB_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/", "FILTERJOB_QUEUE": "fj.t.cfg.x.tasks"}


def run_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FILTERJOB_")}
    return subprocess.run(
        [sys.executable, "-m", "filterjob_worker", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def with_good_defaults(env: dict[str, str]) -> dict[str, str]:
    """GOOD_ENV with ``env`` applied, where an empty value removes the variable."""
    return {k: v for k, v in {**GOOD_ENV, **env}.items() if v}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FILTERJOB_QUEUE": ""}, ["FILTERJOB_QUEUE is required"]),
        ({"FILTERJOB_CONCURRENCY": "abc"}, ["FILTERJOB_CONCURRENCY must be an integer, got 'abc'"]),
        (
            {"FILTERJOB_CONCURRENCY": "4", "FILTERJOB_PREFETCH": "2"},
            ["FILTERJOB_PREFETCH (2) must be at least FILTERJOB_CONCURRENCY (4)"],
        ),
        (
            {"FILTERJOB_BROKER_URL": "http://guest:guest@127.0.0.1:5672/"},
            ["FILTERJOB_BROKER_URL must be an amqp:// or amqps:// URL"],
        ),
        (
            {
                "FILTERJOB_BROKER_URL": "redis://guest:guest@127.0.0.1/",
                "FILTERJOB_QUEUE": "",
                "FILTERJOB_CONCURRENCY": "abc",
                "FILTERJOB_HEALTH_PORT": "99999",
            },
            [
                "FILTERJOB_BROKER_URL must be an amqp://",
                "FILTERJOB_QUEUE is required",
                "FILTERJOB_CONCURRENCY must be an integer",
                "FILTERJOB_HEALTH_PORT must be between 0 and 65535",
            ],
        ),
    ],
    ids=["missing-queue", "concurrency-abc", "prefetch-below-concurrency", "bad-scheme", "all-at-once"],
)
def test_bad_configuration_exits_2_naming_each_variable(env: dict[str, str], expected: list[str]) -> None:
    result = run_worker(with_good_defaults(env))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("filterjob-worker: invalid configuration:")
    problems = [line.removeprefix("  - ") for line in result.stderr.splitlines()[1:]]
    assert len(problems) == len(expected), result.stderr
    for problem, wanted in zip(problems, expected, strict=True):
        assert problem.startswith(wanted), result.stderr
    assert ":guest@" not in result.stderr
    assert result.stdout == ""


def test_help_prints_the_variable_table() -> None:
    result = run_worker({}, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: filterjob-worker" in result.stdout
    for variable in VARIABLES:
        assert f"``{variable}``" in result.stdout


async def test_a_local_worker_drains_and_exits_when_its_supervisor_is_killed(declared: Topology) -> None:
    """FILTERJOB_PARENT_PID: a SIGKILLed ``filterjob run`` leaves no worker consuming for ever."""
    # A stand-in parent that starts a real worker the way the supervisor does; the worker
    # inherits its stderr, so that pipe reaches end-of-file only once the worker has exited.
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import os, subprocess, sys\n"
        "env = {**os.environ, 'FILTERJOB_PARENT_PID': str(os.getpid())}\n"
        "subprocess.Popen([sys.executable, '-m', 'filterjob_worker'], env=env, stdin=subprocess.DEVNULL)\n"
        "sys.stdin.read()\n",
        env={
            **os.environ,
            "FILTERJOB_BROKER_URL": BROKER_URL,
            "FILTERJOB_QUEUE": declared.tasks,
            "FILTERJOB_HEALTH_PORT": "0",
        },
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert parent.stderr is not None
    said: list[str] = []

    async def until(text: str) -> None:
        assert parent.stderr is not None
        while line := (await parent.stderr.readline()).decode():
            said.append(line)
            if text in line:
                return
        raise AssertionError(f"the worker ended without saying {text!r}: {''.join(said)[-2000:]}")

    await asyncio.wait_for(until('"msg": "consuming '), 30)
    parent.kill()  # its wait() would also wait for the pipe the worker holds: not awaited here
    try:
        await asyncio.wait_for(until('"msg": "worker stopped"'), 30)
        assert any("signal received, draining" in line for line in said)
        # End of file: the worker has gone, not only logged its last line.
        assert await asyncio.wait_for(parent.stderr.read(), 30) == b""
    finally:
        if parent.stderr.at_eof():
            await parent.wait()
