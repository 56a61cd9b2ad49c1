"""The real operator under faults and load, on the real control plane: hard kills of an operator
process (run as the chart's ServiceAccount), and the scaler's decisions against queue states held at
the real broker, carried out by the real Deployment and ReplicaSet controllers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import math
import os
import signal
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import kubernetes.client
import kubernetes.watch
import pytest
from PIL import Image

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core import status
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_samples, write_broken
from filterjob_operator.core.spec import parse_job
from filterjob_worker.adapters.storage import TEMP_SUFFIX
from filterjob_worker.core.contract import Event
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL
from tests.helpers.brokerthread import BrokerThread, BusyWorkers
from tests.helpers.controlplane import ControlPlane
from tests.helpers.filterjobs import container_restarts, job_body, phase_is, png_outputs
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import GROUP, PLURAL, VERSION, FilterJobOperator, Kube, remove_filterjobs

T = TypeVar("T")


def status_of(body: dict[str, Any] | None) -> dict[str, Any]:
    return (body or {}).get("status") or {}


@pytest.fixture(autouse=True)
def nothing_refused(filterjob_operator: FilterJobOperator) -> Iterator[None]:
    """The operator ran as the chart's ServiceAccount: the real authorizer refused it nothing."""
    yield
    refused = filterjob_operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, broker_secret: str) -> dict[str, str]:
    """Settings of a fast operator, for one in this process and one spawned (``env``)."""
    env = {"FILTERJOB_STATUS_INTERVAL": "0.5", "FILTERJOB_METRICS_PORT": "0"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


class OperatorProcess:
    """``filterjob operator`` as an OS process of its own, with the ServiceAccount's token.

    :meth:`kill` is SIGKILL: no handler, no cleanup, nothing flushed — a crashed or evicted pod.
    """

    def __init__(self, operator: FilterJobOperator, log_dir: Path, env: dict[str, str]) -> None:
        self.operator = operator
        self.log_dir = log_dir
        self.env = env
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.runs += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = self.operator.spawn(
            "--all-namespaces", log=self.log_dir / f"operator-{self.runs}.log", env=self.env
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
def operator_process(
    filterjob_operator: FilterJobOperator, operator_env: dict[str, str], tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(filterjob_operator, tmp_path / "operator", dict(operator_env))
    try:
        yield process
    finally:
        process.stop()


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
def jobs(kube: Kube) -> Iterator[list[dict[str, Any]]]:
    """FilterJobs created by the test; they, their queues (and event taps) are removed afterwards."""
    bodies: list[dict[str, Any]] = []
    yield bodies
    remove_filterjobs(kube)

    async def forget(topology: Topology) -> None:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"{topology.base}.test-tap")
            await delete(channel, topology)

    for body in bodies:
        asyncio.run(forget(topology_of(parse_job(body))))


def create(kube: Kube, body: dict[str, Any], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    stored = kube.create_job(body)
    jobs.append(stored)
    return stored


# --------------------------------------------------------------------------------------------------
# Hard kills.


class StatusGate:
    """A validating admission webhook on FilterJob status writes in one namespace, served on loopback
    with a certificate of the cluster's CA: the real API server asks it about every status write
    before applying one, and it may hold the request unanswered (up to ``HOLD``) and then refuse it.

    :meth:`hold` makes it hold each write of job ``name`` whose ``status.enqueued`` reaches ``from_enqueued``
    until :meth:`release`, which refuses them (never applied) and lets every later write through.
    """

    #: The API server's webhook timeout is at most 30 s; a held request is refused before that.
    HOLD = 25.0

    def __init__(self, control_plane: ControlPlane, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.api = kubernetes.client.AdmissionregistrationV1Api(api)
        self.name = f"filterjob-test-gate-{namespace}"
        self.arrived = threading.Event()
        self.released = threading.Event()
        #: Set at each request the gate sees (the API server took the configuration up).
        self.seen = threading.Event()
        self.rule: tuple[str, int] | None = None
        issued = control_plane.ca.issue("admission-gate", common_name="admission-gate", server=True, ips=["127.0.0.1"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(issued.cert), str(issued.key))
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = json.dumps(gate.answer(review["request"])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="admission-gate", daemon=True)
        self.thread.start()
        ca = base64.b64encode(control_plane.ca_file.read_bytes()).decode()
        self.api.create_validating_webhook_configuration(
            {
                "metadata": {"name": self.name},
                "webhooks": [
                    {
                        "name": "status.gate.filterjob.dev",
                        "clientConfig": {"url": f"https://127.0.0.1:{self.server.server_port}/", "caBundle": ca},
                        "rules": [
                            {
                                "apiGroups": [GROUP],
                                "apiVersions": [VERSION],
                                "operations": ["UPDATE"],
                                "resources": [f"{PLURAL}/status"],
                                "scope": "Namespaced",
                            }
                        ],
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                        "failurePolicy": "Fail",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 30,
                    }
                ],
            }
        )

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        self.seen.set()
        saved = status_of(request.get("object")).get("enqueued", 0)
        if self.rule is not None and not self.released.is_set():
            name, from_enqueued = self.rule
            if request.get("name") == name and saved >= from_enqueued:
                self.arrived.set()
                self.released.wait(self.HOLD)
                response = {**response, "allowed": False, "status": {"code": 504, "message": "held by the test"}}
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    def wait_active(self, kube: Kube, name: str) -> None:
        """Write the status of FilterJob ``name`` until the gate sees a write: the API server takes a
        new webhook configuration up a moment after it is created. The written field is left as it was."""
        for attempt in range(1, 121):
            self.seen.clear()
            kube.api.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, kube.namespace, PLURAL, name, {"status": {"observedGeneration": attempt}}
            )
            if self.seen.is_set() or self.seen.wait(0.25):  # seen during the call; else pace the next try
                break
        else:
            raise AssertionError("the API server never called the admission webhook")
        kube.api.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, kube.namespace, PLURAL, name, {"status": {"observedGeneration": None}}
        )

    def hold(self, name: str, *, from_enqueued: int) -> None:
        self.rule = (name, from_enqueued)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        with contextlib.suppress(kubernetes.client.ApiException):
            self.api.delete_validating_webhook_configuration(self.name)
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def status_gate(control_plane: ControlPlane, kube: Kube) -> Iterator[StatusGate]:
    gate = StatusGate(control_plane, kube.api.client, kube.namespace)
    try:
        yield gate
    finally:
        gate.close()


def broken_every(directory: Path, step: int, count: int) -> list[Path]:
    """Broken inputs spread through the sorted input keys (one every ``step`` top-level images), so a
    re-published batch holds some: a failure enqueued twice must still count once."""
    return [write_broken(directory / f"img-{i:05d}x.jpg", "corrupt", seed=i) for i in range(0, count, step)]


@pytest.mark.slow
def test_a_killed_operator_loses_and_double_counts_nothing(
    kube: Kube,
    tmp_path: Path,
    jobs: list[dict[str, Any]],
    cluster_kubelet: Kubelet,
    operator_process: OperatorProcess,
    status_gate: StatusGate,
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
    body = job_body("crash", kube.namespace, tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["workers"] = {"concurrency": 1}  # and one worker: a run long enough to be killed in
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    stored = create(kube, body, jobs)
    topology = topology_of(parse_job(stored))
    tap = EventTap(topology)
    asyncio.run(tap.open())
    status_gate.wait_active(kube, "crash")

    # 1. Killed mid-enqueue, at the worst moment: the broker confirmed the second batch, and the
    # operator waits for the API server to save the cursor past it (a request that never returns).
    status_gate.hold("crash", from_enqueued=2 * batch)
    operator_process.start()
    assert status_gate.arrived.wait(60), (
        f"the operator never tried to save its cursor past batch 2:\n{operator_process.logs()}"
    )
    operator_process.kill()
    status_gate.release()
    killed = status_of(kube.get("filterjobs", "crash"))
    assert (killed["phase"], killed["enqueued"]) == ("Enqueuing", batch)
    # No worker runs before the last task is enqueued, so the queue holds exactly what was published.
    assert (kube.get("deployments", "crash-workers") or {})["spec"]["replicas"] == 0
    assert asyncio.run(ready_now(topology.tasks)) == 2 * batch

    # 2. Killed mid-run: enqueueing finished, the worker took 100 tasks (it holds 2 at most, so it
    # finished the others), more are queued.
    operator_process.start()
    running = kube.wait(
        "filterjobs", "crash", lambda o: 0 < status_of(o).get("queued", 0) <= total + batch - 100, timeout=120
    )
    operator_process.kill()
    assert (running["status"]["phase"], running["status"]["enqueued"]) == ("Running", total)
    assert 0 < len(png_outputs(tmp_path / "out")) < len(made.good)

    # 3. A third operator sees the job through.
    operator_process.start()
    job = kube.wait("filterjobs", "crash", phase_is("Succeeded", "Failed"), timeout=240)
    kube.wait("deployments", "crash-workers", lambda d: d["spec"]["replicas"] == 0, timeout=30)
    kube.wait_all("pods", lambda found: not found, label_selector="filterjob.dev/job=crash", timeout=60)
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
    assert container_restarts(kube, "crash-workers-") == 0


# --------------------------------------------------------------------------------------------------
# Scaling.


@dataclasses.dataclass(frozen=True)
class Seen:
    """The job's scaling state at one moment (each change recorded by :class:`Timeline`, in order)."""

    phase: str | None
    #: Tasks ready, in flight and retrying, as the status reports them: the scaler's input.
    outstanding: int
    #: ``status.workers.desired``: the replicas the operator set in that same pass.
    desired: int | None
    #: The worker Deployment's ``spec.replicas``.
    replicas: int | None


class Timeline:
    """Records, in order, every change of a job's scaling state, and every
    ``spec.replicas`` the worker Deployment and its ReplicaSets went through, from watches on the
    API server (a watch delivers every change, in order)."""

    def __init__(self, control_plane: ControlPlane, namespace: str, name: str) -> None:
        self.api = control_plane.api_client()
        self.namespace = namespace
        self.name = name
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.job: dict[str, Any] = {}
        self.deployment: dict[str, Any] | None = None
        #: ``spec.replicas`` of the Deployment and of each ReplicaSet (by name), in the order set.
        self.replicas: dict[str, list[int]] = {}
        self._stop = threading.Event()
        custom = kubernetes.client.CustomObjectsApi(self.api)
        apps = kubernetes.client.AppsV1Api(self.api)
        self._threads = [
            threading.Thread(target=self._follow, args=(call, kind, args), name=f"timeline-{kind}", daemon=True)
            for call, kind, args in [
                (custom.list_namespaced_custom_object, "job", (GROUP, VERSION, namespace, PLURAL)),
                (apps.list_namespaced_deployment, "deployment", (namespace,)),
                (apps.list_namespaced_replica_set, "replicaset", (namespace,)),
            ]
        ]
        for thread in self._threads:
            thread.start()

    def _follow(self, call: Callable[..., Any], kind: str, args: tuple[Any, ...]) -> None:
        version = ""
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            for event in watch.stream(call, *args, resource_version=version, timeout_seconds=2):
                item = event["object"]
                plain = item if isinstance(item, dict) else self.api.sanitize_for_serialization(item)
                version = plain["metadata"]["resourceVersion"]
                self._record(kind, plain)

    def _record(self, kind: str, item: dict[str, Any]) -> None:
        name = item["metadata"]["name"]
        with self.lock:
            if kind == "job" and name == self.name:
                self.job = item
            elif kind == "deployment" and name == f"{self.name}-workers":
                self.deployment = item
            if kind != "job":
                history = self.replicas.setdefault(f"{kind}/{name}", [])
                if not history or history[-1] != item["spec"]["replicas"]:
                    history.append(item["spec"]["replicas"])
            job = status_of(self.job)
            state = Seen(
                job.get("phase"),
                sum(job.get(k, 0) for k in ("queued", "inFlight", "retrying")),
                (job.get("workers") or {}).get("desired"),
                self.deployment["spec"]["replicas"] if self.deployment else None,
            )
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)

    def stop(self) -> list[Seen]:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.api.close()
        return self.seen


@dataclasses.dataclass(frozen=True)
class Decision:
    """One scaling decision of the operator: ``status.next_replicas``'s inputs and what it returned."""

    current: int
    desired: int
    now: float
    below_since: float | None
    delay: float
    replicas: int
    since: float | None


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> list[Decision]:
    """Every scaling decision of an operator run in this process (``filterjob_operator.run()``), in order."""
    made: list[Decision] = []
    real = status.next_replicas

    def recording(**given: Any) -> tuple[int, float | None]:
        replicas, since = real(**given)
        made.append(Decision(**given, replicas=replicas, since=since))
        return replicas, since

    monkeypatch.setattr(status, "next_replicas", recording)
    return made


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_workers_scale_with_the_backlog_count_busy_ones_and_go_down_after_the_delay(
    control_plane: ControlPlane,
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    jobs: list[dict[str, Any]],
    broker_thread: BrokerThread,
    decisions: list[Decision],
) -> None:
    """A backlog of 60 tasks asks for 6 workers of 10 tasks each, capped at 3. Then busy workers
    (played at the broker; no node here, so the real ReplicaSet's pods stay Pending and take
    nothing) take every task, finish 45 and keep 15 in hand: nothing is ready, but 15 in flight
    still need 2 workers, after the delay. Once those finish, the minimum of 1 after the delay,
    and 0 when the job is done. The real Deployment controller carries each step to the ReplicaSet."""
    delay, per_replica, minimum, maximum = 3, 10, 1, 3
    make_samples(tmp_path / "in", count=60, size=(16, 12))
    body = job_body("scaling", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {
        "minReplicas": minimum,
        "maxReplicas": maximum,
        "messagesPerReplica": per_replica,
        "scaleDownDelaySeconds": delay,
    }

    def wanted(outstanding: int) -> int:
        return max(minimum, min(maximum, math.ceil(outstanding / per_replica)))

    def replicas_are(n: int) -> Callable[[dict[str, Any]], bool]:
        return lambda d: d["spec"]["replicas"] == n

    timeline = Timeline(control_plane, kube.namespace, "scaling")
    try:
        stored = create(kube, body, jobs)
        topology = topology_of(parse_job(stored))
        with filterjob_operator.run(timeout=60):
            kube.wait("filterjobs", "scaling", lambda o: status_of(o).get("enqueued") == 60, timeout=30)
            kube.wait("deployments", "scaling-workers", replicas_are(3), timeout=30)
            # The real ReplicaSet controller made the pods (Pending: there is no node).
            kube.wait_all("pods", lambda found: len(found) == 3, label_selector="filterjob.dev/job=scaling")
            workers = BusyWorkers(broker_thread, topology.tasks)
            workers.take(60)
            workers.ack(45)
            kube.wait("deployments", "scaling-workers", replicas_are(2), timeout=30)
            with timeline.lock:
                released = len(timeline.seen)  # what was seen before the last 15 were released
            workers.ack(15)
            job = kube.wait("filterjobs", "scaling", phase_is("Succeeded", "Failed"), timeout=60)
            kube.wait("deployments", "scaling-workers", replicas_are(0), timeout=30)
            kube.wait_all("pods", lambda found: not found, label_selector="filterjob.dev/job=scaling")
    finally:
        seen = timeline.stop()

    assert (job["status"]["phase"], job["status"]["succeeded"]) == ("Succeeded", 60)
    # The Deployment went 0 → 3 → 2 → 1 → 0, never back up, and so did its one ReplicaSet.
    assert timeline.replicas.pop("deployment/scaling-workers") == [0, 3, 2, 1, 0]
    assert list(timeline.replicas.values()) == [[0, 3, 2, 1, 0]], timeline.replicas
    running = [s for s in seen if s.phase == "Running" and s.desired is not None]
    assert max(s.desired for s in running) == maximum
    # Busy workers count: in every pass, at least the replicas the tasks ready, in flight and retrying
    # need; while 15 were held, never fewer than 2.
    assert all(s.desired >= wanted(s.outstanding) for s in running)
    assert any(s.outstanding == 15 and s.desired == 2 for s in running)
    assert all(s.desired >= 2 for s in seen[:released] if s.phase == "Running" and s.desired is not None)
    # The operator's own decisions: each step down while running came once the lower want had held
    # for the delay, by the operator's clock, and every pass before it within the delay kept the
    # replicas and the moment the want first dropped.
    downs = [i for i, d in enumerate(decisions) if d.replicas < d.current and d.delay > 0]
    assert [(decisions[i].current, decisions[i].replicas) for i in downs] == [(3, 2), (2, 1)]
    for i in downs:
        down = decisions[i]
        assert down.below_since is not None
        assert down.now - down.below_since >= delay
        waiting = [d for d in decisions[:i] if d.since == down.below_since]
        assert waiting, "the delay started in an earlier pass"
        assert all(d.replicas == d.current == down.current and d.desired < d.current for d in waiting)
    assert all(d.delay == delay for d in decisions if d.replicas != 0)
    # Zero at the end, although minReplicas is 1: the job is done.
    assert running[-1].desired == minimum
    assert (seen[-1].phase, seen[-1].desired, seen[-1].replicas) == ("Succeeded", 0, 0)
