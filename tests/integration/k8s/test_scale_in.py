"""Scale-in that spares busy workers, on the real ReplicaSet controller: three worker pods (run as
processes by the kubelet harness), one of them busy with a task held at a gate (a FIFO the test
opens when it wants the image read), the two others idle and ready; the replicas go down to one,
lowered by the operator's own scaler (``mode: queue``) or by someone else, as an HPA does
(``mode: hpa``). The operator keeps ``controller.kubernetes.io/pod-deletion-cost`` on the pods
from their unacked deliveries, so the ReplicaSet controller deletes the idle pods: the busy one
survives, and its task succeeds once, at its first attempt, never redelivered.

Without the costs the controller picks among three equally ready pods by its other tie-breakers
(how long each is ready, its creation time, then no order at all), which spare the busy one only
by chance.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image
from filterjob_operator.core.spec import parse_job
from filterjob_worker.core.topology import Topology
from tests.helpers.brokerthread import BrokerThread
from tests.helpers.filterjobs import job_body, phase_is, png_outputs
from tests.helpers.gates import Gates, holders
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube

COST = "controller.kubernetes.io/pod-deletion-cost"
WORKERS = "app.kubernetes.io/component=worker"
NAMES = ["a.png", "b.png", "c.png"]


@pytest.fixture(autouse=True)
def operator_rbac(request: pytest.FixtureRequest, kube: Kube) -> Iterator[None]:
    """After each test, the operator's audited calls: none refused, each granted by the chart's RBAC."""
    operator: FilterJobOperator = request.getfixturevalue("filterjob_operator")
    yield
    assert not operator.api_usage(decision="forbid")
    used, granted = operator.api_usage(), operator.release.granted(kube.api)
    assert used <= granted, f"the operator used what the chart does not grant: {sorted(used - granted)}"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, broker_secret: str) -> None:
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")


class Results:
    """The task events of a job, from a queue bound to its events exchange before any worker runs."""

    def __init__(self, broker: BrokerThread, topology: Topology) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        broker.run(self._bind(broker.connect(), topology))

    async def _bind(self, connection: AbstractConnection, topology: Topology) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)  # the broker names it; gone with the connection
        await queue.bind(topology.events, routing_key="task.#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        with self._changed:
            self.seen.append(json.loads(message.body))
            self._changed.notify_all()

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 60) -> list[dict[str, Any]]:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self.seen), timeout), self.seen
            return list(self.seen)


def held_by(kubelet: Kubelet, namespace: str, gates: Gates, name: str) -> str:
    """The pod whose worker holds the gate ``name`` open (its process, or one of its process group)."""
    (pid,) = holders(gates.fifos[name])
    groups = {pod.pid: pod.name for pod in kubelet.pods(namespace) if pod.pid is not None}
    return groups.get(pid) or groups[os.getpgid(pid)]


def hold_one(kubelet: Kubelet, namespace: str, gates: Gates) -> tuple[str, str, int]:
    """Let every task but the last through its gate, as the workers reach them; the last one held: its
    name, the pod that holds it and the gate's write end. A task prefetched behind a gate reaches its own
    once the one before is through, so the one left is in a worker's hands whichever it is."""
    waiting = list(NAMES)
    while len(waiting) > 1:
        name, fd = gates.first_reached(waiting, timeout=90)
        waiting.remove(name)
        gates.release(name, fd)
    (last,) = waiting
    fd = gates.reached(last, timeout=90)
    return last, held_by(kubelet, namespace, gates, last), fd


def start_three(
    kube: Kube,
    kubelet: Kubelet,
    tmp_path: Path,
    broker: BrokerThread,
    created: list[dict[str, Any]],
    *,
    name: str,
    autoscaling: dict[str, Any],
) -> tuple[Gates, Results]:
    """A job of three images, each a gate, its events followed; its workers may start once both are in place."""
    source = tmp_path / "in"
    source.mkdir()
    for seed, image in enumerate(NAMES):
        make_image((32, 24), seed).save(source / image, format="PNG")
    kubelet.refuse_image = lambda image: "held back by the test"  # until the gates are in place
    body = job_body(name, kube.namespace, source, tmp_path / "out")
    # One image at a time a worker (and one more prefetched): a busy worker holds one or two deliveries.
    body["spec"]["workers"] = {"concurrency": 1}
    body["spec"]["autoscaling"] = autoscaling
    stored = kube.create_job(body)
    created.append(stored)
    topology = topology_of(parse_job(stored))
    kube.wait("filterjobs", name, lambda o: o["status"].get("enqueued") == len(NAMES), timeout=60)
    gates = Gates(source, NAMES)
    gates.close()
    results = Results(broker, topology)
    kubelet.refuse_image = None
    return gates, results


def survivors(kube: Kube, count: int) -> list[dict[str, Any]]:
    """The worker pods once exactly ``count`` are left (the others deleted and gone)."""
    return kube.wait_all("pods", lambda pods: len(pods) == count, timeout=90, label_selector=WORKERS)


def assert_succeeded_once_each(results: Results, busy_pod: str, held: str) -> None:
    seen = results.wait(lambda events: len(events) >= len(NAMES))
    assert sorted(e["input"].rsplit("/", 1)[-1] for e in seen) == NAMES, seen  # each task once
    assert {e["event"] for e in seen} == {"succeeded"}
    (last,) = (e for e in seen if e["input"].endswith("/" + held))
    assert (last["worker"], last["attempt"], last["redelivered"]) == (busy_pod, 1, False)


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_the_queue_scaler_lowers_replicas_and_the_busy_worker_survives(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    broker_thread: BrokerThread,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    # Three tasks, one a replica: three workers, then one once two are done. The delay is longer than
    # the broker's statistics interval (5 s), so the costs show who is busy now when the replicas go down.
    autoscaling = {"maxReplicas": 3, "messagesPerReplica": 1, "scaleDownDelaySeconds": 10}
    with filterjob_operator.run(timeout=60):
        gates, results = start_three(
            kube, cluster_kubelet, tmp_path, broker_thread, created, name="spare", autoscaling=autoscaling
        )
        cluster_kubelet.wait_for_pods(kube.namespace, 3, prefix="spare-workers-", timeout=90)
        held, busy, fd = hold_one(cluster_kubelet, kube.namespace, gates)
        kube.wait("deployments", "spare-workers", lambda d: d["spec"]["replicas"] == 1, timeout=60)
        (left,) = survivors(kube, 1)
        assert (left["metadata"]["name"], left["metadata"].get("deletionTimestamp")) == (busy, None)
        assert left["metadata"]["annotations"][COST] == "1"  # the one delivery it holds
        running = cluster_kubelet.pod(kube.namespace, busy)
        assert running is not None
        assert running.ready  # busy is ready: the costs order only pods of equal readiness
        gates.release(held, fd)
        job = kube.wait("filterjobs", "spare", phase_is("Succeeded", "Failed"), timeout=90)
    assert (job["status"]["phase"], job["status"]["succeeded"], job["status"]["failed"]) == ("Succeeded", 3, 0)
    assert png_outputs(tmp_path / "out") == set(NAMES)
    assert_succeeded_once_each(results, busy, held)


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_replicas_lowered_behind_the_operators_back_in_hpa_mode_spare_the_busy_worker(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    broker_thread: BrokerThread,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    """The test scales the worker Deployment as an HPA does (up to three, then down to one); the
    operator, which scales in this mode only at the job's end, keeps the costs up to date all along.
    The HPA's own scale-down waits for its stabilization window (the delay), so the test's comes first
    where the HPA has metrics."""
    autoscaling = {"mode": "hpa", "maxReplicas": 3, "messagesPerReplica": 1, "scaleDownDelaySeconds": 60}
    with filterjob_operator.run(timeout=60):
        gates, results = start_three(
            kube, cluster_kubelet, tmp_path, broker_thread, created, name="hpa-spare", autoscaling=autoscaling
        )
        kube.wait("horizontalpodautoscalers", "hpa-spare-workers", timeout=30)
        scale = kube.api.apps.patch_namespaced_deployment_scale
        scale("hpa-spare-workers", kube.namespace, {"spec": {"replicas": 3}})
        cluster_kubelet.wait_for_pods(kube.namespace, 3, prefix="hpa-spare-workers-", timeout=90)
        held, busy, fd = hold_one(cluster_kubelet, kube.namespace, gates)

        def costs_show_who_is_busy(pods: list[dict[str, Any]]) -> bool:
            costs = {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(COST) for p in pods}
            return len(costs) == 3 and all(cost == ("1" if name == busy else "0") for name, cost in costs.items())

        kube.wait_all("pods", costs_show_who_is_busy, timeout=60, label_selector=WORKERS)
        scale("hpa-spare-workers", kube.namespace, {"spec": {"replicas": 1}})
        (left,) = survivors(kube, 1)
        assert (left["metadata"]["name"], left["metadata"].get("deletionTimestamp")) == (busy, None)
        gates.release(held, fd)
        job = kube.wait("filterjobs", "hpa-spare", phase_is("Succeeded", "Failed"), timeout=90)
    assert (job["status"]["phase"], job["status"]["succeeded"], job["status"]["failed"]) == ("Succeeded", 3, 0)
    assert_succeeded_once_each(results, busy, held)
