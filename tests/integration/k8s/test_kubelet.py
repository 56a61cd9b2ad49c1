"""The kubelet harness (kubelet.py): Deployments in the emulator run as real local processes.

The first tests use a tiny stand-in process (it records its argv and env, and answers probes);
the rest run the real ``filterjob-worker`` from the operator's Deployment against the real
RabbitMQ, without the operator.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import kubernetes.client
import pytest

from filterjob_operator import broker, sources
from filterjob_operator.builders import deployment as deployment_builder
from filterjob_operator.samples import make_samples
from filterjob_operator.settings import Settings
from filterjob_operator.spec import FilterJob, parse_job
from filterjob_operator.workerenv import retry_policy, topology_of
from filterjob_worker.contract import Event, Task
from filterjob_worker.topology import Topology, declare, delete
from tests.integration.broker.conftest import BROKER_URL

from .conftest import K8sApi
from .emulator import DEPLOYMENTS, FILTERJOBS, GROUP, JOBS, PLURAL, VERSION, RunningCluster
from .kubelet import HEALTH_PORT_ENV, KUBELET_TOKEN, Kubelet, Pod

NS = "photos"
#: Short grace: an idle worker drains at once, and teardown never waits long.
SETTINGS = Settings(worker_grace_seconds=3)

# A stand-in for a container's process: writes what it was started with to argv[1], then serves
# 200 on every GET at $FILTERJOB_HEALTH_PORT. "stubborn" ignores SIGTERM and starts a child.
FAKE_POD = """
import json, os, signal, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

child = None
if sys.argv[2:] == ["stubborn"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "600"]).pid
record = {"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid(), "child": child, "exe": sys.executable}
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(record, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
print("fake pod up", flush=True)

class Probe(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["FILTERJOB_HEALTH_PORT"])), Probe).serve_forever()
"""


def fake_deployment(
    name: str,
    out: Path,
    *,
    replicas: int = 1,
    env: list[dict[str, Any]] | None = None,
    mode: str | None = None,
    grace: int = 5,
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [
                        {
                            "name": "fake",
                            "image": "not-pulled:latest",
                            "command": ["python", "-c", FAKE_POD],
                            "args": ["$(OUT)/$(POD_NAME).json", *([mode] if mode else [])],
                            "env": [
                                {"name": "OUT", "value": str(out)},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                *(env or []),
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        }
                    ],
                },
            },
        },
    }


def record_of(out: Path, pod: Pod) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / f"{pod.name}.json").read_text())
    return result


def status_of(cluster: RunningCluster, name: str) -> dict[str, Any]:
    body = cluster.get(DEPLOYMENTS, NS, name)
    assert body is not None
    status: dict[str, Any] = body.get("status", {})
    return status


def settled(replicas: int, generation: int | None = None) -> Any:
    """A Deployment condition: status shows ``replicas`` pods, all updated, ready and available."""

    def check(body: dict[str, Any]) -> bool:
        status = body.get("status", {})
        counts = [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")]
        wanted = body["metadata"]["generation"] if generation is None else generation
        return (
            body["spec"]["replicas"] == replicas and counts == [replicas] * 4 and status["observedGeneration"] == wanted
        )

    return check


def alive(pid: int | None) -> bool:
    """Whether a process exists and is not a zombie (the container's init may not reap orphans)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------------------------------
# The harness with a stand-in process.


def test_pods_get_their_command_env_and_a_port_each(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_IN_THE_TEST", "1")
    out = tmp_path / "records"
    out.mkdir()
    k8s_api.core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "creds"},
            "data": {"password": base64.b64encode(b"s3cr3t").decode()},
            "stringData": {"token": "from-string-data"},
        },
    )
    env: list[dict[str, Any]] = [
        {"name": "PLAIN", "value": "plain value"},
        {"name": "EXPANDED", "value": "$(POD_NAME) in $(POD_NAMESPACE), $$(POD_NAME) kept, $(UNKNOWN) kept"},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
        {"name": HEALTH_PORT_ENV, "value": "8080"},
    ]
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("fake", out, replicas=2, env=env))

    body = cluster.wait_for_object(DEPLOYMENTS, NS, "fake", settled(2), timeout=30)
    pods = kubelet.wait_for_pods(NS, "fake", 2)
    assert all(re.fullmatch(r"fake-[bcdfghjklmnpqrstvwxz2456789]{5}", p.name) for p in pods)
    assert len({p.health_port for p in pods}) == 2
    assert len({p.pid for p in pods}) == 2
    assert [p.restarts for p in pods] == [0, 0]

    for pod in pods:
        record = record_of(out, pod)
        got = record["env"]
        assert record["pid"] == pod.pid
        assert record["argv"][1:] == [f"{out}/{pod.name}.json"]  # $(VAR) expanded in args
        assert Path(record["exe"]).parent == Path(sys.executable).parent  # "python" is the venv's
        assert got["PLAIN"] == "plain value"
        assert got["POD_NAME"] == pod.name == got["HOSTNAME"]
        # Only variables defined before an entry expand in it (POD_NAMESPACE comes later).
        assert got["EXPANDED"] == f"{pod.name} in $(POD_NAMESPACE), $(POD_NAME) kept, $(UNKNOWN) kept"
        assert got["POD_NAMESPACE"] == NS
        assert got["PASSWORD"] == "s3cr3t"
        assert got["TOKEN"] == "from-string-data"
        assert "MAYBE" not in got
        assert got[HEALTH_PORT_ENV] == str(pod.health_port) != "8080"
        assert got["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
        assert "ONLY_IN_THE_TEST" not in got  # a pod does not inherit the test's environment
        assert pod.log_path.parent == tmp_path / "pods"
        assert "fake pod up" in pod.log()

    status = body["status"]
    assert status["observedGeneration"] == 1
    assert "unavailableReplicas" not in status  # zero: omitted
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Available"]["status"], conditions["Progressing"]["reason"]) == (
        "True",
        "NewReplicaSetAvailable",
    )
    # The harness writes through the status subresource only, with a token of its own.
    assert cluster.call(lambda em: em.rbac_usage(token=KUBELET_TOKEN)) == {("apps", "deployments/status", "patch")}


def test_a_pod_waits_for_its_secret(cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path) -> None:
    env = [{"name": "URL", "valueFrom": {"secretKeyRef": {"name": "later", "key": "url"}}}]
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("waiting", tmp_path, env=env))

    (pod,) = kubelet.wait_for(lambda k: [p for p in k.pods(NS, "waiting") if "not found" in p.reason])
    assert (pod.phase, pod.pid) == ("Waiting", None)
    assert 'secret "later" not found' in pod.reason
    status = cluster.wait_for_object(DEPLOYMENTS, NS, "waiting", lambda d: "status" in d)["status"]
    assert status["replicas"] == 1
    assert "readyReplicas" not in status

    k8s_api.core.create_namespaced_secret(NS, {"metadata": {"name": "later"}, "stringData": {"url": "amqp://x"}})
    cluster.wait_for_object(DEPLOYMENTS, NS, "waiting", settled(1), timeout=30)
    (started,) = kubelet.pods(NS, "waiting")
    assert started.name == pod.name
    assert started.restarts == 0  # it never ran before
    assert record_of(tmp_path, started)["env"]["URL"] == "amqp://x"


#: A Job's process: appends its attempt to the file $OUT, prints $WORD, fails the first $FAILS attempts.
FAKE_JOB = """
import os, sys
with open(os.environ["OUT"], "a") as f:
    f.write("attempt\\n")
with open(os.environ["OUT"]) as f:
    attempts = len(f.read().splitlines())
print(os.environ["WORD"], attempts, flush=True)
sys.exit(1 if attempts <= int(os.environ["FAILS"]) else 0)
"""


def fake_job(name: str, out: Path, *, fails: int, backoff_limit: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "fake",
                            "image": "not-pulled:latest",
                            "command": ["python", "-c", FAKE_JOB],
                            "env": [
                                {"name": "OUT", "value": str(out)},
                                {"name": "FAILS", "value": str(fails)},
                                {"name": "WORD", "valueFrom": {"secretKeyRef": {"name": "words", "key": "word"}}},
                            ],
                        }
                    ],
                },
            },
        },
    }


def job_finished(body: dict[str, Any]) -> bool:
    return any(c["status"] == "True" for c in body.get("status", {}).get("conditions", []))


def run_to_the_end(cluster: RunningCluster, k8s_api: K8sApi, job: dict[str, Any], word: str) -> dict[str, Any]:
    """Create the Secret the fake Job reads and the Job itself; its status once it completed or failed."""
    k8s_api.core.create_namespaced_secret(NS, {"metadata": {"name": "words"}, "stringData": {"word": word}})
    kubernetes.client.BatchV1Api(k8s_api.client).create_namespaced_job(NS, job)
    done = cluster.wait_for_object(JOBS, NS, job["metadata"]["name"], job_finished, timeout=30)
    status: dict[str, Any] = done["status"]
    return status


def test_a_job_runs_once_and_retries_its_failures_until_it_completes(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path
) -> None:
    status = run_to_the_end(cluster, k8s_api, fake_job("flaky", tmp_path / "flaky", fails=2, backoff_limit=2), "hello")
    assert (status["succeeded"], status["failed"]) == (1, 2)
    assert "active" not in status
    assert status["completionTime"]
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"]) == ("Complete", "True")
    run = kubelet.job(NS, "flaky")
    assert run is not None
    assert (run.outcome, run.exit_codes) == ("Complete", (1, 1, 0))
    assert "hello 3" in run.log()  # the Secret's value, on the third attempt
    assert (tmp_path / "flaky").read_text().count("attempt") == 3


def test_a_job_fails_once_its_backoff_limit_is_exceeded(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path
) -> None:
    status = run_to_the_end(cluster, k8s_api, fake_job("doomed", tmp_path / "doomed", fails=10, backoff_limit=1), "hi")
    assert (status.get("succeeded"), status["failed"]) == (None, 2)
    (condition,) = status["conditions"]
    assert (condition["type"], condition["reason"]) == ("Failed", "BackoffLimitExceeded")
    run = kubelet.job(NS, "doomed")
    assert run is not None
    assert (run.outcome, run.exit_codes) == ("Failed", (1, 1))
    assert (tmp_path / "doomed").read_text().count("attempt") == 2


def test_scale_down_kills_the_process_group_after_the_grace_period(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path
) -> None:
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("stubborn", tmp_path, mode="stubborn", grace=1))
    (pod,) = kubelet.wait_for_pods(NS, "stubborn", 1)
    child = record_of(tmp_path, pod)["child"]
    assert alive(pod.pid)
    assert alive(child)

    k8s_api.apps.patch_namespaced_deployment_scale("stubborn", NS, {"spec": {"replicas": 0}})
    (terminating,) = kubelet.wait_for(lambda k: k.pods(NS, "stubborn", terminating=True))
    assert terminating.name == pod.name
    assert alive(pod.pid)  # it ignores SIGTERM ...
    kubelet.wait_for(lambda k: not k.pods(NS, "stubborn", terminating=True), timeout=10)
    assert not alive(pod.pid)  # ... so the grace period ends with SIGKILL
    assert not alive(child)  # to the whole process group
    assert any(f"{pod.name}: Killing: grace period over" in e for e in kubelet.events)
    status = cluster.wait_for_object(DEPLOYMENTS, NS, "stubborn", settled(0))["status"]
    assert status["observedGeneration"] == 2


@pytest.mark.parametrize("strategy", ["RollingUpdate", "Recreate"])
def test_a_template_change_rolls_the_pods(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path, strategy: str
) -> None:
    manifest = fake_deployment("rolling", tmp_path, replicas=2, env=[{"name": "RELEASE", "value": "1"}])
    manifest["spec"]["strategy"] = (
        {"type": "Recreate"}
        if strategy == "Recreate"
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )
    k8s_api.apps.create_namespaced_deployment(NS, manifest)
    cluster.wait_for_object(DEPLOYMENTS, NS, "rolling", settled(2), timeout=30)
    before = kubelet.pods(NS, "rolling")

    containers = copy.deepcopy(manifest["spec"]["template"]["spec"]["containers"])
    containers[0]["env"][-1]["value"] = "2"
    k8s_api.apps.patch_namespaced_deployment(
        "rolling", NS, {"spec": {"template": {"spec": {"containers": containers}}}}
    )

    cluster.wait_for_object(DEPLOYMENTS, NS, "rolling", settled(2, generation=2), timeout=30)
    after = kubelet.wait_for_pods(NS, "rolling", 2)
    assert not {p.name for p in before} & {p.name for p in after}
    assert {p.template_hash for p in after} != {p.template_hash for p in before}
    assert all(record_of(tmp_path, p)["env"]["RELEASE"] == "2" for p in after)
    assert not any(alive(p.pid) for p in before)

    history = cluster.call(lambda em: [v.raw for v in em.objects[DEPLOYMENTS, NS, "rolling"].history if v])
    rollout = [v.get("status", {}) for v in history if v["metadata"]["generation"] == 2]
    ready = [status.get("readyReplicas", 0) for status in rollout]
    pods = [status.get("replicas", 0) for status in rollout]
    if strategy == "RollingUpdate":
        assert min(ready) == 2  # maxUnavailable: 0
        assert max(pods) == 3  # maxSurge: 1
    else:
        assert min(ready) == 0  # every old pod went before any new one came
        assert max(pods) == 2
    events = kubelet.events
    last_old_gone = max(i for i, e in enumerate(events) if any(f"/{p.name}: Deleted" in e for p in before))
    first_new = min(i for i, e in enumerate(events) if any(f"/{p.name}: Scheduled" in e for p in after))
    assert (last_old_gone < first_new) == (strategy == "Recreate")


def test_deleting_a_deployment_stops_its_pods(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path
) -> None:
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("deleted", tmp_path, replicas=2))
    pods = kubelet.wait_for_pods(NS, "deleted", 2)
    k8s_api.apps.delete_namespaced_deployment("deleted", NS)
    kubelet.wait_for(lambda k: not k.pods(NS, "deleted") and not k.pods(NS, "deleted", terminating=True))
    assert not any(alive(p.pid) for p in pods)
    # Recreated under the same name, it is a new Deployment with new pods.
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("deleted", tmp_path, replicas=1))
    (again,) = kubelet.wait_for_pods(NS, "deleted", 1)
    assert again.name not in {p.name for p in pods}
    cluster.wait_for_object(DEPLOYMENTS, NS, "deleted", settled(1), timeout=30)


# --------------------------------------------------------------------------------------------------
# The real workers, from the operator's Deployment, on the real broker.


@dataclasses.dataclass
class WorkerJob:
    body: dict[str, Any]
    job: FilterJob
    topology: Topology
    src: Path
    dst: Path

    @property
    def name(self) -> str:
        return f"{self.job.metadata.name}-workers"

    def deployment(self, replicas: int) -> dict[str, Any]:
        return deployment_builder.build(self.job, settings=SETTINGS, replicas=replicas, broker_secret="rabbitmq")

    def tasks(self, count: int, *, prefix: str) -> list[Task]:
        """``count`` new sample images, one task each (through the operator's own planning)."""
        make_samples(self.src / prefix, count=count, size=(48, 32), seed=len(prefix))
        return [t for t in sources.plan(self.job, sources.list_inputs(self.job)) if prefix in t.input]


async def _declare(topology: Topology, *, remove: bool = False) -> None:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await (delete if remove else declare)(channel, topology)


async def _process(topology: Topology, tasks: list[Task], within: float) -> list[Event]:
    """Publish the tasks and return the job's events until every one of them succeeded."""
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        # Server-named and exclusive: the broker removes it with this connection.
        events = await channel.declare_queue("", exclusive=True)
        await events.bind(topology.events, routing_key="#")
        await broker.publish_tasks(channel, topology, tasks)
        wanted = {t.task for t in tasks}
        seen: list[Event] = []
        async with asyncio.timeout(within), events.iterator() as stream:
            async for message in stream:
                await message.ack()
                seen.append(Event.from_json(message.body))
                if wanted <= {e.task for e in seen if e.kind == "succeeded"}:
                    break
        return seen


def process(job: WorkerJob, tasks: list[Task], timeout: float = 60) -> list[Event]:
    return asyncio.run(_process(job.topology, tasks, timeout))


@pytest.fixture
def worker_job(k8s_api: K8sApi, tmp_path: Path) -> Iterator[WorkerJob]:
    """A FilterJob in the emulator (for its uid and as the Deployment's owner), its topology
    declared on the real broker (removed afterwards) and the broker Secret the workers read."""
    k8s_api.core.create_namespaced_secret(
        NS, {"metadata": {"name": "rabbitmq"}, "data": {"url": base64.b64encode(BROKER_URL.encode()).decode()}}
    )
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    document = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FilterJob",
        "metadata": {"name": "thumbs", "namespace": NS},
        "spec": {
            "source": {"uri": src.as_uri() + "/"},
            "destination": {"uri": dst.as_uri() + "/", "format": "png"},
            "filters": [{"name": "grayscale"}],
            "workers": {"concurrency": 1},
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.2},
            "broker": {"secretRef": {"name": "rabbitmq"}},
        },
    }
    body: dict[str, Any] = k8s_api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, document)
    job = parse_job(body)
    uid = body["metadata"]["uid"]  # a fresh uuid4 from the emulator: the queues are this test's own
    topology = Topology.for_job(namespace=NS, name="thumbs", uid=uid, retry=retry_policy(job))
    assert topology == topology_of(job)  # what the Deployment's FILTERJOB_QUEUE names
    asyncio.run(_declare(topology))
    try:
        yield WorkerJob(body=body, job=job, topology=topology, src=src, dst=dst)
    finally:
        asyncio.run(_declare(topology, remove=True))


# The kubelet comes after worker_job, so it stops the workers before the queues go.


def test_workers_start_become_ready_and_process_tasks(
    cluster: RunningCluster, k8s_api: K8sApi, worker_job: WorkerJob, kubelet: Kubelet
) -> None:
    k8s_api.apps.create_namespaced_deployment(NS, worker_job.deployment(replicas=2))
    body = cluster.wait_for_object(DEPLOYMENTS, NS, worker_job.name, settled(2), timeout=60)
    assert body["status"]["observedGeneration"] == 1
    pods = kubelet.pods(NS, worker_job.name)
    assert len(pods) == 2
    assert all(p.ready and p.pid for p in pods)
    for pod in pods:
        consuming = [line for line in pod.log_lines() if line["msg"].startswith("consuming")]
        assert consuming, pod.log()
        assert consuming[0]["worker"] == pod.name  # FILTERJOB_WORKER_ID from the pod's metadata.name
        assert consuming[0]["queue"] == worker_job.topology.tasks

    tasks = worker_job.tasks(8, prefix="batch")
    assert len(tasks) == 8
    events = process(worker_job, tasks)
    succeeded = [e for e in events if e.kind == "succeeded"]
    assert {e.task for e in succeeded} == {t.task for t in tasks}
    assert {e.worker for e in succeeded} <= {p.name for p in pods}
    outputs = sorted(p.relative_to(worker_job.dst).as_posix() for p in worker_job.dst.rglob("*.png"))
    assert len(outputs) == 8
    assert all(name.startswith("batch/") for name in outputs)
    assert kubelet.restarts(NS, worker_job.name) == 0


def test_scaling_the_deployment_changes_the_worker_processes(
    cluster: RunningCluster, k8s_api: K8sApi, worker_job: WorkerJob, kubelet: Kubelet
) -> None:
    name = worker_job.name
    k8s_api.apps.create_namespaced_deployment(NS, worker_job.deployment(replicas=1))
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(1), timeout=60)
    (first,) = kubelet.pods(NS, name)

    k8s_api.apps.patch_namespaced_deployment(name, NS, {"spec": {"replicas": 3}})
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(3), timeout=60)
    three = kubelet.pods(NS, name)
    assert len({p.pid for p in three}) == 3
    assert three[0] == first  # untouched

    k8s_api.apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": 1}})
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(1), timeout=60)
    assert kubelet.pods(NS, name) == [first]  # the newest went
    kubelet.wait_for(lambda k: not k.pods(NS, name, terminating=True), timeout=30)
    for gone in three[1:]:
        assert gone.pid is not None
        assert not alive(gone.pid)
        messages = [line["msg"] for line in gone.log_lines()]
        assert "signal received, draining" in messages  # SIGTERM: a graceful stop
        assert messages[-1] == "worker stopped"

    tasks = worker_job.tasks(3, prefix="after-scale-down")
    assert {e.worker for e in process(worker_job, tasks) if e.kind == "succeeded"} == {first.name}

    k8s_api.apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": 0}})
    status = cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(0), timeout=30)["status"]
    assert "replicas" not in status
    kubelet.wait_for(lambda k: not k.pods(NS, name, terminating=True), timeout=30)
    assert first.pid is not None
    assert not alive(first.pid)
    assert kubelet.restarts(NS, name) == 0


def test_a_killed_worker_is_restarted(
    cluster: RunningCluster, k8s_api: K8sApi, worker_job: WorkerJob, kubelet: Kubelet
) -> None:
    name = worker_job.name
    k8s_api.apps.create_namespaced_deployment(NS, worker_job.deployment(replicas=1))
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(1), timeout=60)
    (pod,) = kubelet.pods(NS, name)
    assert pod.pid is not None

    kubelet.kill(pod)
    cluster.wait_for_object(DEPLOYMENTS, NS, name, lambda d: "readyReplicas" not in d["status"], timeout=10)
    (restarted,) = kubelet.wait_for_pods(NS, name, 1, timeout=60)
    assert restarted.name == pod.name  # restarted in place, as a container is
    assert restarted.pid != pod.pid
    assert restarted.restarts == 1
    assert kubelet.restarts(NS, name) == 1
    assert not alive(pod.pid)
    assert any(e.startswith(f"{NS}/{pod.name}: BackOff: pid {pod.pid} exited with -9") for e in kubelet.events)
    assert pod.log().count("# kubelet: starting") == 2  # both runs in one log
    assert f"starting {pod.name} (restart 1)" in pod.log()
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(1), timeout=30)

    with pytest.raises(ProcessLookupError):
        kubelet.kill(pod)  # that process is gone; the new one is not touched
    tasks = worker_job.tasks(2, prefix="after-restart")
    assert {e.worker for e in process(worker_job, tasks) if e.kind == "succeeded"} == {pod.name}


def test_deleting_the_owner_stops_the_workers(
    cluster: RunningCluster, k8s_api: K8sApi, worker_job: WorkerJob, kubelet: Kubelet
) -> None:
    name = worker_job.name
    k8s_api.apps.create_namespaced_deployment(NS, worker_job.deployment(replicas=2))
    cluster.wait_for_object(DEPLOYMENTS, NS, name, settled(2), timeout=60)
    pods = kubelet.pods(NS, name)

    k8s_api.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "thumbs")
    cluster.wait_for_absence(FILTERJOBS, NS, "thumbs")
    cluster.wait_for_absence(DEPLOYMENTS, NS, name)  # garbage-collected with its owner
    kubelet.wait_for(lambda k: not k.pods(NS, name) and not k.pods(NS, name, terminating=True), timeout=30)
    for pod in pods:
        assert pod.pid is not None
        assert not alive(pod.pid)
        assert [line["msg"] for line in pod.log_lines()][-1] == "worker stopped"


def test_no_process_outlives_the_harness(cluster: RunningCluster, k8s_api: K8sApi, tmp_path: Path) -> None:
    with Kubelet(cluster, tmp_path / "pods", teardown_grace=1) as kubelet:
        k8s_api.apps.create_namespaced_deployment(
            NS, fake_deployment("orphans", tmp_path, replicas=2, mode="stubborn", grace=600)
        )
        pods = kubelet.wait_for_pods(NS, "orphans", 2)
    assert not kubelet.errors
    pids = [p.pid for p in pods if p.pid is not None] + [record_of(tmp_path, p)["child"] for p in pods]
    assert len(pids) == 4
    assert not any(alive(pid) for pid in pids)
    assert kubelet.pods(NS, "orphans") == []


def test_signals_other_than_sigkill_can_be_sent(
    cluster: RunningCluster, k8s_api: K8sApi, kubelet: Kubelet, tmp_path: Path
) -> None:
    k8s_api.apps.create_namespaced_deployment(NS, fake_deployment("signalled", tmp_path))
    (pod,) = kubelet.wait_for_pods(NS, "signalled", 1)
    kubelet.kill(pod, signal.SIGTERM)  # the stand-in does not handle it: it exits, and is restarted
    (restarted,) = kubelet.wait_for(
        lambda k: [p for p in k.pods(NS, "signalled") if p.restarts == 1 and p.ready], timeout=30
    )
    assert restarted.pid != pod.pid
    assert "exited with -15" in next(e for e in kubelet.events if f"{pod.name}: BackOff" in e)
