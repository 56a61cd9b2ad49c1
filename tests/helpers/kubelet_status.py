"""What the kubelet harness writes to the API server, built from plain data (no API calls here).

The Pod status follows the kubelet's own: ``phase`` (``Pending`` until the container first runs,
``Running`` while it runs or waits to restart, ``Succeeded``/``Failed`` once a ``Never``/``OnFailure``
pod is done), ``podIP``/``hostIP`` 127.0.0.1 (every pod shares the host's loopback), ``startTime``,
the conditions ``PodScheduled``, ``Initialized``, ``ContainersReady`` and ``Ready`` (their
``lastTransitionTime`` kept while their status does not change) and one ``containerStatuses`` entry.
The Node and its Lease are what a kubelet registers and renews.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

Body = dict[str, Any]

POD_IP = "127.0.0.1"
NODE_LEASE_NAMESPACE = "kube-node-lease"
#: How long the node-lifecycle controller trusts a renewal (the kubelet's default).
LEASE_SECONDS = 40


def timestamp(when: datetime.datetime | None = None) -> str:
    """An RFC 3339 time in seconds, as ``metav1.Time`` is written."""
    return (when or datetime.datetime.now(tz=datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp() -> str:
    """A ``metav1.MicroTime`` (a Lease's ``renewTime``)."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def waiting(reason: str, message: str = "") -> Body:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running(started_at: str) -> Body:
    return {"running": {"startedAt": started_at}}


def terminated(
    returncode: int, *, started_at: str, finished_at: str, container_id: str = "", reason: str = "", message: str = ""
) -> Body:
    """A finished process as a container runtime reports it: killed by signal N is exit code 128 + N."""
    code = 128 - returncode if returncode < 0 else returncode
    state: Body = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if container_id:
        state["containerID"] = container_id
    if message:
        state["message"] = message
    return {"terminated": state}


@dataclasses.dataclass
class ContainerRecord:
    """The harness's record of a pod's (first) container, as ``containerStatuses`` shows it."""

    name: str
    image: str
    state: Body = dataclasses.field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: Body = dataclasses.field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    #: Whether the startup probe (if any) succeeded for the running process.
    started: bool = False
    #: The process id while one runs.
    pid: int | None = None
    #: The runtime's id of the running container (``podman://NAME``); else ``process://PID``.
    runtime_id: str = ""

    def status(self) -> Body:
        running_now = "running" in self.state
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            **({"containerID": self.runtime_id or f"process://{self.pid}"} if running_now and self.pid else {}),
            "ready": self.ready and running_now,
            "started": self.started and running_now,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


def conditions(previous: list[Body] | None, wanted: Mapping[str, tuple[bool, str]], now: str) -> list[Body]:
    """The pod conditions ``wanted`` (type -> (status, reason)), keeping the previous transition times."""
    before = {c.get("type"): c for c in previous or []}
    result = []
    for kind, (ok, reason) in wanted.items():
        status = "True" if ok else "False"
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        condition: Body = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now}
        if reason:
            condition["reason"] = reason
        result.append(condition)
    return result


def pod_status(
    *,
    phase: str,
    start_time: str,
    container: ContainerRecord,
    previous_conditions: list[Body] | None,
    message: str = "",
) -> Body:
    """The pod's whole status (written with a merge patch, so lists replace the stored ones)."""
    done = phase in ("Succeeded", "Failed")
    ready = container.ready and "running" in container.state and not done
    reason = "PodCompleted" if done else ("" if ready else "ContainersNotReady")
    now = timestamp()
    status: Body = {
        "phase": phase,
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "startTime": start_time,
        "conditions": conditions(
            previous_conditions,
            {
                "PodScheduled": (True, ""),
                "Initialized": (True, "PodCompleted" if done else ""),
                "ContainersReady": (ready, reason),
                "Ready": (ready, reason),
            },
            now,
        ),
        "containerStatuses": [container.status()],
    }
    status["message"] = message or None
    return status


def node(name: str, *, cpu: str, memory: str, pods: int) -> Body:
    """The Node a kubelet registers (status is written separately: create ignores it)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "process-kubelet",
            },
        },
        "spec": {},
        "status": node_status(cpu=cpu, memory=memory, pods=pods),
    }


def node_status(*, cpu: str, memory: str, pods: int, ready: bool = True) -> Body:
    """Ready (or stopped), no pressure, a heartbeat of now; capacity and allocatable alike."""
    now = timestamp()
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}

    def condition(kind: str, ok: bool, reason: str, message: str) -> Body:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", True, "KubeletReady", "kubelet is posting ready status (process harness)")
            if ready
            else condition("Ready", False, "KubeletStopped", "the process kubelet harness stopped"),
        ],
        "addresses": [{"type": "InternalIP", "address": POD_IP}, {"type": "Hostname", "address": "localhost"}],
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "osImage": "local processes",
            "kernelVersion": "",
            "containerRuntimeVersion": "process://0",
            "kubeletVersion": "harness",
            "kubeProxyVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def lease(node_name: str, node_uid: str) -> Body:
    """The node's Lease in ``kube-node-lease``, owned by the Node (so it goes with it), renewed now."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_timestamp()},
    }
