"""Plays the kubelet (and the Deployment and ReplicaSet controllers) for the Kubernetes emulator.

For every ``apps/v1`` Deployment stored in a :class:`~.emulator.RunningCluster`, :class:`Kubelet`
keeps ``spec.replicas`` real local processes running, started from the pod template's first
container, and reports them back in the Deployment's status, so code under test (an operator,
a test) sees workers that start, become ready, crash, scale and go away as in a cluster:

* the command is ``command`` + ``args`` (``$(VAR)`` expanded from the container's env, as the
  kubelet does); a bare name is looked up in the virtualenv's ``bin`` directory (the directory of
  ``sys.executable``) and then on ``PATH``, so ``filterjob-worker`` and ``python`` are this venv's;
* env entries with a plain ``value``, ``valueFrom.secretKeyRef`` (the emulator's Secret in the
  pod's namespace: base64-decoded ``data[key]``, or ``stringData[key]``; ``optional`` honoured),
  ``valueFrom.fieldRef`` (``metadata.name`` is the generated pod name ``<deployment>-<random5>``,
  ``metadata.namespace``, ``metadata.uid``, ``metadata.labels['…']``/``annotations['…']``,
  ``spec.nodeName``, ``spec.serviceAccountName``, ``status.podIP``/``hostIP`` = 127.0.0.1) and
  ``envFrom[].secretRef``; on top of a small base environment (``PATH`` with the venv first,
  ``HOME``, locale, ``HOSTNAME`` = the pod name, ``PYTHONUNBUFFERED=1``), not the test's own;
* every pod shares localhost, so :data:`HEALTH_PORT_ENV` is set to a free port per process
  (a new one at each restart); the rest of the template's env is kept as it is;
* readiness: the harness thread GETs each running process's readiness path (the template's
  ``readinessProbe.httpGet.path``, default ``/readyz``) on that port every ``probe_interval``
  seconds; 2xx/3xx is ready, anything else (or no answer) is not. Without a readiness probe in
  the template a running process is ready. ``minReadySeconds`` delays availability;
* a process that exits while wanted is restarted in place (same pod name, ``restarts`` + 1) after
  a back-off that doubles from ``restart_backoff[0]`` to ``restart_backoff[1]`` and resets once a
  process ran ``backoff_reset`` seconds, like CrashLoopBackOff (only faster);
* scale-down picks unready pods first, then the newest, sends SIGTERM to the process (not its
  group, as the kubelet signals PID 1) and SIGKILLs its process group after the template's
  ``terminationGracePeriodSeconds`` (default 30); a deleted Deployment (or one garbage-collected
  with its owner) has all its pods terminated the same way;
* a changed pod template rolls out: new pods up to ``maxSurge``, old ones removed as
  ``maxUnavailable`` allows (``RollingUpdate``), or all old ones first (``Recreate``);
* status (through the ``status`` subresource, over HTTP with the token :data:`KUBELET_TOKEN`, so
  the request log tells the harness's writes from anyone else's): ``observedGeneration``,
  ``replicas``, ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``,
  ``unavailableReplicas`` (zeros omitted, as the API server's ``omitempty`` does) and the
  ``Available``/``Progressing`` conditions; written only when something changed.

For every ``batch/v1`` Job it plays the Job controller as well: the pod template's first container
runs once as a process (command, args and env resolved as above, a pod named ``<job>-<random5>``);
exit 0 completes the Job, any other exit is a failure, retried after the same back-off until
``spec.backoffLimit`` (default 6) failures are exceeded, which fails the Job. Its status gets
``startTime``, ``active``, ``ready``, ``succeeded``, ``failed`` (failed runs, whatever the
``restartPolicy``), ``completionTime`` and a ``Complete`` or ``Failed`` condition (reason
``BackoffLimitExceeded``). A Job that already has a final condition is not run; a deleted Job's
process is terminated. Not emulated for Jobs: ``completions``/``parallelism`` other than 1,
``suspend``, ``activeDeadlineSeconds``, pod failure policies, ``ttlSecondsAfterFinished``.

Every process runs in a session of its own (``start_new_session=True``), so its whole process
group is killed when it exits, is terminated or the harness stops: nothing outlives the test.
Stdout and stderr of a pod's processes go to one log file under ``log_dir`` (restarts append,
after a ``# kubelet: ...`` marker line).

The harness thread wakes on every change stored in the emulator (the condition
``RunningCluster.wait_for`` uses) and otherwise every ``probe_interval`` seconds for the probes.

Not emulated: Pod objects in the API, liveness/startup probes, resources, volumes and security
contexts (``file://`` paths are local anyway), init and sidecar containers, ``paused``
Deployments, ReplicaSets, ``progressDeadlineSeconds``, ConfigMap references, HPA decisions.

Usage (the ``kubelet`` fixture does the first line)::

    with Kubelet(cluster, tmp_path / "pods") as kubelet:
        k8s_api.apps.create_namespaced_deployment("ns", manifest)
        cluster.wait_for_object(DEPLOYMENTS, "ns", "name", lambda d: d.get("status", {}).get("readyReplicas") == 2)
        pod, _ = kubelet.pods("ns", "name")
        kubelet.kill(pod)                                   # SIGKILL: the pod's process crashes
        kubelet.wait_for(lambda k: k.restarts("ns", "name") == 1)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import http.client
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from .background import Background
from .emulator import DEPLOYMENTS, JOBS, SECRETS, Body, ClusterEmulator, RunningCluster

T = TypeVar("T")
log = logging.getLogger("kubelet")

#: The variable set to a free localhost port per process (and probed for readiness).
HEALTH_PORT_ENV = "FILTERJOB_HEALTH_PORT"
#: The bearer token of the harness's own API requests (its status writes).
KUBELET_TOKEN = "kubelet-harness"
NODE_NAME = "kubelet-harness"
POD_IP = "127.0.0.1"
DEFAULT_GRACE_SECONDS = 30
#: A Job's ``spec.backoffLimit`` when it sets none (the API server's default).
DEFAULT_BACKOFF_LIMIT = 6
DEFAULT_READINESS_PATH = "/readyz"

_NAME_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "COVERAGE_PROCESS_START")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

Phase = Literal["Running", "Waiting", "Terminating"]


class PodStartError(Exception):
    """A pod's process cannot be started (a missing Secret, an unknown command, ...)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are replaced, ``$$`` is a literal ``$``."""
    return _VAR_REF.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def _timestamp() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template_hash(template: Any) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _int_or_percent(value: Any, total: int, *, round_up: bool, default: str) -> int:
    """``maxSurge``/``maxUnavailable``: an integer or a percentage of ``total``."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        share = total * float(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process ended, without reaping it: its process group stays killable until then."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # reaped by someone else


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    # Only while the leader is not reaped (its pid, and so the group id, cannot have been reused).
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def _collect(proc: subprocess.Popen[bytes]) -> int:
    """Kill what is left of an exited process's group, then reap the process; its exit code."""
    _kill_group(proc)
    return proc.wait()


def _probe(port: int, path: str, timeout: float) -> bool:
    connection = http.client.HTTPConnection(POD_IP, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@dataclasses.dataclass(frozen=True)
class Pod:
    """A snapshot of one emulated pod, as :meth:`Kubelet.pods` saw it."""

    namespace: str
    deployment: str
    name: str
    #: The process now running for the pod; None while it waits to (re)start.
    pid: int | None
    #: Its ``FILTERJOB_HEALTH_PORT`` on 127.0.0.1 (a new one after each restart).
    health_port: int | None
    log_path: Path
    restarts: int
    ready: bool
    phase: Phase
    #: Why a ``Waiting`` pod is not running (the last exit or start failure).
    reason: str
    template_hash: str

    @property
    def health_url(self) -> str:
        return f"http://{POD_IP}:{self.health_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (other lines, such as the harness's markers, are skipped)."""
        lines = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        return lines


@dataclasses.dataclass(eq=False)
class _Pod:
    namespace: str
    deployment: str
    deployment_uid: str
    name: str
    uid: str
    seq: int
    template: Body
    template_hash: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    health_port: int | None = None
    started_at: float = 0.0
    starts: int = 0
    ready: bool = False
    ready_since: float | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 0.0
    reason: str = "ContainerCreating"
    terminating: bool = False
    kill_at: float = math.inf

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.deployment, self.deployment_uid)

    @property
    def spec(self) -> Body:
        spec = self.template.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def grace_seconds(self) -> float:
        grace = self.spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE_SECONDS if grace is None else grace)

    @property
    def readiness_path(self) -> str | None:
        """The readiness probe's path, or None if the container has no readiness probe."""
        containers = self.spec.get("containers") or [{}]
        probe = containers[0].get("readinessProbe")
        if not probe:
            return None
        return str((probe.get("httpGet") or {}).get("path") or DEFAULT_READINESS_PATH)

    def snapshot(self) -> Pod:
        if self.terminating:
            phase: Phase = "Terminating"
        elif self.proc is not None:
            phase = "Running"
        else:
            phase = "Waiting"
        return Pod(
            namespace=self.namespace,
            deployment=self.deployment,
            name=self.name,
            pid=self.proc.pid if self.proc is not None else None,
            health_port=self.health_port if self.proc is not None else None,
            log_path=self.log_path,
            restarts=self.restarts,
            ready=self.ready,
            phase=phase,
            reason="" if phase == "Running" else self.reason,
            template_hash=self.template_hash,
        )


@dataclasses.dataclass(frozen=True)
class JobRun:
    """A snapshot of one emulated Job's run, as :meth:`Kubelet.job` saw it."""

    namespace: str
    name: str
    #: The pod's log (every attempt, each after a ``# kubelet: ...`` marker line).
    log_path: Path
    #: Failed attempts so far.
    failed: int
    succeeded: int
    #: ``Complete``, ``Failed`` or None while running (or waiting to retry).
    outcome: str | None
    #: The exit code of each finished attempt, in order.
    exit_codes: tuple[int, ...]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclasses.dataclass(eq=False)
class _JobRun:
    uid: str
    pod: _Pod
    backoff_limit: int
    start_time: str
    succeeded: int = 0
    failed: int = 0
    outcome: str | None = None
    completion_time: str | None = None
    exit_codes: list[int] = dataclasses.field(default_factory=list)

    def snapshot(self) -> JobRun:
        return JobRun(
            namespace=self.pod.namespace,
            name=self.pod.deployment,
            log_path=self.pod.log_path,
            failed=self.failed,
            succeeded=self.succeeded,
            outcome=self.outcome,
            exit_codes=tuple(self.exit_codes),
        )


class Kubelet(Background):
    """Runs the emulator's Deployments as local processes (see the module's docstring).

    Use as a context manager, or :meth:`start` and :meth:`stop`. The accessors are thread-safe
    and return snapshots.
    """

    def __init__(
        self,
        cluster: RunningCluster,
        log_dir: Path,
        *,
        probe_interval: float = 0.2,
        probe_timeout: float = 1.0,
        restart_backoff: tuple[float, float] = (0.2, 5.0),
        backoff_reset: float = 10.0,
        teardown_grace: float = 10.0,
        bin_dir: Path | None = None,
        base_env: Mapping[str, str] | None = None,
        port_env: str = HEALTH_PORT_ENV,
        token: str = KUBELET_TOKEN,
    ) -> None:
        self.cluster = cluster
        self.log_dir = Path(log_dir)
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.restart_backoff = restart_backoff
        self.backoff_reset = backoff_reset
        self.teardown_grace = teardown_grace
        self.bin_dir = Path(bin_dir) if bin_dir is not None else Path(sys.executable).parent
        self.base_env = dict(base_env) if base_env is not None else self._default_base_env()
        self.port_env = port_env
        self.token = token
        #: What happened, as one-line messages (like Events): starts, exits, failures to start.
        self.events: list[str] = []
        #: Unexpected exceptions in the harness thread (bugs); the fixture fails the test on any.
        self.errors: list[BaseException] = []

        self._cond = threading.Condition(threading.RLock())
        self._pods: list[_Pod] = []
        #: Runs of batch/v1 Jobs by Job uid (finished ones too, so that they never run again).
        self._job_runs: dict[str, _JobRun] = {}
        self._restarts: dict[tuple[str, str], int] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._poked = False
        self._api: kubernetes.client.ApiClient | None = None

    def _default_base_env(self) -> dict[str, str]:
        env = {key: os.environ[key] for key in _BASE_ENV_KEYS if key in os.environ}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)])
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ----------------------------------------------------------------------------------------------
    # Lifecycle.

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the kubelet is running already")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._api = self.cluster.api_client(token=self.token)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reconciling, then terminate every process: SIGTERM, and SIGKILL to each process
        group after its grace period (at most ``teardown_grace`` seconds)."""
        if self._thread is not None:
            self._stopping = True
            self._poke()
            self._thread.join(timeout=60)
            if self._thread.is_alive():
                self.errors.append(RuntimeError("the kubelet thread did not stop"))
            self._thread = None
        with self._cond:
            now = time.monotonic()
            for pod in self._pods:
                if pod.proc is not None and not pod.terminating:
                    self._terminate(pod, now, grace=min(pod.grace_seconds, self.teardown_grace))
            for run in self._job_runs.values():
                self._terminate_job_pod(run.pod, now, grace=min(run.pod.grace_seconds, self.teardown_grace))
            every = [*self._pods, *(run.pod for run in self._job_runs.values())]
            while any(pod.proc is not None for pod in every):
                now = time.monotonic()
                for pod in every:
                    if pod.proc is None:
                        continue
                    if _has_exited(pod.proc):
                        _collect(pod.proc)
                        pod.proc = None
                    elif now >= pod.kill_at:
                        _kill_group(pod.proc)
                        pod.kill_at = math.inf
                time.sleep(0.02)
            self._pods.clear()
            self._job_runs.clear()
            self._cond.notify_all()
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None

    # ----------------------------------------------------------------------------------------------
    # For tests.

    def pods(self, namespace: str, deployment: str, *, terminating: bool = False) -> list[Pod]:
        """The deployment's pods, oldest first: those wanted (``Running``, or ``Waiting`` to restart),
        or with ``terminating=True`` those being shut down (scaled down, replaced or deleted)."""
        with self._cond:
            return [
                pod.snapshot()
                for pod in self._pods
                if pod.namespace == namespace and pod.deployment == deployment and pod.terminating == terminating
            ]

    def pod(self, namespace: str, name: str) -> Pod | None:
        """One pod by name, now (None if gone)."""
        with self._cond:
            found = next((p for p in self._pods if p.namespace == namespace and p.name == name), None)
            return found.snapshot() if found is not None else None

    def restarts(self, namespace: str, deployment: str) -> int:
        """Restarts of the deployment's processes so far, including those of pods since removed."""
        with self._cond:
            return self._restarts.get((namespace, deployment), 0)

    def job(self, namespace: str, name: str) -> JobRun | None:
        """The run of a Job (the newest, if Jobs of that name came and went), or None if it never ran."""
        with self._cond:
            runs = [r for r in self._job_runs.values() if (r.pod.namespace, r.pod.deployment) == (namespace, name)]
            return runs[-1].snapshot() if runs else None

    def kill(self, pod: Pod, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL: a crash) to the pod's process group, if that process still runs."""
        with self._cond:
            found = next((p for p in self._pods if p.namespace == pod.namespace and p.name == pod.name), None)
            proc = found.proc if found is not None else None
            if found is None or proc is None or proc.pid != pod.pid or _has_exited(proc):
                raise ProcessLookupError(f"pod {pod.namespace}/{pod.name} does not run pid {pod.pid} any more")
            self._event(found, f"Killing: signal {signal.Signals(sig).name} to pid {proc.pid} (by the test)")
            _kill_group(proc, sig)
        self._poke()

    def wait_for(self, predicate: Callable[[Kubelet], T], *, timeout: float = 30, message: str = "condition") -> T:
        """Wait until ``predicate(kubelet)`` is truthy (re-checked after every pass of the harness)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.errors:
                    raise RuntimeError(f"the kubelet failed: {self.errors!r}") from self.errors[0]
                result = predicate(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    recent = "\n".join(self.events[-20:])
                    raise TimeoutError(
                        f"timed out after {timeout}s waiting for {message}; last result: {result!r}; "
                        f"recent kubelet events:\n{recent}"
                    )
                self._cond.wait(min(remaining, self.probe_interval))

    def wait_for_pods(
        self, namespace: str, deployment: str, count: int, *, ready: bool = True, timeout: float = 30
    ) -> list[Pod]:
        """Wait until the deployment has exactly ``count`` wanted pods, none terminating, all running
        (and ready, unless ``ready=False``); returns them."""

        def settled(kubelet: Kubelet) -> tuple[list[Pod]] | None:
            pods = kubelet.pods(namespace, deployment)
            if len(pods) != count or kubelet.pods(namespace, deployment, terminating=True):
                return None
            if not all(p.phase == "Running" and (p.ready or not ready) for p in pods):
                return None
            return (pods,)  # truthy even with no pods

        found = self.wait_for(settled, timeout=timeout, message=f"{count} pods of {namespace}/{deployment}")
        assert found is not None
        return found[0]

    # ----------------------------------------------------------------------------------------------
    # The harness thread.

    def _poke(self) -> None:
        """Wake the harness thread now."""
        with self._cond:
            self._cond.notify_all()
        emulator = self.cluster.emulator
        with emulator.changed:
            self._poked = True
            emulator.changed.notify_all()

    def _run(self) -> None:
        emulator = self.cluster.emulator
        next_probe = 0.0
        while not self._stopping:
            with emulator.changed:
                seen = emulator.change_count
                self._poked = False
            now = time.monotonic()
            probe = now >= next_probe
            if probe:
                next_probe = now + self.probe_interval
            try:
                wake_at = self._pass(now, probe=probe)
            except Exception as e:
                log.exception("kubelet pass failed")
                self.errors.append(e)
                wake_at = now + self.probe_interval
            finally:
                with self._cond:
                    self._cond.notify_all()
            timeout = max(0.0, min(wake_at, next_probe) - time.monotonic())
            with emulator.changed:
                emulator.changed.wait_for(functools.partial(self._woken, emulator, seen), timeout=timeout)

    def _woken(self, emulator: ClusterEmulator, seen: int) -> bool:
        return emulator.change_count != seen or self._poked or self._stopping

    def _pass(self, now: float, *, probe: bool) -> float:
        """One reconciliation: processes, probes, status. Returns when the next one is due at the latest."""
        deployments: list[Body] = self.cluster.call(lambda em: em.list_objects(DEPLOYMENTS))
        jobs: list[Body] = self.cluster.call(lambda em: em.list_objects(JOBS))
        by_key = {self._key_of(d): d for d in deployments}
        jobs_by_uid = {job["metadata"]["uid"]: job for job in jobs}
        with self._cond:
            self._reap(now)
            self._reap_jobs(now)
            for pod in list(self._pods):
                if pod.key not in by_key and not pod.terminating:
                    self._terminate(pod, now)
            for key, deployment in by_key.items():
                self._reconcile(key, deployment, now)
            self._reconcile_jobs(jobs_by_uid, now)
            for pod in [*self._pods, *(run.pod for run in self._job_runs.values() if run.outcome is None)]:
                if pod.proc is None and not pod.terminating and now >= pod.next_start:
                    self._start(pod, now)
            targets = [
                (pod, pod.proc, pod.health_port, pod.readiness_path)
                for pod in self._pods
                if probe and pod.proc is not None and not pod.terminating
            ]
        results = [
            (pod, proc, path is None or (port is not None and _probe(port, path, self.probe_timeout)))
            for pod, proc, port, path in targets
        ]
        with self._cond:
            now = time.monotonic()
            for pod, proc, ready in results:
                if pod.proc is not proc or pod.terminating:
                    continue
                if ready and not pod.ready:
                    pod.ready_since = now
                    self._event(pod, f"Ready: pid {proc.pid if proc else None}")
                elif pod.ready and not ready:
                    pod.ready_since = None
                    self._event(pod, "NotReady: the readiness probe failed")
                pod.ready = ready
            statuses = {key: self._status(deployment, now) for key, deployment in by_key.items()}
            job_statuses = {uid: self._job_status(run) for uid, run in self._job_runs.items() if uid in jobs_by_uid}
            waiting = [run.pod for run in self._job_runs.values() if run.outcome is None]
            wake_at = min(
                [pod.next_start for pod in [*self._pods, *waiting] if pod.proc is None and not pod.terminating]
                + [pod.kill_at for pod in self._pods if pod.terminating]
                + [run.pod.kill_at for run in self._job_runs.values() if run.pod.terminating],
                default=math.inf,
            )
        for key, status in statuses.items():
            self._write_status(by_key[key], status)
        for uid, status in job_statuses.items():
            self._write_status(jobs_by_uid[uid], status)
        return wake_at

    @staticmethod
    def _key_of(deployment: Body) -> tuple[str, str, str]:
        meta = deployment["metadata"]
        return (meta["namespace"], meta["name"], meta["uid"])

    # ----------------------------------------------------------------------------------------------
    # Controllers: replicas and rollouts (under the lock).

    def _reconcile(self, key: tuple[str, str, str], deployment: Body, now: float) -> None:
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        current = _template_hash(template)
        pods = [p for p in self._pods if p.key == key and not p.terminating]
        new = [p for p in pods if p.template_hash == current]
        old = [p for p in pods if p.template_hash != current]
        strategy = spec.get("strategy") or {}

        if strategy.get("type") == "Recreate":
            for pod in old:
                self._terminate(pod, now)
            if old or any(p.key == key and p.terminating and p.template_hash != current for p in self._pods):
                return  # new pods once the old ones are gone
        if not old:
            for _ in range(desired - len(new)):
                self._create(key, template, current, now)
            for pod in self._doomed(new, len(new) - desired):
                self._terminate(pod, now)
            return

        rolling = strategy.get("rollingUpdate") or {}
        surge = _int_or_percent(rolling.get("maxSurge"), desired, round_up=True, default="25%")
        unavailable = _int_or_percent(rolling.get("maxUnavailable"), desired, round_up=False, default="25%")
        if surge == 0 and unavailable == 0:
            unavailable = 1  # as the API server's validation demands one of them positive
        for pod in self._doomed(new, len(new) - desired):
            self._terminate(pod, now)
            new.remove(pod)
        while len(new) < desired and len(new) + len(old) < desired + surge:
            new.append(self._create(key, template, current, now))
        # As the Deployment controller: keep desired - maxUnavailable pods ready, unready ones go first.
        min_ready = desired - unavailable
        budget = len(new) + len(old) - min_ready - sum(1 for p in new if not p.ready)
        for pod in [p for p in old if not p.ready][: max(budget, 0)]:
            self._terminate(pod, now)
            old.remove(pod)
            budget -= 1
        ready_total = sum(1 for p in new + old if p.ready)
        removable = min(budget, ready_total - min_ready)
        for pod in self._doomed(old, removable):
            self._terminate(pod, now)

    @staticmethod
    def _doomed(pods: list[_Pod], count: int) -> list[_Pod]:
        """The ``count`` pods a scale-down removes: unready ones first, then the newest."""
        if count <= 0:
            return []
        return sorted(pods, key=lambda p: (p.ready, -p.seq))[:count]

    def _create(self, key: tuple[str, str, str], template: Body, template_hash: str, now: float) -> _Pod:
        namespace, deployment, deployment_uid = key
        taken = {p.name for p in self._pods if p.namespace == namespace}
        while True:
            name = f"{deployment}-{''.join(random.choices(_NAME_SUFFIX_CHARS, k=5))}"
            if name not in taken:
                break
        pod = _Pod(
            namespace=namespace,
            deployment=deployment,
            deployment_uid=deployment_uid,
            name=name,
            uid=str(uuid.uuid4()),
            seq=next(self._seq),
            template=copy.deepcopy(template),
            template_hash=template_hash,
            log_path=self.log_dir / f"{namespace}.{name}.log",
            next_start=now,
        )
        self._pods.append(pod)
        self._event(pod, f"Scheduled: for deployment {deployment} (template {template_hash})")
        return pod

    def _terminate(self, pod: _Pod, now: float, *, grace: float | None = None) -> None:
        if pod.terminating:
            return
        pod.terminating = True
        pod.ready = False
        pod.ready_since = None
        if pod.proc is None:
            self._pods.remove(pod)
            self._event(pod, "Deleted: it was not running")
            return
        grace = pod.grace_seconds if grace is None else grace
        pod.kill_at = now + grace
        self._event(pod, f"Killing: SIGTERM to pid {pod.proc.pid}, SIGKILL after {grace:g} s")
        if grace <= 0:
            _kill_group(pod.proc)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pod.proc.pid, signal.SIGTERM)

    def _reap(self, now: float) -> None:
        """Notice exited processes: restart wanted pods (after a back-off), forget terminated ones."""
        for pod in list(self._pods):
            proc = pod.proc
            if proc is None:
                continue
            if not _has_exited(proc):
                if pod.terminating and now >= pod.kill_at:
                    self._event(pod, f"Killing: grace period over, SIGKILL to the group of pid {proc.pid}")
                    _kill_group(proc)
                    pod.kill_at = math.inf
                continue
            code = _collect(proc)
            pod.proc = None
            pod.ready = False
            pod.ready_since = None
            if pod.terminating:
                self._pods.remove(pod)
                self._event(pod, f"Deleted: pid {proc.pid} exited with {code}")
                continue
            ran = now - pod.started_at
            if ran >= self.backoff_reset:
                pod.backoff = 0.0
            delay = self._back_off(pod, now, f"exited with {code} after {ran:.1f} s")
            self._event(pod, f"BackOff: pid {proc.pid} {pod.reason}; restarting in {delay:g} s")

    # ----------------------------------------------------------------------------------------------
    # The Job controller (under the lock).

    def _reconcile_jobs(self, jobs: Mapping[str, Body], now: float) -> None:
        """Start a run for each new Job; terminate the process of a Job that is gone."""
        for uid, run in self._job_runs.items():
            if uid not in jobs:
                self._terminate_job_pod(run.pod, now)
        for uid, job in jobs.items():
            if uid in self._job_runs:
                continue
            conditions = (job.get("status") or {}).get("conditions") or []
            if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions):
                continue  # finished before this harness saw it
            meta, spec = job["metadata"], job.get("spec") or {}
            template = spec.get("template") or {}
            taken = {r.pod.name for r in self._job_runs.values()} | {p.name for p in self._pods}
            while True:
                name = f"{meta['name']}-{''.join(random.choices(_NAME_SUFFIX_CHARS, k=5))}"
                if name not in taken:
                    break
            pod = _Pod(
                namespace=meta["namespace"],
                deployment=meta["name"],
                deployment_uid=uid,
                name=name,
                uid=str(uuid.uuid4()),
                seq=next(self._seq),
                template=copy.deepcopy(template),
                template_hash=_template_hash(template),
                log_path=self.log_dir / f"{meta['namespace']}.{name}.log",
                next_start=now,
            )
            limit = spec.get("backoffLimit")
            self._job_runs[uid] = _JobRun(
                uid=uid,
                pod=pod,
                backoff_limit=DEFAULT_BACKOFF_LIMIT if limit is None else int(limit),
                start_time=_timestamp(),
            )
            self._event(pod, f"Scheduled: for job {meta['name']}")

    def _terminate_job_pod(self, pod: _Pod, now: float, *, grace: float | None = None) -> None:
        if pod.terminating or pod.proc is None:
            pod.terminating = True
            return
        pod.terminating = True
        grace = pod.grace_seconds if grace is None else grace
        pod.kill_at = now + grace
        self._event(pod, f"Killing: SIGTERM to pid {pod.proc.pid}, SIGKILL after {grace:g} s")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pod.proc.pid, signal.SIGTERM)

    def _reap_jobs(self, now: float) -> None:
        """Count finished attempts: success completes the Job, failures retry up to ``backoffLimit``."""
        for run in self._job_runs.values():
            pod, proc = run.pod, run.pod.proc
            if proc is None:
                continue
            if not _has_exited(proc):
                if pod.terminating and now >= pod.kill_at:
                    _kill_group(proc)
                    pod.kill_at = math.inf
                continue
            code = _collect(proc)
            pod.proc = None
            if pod.terminating:
                self._event(pod, f"Deleted: pid {proc.pid} exited with {code}")
                continue
            run.exit_codes.append(code)
            if code == 0:
                run.succeeded = 1
                run.outcome = "Complete"
                run.completion_time = _timestamp()
                self._event(pod, f"Completed: pid {proc.pid} exited with 0")
                continue
            run.failed += 1
            if run.failed > run.backoff_limit:
                run.outcome = "Failed"
                self._event(pod, f"BackoffLimitExceeded: pid {proc.pid} exited with {code}, {run.failed} failures")
                continue
            delay = self._back_off(pod, now, f"exited with {code}")
            self._event(pod, f"BackOff: pid {proc.pid} {pod.reason}; retrying in {delay:g} s")

    def _back_off(self, pod: _Pod, now: float, reason: str) -> float:
        """Schedule the pod's next start as the kubelet does (delay doubling up to a cap); the delay."""
        first, longest = self.restart_backoff
        delay: float = pod.backoff or first
        pod.backoff = min(delay * 2, longest)
        pod.next_start = now + delay
        pod.reason = reason
        return delay

    @staticmethod
    def _job_status(run: _JobRun) -> Body:
        """The Job's status as the Job controller would write it (zeros omitted)."""
        running = run.outcome is None and run.pod.proc is not None
        status: Body = {"startTime": run.start_time}
        counts = {
            "active": 1 if run.outcome is None else 0,
            "ready": 1 if running else 0,
            "succeeded": run.succeeded,
            "failed": run.failed,
        }
        status.update({name: count for name, count in counts.items() if count})
        if run.outcome is not None:
            when = run.completion_time or run.start_time
            condition: Body = {
                "type": run.outcome,
                "status": "True",
                "lastProbeTime": when,
                "lastTransitionTime": when,
            }
            if run.outcome == "Failed":
                condition |= {
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            else:
                status["completionTime"] = when
            status["conditions"] = [condition]
        return status

    # ----------------------------------------------------------------------------------------------
    # Starting a process (under the lock).

    def _start(self, pod: _Pod, now: float) -> None:
        try:
            argv, env, cwd = self._container(pod)
            port = self._free_port()
            env[self.port_env] = str(port)
            with pod.log_path.open("ab") as output:
                restart = pod.restarts + (1 if pod.starts else 0)
                marker = f"# kubelet: starting {pod.name} (restart {restart}): {' '.join(argv)}\n"
                output.write(marker.encode())
                output.flush()
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except (PodStartError, OSError) as e:
            first, longest = self.restart_backoff
            delay = pod.backoff or first
            pod.backoff = min(delay * 2, longest)
            pod.next_start = now + delay
            pod.reason = f"cannot start: {e}"
            self._event(pod, f"Failed: {pod.reason}; retrying in {delay:g} s")
            return
        if pod.starts:
            pod.restarts += 1
            counter = (pod.namespace, pod.deployment)
            self._restarts[counter] = self._restarts.get(counter, 0) + 1
        pod.proc = proc
        pod.health_port = port
        pod.started_at = now
        pod.starts += 1
        pod.reason = ""
        self._event(pod, f"Started: pid {proc.pid}, {self.port_env}={port}")

    def _container(self, pod: _Pod) -> tuple[list[str], dict[str, str], Path]:
        containers = pod.spec.get("containers") or []
        if not containers:
            raise PodStartError("the pod template has no containers")
        container = containers[0]
        env = self._env(pod, container)
        command = [str(part) for part in container.get("command") or []]
        if not command:
            raise PodStartError("the container has no command (an image's entrypoint cannot run here)")
        argv = [expand(part, env) for part in command + [str(a) for a in container.get("args") or []]]
        argv[0] = self._executable(argv[0], env)
        working_dir = container.get("workingDir")
        cwd = Path(working_dir) if working_dir and Path(working_dir).is_dir() else self.log_dir
        return argv, {**self.base_env, "HOSTNAME": pod.name, **env}, cwd

    def _executable(self, command: str, env: Mapping[str, str]) -> str:
        if "/" in command:
            return command
        local = self.bin_dir / command
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
        found = shutil.which(command, path=env.get("PATH", self.base_env.get("PATH")))
        if found is None:
            raise PodStartError(f'exec: "{command}": executable file not found in {self.bin_dir} or $PATH')
        return found

    def _env(self, pod: _Pod, container: Body) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            if "secretRef" in source:
                ref = source["secretRef"]
                data = self._secret(pod.namespace, ref["name"], optional=bool(ref.get("optional")))
                env.update({prefix + key: value for key, value in (data or {}).items()})
            elif not (source.get("configMapRef") or {}).get("optional"):
                raise PodStartError(f"envFrom: only secretRef is supported, got {sorted(source)}")
        for entry in container.get("env") or []:
            name = entry["name"]
            source = entry.get("valueFrom")
            if source is None:
                env[name] = expand(str(entry.get("value", "")), env)
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                optional = bool(ref.get("optional"))
                data = self._secret(pod.namespace, ref["name"], optional=optional)
                if data is not None and ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not optional:
                    raise PodStartError(f"couldn't find key {ref['key']} in Secret {pod.namespace}/{ref['name']}")
            elif "fieldRef" in source:
                env[name] = self._field(pod, source["fieldRef"]["fieldPath"])
            else:
                raise PodStartError(f"env {name}: only value, secretKeyRef and fieldRef are supported")
        return env

    def _secret(self, namespace: str, name: str, *, optional: bool) -> dict[str, str] | None:
        secret = self.cluster.call(lambda em: em.get_object(SECRETS, namespace, name))
        if secret is None:
            if optional:
                return None
            raise PodStartError(f'secret "{name}" not found in namespace {namespace}')
        data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        data.update({key: str(value) for key, value in (secret.get("stringData") or {}).items()})
        return data

    @staticmethod
    def _field(pod: _Pod, path: str) -> str:
        meta = pod.template.get("metadata") or {}
        simple = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "metadata.uid": pod.uid,
            "spec.nodeName": NODE_NAME,
            "spec.serviceAccountName": pod.spec.get("serviceAccountName") or "default",
            "status.podIP": POD_IP,
            "status.hostIP": POD_IP,
        }
        if path in simple:
            return simple[path]
        m = _FIELD_KEY.match(path)
        if m is not None:
            labels = {**(meta.get("labels") or {}), "pod-template-hash": pod.template_hash}
            source = labels if m[1] == "labels" else meta.get("annotations") or {}
            return str(source.get(m[2], ""))
        raise PodStartError(f"fieldRef {path!r} is not supported")

    def _free_port(self) -> int:
        pods = [*self._pods, *(run.pod for run in self._job_runs.values())]
        taken = {p.health_port for p in pods if p.proc is not None}
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("", 0))  # every interface: the workers listen on all of them
                port: int = s.getsockname()[1]
            if port not in taken:
                return port
        raise PodStartError("no free port")

    def _event(self, pod: _Pod, message: str) -> None:
        line = f"{pod.namespace}/{pod.name}: {message}"
        self.events.append(line)
        log.info("%s", line)

    # ----------------------------------------------------------------------------------------------
    # Status.

    def _status(self, deployment: Body, now: float) -> Body:
        """The Deployment's status as the Deployment controller would write it (under the lock)."""
        key = self._key_of(deployment)
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        min_ready_seconds = float(spec.get("minReadySeconds") or 0)
        current = _template_hash(spec.get("template") or {})
        pods = [p for p in self._pods if p.key == key and not p.terminating]
        ready = [p for p in pods if p.ready]
        available = [p for p in ready if p.ready_since is not None and now - p.ready_since >= min_ready_seconds]
        updated = [p for p in pods if p.template_hash == current]
        counts = {
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "unavailableReplicas": max(desired - len(available), 0),
        }
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            max_unavailable = desired
        else:
            rolling = strategy.get("rollingUpdate") or {}
            max_unavailable = _int_or_percent(rolling.get("maxUnavailable"), desired, round_up=False, default="25%")
        has_minimum = len(available) >= desired - max_unavailable
        complete = len(updated) == desired == len(pods) and len(available) >= desired
        replica_set = f"{key[1]}-{current}"
        old = {c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []}
        conditions = [
            self._condition(
                old,
                "Available",
                has_minimum,
                "MinimumReplicasAvailable" if has_minimum else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if has_minimum
                else "Deployment does not have minimum availability.",
            ),
            self._condition(
                old,
                "Progressing",
                True,
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{replica_set}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{replica_set}" is progressing.',
            ),
        ]
        status: Body = {"observedGeneration": deployment["metadata"].get("generation", 1)}
        status.update({name: count for name, count in counts.items() if count})  # omitempty
        status["conditions"] = conditions
        return status

    @staticmethod
    def _condition(old: Mapping[str, Body], kind: str, ok: bool, reason: str, message: str) -> Body:
        status = "True" if ok else "False"
        previous = old.get(kind) or {}
        now = _timestamp()
        same_status = previous.get("status") == status
        unchanged = same_status and previous.get("reason") == reason and previous.get("message") == message
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": previous.get("lastUpdateTime", now) if unchanged else now,
            "lastTransitionTime": previous.get("lastTransitionTime", now) if same_status else now,
            "reason": reason,
            "message": message,
        }

    def _write_status(self, deployment: Body, status: Body) -> None:
        """Write a Deployment's (or a Job's) status through its status subresource, if it changed."""
        stored = deployment.get("status") or {}
        if stored == status:
            return
        meta = deployment["metadata"]
        patch = {
            # Stale if the Deployment changed since it was read (409): the next pass writes again.
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {name: status.get(name) for name in stored.keys() | status.keys()},
        }
        assert self._api is not None
        write: Callable[..., Any]
        if deployment.get("kind") == "Job":
            write = kubernetes.client.BatchV1Api(self._api).patch_namespaced_job_status
        else:
            write = kubernetes.client.AppsV1Api(self._api).patch_namespaced_deployment_status
        try:
            write(meta["name"], meta["namespace"], patch, _content_type="application/merge-patch+json")
        except ApiException as e:
            # Gone, changed meanwhile, or a fault a test injected: the next pass writes again.
            if e.status not in (404, 409, 429) and not 500 <= (e.status or 0) < 600:
                raise
            log.info("status of %s/%s not written (%s), retrying", meta["namespace"], meta["name"], e.status)
