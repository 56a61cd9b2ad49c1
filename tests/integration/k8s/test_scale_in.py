"""Scale-in that spares busy workers, on the real ReplicaSet controller: three worker pods on two
nodes (each node a kubelet harness running pods as processes), one of them busy with a task held at
a gate (a FIFO the test opens when it wants the image read), the two others idle and ready; the
replicas go down to one, lowered by the operator's own scaler (``mode: queue``) or by someone else,
as an HPA does (``mode: hpa``). The operator keeps ``controller.kubernetes.io/pod-deletion-cost`` on
the pods from their unacked deliveries, so the ReplicaSet controller deletes the idle pods: the busy
one survives, and its tasks succeed once, at their first attempt, never redelivered.

The busy pod is one of the two that share a node. Without the costs the controller deletes first
the pods with more of their ReplicaSet's pods on their node: those two, the busy one with them, so
each test fails without the costs (checked by running them with the operator's cost-keeping off).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image
from filterjob_operator.core.spec import parse_job
from filterjob_worker.core.topology import Topology
from tests.helpers.brokerthread import BrokerThread
from tests.helpers.controlplane import ControlPlane
from tests.helpers.filterjobs import job_body, phase_is, png_outputs
from tests.helpers.gates import Gates, holders
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube

COST = "controller.kubernetes.io/pod-deletion-cost"
WORKERS = "app.kubernetes.io/component=worker"
#: Six tasks: each of the three workers holds two (one at its gate, one prefetched) until let through.
NAMES = [f"{n}.png" for n in "abcdef"]
SECOND_NODE = "filterjob-node-2"


@pytest.fixture(autouse=True)
def operator_rbac(request: pytest.FixtureRequest, kube: Kube) -> Iterator[None]:
    """After each test, the operator's audited calls: none refused, each granted by the chart's RBAC."""
    operator: FilterJobOperator = request.getfixturevalue("filterjob_operator")
    yield
    assert not operator.api_usage(decision="forbid")
    used, granted = operator.api_usage(), operator.release.granted(kube.api)
    assert used <= granted, f"the operator used what the chart does not grant: {sorted(used - granted)}"


@pytest.fixture
def second_kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Kubelet]:
    """A second node, so that two workers share a node and one is alone on its own."""
    client = control_plane.api_client()
    try:
        with Kubelet(client, SECOND_NODE, log_dir=tmp_path / "pods", restart_backoff=(0.2, 4.0)) as running:
            yield running
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert not running.errors, f"the kubelet harness failed: {running.errors!r}"


@pytest.fixture
def kubelets(cluster_kubelet: Kubelet, second_kubelet: Kubelet) -> list[Kubelet]:
    return [cluster_kubelet, second_kubelet]


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


def held_by(kubelets: list[Kubelet], namespace: str, gates: Gates, name: str) -> str:
    """The pod whose worker holds the gate ``name`` open (its process, or one of its process group)."""
    (pid,) = holders(gates.fifos[name])
    groups = {pod.pid: pod.name for k in kubelets for pod in k.pods(namespace) if pod.pid is not None}
    return groups.get(pid) or groups[os.getpgid(pid)]


def doubled_up(kube: Kube) -> set[str]:
    """The two worker pods that share a node (the third is alone on the other one)."""
    nodes: dict[str, set[str]] = {}
    for pod in kube.list("pods", label_selector=WORKERS):
        nodes.setdefault(pod["spec"]["nodeName"], set()).add(pod["metadata"]["name"])
    assert sorted(len(names) for names in nodes.values()) == [1, 2], nodes
    (shared,) = (names for names in nodes.values() if len(names) == 2)
    return shared


def hold_one(kubelets: list[Kubelet], kube: Kube, gates: Gates) -> Held:
    """Let tasks through their gates as the workers reach them, but the first one a worker on the shared
    node reaches: that worker is the busy one (it holds that task and the one prefetched behind it), the
    others end idle."""
    candidates = doubled_up(kube)
    waiting, kept = list(NAMES), None
    while kept is None or len(waiting) > 1:  # the busy worker's prefetched task never reaches its gate
        name, fd = gates.first_reached(waiting, timeout=90)
        waiting.remove(name)
        pod = held_by(kubelets, kube.namespace, gates, name)
        if kept is None and pod in candidates:
            kept = (name, pod, fd)
        else:
            gates.release(name, fd)
    (behind,) = waiting
    return Held(*kept, behind=behind)


@dataclass(frozen=True)
class Held:
    """The task a busy worker holds at its gate, and the one prefetched behind it."""

    name: str
    pod: str
    fd: int
    behind: str

    def let_go(self, gates: Gates) -> None:
        gates.release(self.name, self.fd)
        gates.release(self.behind, gates.reached(self.behind, timeout=90))


def start(
    kube: Kube,
    kubelets: list[Kubelet],
    tmp_path: Path,
    broker: BrokerThread,
    created: list[dict[str, Any]],
    *,
    name: str,
    autoscaling: dict[str, Any],
) -> tuple[Gates, Results]:
    """A job of six images, each a gate, its events followed; its workers may start once both are in place."""
    source = tmp_path / "in"
    source.mkdir()
    for seed, image in enumerate(NAMES):
        make_image((32, 24), seed).save(source / image, format="PNG")
    for kubelet in kubelets:
        kubelet.refuse_image = lambda image: "held back by the test"  # until the gates are in place
    body = job_body(name, kube.namespace, source, tmp_path / "out")
    # One image at a time a worker, and one more prefetched; spread over the nodes (two and one).
    apart = {"labelSelector": {"matchLabels": {"filterjob.dev/job": name}}, "topologyKey": "kubernetes.io/hostname"}
    preferred = [{"weight": 100, "podAffinityTerm": apart}]
    affinity = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}
    body["spec"]["workers"] = {"concurrency": 1, "affinity": affinity}
    body["spec"]["autoscaling"] = autoscaling
    stored = kube.create_job(body)
    created.append(stored)
    topology = topology_of(parse_job(stored))
    kube.wait("filterjobs", name, lambda o: o["status"].get("enqueued") == len(NAMES), timeout=60)
    gates = Gates(source, NAMES)
    gates.close()
    results = Results(broker, topology)
    for kubelet in kubelets:
        kubelet.refuse_image = None
    return gates, results


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def all_ready(pods: list[dict[str, Any]]) -> bool:
    """Three worker pods, each ready."""
    return len(pods) == 3 and all(is_ready(p) for p in pods)


def survivors(kube: Kube, count: int) -> list[dict[str, Any]]:
    """The worker pods once exactly ``count`` are left (the others deleted and gone)."""
    return kube.wait_all("pods", lambda pods: len(pods) == count, timeout=90, label_selector=WORKERS)


def assert_succeeded_once_each(results: Results, held: Held) -> None:
    seen = results.wait(lambda events: len(events) >= len(NAMES))
    assert sorted(e["input"].rsplit("/", 1)[-1] for e in seen) == NAMES, seen  # each task once
    assert {(e["event"], e["attempt"], e["redelivered"]) for e in seen} == {("succeeded", 1, False)}, seen
    by_input = {e["input"].rsplit("/", 1)[-1]: e["worker"] for e in seen}
    assert (by_input[held.name], by_input[held.behind]) == (held.pod, held.pod), seen


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_the_queue_scaler_lowers_replicas_and_the_busy_worker_survives(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    kubelets: list[Kubelet],
    broker_thread: BrokerThread,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    # Six tasks, two a replica: three workers, then one once four are done. The delay is longer than
    # the broker's statistics interval (5 s), so the costs show who is busy now when the replicas go down.
    autoscaling = {"maxReplicas": 3, "messagesPerReplica": 2, "scaleDownDelaySeconds": 10}
    with filterjob_operator.run(timeout=60):
        gates, results = start(kube, kubelets, tmp_path, broker_thread, created, name="spare", autoscaling=autoscaling)
        kube.wait_all("pods", all_ready, timeout=90, label_selector=WORKERS)
        held = hold_one(kubelets, kube, gates)
        busy = held.pod
        kube.wait("deployments", "spare-workers", lambda d: d["spec"]["replicas"] == 1, timeout=60)
        (left,) = survivors(kube, 1)
        assert (left["metadata"]["name"], left["metadata"].get("deletionTimestamp")) == (busy, None)
        assert left["metadata"]["annotations"][COST] == "2"  # the two deliveries it holds
        assert is_ready(left)  # busy is ready: the costs order only pods of equal readiness
        held.let_go(gates)
        job = kube.wait("filterjobs", "spare", phase_is("Succeeded", "Failed"), timeout=90)
    assert (job["status"]["phase"], job["status"]["succeeded"], job["status"]["failed"]) == ("Succeeded", 6, 0)
    assert png_outputs(tmp_path / "out") == set(NAMES)
    assert_succeeded_once_each(results, held)


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_replicas_lowered_behind_the_operators_back_in_hpa_mode_spare_the_busy_worker(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    kubelets: list[Kubelet],
    broker_thread: BrokerThread,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    """The test scales the worker Deployment as an HPA does (up to three, then down to one); the
    operator, which scales in this mode only at the job's end, keeps the costs up to date all along.
    The HPA's own scale-down waits for its stabilization window (the delay), so the test's comes first
    where the HPA has metrics."""
    autoscaling = {"mode": "hpa", "maxReplicas": 3, "messagesPerReplica": 2, "scaleDownDelaySeconds": 60}
    with filterjob_operator.run(timeout=60):
        gates, results = start(
            kube, kubelets, tmp_path, broker_thread, created, name="hpa-spare", autoscaling=autoscaling
        )
        kube.wait("horizontalpodautoscalers", "hpa-spare-workers", timeout=30)
        scale = kube.api.apps.patch_namespaced_deployment_scale
        scale("hpa-spare-workers", kube.namespace, {"spec": {"replicas": 3}})
        kube.wait_all("pods", all_ready, timeout=90, label_selector=WORKERS)
        held = hold_one(kubelets, kube, gates)
        busy = held.pod

        def costs_show_who_is_busy(pods: list[dict[str, Any]]) -> bool:
            costs = {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(COST) for p in pods}
            return len(costs) == 3 and all(cost == ("2" if name == busy else "0") for name, cost in costs.items())

        kube.wait_all("pods", costs_show_who_is_busy, timeout=60, label_selector=WORKERS)
        scale("hpa-spare-workers", kube.namespace, {"spec": {"replicas": 1}})
        (left,) = survivors(kube, 1)
        assert (left["metadata"]["name"], left["metadata"].get("deletionTimestamp")) == (busy, None)
        held.let_go(gates)
        job = kube.wait("filterjobs", "hpa-spare", phase_is("Succeeded", "Failed"), timeout=90)
    assert (job["status"]["phase"], job["status"]["succeeded"], job["status"]["failed"]) == ("Succeeded", 6, 0)
    assert_succeeded_once_each(results, held)
