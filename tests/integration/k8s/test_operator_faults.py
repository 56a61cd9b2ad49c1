"""The real operator under faults and load: hard kills of an operator process, and the scaler's
decisions against queue states held at the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import aiohttp.web
import attrs
import kmock
import pytest
from aio_pika.abc import AbstractIncomingMessage
from PIL import Image

from filterjob_operator.samples import make_samples, write_broken
from filterjob_operator.spec import parse_job
from filterjob_operator.workerenv import topology_of
from filterjob_worker.contract import Event
from filterjob_worker.storage import TEMP_SUFFIX
from filterjob_worker.topology import Topology, declare
from tests.integration.broker.conftest import BROKER_URL

from .conftest import K8sApi
from .emulator import DEPLOYMENTS, FILTERJOBS, ClusterEmulator, RunningCluster
from .kubelet import Kubelet
from .realcluster import HANDLERS
from .test_operator import phase_is, png_outputs

T = TypeVar("T")
FILTERJOB = Path(sys.executable).parent / "filterjob"


NS = "photos"


def job_body(name: str, src: Path, dst: Path, **spec: Any) -> dict[str, Any]:
    """A FilterJob in NS (as test_operator.py made them on the emulator)."""
    return {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "source": {"uri": src.as_uri() + "/"},
            "destination": {"uri": dst.as_uri() + "/", "format": "png"},
            "filters": [{"name": "thumbnail", "width": 48, "height": 48}, {"name": "grayscale"}],
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.2},
            "broker": {"secretRef": {"name": "rabbitmq"}},
            **spec,
        },
    }


def create(k8s_api: K8sApi, body: dict[str, Any], created: list[dict[str, Any]]) -> dict[str, Any]:
    stored: dict[str, Any] = k8s_api.custom.create_namespaced_custom_object(
        "filterjob.dev", "v1alpha1", NS, "filterjobs", body
    )
    created.append(stored)
    return stored


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_of(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("status") or {}


class OperatorProcess:
    """``filterjob operator`` as an OS process of its own against the emulator.

    :meth:`kill` is SIGKILL: no handler, no cleanup, nothing flushed — a crashed or evicted pod.
    """

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.runs += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"operator-{self.runs}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(FILTERJOB), "operator", "-n", NS, "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        assert self.proc is not None, "not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (the operator stops its daemons and exits); SIGKILL if it has not within 30 s."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        finally:
            self.proc = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


@pytest.fixture
def operator_process(kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "FILTERJOB_STATUS_INTERVAL": "0.5",
        "FILTERJOB_METRICS_PORT": "0",
    }
    process = OperatorProcess(tmp_path / "operator", env)
    try:
        yield process
    finally:
        process.stop()


class BrokerThread:
    """An event loop in a thread of its own for broker connections that outlive one call (deliveries
    held unacked), usable from synchronous tests that block on the emulator."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broker-client", daemon=True)
        self.thread.start()
        self.connections: list[aio_pika.abc.AbstractConnection] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self) -> aio_pika.abc.AbstractConnection:
        """A connection, closed with this thread (unacked deliveries go back to their queues)."""
        connection = self.run(aio_pika.connect(BROKER_URL))
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            self.run(connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def broker_thread() -> Iterator[BrokerThread]:
    running = BrokerThread()
    yield running
    running.close()


class EventTap:
    """A queue of its own bound to a job's events exchange: every task event, read at the end."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.queue = f"{topology.base}.test-tap"

    async def open(self) -> None:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            await declare(channel, self.topology)  # what the operator declares, before it starts
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(self.topology.events, "task.#")

    async def drain(self) -> list[Event]:
        events: list[Event] = []
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.queue)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                events.append(Event.from_json(message.body))
            await channel.queue_delete(self.queue)
        return events


async def ready_now(queue: str) -> int:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


@pytest.fixture
def namespace(k8s_api: K8sApi) -> None:
    """The jobs' namespace (an operator watching namespaces by name waits for it to exist) with the
    broker Secret they name (``job_body`` uses ``rabbitmq``)."""
    k8s_api.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    k8s_api.core.create_namespaced_secret(
        NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rabbitmq"}, "stringData": {"url": BROKER_URL}}
    )


@pytest.fixture
def jobs(k8s_api: K8sApi) -> Iterator[list[dict[str, Any]]]:
    """FilterJobs created by the test; their queues are removed afterwards."""
    bodies: list[dict[str, Any]] = []
    yield bodies

    async def forget(topology: Topology) -> None:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            for queue in [*topology.queues, f"{topology.base}.test-tap"]:
                await channel.queue_delete(queue)
            await channel.exchange_delete(topology.events)
            await channel.exchange_delete(topology.dead_letters)

    for body in bodies:
        asyncio.run(forget(topology_of(parse_job(body))))


# --------------------------------------------------------------------------------------------------
# Hard kills.


@attrs.define(kw_only=True)
class GatedEmulator(ClusterEmulator):
    """The emulator, with gates a test sets up: coroutines that see each request before it changes
    anything, and may hold it or fail it."""

    gates: list[Callable[[kmock.Request], Awaitable[None]]] = attrs.field(factory=list, init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        for gate in list(self.gates):
            await gate(request)
        return await super()._handle(request)


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    """The ``cluster`` fixture of conftest.py, with a :class:`GatedEmulator`."""
    with RunningCluster(GatedEmulator) as running:
        yield running
        errors = running.emulator.internal_errors
    assert not errors, f"the emulator failed internally: {errors!r}"


@dataclasses.dataclass
class Held:
    """Requests held unanswered by :func:`hold_cursor_saves`."""

    arrived: threading.Event = dataclasses.field(default_factory=threading.Event)
    released: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def wait(self, timeout: float) -> bool:
        return self.arrived.wait(timeout)


def hold_cursor_saves(cluster: RunningCluster, name: str, *, from_enqueued: int) -> Held:
    """Hold every status write that would save the job's enqueue cursor at ``from_enqueued`` or
    beyond, unanswered and not applied, until :func:`release`: the operator hangs after the broker
    confirmed those tasks and before its cursor says so."""
    held = Held()

    async def gate(request: kmock.Request) -> None:
        data = request.data if isinstance(request.data, dict) else {}
        saved = (data.get("status") or {}).get("enqueued", 0)
        if held.released.is_set() or request.subresource != "status" or request.name != name:
            return
        if saved >= from_enqueued:
            held.arrived.set()
            await held.released.wait()
            raise kmock.KubernetesError(status=504, reason="Timeout", message="held by the test, never applied")

    cluster.call(lambda em: em.gates.append(gate), copy_result=False)
    return held


def release(cluster: RunningCluster, held: Held) -> None:
    """Fail the held requests (without applying them) and let later ones through."""
    cluster.call(lambda _: held.released.set())


def broken_every(directory: Path, step: int, count: int) -> list[Path]:
    """Broken inputs spread through the sorted input keys (one every ``step`` top-level images), so a
    re-published batch holds some: a failure enqueued twice must still count once."""
    return [write_broken(directory / f"img-{i:05d}x.jpg", "corrupt", seed=i) for i in range(0, count, step)]


@pytest.mark.slow
@pytest.mark.usefixtures("namespace")
def test_a_killed_operator_loses_and_double_counts_nothing(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    jobs: list[dict[str, Any]],
    kubelet: Kubelet,
    operator_process: OperatorProcess,
) -> None:
    """SIGKILL the operator process mid-enqueue and again mid-run; each time a new one takes over.

    Enqueueing persists its cursor (``status.enqueued``) once a batch is confirmed, so a kill
    between a batch's confirmation and that save republishes up to one batch. The first kill
    lands in that window on purpose: those tasks run twice, which outputs (atomic, same bytes)
    and counts (per distinct task) must not show.
    """
    batch = 20
    operator_process.env["FILTERJOB_ENQUEUE_BATCH"] = str(batch)
    made = make_samples(tmp_path / "in", count=600, size=(96, 72))
    broken = broken_every(tmp_path / "in", step=2 * batch, count=600)
    total = len(made.good) + len(broken)
    body = job_body("crash", tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["workers"] = {"concurrency": 1}  # and one worker: a run long enough to be killed in
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    stored = create(k8s_api, body, jobs)
    topology = topology_of(parse_job(stored))
    tap = EventTap(topology)
    asyncio.run(tap.open())

    # 1. Killed mid-enqueue, at the worst moment: the broker confirmed the second batch, and the
    # operator waits for the API server to save the cursor past it (a request that never returns).
    held = hold_cursor_saves(cluster, "crash", from_enqueued=2 * batch)
    operator_process.start()
    assert held.wait(60), f"the operator never tried to save its cursor past batch 2:\n{operator_process.logs()}"
    operator_process.kill()
    release(cluster, held)
    killed = status_of(cluster.get(FILTERJOBS, NS, "crash") or {})
    assert (killed["phase"], killed["enqueued"]) == ("Enqueuing", batch)
    # No worker runs before the last task is enqueued, so the queue holds exactly what was published.
    assert (cluster.get(DEPLOYMENTS, NS, "crash-workers") or {})["spec"]["replicas"] == 0
    assert asyncio.run(ready_now(topology.tasks)) == 2 * batch

    # 2. Killed mid-run: enqueueing finished, the worker took 100 tasks (it holds 2 at most, so it
    # finished the others), more are queued.
    operator_process.start()
    running = cluster.wait_for_object(
        FILTERJOBS, NS, "crash", lambda o: 0 < status_of(o).get("queued", 0) <= total + batch - 100, timeout=60
    )
    operator_process.kill()
    assert (running["status"]["phase"], running["status"]["enqueued"]) == ("Running", total)
    assert 0 < len(png_outputs(tmp_path / "out")) < len(made.good)

    # 3. A third operator sees the job through.
    operator_process.start()
    job = cluster.wait_for_object(FILTERJOBS, NS, "crash", phase_is("Succeeded", "Failed"), timeout=180)
    cluster.wait_for_object(DEPLOYMENTS, NS, "crash-workers", lambda d: d["spec"]["replicas"] == 0, timeout=30)
    operator_process.stop()

    state = job["status"]
    assert (state["phase"], state["total"], state["enqueued"]) == ("Succeeded", total, total)
    assert (state["succeeded"], state["failed"]) == (len(made.good), len(broken))
    assert state["progress"] == f"{len(made.good)}/{total}"
    assert len({f["key"] for f in state["recentFailures"]}) == len(broken)
    # Counted per distinct task: the broken input of the second batch is parked twice.
    assert asyncio.run(ready_now(topology.parked)) == len(broken) + 1

    # Every good input has its output, complete and decodable; no temporary file is left behind.
    out = tmp_path / "out"
    assert png_outputs(out) == {p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good}
    assert not [p for p in out.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    for path in out.rglob("*.png"):
        with Image.open(path) as image:
            image.verify()

    # Per task: one success for each good input and one parked failure for each broken one.
    events = asyncio.run(tap.drain())
    outcomes: dict[str, set[str]] = {}
    for event in events:
        if event.kind in ("succeeded", "failed"):
            outcomes.setdefault(event.task, set()).add(event.kind)
    assert Counter(kind for kinds in outcomes.values() for kind in kinds) == {
        "succeeded": len(made.good),
        "failed": len(broken),
    }
    assert all(len(kinds) == 1 for kinds in outcomes.values())
    # The second batch was published twice, so its tasks ran twice (no worker was killed), the
    # broken input among them parked twice; nothing else ran more than once.
    runs = Counter(e.task for e in events if e.kind in ("succeeded", "failed"))
    assert sorted(runs.values()) == [1] * (total - batch) + [2] * batch
    assert kubelet.restarts(NS, "crash-workers") == 0


# --------------------------------------------------------------------------------------------------
# Scaling.


class BusyWorkers:
    """Plays the workers at the broker: takes tasks and holds them unacked, as busy workers do, and
    acks them when told. The queue states the scaler reads are then real and exactly known."""

    def __init__(self, broker_thread: BrokerThread, queue: str) -> None:
        self.broker = broker_thread
        self.held: list[AbstractIncomingMessage] = []
        self.queue = broker_thread.run(self._open(broker_thread.connect(), queue))

    @staticmethod
    async def _open(connection: aio_pika.abc.AbstractConnection, name: str) -> aio_pika.abc.AbstractQueue:
        channel = await connection.channel()
        return await channel.get_queue(name)

    def take(self, count: int) -> None:
        async def take() -> None:
            for _ in range(count):
                message = await self.queue.get(no_ack=False)
                assert message is not None
                self.held.append(message)

        self.broker.run(take())

    def ack(self, count: int) -> None:
        async def ack() -> None:
            for message in self.held[:count]:
                await message.ack()
            del self.held[:count]

        self.broker.run(ack())


@dataclasses.dataclass(frozen=True)
class Seen:
    """The job's scaling state at one moment (each change recorded by :class:`Timeline`)."""

    at: float
    phase: str | None
    #: Tasks ready, in flight and retrying, as the status reports them: the scaler's input.
    outstanding: int
    #: ``status.workers.desired``: the replicas the operator set in that same pass.
    desired: int | None
    #: The worker Deployment's ``spec.replicas``.
    replicas: int | None


class Timeline:
    """Records, with the time it was seen, every change of a job's scaling state, woken by the
    emulator's change notifications."""

    def __init__(self, cluster: RunningCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._thread.start()

    def _read(self, em: ClusterEmulator) -> tuple[Any, ...]:
        job = status_of(em.get_object(FILTERJOBS, NS, self.name) or {})
        workers = em.get_object(DEPLOYMENTS, NS, f"{self.name}-workers")
        outstanding = sum(job.get(k, 0) for k in ("queued", "inFlight", "retrying"))
        desired = (job.get("workers") or {}).get("desired")
        return job.get("phase"), outstanding, desired, workers["spec"]["replicas"] if workers else None

    def _woken(self, count: int) -> bool:
        return self.cluster.emulator.change_count != count or self._stop.is_set()

    def _run(self) -> None:
        emulator = self.cluster.emulator
        count = -1
        last: tuple[Any, ...] | None = None
        while True:
            with emulator.changed:
                emulator.changed.wait_for(functools.partial(self._woken, count))
                count = emulator.change_count
            if self._stop.is_set():
                return
            state = self.cluster.call(self._read)
            if state != last:
                self.seen.append(Seen(time.monotonic(), *state))
                last = state

    def stop(self) -> list[Seen]:
        self._stop.set()
        with self.cluster.emulator.changed:
            self.cluster.emulator.changed.notify_all()
        self._thread.join(10)
        return self.seen


def waited_before_scaling_down(seen: list[Seen], wanted: Callable[[int], int]) -> list[tuple[int, int, float]]:
    """Each scale-down while running: (from, to, seconds since the operator first read a queue state
    wanting fewer than ``from`` replicas)."""
    out = []
    for i in range(1, len(seen)):
        before, now = seen[i - 1].desired, seen[i].desired
        if seen[i].phase != "Running" or before is None or now is None or now >= before:
            continue
        first = i
        while first > 0 and seen[first - 1].phase == "Running" and wanted(seen[first - 1].outstanding) < before:
            first -= 1
        out.append((before, now, seen[i].at - seen[first].at))
    return out


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "namespace")
def test_workers_scale_with_the_backlog_count_busy_ones_and_go_down_after_the_delay(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    jobs: list[dict[str, Any]],
    broker_thread: BrokerThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog of 60 tasks asks for 6 workers of 10 tasks each, capped at 3. Then busy workers
    (played at the broker) take every task, finish 45 and keep 15 in hand: nothing is ready, but
    15 in flight still need 2 workers, after the delay. Once those finish, the minimum of 1
    after the delay, and 0 when the job is done."""
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    delay, per_replica, minimum, maximum = 3, 10, 1, 3
    make_samples(tmp_path / "in", count=60, size=(16, 12))
    body = job_body("scaling", tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {
        "minReplicas": minimum,
        "maxReplicas": maximum,
        "messagesPerReplica": per_replica,
        "scaleDownDelaySeconds": delay,
    }
    stored = create(k8s_api, body, jobs)
    topology = topology_of(parse_job(stored))

    def wanted(outstanding: int) -> int:
        return max(minimum, min(maximum, math.ceil(outstanding / per_replica)))

    def replicas_are(n: int) -> Callable[[dict[str, Any]], bool]:
        return lambda d: d["spec"]["replicas"] == n

    timeline = Timeline(cluster, "scaling")
    try:
        with cluster.run_operator(HANDLERS, timeout=60):
            cluster.wait_for_object(FILTERJOBS, NS, "scaling", lambda o: status_of(o).get("enqueued") == 60, timeout=30)
            cluster.wait_for_object(DEPLOYMENTS, NS, "scaling-workers", replicas_are(3), timeout=30)
            workers = BusyWorkers(broker_thread, topology.tasks)
            workers.take(60)
            workers.ack(45)
            cluster.wait_for_object(DEPLOYMENTS, NS, "scaling-workers", replicas_are(2), timeout=30)
            released = time.monotonic()
            workers.ack(15)
            job = cluster.wait_for_object(FILTERJOBS, NS, "scaling", phase_is("Succeeded", "Failed"), timeout=60)
            cluster.wait_for_object(DEPLOYMENTS, NS, "scaling-workers", replicas_are(0), timeout=30)
    finally:
        seen = timeline.stop()

    assert (job["status"]["phase"], job["status"]["succeeded"]) == ("Succeeded", 60)
    # The Deployment went 0 → 3 → 2 → 1 → 0, never back up.
    history = cluster.call(
        lambda em: [v.raw["spec"]["replicas"] for v in em.objects[DEPLOYMENTS, NS, "scaling-workers"].history if v]
    )
    assert [n for i, n in enumerate(history) if i == 0 or history[i - 1] != n] == [0, 3, 2, 1, 0]
    running = [s for s in seen if s.phase == "Running" and s.desired is not None]
    assert max(s.desired for s in running) == maximum
    # Busy workers count: in every pass, at least the replicas the tasks ready, in flight and retrying
    # need; while 15 were held, never fewer than 2.
    assert all(s.desired >= wanted(s.outstanding) for s in running)
    assert any(s.outstanding == 15 and s.desired == 2 for s in running)
    assert all(s.desired >= 2 for s in running if s.at < released)
    # Each step down came a delay after the queues first asked for fewer (and not much later).
    downs = waited_before_scaling_down(seen, wanted)
    assert [(a, b) for a, b, _ in downs] == [(3, 2), (2, 1)]
    assert all(delay - 0.25 <= waited <= delay + 3 for _, _, waited in downs), downs
    # Zero at the end, although minReplicas is 1: the job is done.
    assert running[-1].desired == minimum
    assert (seen[-1].phase, seen[-1].desired, seen[-1].replicas) == ("Succeeded", 0, 0)
