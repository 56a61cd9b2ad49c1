"""The real operator (kopf, in a KopfRunner) against the emulated API and the real broker.

Every test here also checks the operator's API calls against ``operator-api-usage.json``
(what the chart's RBAC grants), and the last test checks that every recorded call was made.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from filterjob_operator import broker, listing, sources
from filterjob_operator.samples import make_image, make_samples
from filterjob_operator.spec import JobSpecError, parse_job
from filterjob_operator.workerenv import topology_of
from filterjob_worker.topology import Topology, delete
from tests.integration.broker.conftest import BROKER_URL

from . import api_usage
from .conftest import K8sApi, passed
from .emulator import DEPLOYMENTS, EVENTS, FILTERJOBS, HPAS, JOBS, KUBECONFIG_TOKEN, RunningCluster
from .kubelet import Kubelet

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = ROOT / "operator" / "filterjob_operator" / "handlers.py"
NS = "photos"
RECORDED = api_usage.load()
#: The operator's calls in each test function of this module: name -> (watched a namespace list, calls).
USED: dict[str, tuple[bool, set[api_usage.Triple]]] = {}
#: Test functions of this module that failed (any of their parameters), so their calls may be missing.
FAILED: set[str] = set()


@pytest.fixture(autouse=True)
def operator_api_usage(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test if the operator made an API call that ``operator-api-usage.json`` does not list."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: RunningCluster = request.getfixturevalue("cluster")  # so it is torn down after this fixture
    yield
    namespaced = "namespaced_args" in request.fixturenames
    used = cluster.call(lambda em: em.rbac_usage(token=KUBECONFIG_TOKEN))
    allowed = RECORDED.calls | (RECORDED.calls_watching_namespaces if namespaced else frozenset())
    unrecorded = sorted(used - allowed)
    assert not unrecorded, f"the operator made API calls that are not recorded: {unrecorded}; {api_usage.update_hint()}"
    name = request.node.originalname
    if not passed(request.node):
        FAILED.add(name)
    USED[name] = (namespaced, used | USED.get(name, (namespaced, set()))[1])


@pytest.fixture
def namespaced_args() -> tuple[str, ...]:
    """kopf's arguments to serve only NS, as ``filterjob operator --namespace photos`` does."""
    return ("--namespace", NS, "--standalone", "--verbose")


def job_body(name: str, src: Path, dst: Path, **spec: Any) -> dict[str, Any]:
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


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, k8s_api: K8sApi) -> None:
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    k8s_api.core.create_namespaced_secret(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "rabbitmq"},
            "data": {"url": base64.b64encode(BROKER_URL.encode()).decode()},
        },
    )


@pytest.fixture
def created(k8s_api: K8sApi) -> Iterator[list[dict[str, Any]]]:
    """FilterJobs created by the test; their queues are removed afterwards."""
    bodies: list[dict[str, Any]] = []
    yield bodies
    for body in bodies:
        try:
            topology = topology_of(parse_job(body))
        except JobSpecError:
            continue  # never valid: nothing was declared
        if body["metadata"].get("uid"):

            async def forget(topology: Topology = topology) -> None:
                connection = await aio_pika.connect(BROKER_URL)
                async with connection:
                    await delete(await connection.channel(), topology)

            asyncio.run(forget())


def create(k8s_api: K8sApi, body: dict[str, Any], created: list[dict[str, Any]]) -> dict[str, Any]:
    stored: dict[str, Any] = k8s_api.custom.create_namespaced_custom_object(
        "filterjob.dev", "v1alpha1", NS, "filterjobs", body
    )
    created.append(stored)
    return stored


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_an_invalid_spec_ends_failed_with_a_condition_naming_the_problem(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    body = job_body("bad", tmp_path / "in", tmp_path / "out")
    body["spec"]["filters"] = [{"name": "blur", "radius": -1}]
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS):
        # Failed, and kopf done with its creation handling: stopping while kopf still patches
        # its own annotation would race kopf's exit (it starts the daemon again, then cancels it).
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "bad", lambda o: phase_is("Failed")(o) and kopf_settled(o), timeout=30
        )
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True"
    assert failed["reason"] == "InvalidSpec"
    assert "spec.filters[0] (blur): radius must be between 0 and 100, got -1" in failed["message"]


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_apply_enqueues_every_input_and_creates_the_workers(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=7, size=(64, 48))
    stored = create(k8s_api, job_body("thumbs", tmp_path / "in", tmp_path / "out"), created)
    with cluster.run_operator(HANDLERS):
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "thumbs", lambda o: o.get("status", {}).get("enqueued") == 7, timeout=30
        )
        workers = cluster.wait_for_object(DEPLOYMENTS, NS, "thumbs-workers", lambda d: d["spec"]["replicas"] >= 1)
    assert job["status"]["total"] == 7
    assert job["status"]["phase"] in ("Enqueuing", "Running")
    owner = workers["metadata"]["ownerReferences"][0]
    assert owner["uid"] == stored["metadata"]["uid"]
    env = {e["name"]: e for e in workers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FILTERJOB_QUEUE"]["value"] == topology_of(parse_job(stored)).tasks
    assert env["FILTERJOB_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == "rabbitmq"


def queue_exists(name: str) -> bool:
    async def check() -> bool:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            return True

    return asyncio.run(check())


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_backlog_scales_the_workers_up_to_max_replicas(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=60, size=(16, 12))
    body = job_body("backlog", tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"maxReplicas": 3, "messagesPerReplica": 10}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS):
        # No kubelet here: nothing consumes, so the backlog stays and asks for the cap.
        cluster.wait_for_object(DEPLOYMENTS, NS, "backlog-workers", lambda d: d["spec"]["replicas"] == 3, timeout=30)
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "backlog", lambda o: o.get("status", {}).get("phase") == "Running", timeout=30
        )
    assert job["status"]["queued"] == 60
    assert job["status"]["workers"]["desired"] == 3


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_hpa_mode_renders_an_hpa_and_leaves_replicas_alone(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=30, size=(16, 12))
    body = job_body("hpa", tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "hpa", "maxReplicas": 4, "messagesPerReplica": 5}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS):
        hpa = cluster.wait_for_object(HPAS, NS, "hpa-workers", timeout=30)
        cluster.wait_for_object(
            FILTERJOBS, NS, "hpa", lambda o: o.get("status", {}).get("phase") == "Running", timeout=30
        )
        # Several status passes later, the operator still has not touched replicas.
        cluster.wait_for_object(FILTERJOBS, NS, "hpa", lambda o: o.get("status", {}).get("queued") == 30, timeout=30)
    workers = cluster.get(DEPLOYMENTS, NS, "hpa-workers")
    assert workers is not None
    assert workers["spec"]["replicas"] == 0
    assert hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["metrics"][0]["external"]["target"]["averageValue"] == "5"
    # Changed behind its back, the HPA is brought back to the job's spec by a restarted operator.
    k8s_api.autoscaling.patch_namespaced_horizontal_pod_autoscaler("hpa-workers", NS, {"spec": {"maxReplicas": 9}})
    with cluster.run_operator(HANDLERS):
        cluster.wait_for_object(HPAS, NS, "hpa-workers", lambda h: h["spec"]["maxReplicas"] == 4, timeout=30)
    scaled = [c for c in cluster.api_calls if c.subresource == "scale"]
    assert scaled == []


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_hpa_mode_hands_the_workers_back_when_the_job_is_done(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()  # nothing to do: the job finishes as soon as the queues settle
    body = job_body("hpa-done", tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "hpa", "maxReplicas": 4}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        cluster.wait_for_object(HPAS, NS, "hpa-done-workers", timeout=30)
        # What the HPA controller would do: keep its minimum of one replica.
        k8s_api.apps.patch_namespaced_deployment_scale("hpa-done-workers", NS, {"spec": {"replicas": 1}})
        cluster.wait_for_object(FILTERJOBS, NS, "hpa-done", phase_is("Succeeded"), timeout=60)
        cluster.wait_for_absence(HPAS, NS, "hpa-done-workers", timeout=30)
        workers = cluster.wait_for_object(DEPLOYMENTS, NS, "hpa-done-workers", lambda d: d["spec"]["replicas"] == 0)
    assert workers["spec"]["replicas"] == 0


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_suspend_pauses_enqueueing_and_resume_continues(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=5, size=(16, 12))
    body = job_body("paused", tmp_path / "in", tmp_path / "out", suspend=True)
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS):
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "paused", lambda o: o.get("status", {}).get("phase") == "Suspended", timeout=30
        )
        assert job["status"].get("enqueued", 0) == 0
        patch_job(k8s_api, "paused", {"spec": {"suspend": False}})
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "paused", lambda o: o.get("status", {}).get("enqueued") == 5, timeout=30
        )
        cluster.wait_for_object(DEPLOYMENTS, NS, "paused-workers", lambda d: d["spec"]["replicas"] >= 1, timeout=30)


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_deleting_a_job_removes_its_queues(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    stored = create(k8s_api, job_body("gone", tmp_path / "in", tmp_path / "out"), created)
    topology = topology_of(parse_job(stored))
    with cluster.run_operator(HANDLERS):
        cluster.wait_for_object(FILTERJOBS, NS, "gone", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
        assert queue_exists(topology.tasks)
        k8s_api.custom.delete_namespaced_custom_object("filterjob.dev", "v1alpha1", NS, "filterjobs", "gone")
        cluster.wait_for_absence(FILTERJOBS, NS, "gone", timeout=30)
    assert not queue_exists(topology.tasks)
    assert not queue_exists(topology.parked)
    assert cluster.get(DEPLOYMENTS, NS, "gone-workers") is None  # garbage-collected with its owner


def ready_reason(reason: str) -> Any:
    def check(job: dict[str, Any]) -> bool:
        conditions = job.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "False" and c["reason"] == reason for c in conditions)

    return check


def events_with(cluster: RunningCluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list(EVENTS, NS) if e.get("reason") == reason]


@pytest.mark.parametrize(
    ("secret", "reason", "says"),
    [
        (None, "BrokerSecretMissing", "the broker Secret photos/broker does not exist"),
        ({"uri": BROKER_URL}, "BrokerSecretInvalid", "the broker Secret photos/broker has no key url"),
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
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_an_unusable_broker_secret_shows_in_the_status_until_it_is_fixed(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    created: list[dict[str, Any]],
    secret: dict[str, str] | None,
    reason: str,
    says: str,
) -> None:
    if secret is not None:
        k8s_api.core.create_namespaced_secret(
            NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "stringData": secret}
        )
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    body = job_body("unbrokered", tmp_path / "in", tmp_path / "out")
    body["spec"]["broker"] = {"secretRef": {"name": "broker"}}
    stored = create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "unbrokered", ready_reason(reason), timeout=30)
        ready = next(c for c in job["status"]["conditions"] if c["type"] == "Ready")
        assert says in ready["message"], ready["message"]
        assert "wrong-password" not in ready["message"]  # a password never goes into the status
        assert job["status"]["phase"] == "Pending"
        assert "queues" not in job["status"]  # none declared yet
        wait_for_event(cluster, reason)
        # Fixed, the job goes on by itself: the operator retries, never gives up on it.
        fixed = {"url": base64.b64encode(BROKER_URL.encode()).decode()}
        if secret is None:
            k8s_api.core.create_namespaced_secret(
                NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "data": fixed}
            )
        else:
            k8s_api.core.replace_namespaced_secret(
                "broker", NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker"}, "data": fixed}
            )
        job = cluster.wait_for_object(
            FILTERJOBS, NS, "unbrokered", lambda o: o["status"].get("enqueued") == 3, timeout=30
        )
    assert len(events_with(cluster, reason)) == 1  # said once, not at every retry
    # Where users find the job's queues (kubectl get fj -o wide; filterjob parked).
    assert job["status"]["queues"] == topology_of(parse_job(stored)).base
    assert queue_exists(job["status"]["queues"] + ".tasks")


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_deleting_a_job_that_never_reached_its_broker_does_not_wait(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "600")  # longer than this test may take
    body = job_body("typo", tmp_path / "in", tmp_path / "out")
    body["spec"]["broker"] = {"secretRef": {"name": "rabbitmg"}}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        cluster.wait_for_object(FILTERJOBS, NS, "typo", ready_reason("BrokerSecretMissing"), timeout=30)
        k8s_api.custom.delete_namespaced_custom_object("filterjob.dev", "v1alpha1", NS, "filterjobs", "typo")
        cluster.wait_for_absence(FILTERJOBS, NS, "typo", timeout=30)
    assert events_with(cluster, "QueuesLeftBehind") == []  # nothing was left: nothing was declared


@pytest.mark.parametrize("gone", ["secret", "broker"])
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_deleting_a_job_whose_broker_is_gone_does_not_hang(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    gone: str,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "2")
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    stored = create(k8s_api, job_body("orphan", tmp_path / "in", tmp_path / "out"), created)
    topology = topology_of(parse_job(stored))
    with cluster.run_operator(HANDLERS, timeout=60):
        cluster.wait_for_object(
            FILTERJOBS, NS, "orphan", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30
        )
        if gone == "secret":
            k8s_api.core.delete_namespaced_secret("rabbitmq", NS)
        else:  # a broker nobody answers at any more (loopback, a closed port)
            k8s_api.core.patch_namespaced_secret("rabbitmq", NS, {"stringData": {"url": "amqp://u:p@127.0.0.1:1/"}})
        k8s_api.custom.delete_namespaced_custom_object("filterjob.dev", "v1alpha1", NS, "filterjobs", "orphan")
        cluster.wait_for_absence(FILTERJOBS, NS, "orphan", timeout=30)
        wait_for_event(cluster, "QueuesLeftBehind")
    (warning,) = events_with(cluster, "QueuesLeftBehind")
    assert warning["type"] == "Warning"
    for name in (topology.tasks, topology.parked, topology.inputs):
        assert name in warning["message"]
    assert queue_exists(topology.tasks)  # left behind, as the Warning says (the fixture removes them)


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


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_pod_overrides_reach_the_worker_deployment_and_the_lister_job(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    here = job_body("tuned", tmp_path / "in", tmp_path / "out")  # the operator sees it: workers at once
    elsewhere = job_body("tuned-list", tmp_path / "on-the-pvc", tmp_path / "out")  # it does not: a lister Job
    for body in (here, elsewhere):
        body["spec"]["workers"] = POD_OVERRIDES
        create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS):
        workers = cluster.wait_for_object(DEPLOYMENTS, NS, "tuned-workers", timeout=30)
        lister = cluster.wait_for_object(JOBS, NS, "tuned-list-list", timeout=30)
    # The emulator checks built-in objects against Kubernetes' schemas: both were valid.
    assert_overridden(workers["spec"]["template"])
    assert (
        workers["spec"]["selector"]["matchLabels"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
    )
    assert_overridden(lister["spec"]["template"])


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_watching_a_namespace_list_serves_those_namespaces_only(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    created: list[dict[str, Any]],
    namespaced_args: tuple[str, ...],
) -> None:
    for namespace in (NS, "elsewhere"):  # kopf serves only the listed namespaces that exist
        k8s_api.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    create(k8s_api, job_body("here", tmp_path / "in", tmp_path / "out"), created)
    there = job_body("there", tmp_path / "in", tmp_path / "out")
    there["metadata"]["namespace"] = "elsewhere"
    k8s_api.custom.create_namespaced_custom_object("filterjob.dev", "v1alpha1", "elsewhere", "filterjobs", there)
    with cluster.run_operator(HANDLERS, args=namespaced_args):
        cluster.wait_for_object(FILTERJOBS, NS, "here", lambda o: o.get("status", {}).get("enqueued") == 3, timeout=30)
        cluster.wait_for_object(DEPLOYMENTS, NS, "here-workers")
    operator_calls = [c for c in cluster.api_calls if c.authorization == f"Bearer {KUBECONFIG_TOKEN}"]
    assert [c.path for c in operator_calls if c.resource == "filterjobs" and c.namespace != NS] == []
    untouched = cluster.get(FILTERJOBS, "elsewhere", "there")
    assert untouched is not None
    assert "status" not in untouched
    assert not untouched["metadata"].get("finalizers")


def phase_is(*phases: str) -> Any:
    return lambda o: o.get("status", {}).get("phase") in phases


def stop_mid_enqueue(cluster: RunningCluster, k8s_api: K8sApi, name: str, *, after: int) -> dict[str, Any]:
    """Run the operator on a job created suspended, resume it, stop once ``after`` tasks are enqueued.

    Returns the job's status as the stopped operator left it.
    """
    with cluster.run_operator(HANDLERS, timeout=60):
        cluster.wait_for_object(FILTERJOBS, NS, name, phase_is("Suspended"), timeout=30)
        patch_job(k8s_api, name, {"spec": {"suspend": False}})
        cluster.wait_for_object(FILTERJOBS, NS, name, lambda o: o["status"].get("enqueued", 0) >= after)
    paused = cluster.get(FILTERJOBS, NS, name)
    assert paused is not None
    state: dict[str, Any] = paused["status"]
    return state


def patch_job(k8s_api: K8sApi, name: str, patch: dict[str, Any]) -> None:
    """Merge-patch a FilterJob, as ``kubectl patch fj NAME --type merge`` does."""
    k8s_api.custom.patch_namespaced_custom_object("filterjob.dev", "v1alpha1", NS, "filterjobs", name, patch)


def kopf_settled(body: dict[str, Any]) -> bool:
    """kopf has recorded the spec it handled (its last patch of a new object)."""
    return "filterjob.dev/last-handled-configuration" in body["metadata"].get("annotations", {})


def wait_for_event(cluster: RunningCluster, reason: str) -> None:
    cluster.wait_for(
        lambda em: any(e.get("reason") == reason for e in em.list_objects(EVENTS, NS)),
        timeout=30,
        message=f"a {reason} event",
    )


def png_outputs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.png")}


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_apply_runs_to_succeeded_with_real_workers(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    made = make_samples(tmp_path / "in", count=12, broken=3, size=(80, 60))
    body = job_body("e2e", tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 2, "messagesPerReplica": 4, "scaleDownDelaySeconds": 0}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "e2e", phase_is("Succeeded", "Failed"), timeout=90)
        workers = cluster.wait_for_object(DEPLOYMENTS, NS, "e2e-workers", lambda d: d["spec"]["replicas"] == 0)
        wait_for_event(cluster, "Succeeded")  # kopf posts events in the background, after the status
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
    reasons = {e.get("reason") for e in cluster.list(EVENTS, NS)}
    assert {"Enqueued", "Succeeded"} <= reasons
    assert kubelet.restarts(NS, "e2e-workers") == 0
    assert workers["spec"]["replicas"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_the_redrive_annotation_runs_a_finished_job_again_on_its_parked_tasks(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    made = make_samples(tmp_path / "in", count=5, broken=3, size=(40, 30))
    body = job_body("again", tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "again", phase_is("Succeeded", "Failed"), timeout=90)
        assert (job["status"]["succeeded"], job["status"]["failed"]) == (5, 3)
        first_completion = job["status"]["completionTime"]
        for broken in made.broken:  # the cause, fixed: real images under the same keys
            make_image((40, 30), seed=7).save(broken, format="PNG")
        patch_job(k8s_api, "again", {"metadata": {"annotations": {"filterjob.dev/redrive": "fixed-inputs"}}})
        job = cluster.wait_for_object(
            FILTERJOBS,
            NS,
            "again",
            lambda o: (
                o.get("status", {}).get("redriven") == "fixed-inputs"
                and o["status"].get("completionTime") not in (None, first_completion)
                and phase_is("Succeeded")(o)
            ),
            timeout=90,
        )
        wait_for_event(cluster, "Redriven")
    state = job["status"]
    assert (state["total"], state["succeeded"], state["failed"]) == (8, 8, 0)
    assert state["recentFailures"] == []
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in [*made.good, *made.broken]
    }
    redriven = [e for e in cluster.list(EVENTS, NS) if e.get("reason") == "Redriven"]
    assert len(redriven) == 1
    assert "3 parked tasks moved back" in redriven[0]["message"]


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_operator_restarts_mid_enqueue_and_mid_run_lose_and_duplicate_nothing(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_ENQUEUE_BATCH", "40")
    made = make_samples(tmp_path / "in", count=400, size=(48, 36))
    body = job_body("restarts", tmp_path / "in", tmp_path / "out", suspend=True)
    body["spec"]["autoscaling"] = {"maxReplicas": 2, "messagesPerReplica": 50, "scaleDownDelaySeconds": 0}
    create(k8s_api, body, created)
    cursor = stop_mid_enqueue(cluster, k8s_api, "restarts", after=40)["enqueued"]  # saved once per batch of 40
    with cluster.run_operator(HANDLERS, timeout=60):
        cluster.wait_for_object(
            FILTERJOBS, NS, "restarts", lambda o: o["status"].get("succeeded", 0) >= 100, timeout=90
        )
    with cluster.run_operator(HANDLERS, timeout=60):  # and once more, while workers are busy
        job = cluster.wait_for_object(FILTERJOBS, NS, "restarts", phase_is("Succeeded", "Failed"), timeout=120)
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 400, 400, 0)
    assert state["enqueued"] == 400
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert 40 <= cursor < 400, "the first operator was meant to stop mid-enqueue"


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_source_changed_while_the_operator_was_down_resumes_after_the_last_key(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_ENQUEUE_BATCH", "20")
    src = tmp_path / "in"
    make_samples(src, count=120, size=(24, 18))
    body = job_body("moving", src, tmp_path / "out", suspend=True)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(k8s_api, body, created)
    paused = stop_mid_enqueue(cluster, k8s_api, "moving", after=20)
    enqueued, through = paused["enqueued"], paused["enqueuedThrough"]
    keys = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert keys[enqueued - 1] == through, "the cursor names the last key enqueued"
    assert enqueued < len(keys), "the first operator was meant to stop mid-enqueue"
    # While it is down, an input appears before the cursor and one after it disappears.
    make_image((24, 18), seed=3).save(src / "aaa-added-late.png", format="PNG")
    (src / keys[-1]).unlink()
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "moving", phase_is("Succeeded", "Failed"), timeout=120)
    state = job["status"]
    # What it enqueued before, plus what it found after the cursor: the added input is not
    # part of the job, the removed one never was.
    assert (state["phase"], state["total"], state["enqueued"]) == ("Succeeded", 119, 119)
    assert (state["succeeded"], state["failed"]) == (119, 0)
    assert png_outputs(tmp_path / "out") == {Path(k).with_suffix(".png").as_posix() for k in keys[:-1]}


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_ttl_deletes_a_finished_job(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()  # nothing to do: the job finishes as soon as the queues settle
    create(k8s_api, job_body("brief", tmp_path / "in", tmp_path / "out", ttlSecondsAfterFinished=1), created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "brief", phase_is("Succeeded"), timeout=60)
        assert (job["status"]["total"], job["status"]["succeeded"]) == (0, 0)
        cluster.wait_for_absence(FILTERJOBS, NS, "brief", timeout=30)
    assert cluster.get(DEPLOYMENTS, NS, "brief-workers") is None


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
            return await broker.stored_listing(connection, topology)

    return asyncio.run(read())


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_suspended_job_starts_its_lister_only_when_resumed(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    create(k8s_api, job_body("later", tmp_path / "in", tmp_path / "out", suspend=True), created)
    with cluster.run_operator(HANDLERS):
        cluster.wait_for_object(FILTERJOBS, NS, "later", phase_is("Suspended"), timeout=30)
        assert cluster.get(JOBS, NS, "later-list") is None
        patch_job(k8s_api, "later", {"spec": {"suspend": False}})
        # No kubelet here: the lister never runs, and the job waits for it.
        cluster.wait_for_object(JOBS, NS, "later-list", timeout=30)
        job = cluster.wait_for_object(FILTERJOBS, NS, "later", phase_is("Pending"), timeout=30)
    ready = next(c for c in job["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Listing")
    assert "later-list" in ready["message"]
    assert listed_by_the_operator == []
    assert cluster.get(DEPLOYMENTS, NS, "later-workers") is None


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_lister_job_lists_a_source_the_operator_does_not_see(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    made = make_samples(tmp_path / "in", count=6, broken=1, size=(40, 30))
    body = job_body("listed", tmp_path / "in", tmp_path / "out", maxFailedRatio=0.5)
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    body["spec"]["workers"] = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "photos"}}],
        "volumeMounts": [{"name": "data", "mountPath": str(tmp_path)}],
    }
    stored = create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "listed", phase_is("Succeeded", "Failed"), timeout=90)
        wait_for_event(cluster, "Listing")
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 7, 6, 1)
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert listed_by_the_operator == []
    lister = cluster.wait_for_object(JOBS, NS, "listed-list", lambda j: j.get("status", {}).get("succeeded") == 1)
    assert lister["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
    pod = lister["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "photos"}} in pod["volumes"]
    assert {"name": "data", "mountPath": str(tmp_path)} in pod["containers"][0]["volumeMounts"]
    run = kubelet.job(NS, "listed-list")
    assert run is not None
    assert (run.outcome, run.exit_codes) == ("Complete", (0,))
    # The listing stays in the broker, the job's for good: a restarted operator reads it again.
    topology = topology_of(parse_job(stored))
    kept = stored_listing(topology)
    assert kept is not None
    assert kept.keys == sorted(p.relative_to(tmp_path / "in").as_posix() for p in [*made.good, *made.broken])


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_source_the_lister_job_cannot_list_fails_the_job(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    missing = tmp_path / "missing"
    create(k8s_api, job_body("nowhere", missing, tmp_path / "out"), created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "nowhere", phase_is("Failed"), timeout=60)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSource")
    assert str(missing) in failed["message"]
    assert listed_by_the_operator == []
    # Reported, not retried: what cannot change would fail every attempt.
    cluster.wait_for_object(JOBS, NS, "nowhere-list", lambda j: j.get("status", {}).get("succeeded") == 1)
    run = kubelet.job(NS, "nowhere-list")
    assert run is not None
    assert (run.outcome, run.exit_codes) == ("Complete", (0,))
    assert cluster.get(DEPLOYMENTS, NS, "nowhere-workers") is None
    # The source fixed, a re-drive lists it again (a new lister Job) and runs the job.
    made = make_samples(missing, count=4, size=(24, 18))
    patch_job(k8s_api, "nowhere", {"metadata": {"annotations": {"filterjob.dev/redrive": "source-fixed"}}})
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "nowhere", phase_is("Succeeded"), timeout=90)
    assert (job["status"]["total"], job["status"]["succeeded"], job["status"]["redriven"]) == (4, 4, "source-fixed")
    assert png_outputs(tmp_path / "out") == {p.relative_to(missing).with_suffix(".png").as_posix() for p in made.good}
    assert listed_by_the_operator == []


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_a_source_the_operator_cannot_list_completely_fails_the_job_naming_the_path(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    create(k8s_api, job_body("partial", tmp_path / "in", tmp_path / "out"), created)
    with cluster.run_operator(HANDLERS):
        job = cluster.wait_for_object(FILTERJOBS, NS, "partial", phase_is("Failed"), timeout=30)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSource")
    assert f"{tmp_path / 'in' / 'gone.jpg'}: broken symbolic link" in failed["message"]
    assert "spec.source.skipUnreadable" in failed["message"]
    assert cluster.get(DEPLOYMENTS, NS, "partial-workers") is None


@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_an_empty_source_ends_with_a_source_empty_condition(
    cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images")
    create(k8s_api, job_body("empty", tmp_path / "in", tmp_path / "out"), created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "empty", phase_is("Succeeded"), timeout=60)
        wait_for_event(cluster, "NoInputs")
    empty = next(c for c in job["status"]["conditions"] if c["type"] == "SourceEmpty")
    assert (empty["status"], empty["reason"]) == ("True", "NoInputs")
    assert "no inputs: nothing in" in empty["message"]
    assert job["status"]["total"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("kubeconfig", "operator_env")
def test_skip_unreadable_through_a_lister_job_reports_each_skipped_path(
    cluster: RunningCluster,
    k8s_api: K8sApi,
    kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    listed_by_the_operator: list[str],
) -> None:
    made = make_samples(tmp_path / "in", count=3, size=(24, 18))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    body = job_body("skipping", tmp_path / "in", tmp_path / "out")
    body["spec"]["source"]["skipUnreadable"] = True
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    create(k8s_api, body, created)
    with cluster.run_operator(HANDLERS, timeout=60):
        job = cluster.wait_for_object(FILTERJOBS, NS, "skipping", phase_is("Succeeded", "Failed"), timeout=90)
        wait_for_event(cluster, "SkippedUnreadable")
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


def test_every_recorded_call_is_made() -> None:
    """Nothing recorded in operator-api-usage.json, and so granted by the chart, goes unused. Keep this test last."""
    tests = {name for name in globals() if name.startswith("test_")} - {"test_every_recorded_call_is_made"}
    if missing := sorted((tests - USED.keys()) | FAILED):
        pytest.skip(f"needs every operator test of this module passed in this run; not run or failed: {missing}")
    watching_all = set().union(*(used for namespaced, used in USED.values() if not namespaced))
    watching_list = set().union(*(used for namespaced, used in USED.values() if namespaced))
    unused = sorted(RECORDED.calls - watching_all)
    assert not unused, f"recorded API calls that no test made: {unused}; {api_usage.update_hint()}"
    extra = watching_list - RECORDED.calls
    assert extra == RECORDED.calls_watching_namespaces, (
        f"watching a namespace list, the operator additionally made {sorted(extra)}, "
        f"recorded: {sorted(RECORDED.calls_watching_namespaces)}; {api_usage.update_hint()}"
    )
