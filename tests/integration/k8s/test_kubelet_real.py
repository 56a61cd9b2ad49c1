"""The kubelet harness (tests/helpers/kubelet.py) against a real API server, controller-manager and scheduler.

The harness has the identity of a node (``system:node:<name>``) and the Node and RBAC authorizers
decide what it may do, as for a real kubelet. The Deployment, ReplicaSet, Job and garbage-collector
logic is the real kube-controller-manager's; the harness only runs the pods bound to its node.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import trustme

from filterjob_operator.control.builders import deployment as deployment_builder
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import parse_job
from tests.helpers.brokers import BROKER_URL
from tests.helpers.controlplane import ControlPlane
from tests.helpers.kubeapi import (
    Api,
    Plane,
    condition,
    container_status,
    declare_topology,
    get,
    node_ready,
    pod_manifest,
    wait_object,
    wait_pod,
)
from tests.helpers.kubelet import Kubelet, raw
from tests.helpers.processes import session_alive

Body = dict[str, Any]
PODAPP = Path(__file__).parents[2] / "helpers" / "podapp.py"
NODE = "harness-node"


# --------------------------------------------------------------------------------------------------
# The shared control plane, seen as the admin and as this harness's node.


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Plane:
    node = control_plane.node_kubeconfig(tmp_path_factory.mktemp("node") / "kubeconfig", NODE)
    return Plane(admin_kubeconfig=control_plane.kubeconfig, node_kubeconfig=node)


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers of this module.


@pytest.fixture(scope="module")
def api(plane: Plane) -> Iterator[Api]:
    client = kubernetes.config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
    yield Api(
        client,
        kubernetes.client.CoreV1Api(client),
        kubernetes.client.AppsV1Api(client),
        kubernetes.client.BatchV1Api(client),
        kubernetes.client.RbacAuthorizationV1Api(client),
    )
    client.close()


@pytest.fixture(scope="module")
def kubelet(plane: Plane, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    with Kubelet(plane.node_kubeconfig, NODE, log_dir=tmp_path_factory.mktemp("pods"), restart_backoff=(0.2, 2)) as k:
        wait_object(api.core.list_node, None, NODE, lambda n: n is not None and node_ready(n))
        yield k
    assert not k.errors, k.errors
    # A node identity may not delete its Node: the harness marks it not Ready instead.
    assert condition(raw(api.core.read_node, NODE), "Ready") == "False"


@pytest.fixture
def ns(api: Api, kubelet: Kubelet) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    api.core.create_namespace({"metadata": {"name": name}})
    # Pods are refused until the ServiceAccount controller made the namespace's default account.
    wait_object(api.core.list_namespaced_service_account, name, "default", lambda sa: sa is not None)
    yield name
    api.core.delete_namespace(name)


def app_container(**fields: Any) -> Body:
    return {"name": "app", "image": "podapp:test", "command": ["python", str(PODAPP)], **fields}


def log_json(text: str) -> Body:
    return next(json.loads(line) for line in text.splitlines() if line.startswith("{"))


# --------------------------------------------------------------------------------------------------
# Tests.


def test_node_is_registered_ready_with_capacity_and_a_lease(api: Api, kubelet: Kubelet) -> None:
    node = raw(api.core.read_node, NODE)
    assert node_ready(node)
    for resources in (node["status"]["capacity"], node["status"]["allocatable"]):
        assert {"cpu", "memory", "pods"} <= resources.keys()
    lease = raw(kubernetes.client.CoordinationV1Api(api.client).read_namespaced_lease, NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


def test_a_deployment_gets_ready_pods_and_scaling_down_sigterms_one(api: Api, kubelet: Kubelet, ns: str) -> None:
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1}
    container = app_container(ports=[{"name": "http", "containerPort": 8080}], readinessProbe=probe)
    api.apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 10},
                },
            },
        },
    )
    wait_object(
        api.apps.list_namespaced_deployment,
        ns,
        "web",
        lambda d: (d or {}).get("status", {}).get("availableReplicas") == 2,
    )
    listed = raw(api.core.list_namespaced_pod, ns)["items"]
    assert len(listed) == 2
    for pod in listed:
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"] == pod["status"]["hostIP"] == "127.0.0.1"
        assert condition(pod, "Ready") == condition(pod, "ContainersReady") == "True"
        assert {"PodScheduled", "Initialized"} <= {c["type"] for c in pod["status"]["conditions"]}
        assert set(container_status(pod)["state"]) == {"running"}
    running = kubelet.pods(ns)
    assert len({p.health_port for p in running}) == 2, "each pod gets a port of its own"
    for pod in running:
        assert pod.health_port is not None
        assert get(pod.health_port, "/readyz")[0] == 200

    api.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    kept = kubelet.wait_for(lambda k: len(k.pods(ns)) == 1 and k.pods(ns), message="one pod left")
    (gone,) = [p for p in running if p.name != kept[0].name]
    assert "podapp: SIGTERM" in gone.log()
    assert wait_object(api.core.list_namespaced_pod, ns, gone.name, lambda p: p is None) is None
    with pytest.raises(ProcessLookupError):
        os.kill(gone.pid or 0, 0)


def test_a_failed_liveness_probe_restarts_the_container(api: Api, kubelet: Kubelet, ns: str, tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    liveness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    env = [{"name": "PODAPP_DEAD_FILE", "value": str(dead)}]
    api.core.create_namespaced_pod(ns, pod_manifest("live", app_container(env=env, livenessProbe=liveness)))
    wait_pod(api, ns, "live", lambda p: container_status(p).get("ready") is True)
    before = kubelet.pod(ns, "live")
    assert before is not None
    assert before.pid is not None

    dead.touch()
    kubelet.wait_for(lambda k: (p := k.pod(ns, "live")) and p.pid not in (None, before.pid), message="a new process")
    dead.unlink()
    pod = wait_pod(
        api, ns, "live", lambda p: container_status(p).get("restartCount") == 1 and container_status(p)["ready"]
    )
    assert "terminated" in container_status(pod)["lastState"]
    assert "running" in container_status(pod)["state"]
    events = raw(api.core.list_namespaced_event, ns, field_selector="involvedObject.name=live")["items"]
    assert "Unhealthy" in {e["reason"] for e in events}


def job_manifest(name: str, code: int, *, backoff_limit: int) -> Body:
    container = {"name": "run", "image": "python:test", "command": ["python", "-c", f"raise SystemExit({code})"]}
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def test_a_job_whose_pod_exits_0_completes(api: Api, kubelet: Kubelet, ns: str) -> None:
    api.batch.create_namespaced_job(ns, job_manifest("ok", 0, backoff_limit=0))
    job = wait_object(api.batch.list_namespaced_job, ns, "ok", lambda j: condition(j or {}, "Complete") == "True")
    assert job is not None
    assert job["status"]["succeeded"] == 1
    (pod,) = raw(api.core.list_namespaced_pod, ns, label_selector="job-name=ok")["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert container_status(pod)["state"]["terminated"]["exitCode"] == 0


@pytest.mark.slow  # the Job controller waits 10 s before it creates the retry's pod
def test_a_job_whose_pods_exit_1_is_retried_then_failed(api: Api, kubelet: Kubelet, ns: str) -> None:
    api.batch.create_namespaced_job(ns, job_manifest("bad", 3, backoff_limit=1))
    job = wait_object(
        api.batch.list_namespaced_job, ns, "bad", lambda j: condition(j or {}, "Failed") == "True", timeout=90
    )
    assert job is not None
    assert job["status"]["failed"] == 2
    assert {c["reason"] for c in job["status"]["conditions"] if c["type"] == "Failed"} == {"BackoffLimitExceeded"}
    pods = raw(api.core.list_namespaced_pod, ns, label_selector="job-name=bad")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    assert {container_status(p)["state"]["terminated"]["exitCode"] for p in pods} == {3}


def test_env_comes_from_secrets_config_maps_and_fields(api: Api, kubelet: Kubelet, ns: str) -> None:
    api.core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"user": "u1", "pass": "p$1"}})
    api.core.create_namespaced_config_map(ns, {"metadata": {"name": "conf"}, "data": {"mode": "fast", "level": "3"}})
    env = [
        {"name": "USER_NAME", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
        {"name": "NONE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "GREETING", "value": "hello $(POD) from $(S_user), $$(POD)"},
    ]
    env_from = [{"secretRef": {"name": "creds"}, "prefix": "S_"}, {"configMapRef": {"name": "conf"}, "prefix": "C_"}]
    names = [e["name"] for e in env] + ["S_user", "S_pass", "C_mode", "C_level", "KUBERNETES_SERVICE_HOST", "ARG"]
    script = "import json, os, sys; print(json.dumps({'env': dict(os.environ), 'argv': sys.argv[1:]}))"
    container = {
        "name": "env",
        "image": "python:test",
        "command": ["python", "-c", script],
        "args": ["$(MODE)-$(C_level)", "$(UNKNOWN)"],
        "env": env,
        "envFrom": env_from,
    }
    manifest = pod_manifest("env", container, restartPolicy="Never")
    manifest["metadata"]["labels"] = {"team": "blue"}
    created = raw(api.core.create_namespaced_pod, ns, manifest)
    wait_pod(api, ns, "env", lambda p: p["status"].get("phase") == "Succeeded")
    printed = log_json((kubelet.log_dir / f"{ns}.env.log").read_text())
    got = {name: printed["env"].get(name) for name in names}
    assert got == {
        "USER_NAME": "u1",
        "MODE": "fast",
        "NONE": None,
        "POD": "env",
        "NS": ns,
        "UID": created["metadata"]["uid"],
        "TEAM": "blue",
        "NODE": NODE,
        "IP": "127.0.0.1",
        "ACCOUNT": "default",
        "GREETING": "hello env from u1, $(POD)",
        "S_user": "u1",
        "S_pass": "p$1",
        "C_mode": "fast",
        "C_level": "3",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "ARG": None,
    }
    assert printed["argv"] == ["fast-3", "$(UNKNOWN)"]


def test_a_missing_secret_keeps_the_container_waiting_until_it_exists(api: Api, kubelet: Kubelet, ns: str) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    container = {"name": "c", "image": "python:test", "command": ["python", "-c", "print('ran')"], "env": env}
    api.core.create_namespaced_pod(ns, pod_manifest("waits", container, restartPolicy="Never"))
    pod = wait_pod(
        api,
        ns,
        "waits",
        lambda p: (
            "waiting" in container_status(p).get("state", {})
            and container_status(p)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        ),
    )
    assert container_status(pod)["state"]["waiting"]["message"] == 'secret "later" not found'
    assert pod["status"]["phase"] == "Pending"
    api.core.create_namespaced_secret(ns, {"metadata": {"name": "later"}, "stringData": {"token": "t"}})
    wait_pod(api, ns, "waits", lambda p: p["status"].get("phase") == "Succeeded")


def test_deleting_a_pod_sends_sigterm_then_sigkill_after_the_grace_period(api: Api, kubelet: Kubelet, ns: str) -> None:
    env = [{"name": "PODAPP_ON_TERM", "value": "ignore"}]
    # Ready once it serves, which is after its SIGTERM handler is set.
    readiness = {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}
    container = app_container(env=env, readinessProbe=readiness)
    api.core.create_namespaced_pod(ns, pod_manifest("stubborn", container, terminationGracePeriodSeconds=2))
    wait_pod(api, ns, "stubborn", lambda p: condition(p, "Ready") == "True")
    running = kubelet.pod(ns, "stubborn")
    assert running is not None
    assert running.pid is not None

    api.core.delete_namespaced_pod("stubborn", ns)
    assert wait_object(api.core.list_namespaced_pod, ns, "stubborn", lambda p: p is None) is None
    assert "podapp: SIGTERM" in running.log()
    notes = [n for n in kubelet.notes if n.startswith(f"{ns}/stubborn:")]
    killed = next(i for i, n in enumerate(notes) if "grace period over, SIGKILL" in n)
    finished = next(i for i, n in enumerate(notes) if "deletion finished" in n)
    assert killed < finished
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)


def test_a_refused_image_waits_in_image_pull_back_off(api: Api, kubelet: Kubelet, ns: str) -> None:
    kubelet.refuse_image = lambda image: "manifest unknown" if image.startswith("nowhere/") else None
    try:
        container = app_container(image="nowhere/app:1")
        api.core.create_namespaced_pod(ns, pod_manifest("nopull", container))
        pod = wait_pod(
            api,
            ns,
            "nopull",
            lambda p: (
                (container_status(p).get("state", {}).get("waiting") or {}).get("reason")
                in ("ErrImagePull", "ImagePullBackOff")
            ),
        )
        assert pod["status"]["phase"] == "Pending"
        assert kubelet.pod(ns, "nopull") is not None
        assert kubelet.pod(ns, "nopull").pid is None
    finally:
        kubelet.refuse_image = None
    wait_pod(api, ns, "nopull", lambda p: p["status"].get("phase") == "Running")


def test_a_pod_reaches_the_api_server_as_its_service_account(api: Api, kubelet: Kubelet, ns: str) -> None:
    api.rbac.create_namespaced_role(
        ns,
        {"metadata": {"name": "read-pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    )
    api.rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "read-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
        },
    )
    # As the operator logs in (kube.load_config): in-cluster config first, else KUBECONFIG.
    script = """
import json, os, kubernetes
try:
    kubernetes.config.load_incluster_config()
except kubernetes.config.ConfigException:
    kubernetes.config.load_kube_config()
namespace = open(os.environ["KUBELET_SERVICEACCOUNT_DIR"] + "/namespace").read()
me = kubernetes.client.CoreV1Api().read_namespaced_pod(os.environ["HOSTNAME"], namespace)
print(json.dumps({"uid": me.metadata.uid, "port": os.environ["KUBERNETES_SERVICE_PORT"]}))
"""
    container = {"name": "c", "image": "python:test", "command": ["python", "-c", script]}
    created = raw(api.core.create_namespaced_pod, ns, pod_manifest("sa", container, restartPolicy="Never"))
    pod = wait_pod(api, ns, "sa", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
    log = (kubelet.log_dir / f"{ns}.sa.log").read_text()
    assert pod["status"]["phase"] == "Succeeded", log
    printed = log_json(log)
    assert printed["uid"] == created["metadata"]["uid"]
    assert printed["port"] == str(api.client.configuration.host.rsplit(":", 1)[1])


def test_volumes_host_path_bound_claim_and_empty_dir(api: Api, kubelet: Kubelet, ns: str, tmp_path: Path) -> None:
    host, claimed = tmp_path / "host", tmp_path / "claimed"
    claimed.mkdir()
    api.core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    script = (
        "import os, sys; open(sys.argv[1] + '/a', 'w').write('host'); open(sys.argv[2] + '/b', 'w').write('claim');"
        " open(os.environ['KUBELET_VOLUME_SCRATCH'] + '/c', 'w').write('scratch')"
    )
    container = {
        "name": "c",
        "image": "python:test",
        "command": ["python", "-c", script, str(host), str(claimed)],
        "volumeMounts": [
            {"name": "host", "mountPath": str(host)},
            {"name": "data", "mountPath": str(claimed)},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
    }
    volumes = [
        {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    # Bound to the node by name: the scheduler would not place a pod whose claim is unbound.
    manifest = pod_manifest("vols", container, restartPolicy="Never", volumes=volumes, nodeName=NODE)
    api.core.create_namespaced_pod(ns, manifest)
    pod = wait_pod(
        api,
        ns,
        "vols",
        lambda p: "not bound" in (container_status(p).get("state", {}).get("waiting") or {}).get("message", ""),
    )
    assert pod["status"]["phase"] == "Pending"
    pv_name = f"pv-{ns}"
    api.core.create_persistent_volume(
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(claimed)},
                "claimRef": {"namespace": ns, "name": "data"},
            },
        }
    )
    try:
        wait_pod(api, ns, "vols", lambda p: p["status"].get("phase") == "Succeeded")
    finally:
        api.core.delete_persistent_volume(pv_name)
    assert (host / "a").read_text() == "host"
    assert (claimed / "b").read_text() == "claim"
    assert not (Path("/scratch") / "c").exists()  # the emptyDir is the pod's own folder, gone with it


def test_a_host_path_at_another_mount_path_is_refused_with_an_event(
    api: Api, kubelet: Kubelet, ns: str, tmp_path: Path
) -> None:
    container = app_container(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    volumes = [{"name": "data", "hostPath": {"path": str(tmp_path)}}]
    api.core.create_namespaced_pod(ns, pod_manifest("elsewhere", container, volumes=volumes))
    pod = wait_pod(
        api,
        ns,
        "elsewhere",
        lambda p: "differs" in (container_status(p).get("state", {}).get("waiting") or {}).get("message", ""),
    )
    assert container_status(pod)["state"]["waiting"]["reason"] == "ContainerCreating"
    events = raw(api.core.list_namespaced_event, ns, field_selector="involvedObject.name=elsewhere")["items"]
    assert any(e["reason"] == "FailedMount" and "/data" in e["message"] for e in events)
    assert kubelet.pod(ns, "elsewhere") is not None
    assert kubelet.pod(ns, "elsewhere").pid is None


def test_killing_a_process_restarts_it_with_back_off(api: Api, kubelet: Kubelet, ns: str) -> None:
    api.core.create_namespaced_pod(ns, pod_manifest("crash", app_container()))
    wait_pod(api, ns, "crash", lambda p: condition(p, "Ready") == "True")
    first = kubelet.pod(ns, "crash")
    assert first is not None
    kubelet.kill(ns, "crash", signal.SIGKILL)
    pod = wait_pod(
        api, ns, "crash", lambda p: container_status(p).get("restartCount") == 1 and container_status(p)["ready"]
    )
    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL


@pytest.mark.slow
def test_the_node_stays_ready_past_the_node_monitor_grace_period(api: Api, kubelet: Kubelet) -> None:
    """The node-lifecycle controller marks a node Unknown 50 s after its Lease was last renewed."""
    seen: list[Body] = []

    def record(node: Body | None) -> bool:
        assert node is not None
        seen.append(node)
        return False

    with pytest.raises(TimeoutError):
        wait_object(api.core.list_node, None, NODE, record, timeout=65)
    assert seen
    assert all(node_ready(n) for n in seen), [n.get("spec") for n in seen if not node_ready(n)]
    lease = raw(kubernetes.client.CoordinationV1Api(api.client).read_namespaced_lease, NODE, "kube-node-lease")
    assert lease["spec"]["renewTime"] > seen[0]["metadata"]["creationTimestamp"]


def test_the_module_entry_runs_until_sigterm_and_removes_its_node(plane: Plane, api: Api, tmp_path: Path) -> None:
    node = "entry-node"  # with the admin's kubeconfig, which may delete the Node at the end
    log = tmp_path / "kubelet.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.helpers.kubelet"),
                *("--kubeconfig", str(plane.admin_kubeconfig), "--node", node, "--log-dir", str(tmp_path / "pods")),
            ],
            cwd=Path(__file__).parents[3],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_object(api.core.list_node, None, node, lambda n: n is not None and node_ready(n))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert wait_object(api.core.list_node, None, node, lambda n: n is None) is None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(f"the kubelet did not stop on SIGTERM:\n{log.read_text()[-5000:]}")


def test_the_operators_worker_deployment_runs_and_gets_ready(
    api: Api, kubelet: Kubelet, ns: str, tmp_path: Path
) -> None:
    """The worker Deployment the operator builds (named health port, FILTERJOB_HEALTH_PORT=8080, /tmp
    emptyDir, locked-down security context) runs as ``filterjob-worker`` processes on the real broker."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    job = parse_job(
        {
            "apiVersion": "filterjob.dev/v1alpha1",
            "kind": "FilterJob",
            "metadata": {"name": "thumbs", "namespace": ns, "uid": str(uuid.uuid4())},
            "spec": {
                "source": {"uri": src.as_uri() + "/"},
                "destination": {"uri": dst.as_uri() + "/", "format": "png"},
                "filters": [{"name": "grayscale"}],
                "broker": {"secretRef": {"name": "rabbitmq"}},
            },
        }
    )
    topology = topology_of(job)
    asyncio.run(declare_topology(topology))
    try:
        api.core.create_namespaced_secret(ns, {"metadata": {"name": "rabbitmq"}, "stringData": {"url": BROKER_URL}})
        manifest = deployment_builder.build(
            job, settings=Settings(worker_grace_seconds=3), replicas=2, broker_secret="rabbitmq"
        )
        del manifest["metadata"]["ownerReferences"]  # no FilterJob here: the garbage collector would remove it
        api.apps.create_namespaced_deployment(ns, manifest)
        name = manifest["metadata"]["name"]
        wait_object(
            api.apps.list_namespaced_deployment,
            ns,
            name,
            lambda d: (d or {}).get("status", {}).get("availableReplicas") == 2,
            timeout=90,
        )
        pods = kubelet.wait_for_pods(ns, 2, prefix=name)
        assert len({p.health_port for p in pods}) == 2
        for pod in pods:
            assert pod.health_port is not None
            assert get(pod.health_port, "/readyz")[0] == 200
            lines = [json.loads(line) for line in pod.log().splitlines() if line.startswith("{")]
            consuming = [line for line in lines if line.get("msg", "").startswith("consuming")]
            assert consuming, pod.log()
            assert consuming[0]["worker"] == pod.name  # FILTERJOB_WORKER_ID from the pod's metadata.name
            assert consuming[0]["queue"] == topology.tasks
        api.apps.delete_namespaced_deployment(name, ns)
        kubelet.wait_for(lambda k: not k.pods(ns), message="the workers gone", timeout=60)
    finally:
        asyncio.run(declare_topology(topology, remove=True))


def test_on_failure_restarts_in_place_until_the_container_succeeds(
    api: Api, kubelet: Kubelet, ns: str, tmp_path: Path
) -> None:
    tries = tmp_path / "tries"
    script = (
        "import sys; f = open(sys.argv[1], 'a+'); f.write('x'); f.seek(0); sys.exit(0 if len(f.read()) == 2 else 1)"
    )
    container = {"name": "c", "image": "python:test", "command": ["python", "-c", script, str(tries)]}
    api.core.create_namespaced_pod(ns, pod_manifest("again", container, restartPolicy="OnFailure"))
    pod = wait_pod(api, ns, "again", lambda p: p["status"].get("phase") == "Succeeded")
    assert tries.read_text() == "xx"
    status = container_status(pod)
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["state"]["terminated"]["exitCode"] == 0


def test_the_pod_watch_resumes_after_its_connection_breaks(api: Api, kubelet: Kubelet, ns: str) -> None:
    opened = kubelet.watches
    kubelet.drop_watch()
    kubelet.wait_for(lambda k: k.watches > opened, message="the watch opened again")
    container = {"name": "c", "image": "python:test", "command": ["python", "-c", "pass"]}
    api.core.create_namespaced_pod(ns, pod_manifest("after", container, restartPolicy="Never"))
    wait_pod(api, ns, "after", lambda p: p["status"].get("phase") == "Succeeded")


def test_a_crash_looping_container_backs_off_doubling_up_to_the_cap(api: Api, kubelet: Kubelet, ns: str) -> None:
    container = {"name": "c", "image": "python:test", "command": ["python", "-c", "raise SystemExit(2)"]}
    api.core.create_namespaced_pod(ns, pod_manifest("loop", container))
    pod = wait_pod(api, ns, "loop", lambda p: container_status(p).get("restartCount", 0) >= 5)
    assert pod["status"]["phase"] == "Running"  # as a kubelet shows a crash-looping pod
    delays = [n.split("back-off ")[1].split("s ")[0] for n in kubelet.notes if n.startswith(f"{ns}/loop: back-off")]
    assert delays[:6] == ["0.2", "0.4", "0.8", "1.6", "2", "2"][: len(delays[:6])]
    assert len(delays) >= 5
    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 2


def test_a_command_that_cannot_run_fails_a_never_pod_with_start_error(api: Api, kubelet: Kubelet, ns: str) -> None:
    container = {"name": "c", "image": "python:test", "command": ["no-such-command-here"]}
    api.core.create_namespaced_pod(ns, pod_manifest("noexec", container, restartPolicy="Never"))
    pod = wait_pod(api, ns, "noexec", lambda p: p["status"].get("phase") == "Failed")
    terminated = container_status(pod)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert 'exec: "no-such-command-here": executable file not found' in terminated["message"]


def test_no_process_outlives_the_harness(plane: Plane, api: Api, ns: str, tmp_path: Path) -> None:
    """Stopping the harness ends every pod's whole process group, even one that ignores SIGTERM."""
    pids = tmp_path / "pids"
    script = (
        "import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " child = subprocess.Popen(['sleep', '600']);"
        " open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {child.pid}');"
        " os.rename(sys.argv[1] + '.tmp', sys.argv[1]);"
        " time.sleep(600)"
    )
    container = {
        "name": "c",
        "image": "python:test",
        "command": ["python", "-c", script, str(pids)],
        "readinessProbe": {"exec": {"command": ["test", "-s", str(pids)]}, "periodSeconds": 1},
    }
    node = "short-lived-node"
    with Kubelet(plane.admin_kubeconfig, node, log_dir=tmp_path / "pods", teardown_grace=1) as short:
        wait_object(api.core.list_node, None, node, lambda n: n is not None and node_ready(n))
        api.core.create_namespaced_pod(
            ns, pod_manifest("orphan", container, nodeName=node, terminationGracePeriodSeconds=60)
        )
        wait_pod(api, ns, "orphan", lambda p: condition(p, "Ready") == "True")
        leader, child = map(int, pids.read_text().split())
        assert session_alive(leader)
    assert not short.errors
    assert child != leader
    assert not session_alive(leader), "a process of the pod's session (its child too) outlived the harness"


def test_an_https_probe_and_a_second_container_that_is_named_as_not_run(
    api: Api, kubelet: Kubelet, ns: str, tmp_path: Path
) -> None:
    cert = tmp_path / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    readiness = {"httpGet": {"path": "/readyz", "port": 8443, "scheme": "HTTPS"}, "periodSeconds": 1}
    app = app_container(env=[{"name": "PODAPP_CERT", "value": str(cert)}], readinessProbe=readiness)
    sidecar = {"name": "sidecar", "image": "proxy:1", "command": ["sleep", "600"]}
    manifest = pod_manifest("tls", app)
    manifest["spec"]["containers"].append(sidecar)
    api.core.create_namespaced_pod(ns, manifest)
    wait_pod(api, ns, "tls", lambda p: condition(p, "Ready") == "True")
    events = raw(api.core.list_namespaced_event, ns, field_selector="involvedObject.name=tls")["items"]
    ignored = [e["message"] for e in events if e["reason"] == "ContainersIgnored"]
    assert ignored == ["only the first container runs in process mode; not run: ['sidecar']"]
