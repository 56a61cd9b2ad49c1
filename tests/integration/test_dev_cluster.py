"""scripts/dev-cluster.sh: the tests' control plane in the background, for a person.

Run with its state in a temporary folder (``FILTERJOB_DEV_CLUSTER``); RabbitMQ is already running
for the tests, so the script leaves it alone here. The README's path is followed as a developer
follows it: ``up``, ``helm install``, samples on disk, ``kubectl apply`` of the example.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import requests

from tests.helpers import realjob
from tests.helpers.controlplane import ROOT, alive, free_port, wait_gone
from tests.helpers.watching import named, wait_for_list

SCRIPT = ROOT / "scripts" / "dev-cluster.sh"
EXAMPLE = ROOT / "examples" / "dev-cluster-job.yaml"
#: The example's folder of images; the test gives it one of its own instead.
EXAMPLE_FOLDER = "/tmp/filterjob-dev"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


class DevCluster:
    def __init__(self, state: Path) -> None:
        self.state = state

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FILTERJOB_DEV_CLUSTER": str(self.state)}
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        # The RabbitMQ here is every test's, and other tests restart it: `up` in such a gap starts
        # it, and `down` would then stop it under everyone else.
        (self.state / "rabbitmq-started").unlink(missing_ok=True)
        return done

    def shell(self, *argv: str, stdin: str | None = None) -> str:
        """A command as the README runs it after ``up``: KUBECONFIG exported, .venv/bin on PATH."""
        path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
        env = {**os.environ, "KUBECONFIG": str(self.state / "admin.kubeconfig"), "PATH": path}
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stdout}{done.stderr}"
        return done.stdout

    def pids(self) -> dict[str, tuple[int, str]]:
        state = json.loads((self.state / "state.json").read_text())
        return {name: (c["pid"], c["binary"]) for name, c in state["components"].items()}


@pytest.fixture
def dev_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path / "dev")
    yield cluster
    if (cluster.state / "state.json").exists():  # a failed test must not leave a cluster running
        cluster.run("down")


def namespaces(kubeconfig: str) -> set[str]:
    with kubernetes.config.new_client_from_config(kubeconfig) as client:
        return {ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items}


@pytest.mark.slow
def test_up_status_down_are_idempotent_and_up_recovers_a_crashed_cluster(dev_cluster: DevCluster) -> None:
    up = dev_cluster.run("up")
    assert up.returncode == 0, up.stderr
    kubeconfig = dev_cluster.state / "admin.kubeconfig"
    assert up.stdout.splitlines()[-1] == f"export KUBECONFIG={kubeconfig}"
    assert {"default", "kube-system"} <= namespaces(str(kubeconfig))
    first = dev_cluster.pids()
    assert set(first) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    assert all(alive(pid, binary) for pid, binary in first.values())

    again = dev_cluster.run("up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert again.stdout.splitlines()[-1] == f"export KUBECONFIG={kubeconfig}"
    assert dev_cluster.pids() == first

    status = dev_cluster.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert all(f"pid {pid}" in status.stdout for pid, _ in first.values())

    # A crash (or a reboot): `up` starts it again, on the same data and with the same identities.
    with kubernetes.config.new_client_from_config(str(kubeconfig)) as client:
        kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": "kept"}})
    for pid, _ in first.values():
        os.killpg(pid, signal.SIGKILL)
    assert all(wait_gone(pid, binary, 30) for pid, binary in first.values())
    broken = dev_cluster.run("status")
    assert broken.returncode == 1
    assert "not running" in broken.stdout
    restarted = dev_cluster.run("up")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.splitlines()[-1] == f"export KUBECONFIG={kubeconfig}"
    assert "kept" in namespaces(str(kubeconfig))
    second = dev_cluster.pids()

    down = dev_cluster.run("down")
    assert down.returncode == 0, down.stderr
    assert not [name for name, (pid, binary) in second.items() if alive(pid, binary)]
    assert not dev_cluster.state.exists()
    assert dev_cluster.run("down").returncode == 0  # nothing to stop: fine
    gone = dev_cluster.run("status")
    assert gone.returncode == 1
    assert "scripts/dev-cluster.sh up starts one" in gone.stdout


def test_a_wrong_command_says_how_to_use_it(dev_cluster: DevCluster) -> None:
    wrong = dev_cluster.run("start")
    assert wrong.returncode == 2
    assert "usage:" in wrong.stderr
    assert "up|down|status" in wrong.stderr
    assert not dev_cluster.state.exists()


def pod_processes(kubelet_log: Path, *, pod: str = r"\S+") -> list[int]:
    """The pids of the processes the kubelet harness started for pods named ``pod`` (a regex; any)."""
    started = re.compile(rf"/{pod}: Started: Started container \S+ as pid (\d+)")
    return [int(pid) for pid in started.findall(kubelet_log.read_text())]


def running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``filterjob`` process (a pod's; the pid not reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"filterjob" in cmdline and state != "Z"


def queues(prefix: str) -> list[str]:
    """The broker's queues whose names start with ``prefix`` (management API, loopback)."""
    answer = requests.get("http://127.0.0.1:15672/api/queues", auth=("guest", "guest"), timeout=10)
    answer.raise_for_status()
    return sorted(q["name"] for q in answer.json() if q["name"].startswith(prefix))


@pytest.mark.slow
def test_the_readme_path_runs_a_filterjob_to_succeeded_with_outputs_on_disk(
    dev_cluster: DevCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = dev_cluster.run("up")
    assert up.returncode == 0, up.stderr
    assert "node dev-node registered" in up.stdout
    kubeconfig = up.stdout.splitlines()[-1].removeprefix("export KUBECONFIG=")
    # README "Installing on a cluster", with the local RabbitMQ (pods share this machine's loopback).
    # The operator's /metrics is a port of this machine: a free one, as other clusters may hold 9090.
    # No External metrics API, as in the README: without kube-proxy its Service reaches no pod, and an
    # APIService that never becomes available fails every client's discovery, kopf's too.
    dev_cluster.shell(
        "helm", "install", "filterjob", "charts/filterjob", "-n", "filterjob-system", "--create-namespace",
        "--set", f"broker.url={BROKER_URL}", "--set", f"metrics.port={free_port()}",
        "--set", "externalMetrics.enabled=false", "--wait", "--timeout", "120s",
    )  # fmt: skip
    images = tmp_path / "images"
    dev_cluster.shell("filterjob", "samples", str(images / "in"), "--count", "20")
    example = EXAMPLE.read_text()
    assert EXAMPLE_FOLDER in example
    dev_cluster.shell("kubectl", "apply", "-f", "-", stdin=example.replace(EXAMPLE_FOLDER, str(images)))

    with kubernetes.config.new_client_from_config(kubeconfig) as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        listing = functools.partial(
            custom.list_namespaced_custom_object, "filterjob.dev", "v1alpha1", "photos", "filterjobs"
        )
        (job,) = wait_for_list(
            listing,
            lambda jobs: any((j.get("status") or {}).get("phase") in realjob.DONE for j in jobs),
            timeout=180,
            what="the example FilterJob to finish",
            **named("dev-thumbnails"),
        )
        status: dict[str, Any] = job["status"]
        assert (status["phase"], status["total"], status["succeeded"], status["failed"]) == ("Succeeded", 20, 20, 0)
        inputs = sorted(p.relative_to(images / "in").with_suffix(".jpg") for p in (images / "in").rglob("*.*"))
        outputs = sorted(p.relative_to(images / "out") for p in (images / "out").rglob("*") if p.is_file())
        assert outputs == inputs  # one output per input, no partial or temporary file left
        # The operator ran as a pod of the chart's Deployment, with its ServiceAccount's token.
        (operator,) = kubernetes.client.CoreV1Api(client).list_namespaced_pod("filterjob-system").items
        assert [c.restart_count for c in operator.status.container_statuses] == [0]
    # ... and answers its liveness probe where the harness sends it (a mapped port, not 8080).
    (pid,) = pod_processes(dev_cluster.state / "logs" / "kubelet.log", pod=operator.metadata.name)
    environ = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
    probed = requests.get(f"http://127.0.0.1:{environ['FILTERJOB_HEALTH_PORT']}/healthz", timeout=10)
    assert probed.status_code == 200
    audit = (dev_cluster.state / "audit.log").read_text().splitlines()
    users = {json.loads(line)["user"]["username"] for line in audit}
    assert "system:serviceaccount:filterjob-system:filterjob" in users

    listed = dev_cluster.shell("kubectl", "-n", "photos", "get", "fj")
    assert listed.split()[:6] == ["NAME", "PHASE", "PROGRESS", "FAILED", "WORKERS", "AGE"]
    assert listed.splitlines()[1].split()[:4] == ["dev-thumbnails", "Succeeded", "20/20", "0"]
    described = dev_cluster.shell("kubectl", "-n", "photos", "describe", "fj", "dev-thumbnails")
    assert re.search(r"Normal\s+Enqueued\s.*20 tasks enqueued", described), described
    assert re.search(r"Normal\s+Succeeded\s.*20 succeeded, 0 failed of 20", described), described

    # tests/e2e, as README says to run it against the dev cluster.
    for name, value in {
        "KUBECONFIG": kubeconfig, "FILTERJOB_E2E_NAMESPACE": "photos", "FILTERJOB_E2E_HOST_PATH": str(images),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    realjob.run_a_job_to_succeeded()
    with kubernetes.config.new_client_from_config(kubeconfig) as client:
        jobs = kubernetes.client.CustomObjectsApi(client).list_namespaced_custom_object(
            "filterjob.dev", "v1alpha1", "photos", "filterjobs"
        )["items"]
    job_queues = [j["status"]["queues"] for j in jobs]
    assert len(job_queues) == 2
    assert all(queues(prefix) for prefix in job_queues)  # kept while the job is there

    processes = pod_processes(dev_cluster.state / "logs" / "kubelet.log")
    assert any(running(pid) for pid in processes)  # the operator at least
    components = dev_cluster.pids()
    kubelet = json.loads((dev_cluster.state / "state.json").read_text())["kubelet"]
    down = dev_cluster.run("down")
    assert down.returncode == 0, down.stderr
    assert not [prefix for prefix in job_queues if queues(prefix)], "down left the jobs' queues on the broker"
    assert not [pid for pid in processes if running(pid)]
    assert not alive(kubelet["pid"], kubelet["binary"])
    assert not [name for name, (pid, binary) in components.items() if alive(pid, binary)]
    assert not dev_cluster.state.exists()
