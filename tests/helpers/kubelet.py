"""A harness that plays only the kubelet, against any API server: pods bound to its node run as processes.

``Kubelet(kubeconfig_or_api_client, node_name)`` registers a Node (``Ready``, capacity and
allocatable with ``cpu``, ``memory`` and ``pods``) and keeps its Lease in ``kube-node-lease``
renewed every ``lease_interval`` seconds (10; the node-lifecycle controller marks a node
``Unknown`` 50 s after the last renewal, taints it and evicts its pods), refreshing the Node's
heartbeat at the same time. It watches the Pods bound to the node
(``fieldSelector=spec.nodeName=<node>``; the watch resumes from the last resourceVersion after an
error and lists again after ``410 Gone``) and runs each in a :class:`~.kubelet_pod.PodWorker`:
the first container's ``command`` + ``args`` with its resolved env as a local process in a session
of its own, stdout and stderr to ``<log_dir>/<namespace>.<pod>.log``. How env, volumes, ports and
ServiceAccount credentials are made is in :mod:`.kubelet_config`; probes, restarts and deletion in
:mod:`.kubelet_pod`; what is written to the API in :mod:`.kubelet_status`. The Deployment,
ReplicaSet, Job, garbage-collector and scheduler logic is the real control plane's.

Deletion: once a Pod has a ``deletionTimestamp``, its process gets SIGTERM, its process group
SIGKILL after ``deletionGracePeriodSeconds`` (else ``terminationGracePeriodSeconds``, else 30),
the final status is written and the Pod deleted with ``gracePeriodSeconds=0`` and its uid as a
precondition, as the kubelet finishes a deletion. A Pod removed outright has its process killed.
:meth:`Kubelet.stop` stops every process (grace at most ``teardown_grace``) and deletes the Node
(its Lease goes with it) -- or, where its node identity may not (the Node authorizer allows a kubelet
no deletion of its Node), marks it not Ready; the Pods left in the API are the pod GC controller's.

Images are not pulled: ``refuse_image`` (a callback from the image name to a pull error, or None
to "pull" it; settable while running) makes a container wait with ``ErrImagePull`` and
``ImagePullBackOff``, as an image that cannot be pulled does, until it returns None.

Networking: every pod shares the host's loopback (``podIP`` = ``hostIP`` = 127.0.0.1), so ports
are mapped per pod (:class:`~.kubelet_config.Ports`). There is no kube-proxy: a Service's
ClusterIP reaches nothing and cluster DNS names (``*.svc``) do not resolve. What works: a pod
reaches the API server through ``KUBERNETES_SERVICE_HOST``/``PORT`` (loopback) or its
``KUBECONFIG``, any loopback service the test runs (RabbitMQ on 127.0.0.1:5672), and another
pod on its mapped port (``RunningPod.health_port``); Endpoints/EndpointSlices list 127.0.0.1 with
the container port, not the mapped one.

For tests: :meth:`Kubelet.pods`/:meth:`Kubelet.pod` (pid, health URL, log), :meth:`Kubelet.kill`,
:meth:`Kubelet.drop_watch` (a network fault), ``notes`` (what the harness did, in order) and
:meth:`Kubelet.wait_for`/:meth:`Kubelet.wait_for_pods`, which wait on a condition notified at every
change (a watch event, a process exit, a probe result, a status write), never by sleeping::

    with Kubelet(kubeconfig, "node-1", log_dir=tmp_path / "pods") as kubelet:
        apps.create_namespaced_deployment("ns", manifest)
        pods = kubelet.wait_for_pods("ns", 2, prefix="web-")   # running and ready
        kubelet.kill("ns", pods[0].name)                       # SIGKILL: the process crashes

Container mode (``runtime="podman"``, ``--runtime podman``): each pod's first container runs as a
podman container of its image instead, from this machine's podman storage (never pulled: an image
not there waits in ``ImagePullBackOff``), with the pod's security context, env, volumes, limits and
mounted ServiceAccount credentials (the translation is :mod:`.kubelet_podman`); probes, restarts,
ports and deletion work as for processes, signals going to the container. Its containers carry the
label ``kubelet_podman.NODE_LABEL`` = :attr:`Kubelet.instance`; a harness started again on the
same node and log folder removes the ones a killed predecessor left.

``python -m tests.helpers.kubelet --kubeconfig PATH --node NAME [--log-dir DIR] [--runtime podman]``
runs it in the foreground until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from . import kubelet_podman, kubelet_status
from .kubelet_config import TOKEN_SECONDS, ConfigError, decode_secret
from .kubelet_pod import PodWorker, RunningPod

__all__ = ["Kubelet", "RunningPod"]

T = TypeVar("T")
Body = dict[str, Any]
log = logging.getLogger("kubelet")
_RETRIED = (429, 500, 502, 503, 504)
#: How a pod's container runs: a local process, or a podman container of its image (kubelet_podman).
RUNTIMES = ("process", "podman")


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Body:
    """An API call's JSON as plain data (the client's models would drop fields it does not know)."""
    answer: Body = call(*args, **kwargs, _preload_content=False).json()
    return answer


def _refusal(error: ApiException) -> Exception:
    """A refused or failed read as the container's configuration problem (retried with back-off)."""
    with contextlib.suppress(ValueError, TypeError):
        message = json.loads(error.body or "")["message"]
        return ConfigError(f"{error.status}: {message}")
    return ConfigError(f"the API server answered {error.status} {error.reason}")


class ApiLookup:
    """What pods reference, read from the API server (None for what does not exist)."""

    def __init__(self, core: kubernetes.client.CoreV1Api) -> None:
        self.core = core

    def _get(self, read: Callable[..., Any], *args: str) -> Body | None:
        try:
            found = raw(read, *args)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _refusal(e) from e
        return found

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._get(self.core.read_namespaced_secret, name, namespace)
        return None if found is None else decode_secret(found)

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._get(self.core.read_namespaced_config_map, name, namespace)
        return None if found is None else {k: str(v) for k, v in (found.get("data") or {}).items()}

    def claim(self, namespace: str, name: str) -> Body | None:
        return self._get(self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def volume(self, name: str) -> Body | None:
        return self._get(self.core.read_persistent_volume, name)

    def token(self, namespace: str, account: str, pod_name: str, pod_uid: str) -> str | None:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid},
            },
        }
        try:
            answer = raw(self.core.create_namespaced_service_account_token, account, namespace, request)
        except ApiException as e:
            if e.status == 404:
                return None
            raise _refusal(e) from e
        return str(answer["status"]["token"])


class Kubelet:
    """Plays the kubelet of one node; ``start()``/``stop()`` or a ``with`` block (see the module doc)."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient | str | os.PathLike[str],
        node_name: str,
        *,
        log_dir: Path | None = None,
        restart_backoff: tuple[float, float] = (0.5, 8.0),
        backoff_reset: float = 10.0,
        lease_interval: float = 10.0,
        teardown_grace: float = 5.0,
        refuse_image: Callable[[str], str | None] | None = None,
        cpu: str = "8",
        memory: str = "16Gi",
        max_pods: int = 110,
        runtime: str = "process",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        if isinstance(api, kubernetes.client.ApiClient):
            self.api, self._own_api = api, False
        else:
            self.api = kubernetes.config.new_client_from_config(config_file=os.fspath(api))  # type: ignore[no-untyped-call]
            self._own_api = True
        self.api.configuration.connection_pool_maxsize = max(self.api.configuration.connection_pool_maxsize, 32)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.lookup = ApiLookup(self.core)
        self.server: str = self.api.configuration.host
        self.ca_file: str | None = self.api.configuration.ssl_ca_cert
        self.node_name = node_name
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="kubelet-"))
        self.restart_backoff = restart_backoff
        self.backoff_reset = backoff_reset
        self.lease_interval = lease_interval
        self.teardown_grace = teardown_grace
        self.refuse_image = refuse_image
        #: ``process`` (the first container as a local process) or ``podman`` (a container of its image).
        self.runtime = runtime
        #: The label value of this harness's containers (``kubelet_podman.NODE_LABEL``).
        self.instance = kubelet_podman.instance(node_name, self.log_dir)
        self.resources: dict[str, Any] = {"cpu": cpu, "memory": memory, "pods": max_pods}
        #: Notified at every change the harness sees or makes; :meth:`wait_for` waits on it.
        self.changed = threading.Condition(threading.RLock())
        #: Unexpected failures of the harness's threads (a test should see them).
        self.errors: list[BaseException] = []
        #: What the harness did, newest last (for messages of timed-out waits).
        self.notes: list[str] = []
        self._workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._response: urllib3.BaseHTTPResponse | None = None
        #: Watch connections opened so far (a dropped one is opened again).
        self.watches = 0

    # ----------------------------------------------------------------------------------------------
    # Lifecycle.

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.runtime == "podman":  # a harness of this node killed before it stopped its containers
            kubelet_podman.remove_node_containers(self.instance)
        self._register()
        resource_version = self._relist()
        for target, args in ((self._renew, ()), (self._watch, (resource_version,))):
            thread = threading.Thread(target=target, args=args, name=f"kubelet {target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop watching, stop every pod's process (grace at most ``teardown_grace``), remove the Node."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        with self.changed:
            workers = list(self._workers.values())
            for worker in workers:
                worker.stop()
            self.changed.notify_all()
        for thread in [*workers, *self._threads]:
            thread.join(timeout=self.teardown_grace + 30)
            if thread.is_alive():
                self.errors.append(RuntimeError(f"{thread.name} did not stop"))
        self._deregister()
        if self._own_api:
            self.api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------------
    # For tests.

    def pods(self, namespace: str | None = None) -> list[RunningPod]:
        """The pods this harness runs now (in ``namespace``, or all), in the order it saw them."""
        with self.changed:
            return [w.snapshot() for w in self._workers.values() if namespace in (None, w.namespace)]

    def pod(self, namespace: str, name: str) -> RunningPod | None:
        return next((p for p in self.pods(namespace) if p.name == name), None)

    def kill(self, namespace: str, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL: a crash) to the process group of the pod's running process."""
        with self.changed:
            worker = next((w for w in self._workers.values() if (w.namespace, w.pod_name) == (namespace, name)), None)
            if worker is None or worker.proc is None or worker.exited:
                raise ProcessLookupError(f"pod {namespace}/{name} runs no process on node {self.node_name}")
            if self.runtime == "podman":
                self.note(
                    f"{namespace}/{name}: signal {signal.Signals(sig).name} to {worker.container_name} (by the test)"
                )
                if not kubelet_podman.kill(worker.container_name, sig):
                    raise ProcessLookupError(
                        f"pod {namespace}/{name}: container {worker.container_name} is not running"
                    )
                return
            self.note(f"{namespace}/{name}: signal {signal.Signals(sig).name} to pid {worker.proc.pid} (by the test)")
            os.killpg(worker.proc.pid, sig)

    def drop_watch(self) -> None:
        """Break the pod watch's connection, as the API server or the network may (it is resumed)."""
        response = self._response
        if response is not None:
            response.shutdown()

    def wait_for_pods(
        self, namespace: str, count: int, *, prefix: str = "", ready: bool = True, timeout: float = 60
    ) -> list[RunningPod]:
        """Wait until exactly ``count`` pods of ``namespace`` (named ``prefix...``) run here, all ready
        unless ``ready=False``; they are returned."""

        def settled(kubelet: Kubelet) -> tuple[list[RunningPod]] | None:
            pods = [p for p in kubelet.pods(namespace) if p.name.startswith(prefix)]
            if len(pods) == count and all(p.state == "running" and (p.ready or not ready) for p in pods):
                return (pods,)  # truthy even with no pods
            return None

        found = self.wait_for(settled, timeout=timeout, message=f"{count} pods {prefix}* in {namespace}")
        assert found is not None
        return found[0]

    def wait_for(self, predicate: Callable[[Kubelet], T], *, timeout: float = 60, message: str = "condition") -> T:
        """Wait until ``predicate(kubelet)`` is truthy, re-checked at every change; its value."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                if self.errors:
                    raise RuntimeError(f"the kubelet harness failed: {self.errors!r}") from self.errors[0]
                result = predicate(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = "\n".join(self.notes[-20:])
                    raise TimeoutError(
                        f"timed out after {timeout} s waiting for {message}; last: {result!r}; recently:\n{recent}"
                    )
                self.changed.wait(remaining)

    def note(self, line: str) -> None:
        with self.changed:
            self.notes.append(line)
            self.changed.notify_all()
        log.info("%s", line)

    # ----------------------------------------------------------------------------------------------
    # Used by the pod workers.

    def image_refusal(self, image: str) -> str | None:
        refuse = self.refuse_image
        refusal = refuse(image) if refuse is not None else None
        if refusal is None and self.runtime == "podman" and kubelet_podman.image_user(image) is None:
            # Nothing is pulled (no registry): the image must be in this machine's podman storage.
            return f"{image}: not in this machine's podman storage (build it here, or podman load it)"
        return refusal

    def taken_ports(self) -> set[int]:
        return {w.ports.health for w in self._workers.values() if w.ports is not None} | {
            port for w in self._workers.values() if w.ports is not None for port in w.ports.mapping.values()
        }

    def forget(self, worker: PodWorker) -> None:
        with self.changed:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]
                self._finished.add(worker.uid)
            self.changed.notify_all()

    def _retrying(self, what: str, call: Callable[[], object]) -> None:
        """An API write that must land: retried on overload and server errors, given up on 404/409."""
        for attempt in range(6):
            try:
                call()
                return
            except ApiException as e:
                if e.status in (404, 409):
                    log.info("%s: %s (the pod changed or went)", what, e.status)
                    return
                if e.status not in _RETRIED or attempt == 5:
                    raise
            except urllib3.exceptions.HTTPError:
                if attempt == 5:
                    raise
            self._stop.wait(0.2 * 2**attempt)

    def write_status(self, pod: Body, status: Body) -> None:
        meta = pod["metadata"]
        self._retrying(
            f"status of {meta['namespace']}/{meta['name']}",
            lambda: self.core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], {"status": status}, _content_type="application/merge-patch+json"
            ),
        )

    def delete_pod(self, pod: Body) -> None:
        meta = pod["metadata"]
        self.note(f"{meta['namespace']}/{meta['name']}: deletion finished (gracePeriodSeconds=0)")
        self._retrying(
            f"delete {meta['namespace']}/{meta['name']}",
            lambda: self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                body=cast(Any, {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}),
            ),
        )

    def event(self, pod: Body, reason: str, message: str, *, kind: str = "Normal") -> None:
        """A core/v1 Event about the pod, from this node's kubelet (lost events are only logged)."""
        meta = pod["metadata"]
        self.note(f"{meta['namespace']}/{meta['name']}: {reason}: {message}")
        now = kubelet_status.timestamp()
        body: Any = {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except (ApiException, urllib3.exceptions.HTTPError) as e:
            log.info("event %s for %s/%s not written: %s", reason, meta["namespace"], meta["name"], e)

    # ----------------------------------------------------------------------------------------------
    # The Node and its Lease.

    def _register(self) -> None:
        manifest = kubelet_status.node(self.node_name, **self.resources)
        try:
            created = raw(self.core.create_node, manifest)
        except ApiException as e:
            if e.status != 409:
                raise
            created = raw(self.core.read_node, self.node_name)
        self._node_uid = str(created["metadata"]["uid"])
        self._heartbeat()
        coordination = kubernetes.client.CoordinationV1Api(self.api)
        lease: Any = kubelet_status.lease(self.node_name, self._node_uid)
        try:
            coordination.create_namespaced_lease(kubelet_status.NODE_LEASE_NAMESPACE, lease)
        except ApiException as e:
            if e.status != 409:
                raise
            coordination.replace_namespaced_lease(self.node_name, kubelet_status.NODE_LEASE_NAMESPACE, lease)

    def _deregister(self) -> None:
        """Delete the Node (its Lease goes with it). A node identity may not delete its Node: then
        it is marked not Ready (reason ``KubeletStopped``), so nothing is scheduled on it."""
        try:
            self.core.delete_node(self.node_name)
            return
        except ApiException as e:
            if e.status == 404:
                return
            if e.status != 403:
                log.warning("node %s not removed: %s", self.node_name, e)
                return
        status = kubelet_status.node_status(**self.resources, ready=False)
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            self.core.patch_node_status(self.node_name, {"status": status})

    def _heartbeat(self) -> None:
        status = kubelet_status.node_status(**self.resources)
        self.core.patch_node_status(self.node_name, {"status": status})

    def _renew(self) -> None:
        """Renew the Lease (and the Node's heartbeat) every ``lease_interval`` s; API errors are retried."""
        coordination = kubernetes.client.CoordinationV1Api(self.api)
        while not self._stop.wait(self.lease_interval):
            try:
                coordination.patch_namespaced_lease(
                    self.node_name,
                    kubelet_status.NODE_LEASE_NAMESPACE,
                    {"spec": {"renewTime": kubelet_status.micro_timestamp(), "holderIdentity": self.node_name}},
                )
                self._heartbeat()
            except (ApiException, urllib3.exceptions.HTTPError) as e:
                log.warning("lease of node %s not renewed: %s", self.node_name, e)

    # ----------------------------------------------------------------------------------------------
    # The pods bound to the node.

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    def _relist(self) -> str:
        """List the node's pods, sync every worker with what is there; the list's resourceVersion."""
        listed = raw(self.core.list_pod_for_all_namespaces, field_selector=self._selector)
        pods = {pod["metadata"]["uid"]: pod for pod in listed.get("items") or []}
        with self.changed:
            for uid, worker in self._workers.items():
                if uid not in pods:
                    worker.deleted()
            for pod in pods.values():
                self._dispatch("MODIFIED", pod)
            self.changed.notify_all()
        return str(listed["metadata"]["resourceVersion"])

    def _dispatch(self, kind: str, pod: Body) -> None:
        """Hand a watch event to its pod's worker, starting one for a new pod (under the lock)."""
        uid = pod["metadata"]["uid"]
        worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.deleted()
            return
        if worker is not None:
            worker.update(pod)
        elif uid not in self._finished and not self._stop.is_set():
            worker = PodWorker(self, pod)
            worker.update(pod)
            self._workers[uid] = worker
            worker.start()

    def _watch(self, resource_version: str) -> None:
        """Follow the node's pods from ``resource_version``, resuming after errors, relisting after 410."""
        while not self._stop.is_set():
            try:
                response: urllib3.BaseHTTPResponse = self.core.list_pod_for_all_namespaces(  # type: ignore[assignment]
                    field_selector=self._selector,
                    watch=True,
                    allow_watch_bookmarks=True,
                    resource_version=resource_version,
                    timeout_seconds=300,
                    _preload_content=False,
                )
                with self.changed:
                    self._response = response
                    self.watches += 1
                    self.changed.notify_all()
                if self._stop.is_set():
                    break
                for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            resource_version = self._relist()
                            break
                        raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        with self.changed:
                            self._dispatch(event["type"], obj)
                            self.changed.notify_all()
            except Exception as e:
                if self._stop.is_set():
                    break
                log.warning("watch of the pods of node %s broke (%s); resuming", self.node_name, e)
                if self._stop.wait(1):
                    break
                if isinstance(e, ApiException) and e.status == 410:
                    with contextlib.suppress(Exception):
                        resource_version = self._relist()
            finally:
                done, self._response = self._response, None
                if done is not None:
                    # Closed, not handed back: a watch cut mid-chunk would leave its rest to the next request.
                    done.close()
                    done.release_conn()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.kubelet", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path, help="the API server and the harness's user")
    parser.add_argument("--node", required=True, help="the Node name to register")
    parser.add_argument("--log-dir", type=Path, help="where the pods' logs go (default: a new temporary folder)")
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default="process", help="pods as local processes or as podman containers"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig}: no such file")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    if args.runtime == "podman" and not kubelet_podman.available():
        parser.error("--runtime podman: podman and runc are not installed (apt-get install podman runc)")
    kubelet = Kubelet(args.kubeconfig, args.node, log_dir=args.log_dir, runtime=args.runtime)
    try:
        kubelet.start()
    except (ApiException, urllib3.exceptions.HTTPError) as e:
        print(f"kubelet: cannot register node {args.node}: {e}", file=sys.stderr)
        return 1
    log.info("node %s registered; pod logs in %s", args.node, kubelet.log_dir)
    done.wait()
    kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
