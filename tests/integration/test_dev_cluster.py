"""scripts/dev-cluster.sh: the tests' control plane in the background, for a person.

Run with its state in a temporary folder (``FILTERJOB_DEV_CLUSTER``); RabbitMQ is already running
for the tests, so the script leaves it alone here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes.client
import kubernetes.config
import pytest

from tests.helpers.controlplane import ROOT, alive, wait_gone

SCRIPT = ROOT / "scripts" / "dev-cluster.sh"


class DevCluster:
    def __init__(self, state: Path) -> None:
        self.state = state

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "FILTERJOB_DEV_CLUSTER": str(self.state)}
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False)

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
