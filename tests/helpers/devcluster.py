"""The tests' control plane in the background, for a person: ``python -m tests.helpers.devcluster up|down|status``.

``scripts/dev-cluster.sh`` calls it (after making sure RabbitMQ, helm and kubectl are there). ``up``
starts the control plane of tests/helpers/controlplane.py detached, under ``--dir`` (pids, ports,
certificates, etcd data, logs), then the kubelet harness if tests/helpers/kubelet.py exists, and
prints ``export KUBECONFIG=...`` last. ``up --containers`` runs the pods as podman containers of
their images (the harness's container mode) instead of local processes; the choice is recorded,
so ``up`` after a crash keeps it. ``down`` deletes the FilterJobs first (the operator's
finalizer removes their queues from RabbitMQ, which outlives the cluster), then stops what ``up``
started and removes the folder.
Both are idempotent; ``up`` after a crash or a reboot starts again on the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes.client
import urllib3

from tests.helpers import kubelet_podman
from tests.helpers.controlplane import (
    ROOT,
    Binaries,
    ControlPlane,
    ControlPlaneError,
    alive,
    stop_process_group,
    wait_gone,
)
from tests.helpers.watching import wait_for_list

#: The harness that plays the kubelet (tests/helpers/kubelet.py), started beside the control plane
#: when it is there; it registers this node.
DEV_NODE = "dev-node"
#: How long ``down`` waits for the operator's finalizers to remove the deleted FilterJobs' queues.
FINALIZER_WAIT = 30.0


def start_kubelet_if_there(plane: ControlPlane, *, runtime: str = "process") -> dict[str, Any] | None:
    """HOOK for the kubelet harness: start ``python -m tests.helpers.kubelet`` if that module exists.

    It runs as the admin (``admin.kubeconfig``); its pod logs go to ``DIR/pods``. Returns what
    ``down`` needs to stop it, or None when the module is not there yet.
    """
    if importlib.util.find_spec("tests.helpers.kubelet") is None:
        return None
    log = plane.logs / "kubelet.log"
    argv = [sys.executable, "-m", "tests.helpers.kubelet", "--kubeconfig", str(plane.kubeconfig), "--node", DEV_NODE]
    argv += ["--log-dir", str(plane.directory / "pods"), "--runtime", runtime]
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    with plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        while not any(node.metadata and node.metadata.name == DEV_NODE for node in core.list_node().items):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"the kubelet harness did not register node {DEV_NODE}:\n{tail}")
            time.sleep(0.2)
    return {"binary": sys.executable, "pid": process.pid, "log": str(log), "runtime": runtime}


def dev_up(directory: Path, *, runtime: str | None = None) -> int:
    running = ControlPlane.attach(directory)
    if running and all(c.running() for c in running.components.values()) and len(running.components) == 4:
        print(f"the control plane in {directory} is already running at {running.server}")
        state = json.loads(running.state_file.read_text())
        kubelet = state.get("kubelet")
        recorded = (kubelet or {}).get("runtime") or "process"
        if runtime is not None and kubelet and runtime != recorded:
            print(
                f"dev-cluster: the cluster in {directory} runs its pods as "
                f"{'containers' if recorded == 'podman' else 'processes'}; `down` it first to change that",
                file=sys.stderr,
            )
            return 2
        if not (kubelet and alive(kubelet["pid"], kubelet["binary"])):  # died, or only there now
            try:
                state["kubelet"] = start_kubelet_if_there(running, runtime=runtime or recorded)
            except ControlPlaneError as error:
                print(f"dev-cluster: {error}", file=sys.stderr)
                return 1
            running.state_file.write_text(json.dumps(state, indent=2))
        print(f"export KUBECONFIG={running.kubeconfig}")
        return 0
    if running:  # left over from a crash or a reboot: stop what remains, start again on the same data
        left = json.loads(running.state_file.read_text()).get("kubelet") or {}
        runtime = runtime or left.get("runtime")
        dev_down(directory, purge=False)
    runtime = runtime or "process"
    if runtime == "podman" and not kubelet_podman.available():
        print("dev-cluster: --containers needs podman and runc (apt-get install podman runc)", file=sys.stderr)
        return 2
    try:
        plane = ControlPlane.start(directory, binaries=Binaries.ensure(), detached=True)
        kubelet = start_kubelet_if_there(plane, runtime=runtime)
    except ControlPlaneError as error:
        print(f"dev-cluster: {error}", file=sys.stderr)
        return 1
    if kubelet:
        state = json.loads(plane.state_file.read_text())
        state["kubelet"] = kubelet
        plane.state_file.write_text(json.dumps(state, indent=2))
    print(f"control plane running at {plane.server} (logs in {plane.logs}, audit log {plane.audit_log})")
    if kubelet:
        how = "podman containers of their images" if runtime == "podman" else "local processes"
        print(
            f"node {DEV_NODE} registered by the kubelet harness, pods run as {how} (logs in {plane.directory / 'pods'})"
        )
    else:
        print("no kubelet harness (tests/helpers/kubelet.py) yet: pods stay Pending")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def delete_filterjobs(plane: ControlPlane, *, timeout: float = FINALIZER_WAIT) -> list[str]:
    """Delete every FilterJob and wait for them to go; the ones still there after ``timeout``.

    Their queues are on a RabbitMQ that outlives the cluster, and only the operator's finalizer
    removes them; after ``down`` nobody could. A cluster without the CRD has nothing to delete.
    """
    with plane.api_client() as client:
        custom = kubernetes.client.CustomObjectsApi(client)
        listing = functools.partial(custom.list_cluster_custom_object, "filterjob.dev", "v1alpha1", "filterjobs")
        try:
            jobs = listing()["items"]
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return []
            raise
        for job in jobs:
            meta = job["metadata"]
            with contextlib.suppress(kubernetes.client.ApiException):  # gone meanwhile
                custom.delete_namespaced_custom_object(
                    "filterjob.dev", "v1alpha1", meta["namespace"], "filterjobs", meta["name"]
                )
        try:
            wait_for_list(listing, lambda left: not left, timeout=timeout, what="the FilterJobs' deletion")
        except AssertionError:
            return sorted(f"{j['metadata']['namespace']}/{j['metadata']['name']}" for j in listing()["items"])
    return []


def dev_down(directory: Path, *, purge: bool = True) -> int:
    plane = ControlPlane.attach(directory)
    if plane is None:
        print(f"no control plane recorded in {directory}; nothing to stop")
        return 0
    if purge and all(c.running() for c in plane.components.values()):
        try:
            left = delete_filterjobs(plane)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as error:
            left = [f"(the API server did not answer: {error})"]
        if left:
            print(
                f"dev-cluster: FilterJobs not removed within {FINALIZER_WAIT:.0f} s (is the operator running?): "
                f"{', '.join(left)}; their queues (fj.NAMESPACE.NAME.*) stay on the broker",
                file=sys.stderr,
            )
    state = json.loads(plane.state_file.read_text())
    kubelet = state.get("kubelet")
    if kubelet:
        stop_process_group(
            kubelet["pid"], kubelet["binary"], wait=lambda t: wait_gone(kubelet["pid"], kubelet["binary"], t)
        )
        if kubelet.get("runtime") == "podman":  # a harness that had to be killed leaves its containers
            kubelet_podman.remove_node_containers(kubelet_podman.instance(DEV_NODE, plane.directory / "pods"))
    plane.stop()
    if purge:  # a dev cluster is throwaway: its data, certificates and logs go with it
        shutil.rmtree(directory)
        print(f"stopped the control plane and removed {directory}")
    return 0


def dev_status(directory: Path) -> int:
    plane = ControlPlane.attach(directory)
    if plane is None:
        print(f"no control plane recorded in {directory} (scripts/dev-cluster.sh up starts one)")
        return 1
    healthy = True
    for name, component in plane.components.items():
        state = "running" if component.running() else "not running"
        healthy &= component.running()
        print(f"{name:24} {state:12} pid {component.pid:<8} port {component.port}  log {component.log}")
    kubelet = json.loads(plane.state_file.read_text()).get("kubelet")
    if kubelet:
        up = alive(kubelet["pid"], kubelet["binary"])
        healthy &= up
        print(f"{'kubelet harness':24} {'running' if up else 'not running':12} pid {kubelet['pid']:<8}")
    if healthy:
        print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.helpers.devcluster",
        description="Run the tests' Kubernetes control plane in the background (scripts/dev-cluster.sh).",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--containers", action="store_true", help="up: run pods as podman containers of their images")
    parser.add_argument("--dir", type=Path, default=ROOT / ".dev-cluster", help="state folder (default: .dev-cluster)")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    if args.command == "up":
        return dev_up(directory, runtime="podman" if args.containers else None)
    if args.containers:
        parser.error("--containers goes with up")
    if args.command == "down":
        return dev_down(directory)
    return dev_status(directory)


if __name__ == "__main__":
    sys.exit(main())
