"""The real control plane seen through the raw ``kubernetes`` client, as the kubelet-harness tests
see it: the admin's and a node's kubeconfig, objects as the API server sends them (plain JSON), waits
that follow a watch, and a job's queues declared on the test broker for the pods that consume them."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import kubernetes.client
from kubernetes.watch.watch import iter_resp_lines

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL
from tests.helpers.kubelet import raw

Body = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Plane:
    admin_kubeconfig: Path
    node_kubeconfig: Path


def get(port: int, path: str) -> tuple[int, str]:
    """GET from a pod's mapped port on loopback."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    finally:
        connection.close()


@dataclasses.dataclass(frozen=True)
class Api:
    client: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api
    apps: kubernetes.client.AppsV1Api
    batch: kubernetes.client.BatchV1Api
    rbac: kubernetes.client.RbacAuthorizationV1Api


def node_ready(node: Body) -> bool:
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True" and not node.get("spec", {}).get("taints")


def wait_object(
    list_call: Callable[..., Any],
    namespace: str | None,
    name: str,
    predicate: Callable[[Body | None], bool],
    *,
    timeout: float = 60,
) -> Body | None:
    """Wait, by a watch, until ``predicate`` holds for the named object (None: it does not exist)."""
    args = (namespace,) if namespace is not None else ()
    selector = f"metadata.name={name}"
    listed = raw(list_call, *args, field_selector=selector)
    current = (listed.get("items") or [None])[0]
    deadline = time.monotonic() + timeout
    version = listed["metadata"]["resourceVersion"]
    while not predicate(current):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{name}: still {json.dumps(current, indent=1)[:3000]}")
        response = list_call(
            *args,
            field_selector=selector,
            watch=True,
            resource_version=version,
            timeout_seconds=max(1, int(remaining)),
            _preload_content=False,
        )
        try:
            for line in iter_resp_lines(response):
                event = json.loads(line)
                version = event["object"]["metadata"].get("resourceVersion", version)
                current = None if event["type"] == "DELETED" else event["object"]
                if predicate(current):
                    break
        finally:
            response.close()  # not back to the pool: a watch left mid-stream would poison the next request
            response.release_conn()
    return current


def wait_pod(api: Api, ns: str, name: str, predicate: Callable[[Body], bool], *, timeout: float = 60) -> Body:
    found = wait_object(
        api.core.list_namespaced_pod, ns, name, lambda p: p is not None and predicate(p), timeout=timeout
    )
    assert found is not None
    return found


def container_status(pod: Body) -> Body:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def pod_manifest(name: str, container: Body, **spec: Any) -> Body:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def condition(obj: Body, kind: str) -> str | None:
    return next((c["status"] for c in obj.get("status", {}).get("conditions") or [] if c["type"] == kind), None)


async def declare_topology(topology: Topology, *, remove: bool = False) -> None:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await (delete if remove else declare)(channel, topology)
