"""The kubelet harness's container mode: pods as podman containers of the project's image, on the real
control plane (the API server, controller-manager and scheduler of ``control_plane``).

Each test runs real containers (``filterjob_image``: scripts/build-image.sh), with the pod's security
context, env, volumes, limits, probes and ServiceAccount credentials translated by
tests/helpers/kubelet_podman.py. Slow (containers start in about a second each); skipped without podman.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from filterjob_operator.control.builders import deployment as deployment_builder
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import parse_job
from tests.helpers import kubelet_podman
from tests.helpers.brokers import BROKER_URL
from tests.helpers.kubeapi import (
    Api,
    Plane,
    condition,
    container_status,
    declare_topology,
    get,
    pod_manifest,
    wait_object,
    wait_pod,
)
from tests.helpers.kubelet import Kubelet

pytestmark = pytest.mark.slow
Body = dict[str, Any]
NODE = "podman-node"


@pytest.fixture(scope="module")
def plane(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Plane:
    node = control_plane.node_kubeconfig(tmp_path_factory.mktemp("node") / "kubeconfig", NODE)
    return Plane(admin_kubeconfig=control_plane.kubeconfig, node_kubeconfig=node)


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
def kubelet(
    plane: Plane, api: Api, filterjob_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubelet]:
    log_dir = tmp_path_factory.mktemp("pods")
    with Kubelet(plane.node_kubeconfig, NODE, log_dir=log_dir, restart_backoff=(0.2, 2), runtime="podman") as k:
        yield k
    assert not k.errors, k.errors
    assert not containers_of_node(k), "containers outlived the harness"


@pytest.fixture
def ns(api: Api, kubelet: Kubelet) -> Iterator[str]:
    name = f"c-{secrets.token_hex(4)}"
    api.core.create_namespace({"metadata": {"name": name}})
    wait_object(api.core.list_namespaced_service_account, name, "default", lambda sa: sa is not None)
    yield name
    api.core.delete_namespace(name)


def containers_of_node(kubelet: Kubelet) -> list[str]:
    label = f"label={kubelet_podman.NODE_LABEL}={kubelet.instance}"
    argv = [*kubelet_podman.PODMAN, "ps", "--all", "--format", "{{.Names}}", "--filter", label]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


RESTRICTED: Body = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

#: What the container reports about itself, to the claim: who it runs as, what it may write, its
#: env, its memory limit, and who the API server takes it for with its in-cluster configuration.
REPORT = textwrap.dedent(
    """
    import json, os, pathlib, sys
    import kubernetes
    def writable(path):
        try:
            pathlib.Path(path, "probe").write_text("x")
            return True
        except OSError:
            return False
    limit = [p.read_text().strip() for p in map(pathlib.Path, (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")) if p.exists()]
    kubernetes.config.load_incluster_config()
    review = kubernetes.client.AuthenticationV1Api().create_self_subject_review({})
    report = {
        "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "root_writable": writable("/"), "opt_writable": writable("/opt"), "tmp_writable": writable("/tmp"),
        "env": {k: os.environ.get(k) for k in ("BROKER", "FROM_MAP", "POD", "KUBERNETES_SERVICE_HOST", "KUBECONFIG")},
        "memory_limit": limit[0] if limit else None,
        "user": review.status.user_info.username,
        "sa_files": sorted(os.listdir("/var/run/secrets/kubernetes.io/serviceaccount")),
    }
    pathlib.Path("/data/out").mkdir(exist_ok=True)
    pathlib.Path("/data/out/report.json").write_text(json.dumps(report))
    sys.exit(3)
    """
)


def test_a_restricted_pod_runs_in_a_container_with_its_claim_env_limits_and_service_account(
    api: Api, kubelet: Kubelet, ns: str, filterjob_image: str, tmp_path: Path, control_plane: Any
) -> None:
    claimed = tmp_path / "claimed"
    claimed.mkdir(mode=0o755)  # root's: only the pod's fsGroup lets UID 10001 write it
    (claimed / "in.txt").write_text("input")
    api.core.create_namespaced_secret(ns, {"metadata": {"name": "broker"}, "stringData": {"url": "amqp://u:p@h/"}})
    api.core.create_namespaced_config_map(ns, {"metadata": {"name": "conf"}, "data": {"key": "from-map"}})
    claim = {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}
    api.core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": claim})
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
    container = {
        "name": "report",
        "image": filterjob_image,
        "command": ["python", "-c", REPORT],
        "securityContext": RESTRICTED,
        "resources": {"limits": {"memory": "256Mi", "cpu": "1"}},
        "env": [
            {"name": "BROKER", "valueFrom": {"secretKeyRef": {"name": "broker", "key": "url"}}},
            {"name": "FROM_MAP", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "key"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    security = {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 2345}
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "tmp", "emptyDir": {}}]
    manifest = pod_manifest(
        "report", container, restartPolicy="Never", securityContext=security, volumes=volumes, nodeName=NODE
    )
    api.core.create_namespaced_pod(ns, manifest)
    try:
        pod = wait_pod(api, ns, "report", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=120)
    finally:
        api.core.delete_persistent_volume(pv_name)
    running = kubelet.pod(ns, "report")
    log = running.log() if running else ""
    assert pod["status"]["phase"] == "Failed", log
    terminated = container_status(pod)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error"), log
    assert terminated["containerID"].startswith("podman://k8s_report_report_")

    report = json.loads((claimed / "out" / "report.json").read_text())  # readable on the host afterwards
    assert (report["uid"], report["gid"]) == (10001, 10001)
    assert 2345 in report["groups"]
    assert report["root_writable"] is False
    assert report["opt_writable"] is False
    assert report["tmp_writable"] is True  # the emptyDir, not podman's tmpfs
    assert report["env"] == {
        "BROKER": "amqp://u:p@h/",
        "FROM_MAP": "from-map",
        "POD": "report",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBECONFIG": None,  # the in-cluster configuration, not the process mode's kubeconfig
    }
    assert report["memory_limit"] == str(256 * 1024 * 1024)
    assert report["user"] == f"system:serviceaccount:{ns}:default"
    assert {"ca.crt", "namespace", "token"} <= set(report["sa_files"])
    written = claimed / "out"
    assert written.stat().st_gid == 2345  # fsGroup: the claim's files are the pod's group's
    assert (claimed / "in.txt").read_text() == "input"
    assert "amqp://u:p@h/" not in log  # env goes through a file, not the command line the log shows


def test_two_worker_pods_in_containers_get_their_own_health_ports_and_go_with_their_deployment(
    api: Api, kubelet: Kubelet, ns: str, filterjob_image: str, tmp_path: Path
) -> None:
    """The worker Deployment the operator builds (its restricted security context, /tmp emptyDir,
    readiness probe on the named health port) as containers of the image, on the real broker."""
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
        settings = Settings(worker_grace_seconds=3, worker_image=filterjob_image)
        manifest = deployment_builder.build(job, settings=settings, replicas=2, broker_secret="rabbitmq")
        del manifest["metadata"]["ownerReferences"]
        api.apps.create_namespaced_deployment(ns, manifest)
        name = manifest["metadata"]["name"]
        pods = kubelet.wait_for_pods(ns, 2, prefix=name, timeout=120)
        assert len({p.health_port for p in pods}) == 2
        names = {p.container for p in pods}
        assert len(names) == 2
        assert names <= set(containers_of_node(kubelet))
        for pod in pods:
            assert pod.health_port is not None
            assert get(pod.health_port, "/readyz")[0] == 200
            lines = [json.loads(line) for line in pod.log().splitlines() if line.startswith("{")]
            consuming = [line for line in lines if line.get("msg", "").startswith("consuming")]
            assert consuming, pod.log()
            assert consuming[0]["worker"] == pod.name
        argv = next(line for line in pods[0].log().splitlines() if line.startswith("# kubelet: starting"))
        for flag in ("--read-only", "--cap-drop all", "--security-opt no-new-privileges", "--user 10001"):
            assert flag in argv, argv
        api.apps.delete_namespaced_deployment(name, ns)
        kubelet.wait_for(lambda k: not k.pods(ns), message="the workers gone", timeout=60)
        assert not names & set(containers_of_node(kubelet))
    finally:
        asyncio.run(declare_topology(topology, remove=True))


STUBBORN = textwrap.dedent(
    """
    import pathlib, signal, time
    signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
    pathlib.Path("/tmp/ready").touch()
    while True:
        time.sleep(1)
    """
)
#: Ready once the SIGTERM handler is set: an exec probe, run in the container (podman exec).
STUBBORN_READY = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}


def test_deleting_a_pod_sigterms_its_container_and_kills_it_after_the_grace_period(
    api: Api, kubelet: Kubelet, ns: str, filterjob_image: str
) -> None:
    container = {
        "name": "c",
        "image": filterjob_image,
        "command": ["python", "-c", STUBBORN],
        "readinessProbe": STUBBORN_READY,
    }
    api.core.create_namespaced_pod(ns, pod_manifest("stubborn", container, terminationGracePeriodSeconds=2))
    wait_pod(api, ns, "stubborn", lambda p: condition(p, "Ready") == "True", timeout=120)  # exec probe in it
    running = kubelet.pod(ns, "stubborn")
    assert running is not None
    assert running.container in containers_of_node(kubelet)

    api.core.delete_namespaced_pod("stubborn", ns)
    assert wait_object(api.core.list_namespaced_pod, ns, "stubborn", lambda p: p is None) is None
    assert "SIGTERM ignored" in running.log()
    notes = [n for n in kubelet.notes if n.startswith(f"{ns}/stubborn:")]
    assert any("grace period over, SIGKILL" in n for n in notes), notes
    assert running.container not in containers_of_node(kubelet)


def test_an_image_not_in_local_storage_waits_in_image_pull_back_off(api: Api, kubelet: Kubelet, ns: str) -> None:
    container = {"name": "c", "image": "localhost/filterjob:never-built", "command": ["true"]}
    api.core.create_namespaced_pod(ns, pod_manifest("nowhere", container))
    pod = wait_pod(
        api, ns, "nowhere",
        lambda p: (container_status(p).get("state", {}).get("waiting") or {}).get("reason") == "ImagePullBackOff",
    )  # fmt: skip
    assert pod["status"]["phase"] == "Pending"
    assert "podman storage" in kubelet.notes[-1] or any("podman storage" in n for n in kubelet.notes)


def test_a_killed_container_is_restarted_and_its_exit_code_is_the_last_state(
    api: Api, kubelet: Kubelet, ns: str, filterjob_image: str
) -> None:
    container = {
        "name": "c",
        "image": filterjob_image,
        "command": ["python", "-c", STUBBORN],
        "readinessProbe": STUBBORN_READY,
    }
    api.core.create_namespaced_pod(ns, pod_manifest("crashy", container, terminationGracePeriodSeconds=1))
    wait_pod(api, ns, "crashy", lambda p: condition(p, "Ready") == "True", timeout=120)
    first = kubelet.pod(ns, "crashy")
    assert first is not None
    kubelet.kill(ns, "crashy")  # SIGKILL to the container: a crash
    pod = wait_pod(api, ns, "crashy", lambda p: container_status(p).get("restartCount") == 1, timeout=60)
    last = container_status(pod)["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")
    assert last["containerID"] == f"podman://{first.container}"
    again = wait_pod(api, ns, "crashy", lambda p: "running" in container_status(p).get("state", {}), timeout=60)
    assert container_status(again)["containerID"] != last["containerID"]  # a new container, as a kubelet starts
