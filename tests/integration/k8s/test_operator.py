"""The real operator (kopf, in a KopfRunner) against the real control plane and the real broker.

The operator runs as the ServiceAccount of the chart's ``helm install`` (fixture ``operator_release``),
so the real RBAC authorizer decides each of its calls. After every test the audit log says what it
called: nothing refused, nothing the chart does not grant; and one test that takes jobs through
everything the operator does checks that the chart grants nothing it does not use
(``test_the_chart_grants_exactly_what_a_job_lifecycle_uses``).
The worker Deployments, ReplicaSets, the lister Jobs and garbage collection are the real
controllers'; tests with ``cluster_kubelet`` run the pods as local processes, the others have no node.
"""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.broker import listings
from filterjob_operator.core import listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image, make_samples
from filterjob_operator.core.spec import parse_job
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL
from tests.helpers.controlplane import ControlPlane
from tests.helpers.filterjobs import (
    container_restarts,
    job_body,
    kopf_settled,
    phase_is,
    png_outputs,
    queue_exists,
    ready_reason,
)
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube, Permission, Release, install_release, operator_for, tool

#: Not a request, so never in the audit log: what the OwnerReferencesPermissionEnforcement admission
#: plugin (OpenShift) asks of whoever creates children with blockOwnerDeletion. The chart grants it.
ADMISSION: set[Permission] = {("update", "filterjob.dev", "filterjobs", "finalizers")}


@pytest.fixture(autouse=True)
def operator_rbac(request: pytest.FixtureRequest, kube: Kube) -> Iterator[None]:
    """After each test, the operator's audited calls: none refused, each granted by the chart's RBAC."""
    operator: FilterJobOperator = request.getfixturevalue("filterjob_operator")
    yield
    refused = operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"
    used = operator.api_usage()
    granted = operator.release.granted(kube.api)
    assert used <= granted, f"the operator used what the chart does not grant: {sorted(used - granted)}"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, broker_secret: str) -> None:
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")


def create(kube: Kube, body: dict[str, Any], created: list[dict[str, Any]]) -> dict[str, Any]:
    stored = kube.create_job(body)
    created.append(stored)
    return stored


@pytest.mark.usefixtures("operator_env")
def test_an_invalid_spec_ends_failed_with_a_condition_naming_the_problem(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    body = job_body("bad", kube.namespace, tmp_path / "in", tmp_path / "out")
    # The API server refuses what the CRD's schema and rules catch (test_crd_server.py); what only the
    # operator knows reaches it: the CRD admits s3:// sources ahead of their support.
    body["spec"]["source"] = {"uri": "s3://photos/in/"}
    create(kube, body, created)
    with filterjob_operator.run():
        # Failed, and kopf done with its creation handling: stopping while kopf still patches
        # its own annotation would race kopf's exit (it starts the daemon again, then cancels it).
        job = kube.wait("filterjobs", "bad", lambda o: phase_is("Failed")(o) and kopf_settled(o), timeout=30)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True"
    assert failed["reason"] == "InvalidSpec"
    assert "spec.source.uri" in failed["message"]
    assert "s3:// URIs are not supported yet, got 's3://photos/in/'" in failed["message"]


@pytest.mark.usefixtures("operator_env")
def test_apply_enqueues_every_input_and_creates_the_workers(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=7, size=(64, 48))
    stored = create(kube, job_body("thumbs", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    with filterjob_operator.run():
        job = kube.wait("filterjobs", "thumbs", lambda o: o.get("status", {}).get("enqueued") == 7, timeout=30)
        workers = kube.wait("deployments", "thumbs-workers", lambda d: d["spec"]["replicas"] >= 1)
    assert job["status"]["total"] == 7
    assert job["status"]["phase"] in ("Enqueuing", "Running")
    owner = workers["metadata"]["ownerReferences"][0]
    assert owner["uid"] == stored["metadata"]["uid"]
    env = {e["name"]: e for e in workers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FILTERJOB_QUEUE"]["value"] == topology_of(parse_job(stored)).tasks
    assert env["FILTERJOB_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == "rabbitmq"


@pytest.mark.usefixtures("operator_env")
def test_a_backlog_scales_the_workers_up_to_max_replicas(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=60, size=(16, 12))
    body = job_body("backlog", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"maxReplicas": 3, "messagesPerReplica": 10}
    create(kube, body, created)
    with filterjob_operator.run():
        # No kubelet here: nothing consumes, so the backlog stays and asks for the cap.
        kube.wait("deployments", "backlog-workers", lambda d: d["spec"]["replicas"] == 3, timeout=30)
        job = kube.wait("filterjobs", "backlog", lambda o: o.get("status", {}).get("phase") == "Running", timeout=30)
    assert job["status"]["queued"] == 60
    assert job["status"]["workers"]["desired"] == 3


@pytest.mark.usefixtures("operator_env")
def test_hpa_mode_renders_an_hpa_and_leaves_replicas_alone(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=30, size=(16, 12))
    body = job_body("hpa", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "hpa", "maxReplicas": 4, "messagesPerReplica": 5}
    create(kube, body, created)
    with filterjob_operator.run():
        hpa = kube.wait("horizontalpodautoscalers", "hpa-workers", timeout=30)
        kube.wait("filterjobs", "hpa", lambda o: o.get("status", {}).get("phase") == "Running", timeout=30)
        # Several status passes later, the operator still has not touched replicas.
        kube.wait("filterjobs", "hpa", lambda o: o.get("status", {}).get("queued") == 30, timeout=30)
    workers = kube.get("deployments", "hpa-workers")
    assert workers is not None
    assert workers["spec"]["replicas"] == 1  # created at the HPA's minimum (it leaves zero alone), never scaled
    assert hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["metrics"][0]["external"]["target"]["averageValue"] == "5"
    # Changed behind its back, the HPA is brought back to the job's spec by a restarted operator.
    kube.api.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "hpa-workers", kube.namespace, {"spec": {"maxReplicas": 9}}
    )
    with filterjob_operator.run():
        kube.wait("horizontalpodautoscalers", "hpa-workers", lambda h: h["spec"]["maxReplicas"] == 4, timeout=30)
    assert ("patch", "apps", "deployments", "scale") not in filterjob_operator.api_usage()  # audited


@pytest.mark.usefixtures("operator_env")
def test_hpa_mode_hands_the_workers_back_when_the_job_is_done(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()  # nothing to do: the job finishes as soon as the queues settle
    body = job_body("hpa-done", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "hpa", "maxReplicas": 4}
    create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        kube.wait("horizontalpodautoscalers", "hpa-done-workers", timeout=30)
        # What the HPA controller does once it has metrics (there are none here): keep its minimum of one.
        kube.api.apps.patch_namespaced_deployment_scale("hpa-done-workers", kube.namespace, {"spec": {"replicas": 1}})
        kube.wait("filterjobs", "hpa-done", phase_is("Succeeded"), timeout=60)
        kube.gone("horizontalpodautoscalers", "hpa-done-workers", timeout=30)
        workers = kube.wait("deployments", "hpa-done-workers", lambda d: d["spec"]["replicas"] == 0)
    assert workers["spec"]["replicas"] == 0


@pytest.mark.usefixtures("operator_env")
def test_suspend_pauses_enqueueing_and_resume_continues(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=5, size=(16, 12))
    body = job_body("paused", kube.namespace, tmp_path / "in", tmp_path / "out", suspend=True)
    create(kube, body, created)
    with filterjob_operator.run():
        job = kube.wait("filterjobs", "paused", lambda o: o.get("status", {}).get("phase") == "Suspended", timeout=30)
        assert job["status"].get("enqueued", 0) == 0
        kube.patch_job("paused", {"spec": {"suspend": False}})
        job = kube.wait("filterjobs", "paused", lambda o: o.get("status", {}).get("enqueued") == 5, timeout=30)
        kube.wait("deployments", "paused-workers", lambda d: d["spec"]["replicas"] >= 1, timeout=30)


@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_removes_its_queues(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    stored = create(kube, job_body("gone", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    topology = topology_of(parse_job(stored))
    with filterjob_operator.run():
        kube.wait("filterjobs", "gone", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
        assert queue_exists(topology.tasks)
        kube.delete_job("gone")
        kube.gone("filterjobs", "gone", timeout=30)
    assert not queue_exists(topology.tasks)
    assert not queue_exists(topology.parked)
    # The real garbage collector removes what the job owned: the Deployment, its ReplicaSet, its pods.
    kube.gone("deployments", "gone-workers")
    kube.wait_all("replicasets", lambda found: not found)
    kube.wait_all("pods", lambda found: not found)


@pytest.mark.parametrize(
    ("secret", "reason", "says"),
    [
        (None, "BrokerSecretMissing", "the broker Secret {namespace}/broker does not exist"),
        ({"uri": BROKER_URL}, "BrokerSecretInvalid", "the broker Secret {namespace}/broker has no key url"),
        ({"url": "rabbitmq:5672"}, "BrokerSecretInvalid", "url must be an amqp:// or amqps:// URL"),
        (
            {"url": BROKER_URL.replace("guest@", "wrong-password@")},
            "BrokerRefused",
            "refused the login of user 'guest'",
        ),
        ({"url": "amqp://guest:guest@127.0.0.1:1/"}, "BrokerUnreachable", "connection refused by 127.0.0.1:1"),
    ],
    ids=["missing", "no-url", "not-amqp", "refused", "unreachable"],
)
@pytest.mark.usefixtures("operator_env")
def test_an_unusable_broker_secret_shows_in_the_status_until_it_is_fixed(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    secret: dict[str, str] | None,
    reason: str,
    says: str,
) -> None:
    if secret is not None:
        kube.api.core.create_namespaced_secret(
            kube.namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "stringData": secret}
        )
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    body = job_body("unbrokered", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["broker"] = {"secretRef": {"name": "broker"}}
    stored = create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "unbrokered", ready_reason(reason), timeout=30)
        ready = next(c for c in job["status"]["conditions"] if c["type"] == "Ready")
        assert says.format(namespace=kube.namespace) in ready["message"], ready["message"]
        assert "wrong-password" not in ready["message"]  # a password never goes into the status
        assert job["status"]["phase"] == "Pending"
        assert "queues" not in job["status"]  # none declared yet
        kube.wait_for_event(reason)
        # Fixed, the job goes on by itself: the operator retries, never gives up on it.
        fixed = {"url": base64.b64encode(BROKER_URL.encode()).decode()}
        if secret is None:
            kube.api.core.create_namespaced_secret(
                kube.namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "data": fixed}
            )
        else:
            kube.api.core.replace_namespaced_secret(
                "broker",
                kube.namespace,
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "data": fixed},
            )
        job = kube.wait("filterjobs", "unbrokered", lambda o: o["status"].get("enqueued") == 3, timeout=30)
    assert len(kube.events(reason)) == 1  # said once, not at every retry
    # Where users find the job's queues (kubectl get fj -o wide; filterjob parked).
    assert job["status"]["queues"] == topology_of(parse_job(stored)).base
    assert queue_exists(job["status"]["queues"] + ".tasks")


@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_that_never_reached_its_broker_does_not_wait(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "600")  # longer than this test may take
    body = job_body("typo", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["broker"] = {"secretRef": {"name": "rabbitmg"}}
    create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "typo", ready_reason("BrokerSecretMissing"), timeout=30)
        kube.delete_job("typo")
        kube.gone("filterjobs", "typo", timeout=30)
    assert kube.events("QueuesLeftBehind") == []  # nothing was left: nothing was declared


@pytest.mark.parametrize("gone", ["secret", "broker"])
@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_whose_broker_is_gone_does_not_hang(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    gone: str,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "2")
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    stored = create(kube, job_body("orphan", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    topology = topology_of(parse_job(stored))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "orphan", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
    # Gone while no operator ran: the one that deletes the job never read the Secret (one that
    # had read it uses what it read: test_deleting_its_namespace_takes_a_jobs_queues_with_it).
    if gone == "secret":
        kube.api.core.delete_namespaced_secret("rabbitmq", kube.namespace)
    else:  # a broker nobody answers at any more (loopback, a closed port)
        kube.api.core.patch_namespaced_secret(
            "rabbitmq", kube.namespace, {"stringData": {"url": "amqp://u:p@127.0.0.1:1/"}}
        )
    with filterjob_operator.run(timeout=60):
        kube.delete_job("orphan")
        kube.gone("filterjobs", "orphan", timeout=30)
        kube.wait_for_event("QueuesLeftBehind")
    (warning,) = kube.events("QueuesLeftBehind")
    assert warning["type"] == "Warning"
    for name in (topology.tasks, topology.parked, topology.inputs):
        assert name in warning["message"]
    assert queue_exists(topology.tasks)  # left behind, as the Warning says (the namespace teardown removes them)


@pytest.mark.usefixtures("operator_env")
def test_deleting_its_namespace_takes_a_jobs_queues_with_it(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    """The namespace controller deletes the broker Secret at once and the job only after its
    finalizer: the operator still reaches the broker with the URL it read before."""
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    stored = create(kube, job_body("doomed", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    topology = topology_of(parse_job(stored))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "doomed", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
        kube.api.core.delete_namespace(kube.namespace)
        kube.gone("secrets", "rabbitmq", timeout=30)
        kube.gone("filterjobs", "doomed", timeout=30)
    for name in (topology.tasks, topology.parked, topology.inputs):
        assert not queue_exists(name), name


#: Pod overrides a real cluster needs (see podpolicy for what they may not do).
POD_OVERRIDES: dict[str, Any] = {
    "podSecurityContext": {"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 3000},
    "securityContext": {"runAsUser": 2000},
    "nodeSelector": {"disktype": "ssd"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]
        }
    },
    "priorityClassName": "batch-low",
    "serviceAccountName": "photos-reader",
    "env": [{"name": "FILTERJOB_LOG_LEVEL", "value": "DEBUG"}, {"name": "AWS_REGION", "value": "eu-west-1"}],
    "envFrom": [{"secretRef": {"name": "photos-s3"}}],
    "podLabels": {"team": "imaging"},
    "podAnnotations": {"example.com/owner": "ops"},
}


def assert_overridden(template: dict[str, Any]) -> None:
    pod = template["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "serviceAccountName"):
        assert pod[key] == POD_OVERRIDES[key], key
    assert pod["securityContext"]["fsGroup"] == 3000
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    assert pod["securityContext"]["runAsNonRoot"] is True
    box = pod["containers"][0]
    assert box["securityContext"]["runAsUser"] == 2000
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in box["env"]
    assert box["envFrom"] == POD_OVERRIDES["envFrom"]
    assert template["metadata"]["labels"]["team"] == "imaging"
    assert template["metadata"]["annotations"]["example.com/owner"] == "ops"


@pytest.mark.usefixtures("operator_env")
def test_pod_overrides_reach_the_worker_deployment_and_the_lister_job(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    here = job_body("tuned", kube.namespace, tmp_path / "in", tmp_path / "out")  # the operator sees it: workers at once
    elsewhere = job_body(
        "tuned-list", kube.namespace, tmp_path / "on-the-pvc", tmp_path / "out"
    )  # it does not: a lister Job
    for body in (here, elsewhere):
        body["spec"]["workers"] = POD_OVERRIDES
        create(kube, body, created)
    with filterjob_operator.run():
        workers = kube.wait("deployments", "tuned-workers", timeout=30)
        lister = kube.wait("jobs", "tuned-list-list", timeout=30)
    # The emulator checks built-in objects against Kubernetes' schemas: both were valid.
    assert_overridden(workers["spec"]["template"])
    assert (
        workers["spec"]["selector"]["matchLabels"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
    )
    assert_overridden(lister["spec"]["template"])


@pytest.fixture
def other_namespace(kube: Kube) -> Iterator[str]:
    """A second namespace, deleted after the test (finalizers of FilterJobs left in it removed first)."""
    name = f"{kube.namespace}-other"
    kube.api.core.create_namespace({"metadata": {"name": name}})
    yield name
    for job in kube.api.custom.list_namespaced_custom_object("filterjob.dev", "v1alpha1", name, "filterjobs")["items"]:
        if job["metadata"].get("finalizers"):
            kube.api.custom.patch_namespaced_custom_object(
                "filterjob.dev",
                "v1alpha1",
                name,
                "filterjobs",
                job["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )
    kube.api.core.delete_namespace(name)


@pytest.fixture
def watching_release(
    control_plane: ControlPlane, operator_release: Release, kube: Kube, tmp_path: Path
) -> Iterator[Release]:
    """A second release of the chart that watches only the test's namespace (a Role there; the CRD is the first's)."""
    name = f"filterjob-{kube.namespace}"
    release = install_release(
        control_plane, name, name, {"watchNamespaces": [kube.namespace], "crds": {"install": False}}, tmp_path
    )
    yield release
    uninstalled = tool(control_plane, "helm", "uninstall", name, "--namespace", name)
    assert uninstalled.returncode == 0, uninstalled.stderr
    kube.api.core.delete_namespace(name)


@pytest.mark.usefixtures("operator_env")
def test_watching_a_namespace_list_serves_those_namespaces_only(
    control_plane: ControlPlane,
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    operator_release: Release,
    watching_release: Release,
    other_namespace: str,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    create(kube, job_body("here", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    there = job_body("there", other_namespace, tmp_path / "in", tmp_path / "out")
    kube.api.custom.create_namespaced_custom_object("filterjob.dev", "v1alpha1", other_namespace, "filterjobs", there)
    # As the namespaced release's ServiceAccount, with its Role and small ClusterRole only.
    watching = operator_for(control_plane, watching_release, tmp_path, monkeypatch)
    with watching.run(args=("--namespace", kube.namespace, "--standalone", "--verbose")):
        kube.wait("filterjobs", "here", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
        kube.wait("deployments", "here-workers")
    touched = {
        event["objectRef"].get("namespace")
        for event in control_plane.audit_events(since=watching.since)
        if event["user"]["username"] == watching_release.user
        and event.get("objectRef", {}).get("resource") == "filterjobs"
    }
    assert touched == {kube.namespace}
    untouched = kube.api.custom.get_namespaced_custom_object(
        "filterjob.dev", "v1alpha1", other_namespace, "filterjobs", "there"
    )
    assert "status" not in untouched
    assert not untouched["metadata"].get("finalizers")
    refused = watching.api_usage(decision="forbid")
    assert not refused, f"the API server refused the namespaced operator (403): {sorted(refused)}"
    used = watching.api_usage()
    granted = watching_release.granted(kube.api)
    assert used <= granted, sorted(used - granted)
    # Watching a list of namespaces, the operator needs what the cluster-wide release grants, and
    # sees which of them exist.
    namespaces = {("list", "", "namespaces", ""), ("watch", "", "namespaces", "")}
    assert granted == operator_release.granted(kube.api) | namespaces
    assert namespaces <= used


def stop_mid_enqueue(kube: Kube, operator: FilterJobOperator, name: str, *, after: int) -> dict[str, Any]:
    """Run the operator on a job created suspended, resume it, stop once ``after`` tasks are enqueued.

    Returns the job's status as the stopped operator left it.
    """
    with operator.run(timeout=60):
        kube.wait("filterjobs", name, phase_is("Suspended"), timeout=30)
        kube.patch_job(name, {"spec": {"suspend": False}})
        kube.wait("filterjobs", name, lambda o: o["status"].get("enqueued", 0) >= after)
    paused = kube.get("filterjobs", name)
    assert paused is not None
    state: dict[str, Any] = paused["status"]
    return state


def lister_run(kube: Kube, name: str) -> tuple[str, list[int]]:
    """How the real Job controller ended the lister Job ``name``, and its pods' exit codes."""
    job = kube.wait("jobs", name, lambda j: any(c["status"] == "True" for c in j["status"].get("conditions", [])))
    outcome = next(
        c["type"] for c in job["status"]["conditions"] if c["status"] == "True" and c["type"] in ("Complete", "Failed")
    )
    pods = kube.list("pods", label_selector=f"job-name={name}")
    codes = [status["state"]["terminated"]["exitCode"] for pod in pods for status in pod["status"]["containerStatuses"]]
    return outcome, codes


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_apply_runs_to_succeeded_with_real_workers(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    made = make_samples(tmp_path / "in", count=12, broken=3, size=(80, 60))
    body = job_body("e2e", kube.namespace, tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 2, "messagesPerReplica": 4, "scaleDownDelaySeconds": 0}
    create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "e2e", phase_is("Succeeded", "Failed"), timeout=90)
        workers = kube.wait("deployments", "e2e-workers", lambda d: d["spec"]["replicas"] == 0)
        kube.wait_for_event("Succeeded")  # kopf posts events in the background, after the status
    state = job["status"]
    assert state["phase"] == "Succeeded"
    assert (state["total"], state["succeeded"], state["failed"]) == (15, 12, 3)
    assert state["succeeded"] + state["failed"] == state["total"]
    assert state["progress"] == "12/15"
    assert state["workers"] == {"desired": 0, "ready": 0, "summary": "0/0"}
    assert state["completionTime"]
    assert {c["type"]: c["status"] for c in state["conditions"]} == {
        "Ready": "False",
        "Complete": "True",
        "Failed": "False",
    }
    assert len(state["recentFailures"]) == 3
    assert all(f["reason"].startswith("not a usable image: ") for f in state["recentFailures"])
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    reasons = {e.get("reason") for e in kube.list("events")}
    assert {"Enqueued", "Succeeded"} <= reasons
    assert container_restarts(kube, "e2e-workers-") == 0
    assert workers["spec"]["replicas"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_the_redrive_annotation_runs_a_finished_job_again_on_its_parked_tasks(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    made = make_samples(tmp_path / "in", count=5, broken=3, size=(40, 30))
    body = job_body("again", kube.namespace, tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "again", phase_is("Succeeded", "Failed"), timeout=90)
        assert (job["status"]["succeeded"], job["status"]["failed"]) == (5, 3)
        first_completion = job["status"]["completionTime"]
        for broken in made.broken:  # the cause, fixed: real images under the same keys
            make_image((40, 30), seed=7).save(broken, format="PNG")
        kube.patch_job("again", {"metadata": {"annotations": {"filterjob.dev/redrive": "fixed-inputs"}}})
        job = kube.wait(
            "filterjobs",
            "again",
            lambda o: (
                o.get("status", {}).get("redriven") == "fixed-inputs"
                and o["status"].get("completionTime") not in (None, first_completion)
                and phase_is("Succeeded")(o)
            ),
            timeout=90,
        )
        kube.wait_for_event("Redriven")
    state = job["status"]
    assert (state["total"], state["succeeded"], state["failed"]) == (8, 8, 0)
    assert state["recentFailures"] == []
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in [*made.good, *made.broken]
    }
    redriven = [e for e in kube.list("events") if e.get("reason") == "Redriven"]
    assert len(redriven) == 1
    assert "3 parked tasks moved back" in redriven[0]["message"]


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_operator_restarts_mid_enqueue_and_mid_run_lose_and_duplicate_nothing(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_ENQUEUE_BATCH", "40")
    made = make_samples(tmp_path / "in", count=400, size=(48, 36))
    body = job_body("restarts", kube.namespace, tmp_path / "in", tmp_path / "out", suspend=True)
    body["spec"]["autoscaling"] = {"maxReplicas": 2, "messagesPerReplica": 50, "scaleDownDelaySeconds": 0}
    create(kube, body, created)
    cursor = stop_mid_enqueue(kube, filterjob_operator, "restarts", after=40)["enqueued"]  # saved once per batch of 40
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "restarts", lambda o: o["status"].get("succeeded", 0) >= 100, timeout=90)
    with filterjob_operator.run(timeout=60):  # and once more, while workers are busy
        job = kube.wait("filterjobs", "restarts", phase_is("Succeeded", "Failed"), timeout=120)
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 400, 400, 0)
    assert state["enqueued"] == 400
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert 40 <= cursor < 400, "the first operator was meant to stop mid-enqueue"


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_a_source_changed_while_the_operator_was_down_resumes_after_the_last_key(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_ENQUEUE_BATCH", "20")
    src = tmp_path / "in"
    make_samples(src, count=120, size=(24, 18))
    body = job_body("moving", kube.namespace, src, tmp_path / "out", suspend=True)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(kube, body, created)
    paused = stop_mid_enqueue(kube, filterjob_operator, "moving", after=20)
    enqueued, through = paused["enqueued"], paused["enqueuedThrough"]
    keys = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert keys[enqueued - 1] == through, "the cursor names the last key enqueued"
    assert enqueued < len(keys), "the first operator was meant to stop mid-enqueue"
    # While it is down, an input appears before the cursor and one after it disappears.
    make_image((24, 18), seed=3).save(src / "aaa-added-late.png", format="PNG")
    (src / keys[-1]).unlink()
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "moving", phase_is("Succeeded", "Failed"), timeout=120)
    state = job["status"]
    # What it enqueued before, plus what it found after the cursor: the added input is not
    # part of the job, the removed one never was.
    assert (state["phase"], state["total"], state["enqueued"]) == ("Succeeded", 119, 119)
    assert (state["succeeded"], state["failed"]) == (119, 0)
    assert png_outputs(tmp_path / "out") == {Path(k).with_suffix(".png").as_posix() for k in keys[:-1]}


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_ttl_deletes_a_finished_job(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()  # nothing to do: the job finishes as soon as the queues settle
    create(
        kube, job_body("brief", kube.namespace, tmp_path / "in", tmp_path / "out", ttlSecondsAfterFinished=1), created
    )
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "brief", phase_is("Succeeded"), timeout=60)
        assert (job["status"]["total"], job["status"]["succeeded"]) == (0, 0)
        kube.gone("filterjobs", "brief", timeout=30)
    assert kube.get("deployments", "brief-workers") is None


@pytest.fixture
def listed_by_the_operator(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lister Jobs for every source (FILTERJOB_LIST_INPUTS=job), and the sources the operator
    (in this process; a lister Job runs in its own) listed itself all the same."""
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", "job")
    calls: list[str] = []
    real = sources.scan_inputs

    def recording(job: Any) -> sources.Inputs:
        calls.append(job.spec.source.uri)
        return real(job)

    monkeypatch.setattr(sources, "scan_inputs", recording)
    return calls


def stored_listing(topology: Topology) -> listing.Listing | None:
    async def read() -> listing.Listing | None:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            return await listings.stored_listing(connection, topology)

    return asyncio.run(read())


@pytest.mark.usefixtures("operator_env")
def test_a_suspended_job_starts_its_lister_only_when_resumed(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    create(kube, job_body("later", kube.namespace, tmp_path / "in", tmp_path / "out", suspend=True), created)
    with filterjob_operator.run():
        kube.wait("filterjobs", "later", phase_is("Suspended"), timeout=30)
        assert kube.get("jobs", "later-list") is None
        kube.patch_job("later", {"spec": {"suspend": False}})
        # No kubelet here: the lister never runs, and the job waits for it, saying why.
        kube.wait("jobs", "later-list", timeout=30)
        job = kube.wait("filterjobs", "later", ready_reason("ListerNotStarted"), timeout=30)
    assert job["status"]["phase"] == "Pending"
    ready = next(c for c in job["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "the lister Job later-list has not started: " in ready["message"]
    assert "Unschedulable" in ready["message"]
    assert listed_by_the_operator == []
    assert kube.get("deployments", "later-workers") is None
    # Deleted, the job takes its lister Job and that Job's pod with it (the real garbage collector).
    with filterjob_operator.run():  # its finalizer removes the queues first
        kube.delete_job("later")
        kube.gone("filterjobs", "later", timeout=30)
    kube.gone("jobs", "later-list")
    kube.wait_all("pods", lambda found: not found, label_selector="job-name=later-list")


@pytest.fixture
def photos_claim(kube: Kube, tmp_path: Path) -> Iterator[str]:
    """The claim ``photos`` in the test's namespace, bound by the real PV controller to a hostPath
    volume of ``tmp_path`` (the kubelet harness mounts it at the same path)."""
    volume = f"{kube.namespace}-photos"
    access = {"accessModes": ["ReadWriteMany"], "storageClassName": ""}
    kube.api.core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                **access,
                "capacity": {"storage": "1Gi"},
                "hostPath": {"path": str(tmp_path)},
                "claimRef": {"namespace": kube.namespace, "name": "photos"},
            },
        }
    )
    kube.api.core.create_namespaced_persistent_volume_claim(
        kube.namespace,
        {
            "metadata": {"name": "photos"},
            "spec": {**access, "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    yield "photos"
    kube.api.core.delete_persistent_volume(volume)


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env", "photos_claim")
def test_a_lister_job_lists_a_source_the_operator_does_not_see(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    made = make_samples(tmp_path / "in", count=6, broken=1, size=(40, 30))
    body = job_body("listed", kube.namespace, tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    body["spec"]["workers"] = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "photos"}}],
        "volumeMounts": [{"name": "data", "mountPath": str(tmp_path)}],
    }
    stored = create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "listed", phase_is("Succeeded", "Failed"), timeout=90)
        kube.wait_for_event("Listing")
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 7, 6, 1)
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert listed_by_the_operator == []
    lister = kube.wait("jobs", "listed-list", lambda j: j.get("status", {}).get("succeeded") == 1)
    assert lister["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
    pod = lister["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "photos"}} in pod["volumes"]
    assert {"name": "data", "mountPath": str(tmp_path)} in pod["containers"][0]["volumeMounts"]
    assert lister_run(kube, "listed-list") == ("Complete", [0])
    # The listing stays in the broker, the job's for good: a restarted operator reads it again.
    topology = topology_of(parse_job(stored))
    kept = stored_listing(topology)
    assert kept is not None
    assert kept.keys == sorted(p.relative_to(tmp_path / "in").as_posix() for p in [*made.good, *made.broken])


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_a_source_the_lister_job_cannot_list_fails_the_job(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    missing = tmp_path / "missing"
    create(kube, job_body("nowhere", kube.namespace, missing, tmp_path / "out"), created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "nowhere", phase_is("Failed"), timeout=60)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSource")
    assert str(missing) in failed["message"]
    assert listed_by_the_operator == []
    # Reported, not retried: what cannot change would fail every attempt.
    kube.wait("jobs", "nowhere-list", lambda j: j.get("status", {}).get("succeeded") == 1)
    assert lister_run(kube, "nowhere-list") == ("Complete", [0])
    assert kube.get("deployments", "nowhere-workers") is None
    # The source fixed, a re-drive lists it again (a new lister Job) and runs the job.
    made = make_samples(missing, count=4, size=(24, 18))
    kube.patch_job("nowhere", {"metadata": {"annotations": {"filterjob.dev/redrive": "source-fixed"}}})
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "nowhere", phase_is("Succeeded"), timeout=90)
    assert (job["status"]["total"], job["status"]["succeeded"], job["status"]["redriven"]) == (4, 4, "source-fixed")
    assert png_outputs(tmp_path / "out") == {p.relative_to(missing).with_suffix(".png").as_posix() for p in made.good}
    assert listed_by_the_operator == []


@pytest.mark.usefixtures("operator_env")
def test_a_source_the_operator_cannot_list_completely_fails_the_job_naming_the_path(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    create(kube, job_body("partial", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    with filterjob_operator.run():
        job = kube.wait("filterjobs", "partial", phase_is("Failed"), timeout=30)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSource")
    assert f"{tmp_path / 'in' / 'gone.jpg'}: broken symbolic link" in failed["message"]
    assert "spec.source.skipUnreadable" in failed["message"]
    assert kube.get("deployments", "partial-workers") is None


@pytest.mark.usefixtures("operator_env")
def test_an_empty_source_ends_with_a_source_empty_condition(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images")
    create(kube, job_body("empty", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "empty", phase_is("Succeeded"), timeout=60)
        kube.wait_for_event("NoInputs")
    empty = next(c for c in job["status"]["conditions"] if c["type"] == "SourceEmpty")
    assert (empty["status"], empty["reason"]) == ("True", "NoInputs")
    assert "no inputs: nothing in" in empty["message"]
    assert job["status"]["total"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_skip_unreadable_through_a_lister_job_reports_each_skipped_path(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    made = make_samples(tmp_path / "in", count=3, size=(24, 18))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    body = job_body("skipping", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["source"]["skipUnreadable"] = True
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "skipping", phase_is("Succeeded", "Failed"), timeout=90)
        kube.wait_for_event("SkippedUnreadable")
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["skipped"]) == ("Succeeded", 3, 3, 1)
    assert state["skippedPaths"][0]["path"] == str(tmp_path / "in" / "gone.jpg")
    assert state["skippedPaths"][0]["reason"].startswith("broken symbolic link")
    skipped = next(c for c in state["conditions"] if c["type"] == "InputsSkipped")
    assert (skipped["status"], skipped["reason"]) == ("True", "SkippedUnreadable")
    assert str(tmp_path / "in" / "gone.jpg") in skipped["message"]
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert listed_by_the_operator == []


@pytest.mark.usefixtures("operator_env")
def test_the_operator_runs_as_a_process_with_its_service_accounts_kubeconfig(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=4, size=(16, 12))
    create(kube, job_body("spawned", kube.namespace, tmp_path / "in", tmp_path / "out"), created)
    process = filterjob_operator.spawn(log=tmp_path / "operator.log")
    try:
        job = kube.wait("filterjobs", "spawned", lambda o: o["status"].get("enqueued") == 4, timeout=60)
        kube.wait("deployments", "spawned-workers")
    finally:
        process.kill()  # SIGKILL: what the fault tests do to it
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert job["status"]["total"] == 4
    log = (tmp_path / "operator.log").read_text()
    assert "Initial authentication has finished" in log  # logged in with the kubeconfig's token
    assert "Forbidden" not in log


def costs_set(pods: list[dict[str, Any]]) -> bool:
    """Some worker pods, each with its deletion cost."""
    return bool(pods) and all(
        "controller.kubernetes.io/pod-deletion-cost" in (p["metadata"].get("annotations") or {}) for p in pods
    )


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_the_chart_grants_exactly_what_a_job_lifecycle_uses(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every rule of the chart's RBAC is needed, but for what admission asks (ADMISSION): the audit log
    of one run through what the operator does for jobs uses each. A lister Job whose pod cannot start
    (its pods read), then lists a missing source and fails the job, a re-drive deletes it and lists
    again; workers created, read, scaled up and down, their pods' deletion costs set; an HPA created,
    patched back by a restarted operator and removed once its job is done; a finished job deleted by
    its TTL; events, the Secret."""
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", "job")
    cluster_kubelet.refuse_image = lambda image: "failed to resolve reference: not found"
    missing = tmp_path / "missing"
    # Its TTL comes with the re-drive: set now, the failed job could be deleted before the test re-drives it.
    life = job_body("life", kube.namespace, missing, tmp_path / "out")
    life["spec"]["autoscaling"] = {"maxReplicas": 1, "messagesPerReplica": 1, "scaleDownDelaySeconds": 0}
    make_samples(tmp_path / "hpa-in", count=2, size=(16, 12))
    scaled = job_body("scaled", kube.namespace, tmp_path / "hpa-in", tmp_path / "hpa-out")
    scaled["spec"]["autoscaling"] = {"mode": "hpa", "maxReplicas": 2}
    for body in (life, scaled):
        create(kube, body, created)
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "life", ready_reason("ListerNotStarted"), timeout=30)
        cluster_kubelet.refuse_image = None
        job = kube.wait("filterjobs", "life", phase_is("Failed"), timeout=60)
        kube.wait("horizontalpodautoscalers", "scaled-workers", timeout=60)
    assert next(c for c in job["status"]["conditions"] if c["type"] == "Failed")["reason"] == "InvalidSource"
    # Changed behind its back while the operator was down: the restarted one patches it back.
    kube.api.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "scaled-workers", kube.namespace, {"spec": {"maxReplicas": 9}}
    )
    made = make_samples(missing, count=3, size=(16, 12))
    kube.patch_job(
        "life",
        {
            "metadata": {"annotations": {"filterjob.dev/redrive": "source-fixed"}},
            "spec": {"ttlSecondsAfterFinished": 1},
        },
    )
    with filterjob_operator.run(timeout=60):
        kube.wait("horizontalpodautoscalers", "scaled-workers", lambda h: h["spec"]["maxReplicas"] == 2, timeout=30)
        # What the HPA controller does once it has metrics (there are none here): two workers, whose
        # deletion costs the operator then keeps (their pods patched).
        kube.api.apps.patch_namespaced_deployment_scale("scaled-workers", kube.namespace, {"spec": {"replicas": 2}})
        kube.wait_all("pods", costs_set, timeout=60, label_selector="app.kubernetes.io/component=worker")
        kube.wait("filterjobs", "scaled", phase_is("Succeeded"), timeout=90)
        kube.gone("horizontalpodautoscalers", "scaled-workers", timeout=30)
        kube.gone("filterjobs", "life", timeout=90)  # re-driven, run to Succeeded, then deleted by its TTL
    assert png_outputs(tmp_path / "out") == {p.relative_to(missing).with_suffix(".png").as_posix() for p in made.good}
    used = filterjob_operator.api_usage()
    granted = filterjob_operator.release.granted(kube.api)
    assert used | ADMISSION == granted, (
        f"granted but not used: {sorted(granted - used - ADMISSION)}; used but not granted: {sorted(used - granted)}"
    )
