"""One pod's life on the process kubelet: a thread per pod, as the kubelet's pod workers.

The worker prepares the pod (image "pull", volumes, ServiceAccount credentials), starts the first
container as a local process (:mod:`.kubelet_config`), runs its probes, restarts it per
``restartPolicy`` with back-off, ends a ``Never``/``OnFailure`` pod ``Succeeded`` or ``Failed``, and
on deletion stops the process and finishes the deletion. Every change is written to the Pod's status
(:mod:`.kubelet_status`) and notified on the harness's condition, which is also what wakes the
worker: a watch event for its pod, its process exiting (a reaper thread blocked in ``waitid``) or the
harness stopping.

Probes (``startupProbe``, ``readinessProbe``, ``livenessProbe``; ``httpGet`` to 127.0.0.1 on the mapped port,
``tcpSocket``, ``exec``) follow ``initialDelaySeconds``, ``periodSeconds`` (10), ``timeoutSeconds``
(1), ``failureThreshold`` (3) and ``successThreshold`` (1). Readiness and liveness probes start once
the startup probe succeeded (``started``). Without a readiness probe a running container is ready.
``failureThreshold`` failed liveness (or startup) probes in a row kill the container (SIGTERM,
SIGKILL to its process group after the grace period), which then restarts per policy. A running
pod's ServiceAccount token is renewed after 80 % of its lifetime. Not done: init and sidecar
containers and containers after the first (not run; a ``ContainersIgnored`` warning event names
them), and in process mode resource limits and security contexts (container mode applies them:
:mod:`.kubelet_podman`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import logging
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes.client.exceptions import ApiException

from . import kubelet_config as config
from . import kubelet_podman as podman
from .kubelet_status import ContainerRecord, pod_status, running, terminated, timestamp, waiting

if TYPE_CHECKING:
    from .kubelet import Kubelet

Body = dict[str, Any]
log = logging.getLogger("kubelet")
DEFAULT_GRACE_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class RunningPod:
    """A snapshot of one pod on the harness, for tests."""

    namespace: str
    name: str
    uid: str
    #: The container's process while one runs, else None.
    pid: int | None
    #: Its health port on 127.0.0.1 (``FILTERJOB_HEALTH_PORT``; a new one at each start).
    health_port: int | None
    log_path: Path
    restarts: int
    ready: bool
    phase: str
    #: The container's state: ``running``, ``waiting`` or ``terminated``, and its reason.
    state: str
    reason: str
    #: Container mode: the running container's podman name, else "".
    container: str = ""

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclasses.dataclass
class _Probe:
    spec: Body
    due: float
    successes: int = 0
    failures: int = 0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    @property
    def failure_threshold(self) -> int:
        return int(self.spec.get("failureThreshold") or 3)

    @property
    def success_threshold(self) -> int:
        return int(self.spec.get("successThreshold") or 1)


class _Interrupted(Exception):
    """The pod is being deleted, is gone, or the harness stops."""


class PodWorker(threading.Thread):
    """Runs one pod; fed by the harness's watch through :meth:`update` and :meth:`deleted`."""

    def __init__(self, kubelet: Kubelet, pod: Body) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        first = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        self.container_spec: Body = first
        self.container = ContainerRecord(name=str(first.get("name", "")), image=str(first.get("image", "")))
        self.phase = str((pod.get("status") or {}).get("phase") or "Pending")
        self.start_time = (pod.get("status") or {}).get("startTime") or timestamp()
        self.log_path = kubelet.log_dir / f"{self.namespace}.{self.pod_name}.log"
        self.pod_dir = kubelet.log_dir / f"{self.namespace}.{self.pod_name}.{self.uid[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exited = False
        self.ports: config.Ports | None = None
        #: Container mode: the running container's name, and the mounts prepared for it.
        self.container_name = ""
        self.mounts: list[podman.Mount] = []
        self.gone = False
        self.stopping = False
        self.deleting_since: float | None = None
        self.stopping_since: float | None = None
        self.backoff = 0.0
        self.started_at = 0.0
        self.starts = 0
        self._conditions: list[Body] | None = (pod.get("status") or {}).get("conditions")
        self._reported: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------------------------------------
    # Fed by the harness (under its condition).

    def update(self, pod: Body) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and self.deleting_since is None:
            self.deleting_since = time.monotonic()

    def deleted(self) -> None:
        self.gone = True

    def stop(self) -> None:
        self.stopping = True
        self.stopping_since = time.monotonic()

    def snapshot(self) -> RunningPod:
        kind, detail = next(iter(self.container.state.items()), ("waiting", {"reason": ""}))
        return RunningPod(
            namespace=self.namespace,
            name=self.pod_name,
            uid=self.uid,
            pid=self.proc.pid if self.proc is not None and not self.exited else None,
            health_port=self.ports.health if self.ports is not None and self.proc is not None else None,
            log_path=self.log_path,
            restarts=self.container.restart_count,
            ready=self.container.ready and kind == "running",
            phase=self.phase,
            state=kind,
            reason=str(detail.get("reason", "")),
            container=self.container_name if self.proc is not None and not self.exited else "",
        )

    # ----------------------------------------------------------------------------------------------
    # The worker thread.

    @property
    def spec(self) -> Body:
        spec = self.pod.get("spec")
        return spec if isinstance(spec, dict) else {}

    def interrupted(self) -> bool:
        return self.gone or self.stopping or self.deleting_since is not None

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Change the record under the harness's lock, and tell every waiter."""
        with self.kubelet.changed:
            yield
            self.kubelet.changed.notify_all()

    def _wait(self, until: float, *, interruptible: bool = True) -> None:
        """Sleep until ``until`` or until something changes; raises once the pod is interrupted."""
        with self.kubelet.changed:
            if interruptible and self.interrupted():
                raise _Interrupted
            if not self.exited or self.proc is None:
                self.kubelet.changed.wait(max(0.0, min(until - time.monotonic(), 60)))
            if interruptible and self.interrupted():
                raise _Interrupted

    def run(self) -> None:
        try:
            with contextlib.suppress(_Interrupted):
                self._live()
            self._finish()
        except Exception as e:
            log.exception("pod worker %s/%s failed", self.namespace, self.pod_name)
            self.kubelet.errors.append(e)
        finally:
            if self.proc is not None:
                self._collect()
            shutil.rmtree(self.pod_dir, ignore_errors=True)
            self.kubelet.forget(self)

    def _live(self) -> None:
        if self.phase in ("Succeeded", "Failed"):
            self._park()  # finished before this harness saw it
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        ignored = [c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])[1:]]
        if ignored:
            self._report("ContainersIgnored", f"only the first container runs in process mode; not run: {ignored}")
        self._write_status()
        prepared = self._prepare()
        while True:
            code = self._run_container(prepared)
            if not self._after_exit(code):
                self._park()

    def _park(self) -> None:
        """A finished pod waits for its deletion."""
        while True:
            self._wait(math.inf)

    def _back_off(self, reason: str, message: str) -> None:
        first, longest = self.kubelet.restart_backoff
        delay = self.backoff or first
        self.backoff = min(delay * 2, longest)
        self._set_state(waiting(reason, message))
        until = time.monotonic() + delay
        while time.monotonic() < until:  # any change wakes the wait: only the pod's own end shortens it
            self._wait(until)

    def _set_state(self, state: Body) -> None:
        with self._changing():
            self.container.state = state
        self._write_status()

    def _report(self, reason: str, message: str, *, kind: str = "Warning") -> None:
        """An event, once per distinct message (as the kubelet's events are deduplicated)."""
        if (reason, message) not in self._reported:
            self._reported.add((reason, message))
            self.kubelet.event(self.pod, reason, message, kind=kind)

    def _prepare(self) -> dict[str, str]:
        """Pull the image, make the volumes and the ServiceAccount files; the env that points at them."""
        pulls = 0
        while True:
            refusal = self.kubelet.image_refusal(self.container.image)
            if refusal is not None:
                reason = "ErrImagePull" if pulls % 2 == 0 else "ImagePullBackOff"
                pulls += 1
                self._report("Failed", f'Failed to pull image "{self.container.image}": {refusal}')
                self._back_off(
                    reason, refusal if reason == "ErrImagePull" else f'Back-off pulling image "{self.container.image}"'
                )
                continue
            try:
                if self.kubelet.runtime == "podman":
                    return self._prepare_container()
                env = config.prepare_volumes(self.pod, self.container_spec, self.kubelet.lookup, self.pod_dir)
                env |= config.service_account(
                    self.pod,
                    self.kubelet.lookup,
                    self.pod_dir,
                    server=self.kubelet.server,
                    ca_file=self.kubelet.ca_file,
                )
            except config.MountRefused as e:
                self._report("FailedMount", str(e))
                self._set_state(waiting("ContainerCreating", str(e)))
                self._park()
            except config.MountPending as e:
                self._report("FailedMount", str(e))
                self._back_off("ContainerCreating", str(e))
            except config.ConfigError as e:
                self._report("Failed", f"Error: {e}")
                self._back_off("CreateContainerConfigError", str(e))
            except (ApiException, urllib3.exceptions.HTTPError) as e:  # the API server away: try again
                self._back_off("ContainerCreating", f"cannot reach the API server: {e}")
            else:
                self.backoff = 0.0
                return env

    def _prepare_container(self) -> dict[str, str]:
        """Container mode: the volumes as mounts (in ``self.mounts``); no env points at them."""
        kubelet = self.kubelet
        mounts = podman.prepare_mounts(self.pod, self.container_spec, kubelet.lookup, self.pod_dir)
        mounts += podman.service_account_mount(
            self.pod, self.container_spec, kubelet.lookup, self.pod_dir, server=kubelet.server, ca_file=kubelet.ca_file
        )
        self.mounts = mounts
        self.backoff = 0.0
        return {}

    def _start_container(self, ports: config.Ports) -> subprocess.Popen[bytes]:
        """Container mode: ``podman run`` of the pod's image (its exit code is the container's)."""
        kubelet = self.kubelet
        env = podman.service_env(self.pod_name, kubelet.server) | ports.env()
        allocatable = {key: str(value) for key, value in kubelet.resources.items()}
        env = config.container_env(self.pod, self.container_spec, kubelet.lookup, env, allocatable=allocatable)
        env[config.HEALTH_PORT_ENV] = str(ports.health)
        user = podman.image_user(self.container.image)
        if user is None:
            raise config.StartError(f"image {self.container.image} is not in this machine's podman storage")
        name = podman.container_name(self.pod, self.container_spec, self.starts)
        env_file = self.pod_dir / f"env.{self.starts}"
        run = podman.run_args(
            pod=self.pod,
            container=self.container_spec,
            image=self.container.image,
            name=name,
            node=kubelet.instance,
            env=env,
            mounts=self.mounts,
            env_file=env_file,
            image_user=user,
        )
        podman.write_env_file(env_file, run.env_file)
        podman.remove(name)  # left by a harness that was killed
        self.container_name = name
        # Not coverage's variables (tests.helpers.childenv): the container has its own filesystem and
        # Python, with neither coverage nor a place to put its data, so container pods go unmeasured.
        host_env = {key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR") if key in os.environ}
        with self.log_path.open("ab") as output:
            output.write(
                f"# kubelet: starting {self.pod_name} (start {self.starts + 1}): {' '.join(run.argv)}\n".encode()
            )
            output.flush()
            return subprocess.Popen(
                run.argv,
                env=host_env | run.passed_env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _start(self, prepared: dict[str, str]) -> None:
        """Start the container's process (env resolved anew, as at every container start)."""
        with self.kubelet.changed:
            taken = self.kubelet.taken_ports()
        ports = config.Ports.allocate(self.container_spec, taken)
        if self.kubelet.runtime == "podman":
            self._record_start(self._start_container(ports), ports)
            return
        env = config.base_env(self.pod_name, self.kubelet.server) | prepared | ports.env()
        allocatable = {key: str(value) for key, value in self.kubelet.resources.items()}
        env = config.container_env(self.pod, self.container_spec, self.kubelet.lookup, env, allocatable=allocatable)
        env[config.HEALTH_PORT_ENV] = str(ports.health)
        argv = config.command_line(self.container_spec, env)
        cwd = config.working_dir(self.container_spec, self.pod_dir)
        with self.log_path.open("ab") as output:
            output.write(f"# kubelet: starting {self.pod_name} (start {self.starts + 1}): {' '.join(argv)}\n".encode())
            output.flush()
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: all of it goes when the pod goes
            )
        self._record_start(proc, ports)

    def _record_start(self, proc: subprocess.Popen[bytes], ports: config.Ports) -> None:
        with self._changing():
            self.proc, self.exited, self.ports = proc, False, ports
            if self.starts:
                self.container.restart_count += 1
            self.starts += 1
            self.started_at = time.monotonic()
            self.container.pid = proc.pid
            self.container.runtime_id = f"podman://{self.container_name}" if self.container_name else ""
            self.container.state = running(timestamp())
            self.container.ready = not self.container_spec.get("readinessProbe")
            self.container.started = not self.container_spec.get("startupProbe")
            self.phase = "Running"
        threading.Thread(target=self._reap, args=(proc,), name=f"reaper {proc.pid}", daemon=True).start()
        self._write_status()
        self._report("Started", f"Started container {self.container.name} as pid {proc.pid}", kind="Normal")
        if self.container_name:
            self.kubelet.note(f"{self.namespace}/{self.pod_name}: container {self.container_name}")

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the process to exit without reaping it (its group stays killable), then tell."""
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self._changing():
            if self.proc is proc:
                self.exited = True

    def _rotate_token(self) -> float:
        """Write a fresh ServiceAccount token for the running pod; when the next one is due."""
        try:
            kubelet = self.kubelet
            if kubelet.runtime == "podman":
                podman.refresh_tokens(self.pod, self.container_spec, self.pod_dir, kubelet.lookup)
            config.service_account(
                self.pod, kubelet.lookup, self.pod_dir, server=kubelet.server, ca_file=kubelet.ca_file
            )
        except Exception as e:  # the API server may be away for a while: the old token still works
            log.warning("%s/%s: token not renewed (%s); retrying", self.namespace, self.pod_name, e)
            return time.monotonic() + 10
        return time.monotonic() + 0.8 * config.TOKEN_SECONDS

    def _run_container(self, prepared: dict[str, str]) -> int:
        """Start the container (retrying a configuration that fails) and supervise it; its exit code."""
        while True:
            try:
                self._start(prepared)
                break
            except config.ConfigError as e:
                self._report("Failed", f"Error: {e}")
                self._back_off("CreateContainerConfigError", str(e))
            except (ApiException, urllib3.exceptions.HTTPError) as e:
                self._back_off("CreateContainerConfigError", f"cannot reach the API server: {e}")
            except (config.StartError, OSError) as e:
                # As a runtime that cannot exec the command: the container ends, the policy decides.
                self._report("Failed", f"Error: {e}")
                when = timestamp()
                with self._changing():
                    if self.starts:
                        self.container.restart_count += 1
                    self.starts += 1
                    self.started_at = time.monotonic()
                    self.container.state = terminated(
                        128, started_at=when, finished_at=when, reason="StartError", message=str(e)
                    )
                    self.phase = "Running" if self.phase == "Pending" else self.phase
                return 128
        started = time.monotonic()
        probes = {
            kind: _Probe(spec, due=started + float(spec.get("initialDelaySeconds") or 0))
            for kind in ("startupProbe", "readinessProbe", "livenessProbe")
            if (spec := self.container_spec.get(kind))
        }
        rotates = "KUBELET_SERVICEACCOUNT_DIR" in prepared or self.kubelet.runtime == "podman"
        token_due = started + 0.8 * config.TOKEN_SECONDS if rotates else math.inf
        while not self.exited:
            now = time.monotonic()
            if now >= token_due:
                token_due = self._rotate_token()
            for kind, probe in probes.items():
                if now < probe.due or (kind == "startupProbe") == self.container.started:
                    continue
                ok = self._probe(probe.spec)
                probe.due = time.monotonic() + probe.period
                probe.successes, probe.failures = (probe.successes + 1, 0) if ok else (0, probe.failures + 1)
                if kind == "readinessProbe":
                    self._readiness(probe)
                elif kind == "startupProbe" and ok:
                    with self._changing():
                        self.container.started = True
                    self._write_status()
                elif probe.failures >= probe.failure_threshold:
                    what = "Liveness" if kind == "livenessProbe" else "Startup"
                    self._report("Unhealthy", f"{what} probe failed {probe.failures} times")
                    restart = f"Container {self.container.name} failed {what.lower()} probe, will be restarted"
                    self._report("Killing", restart, kind="Normal")
                    grace = probe.spec.get("terminationGracePeriodSeconds")
                    return self._terminate(self._grace() if grace is None else float(grace))
            due = [p.due for k, p in probes.items() if (k == "startupProbe") != self.container.started]
            self._wait(min([*due, token_due]))
        return self._collect()

    def _readiness(self, probe: _Probe) -> None:
        ready = self.container.ready
        if probe.successes >= probe.success_threshold:
            ready = True
        elif probe.failures >= probe.failure_threshold:
            ready = False
        if ready != self.container.ready:
            if not ready:
                self._report("Unhealthy", "Readiness probe failed")
            with self._changing():
                self.container.ready = ready
            self._write_status()

    def _probe(self, probe: Body) -> bool:
        timeout = float(probe.get("timeoutSeconds") or 1)
        assert self.ports is not None
        port = self.ports.of(probe, self.container_spec)
        if "httpGet" in probe and port is not None:
            action = probe["httpGet"]
            connection = (
                # As the kubelet: HTTPS probes do not verify the certificate.
                http.client.HTTPSConnection(
                    "127.0.0.1",
                    port,
                    timeout=timeout,
                    context=ssl._create_unverified_context(),  # noqa: S323
                )
                if str(action.get("scheme", "HTTP")).upper() == "HTTPS"
                else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            )
            try:
                headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
                connection.request("GET", action.get("path") or "/", headers=headers)
                return 200 <= connection.getresponse().status < 400
            except (OSError, http.client.HTTPException):
                return False
            finally:
                connection.close()
        if "tcpSocket" in probe and port is not None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
            except OSError:
                return False
            return True
        if "exec" in probe:
            try:
                command = [str(part) for part in probe["exec"].get("command") or ["false"]]
                if self.container_name:
                    command = podman.exec_argv(self.container_name, command)
                done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
            except (OSError, subprocess.TimeoutExpired):
                return False
            return done.returncode == 0
        return False

    def _grace(self) -> float:
        deleting = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if deleting is not None:
            return float(deleting)
        grace = self.spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE_SECONDS if grace is None else grace)

    def _terminate(self, grace: float) -> int:
        """SIGTERM to the process (as to a container's PID 1), SIGKILL to its group after ``grace``."""
        assert self.proc is not None
        proc, deadline = self.proc, time.monotonic() + grace
        if not self.exited:
            log.info("%s/%s: SIGTERM to pid %s, SIGKILL after %g s", self.namespace, self.pod_name, proc.pid, grace)
            self._signal(signal.SIGTERM)
        killed = False
        while not self.exited:
            if self.deleting_since is not None and not self.stopping:
                deadline = min(deadline, self.deleting_since + self._grace())  # a shorter grace on a second delete
            if self.stopping_since is not None:
                deadline = min(deadline, self.stopping_since + self.kubelet.teardown_grace)
            if not killed and time.monotonic() >= deadline:
                self.kubelet.note(f"{self.namespace}/{self.pod_name}: grace period over, SIGKILL to pid {proc.pid}")
                self._signal(signal.SIGKILL)
                killed = True
            self._wait(math.inf if killed else deadline, interruptible=False)
        return self._collect()

    def _signal(self, sig: int) -> None:
        """SIGTERM to the container's PID 1, SIGKILL to all of it (the process group; the container)."""
        assert self.proc is not None
        if self.container_name and podman.kill(self.container_name, sig):
            return
        # A process, or a podman that has not made its container yet: the process (group) itself.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sig == signal.SIGKILL or self.container_name:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)

    def _collect(self) -> int:
        """Kill what is left of the exited process's group, reap it; its exit code (for the record)."""
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        name, container_id = self.container_name, f"process://{proc.pid}"
        if name:
            podman.remove(name)  # already gone (--rm), unless podman itself was killed
            container_id = f"podman://{name}"
        with self._changing():
            self.container.state = terminated(
                code,
                started_at=str((self.container.state.get("running") or {}).get("startedAt", self.start_time)),
                finished_at=timestamp(),
                container_id=container_id,
            )
            self.container.ready = False
            self.container.pid = None
            self.proc = None
            self.exited = False
            self.container_name = ""
        return code

    def _after_exit(self, code: int) -> bool:
        """Record the exit; restart per ``restartPolicy`` (after back-off) -> True, or end the pod -> False."""
        policy = self.spec.get("restartPolicy") or "Always"
        self.kubelet.note(f"{self.namespace}/{self.pod_name}: pid exited with {code}")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            with self._changing():
                self.phase = "Succeeded" if code == 0 else "Failed"
            self._write_status()
            return False
        if time.monotonic() - self.started_at >= self.kubelet.backoff_reset:
            self.backoff = 0.0
        with self._changing():
            self.container.last_state = self.container.state
        first, _ = self.kubelet.restart_backoff
        delay = self.backoff or first
        message = f"back-off {delay:g}s restarting failed container={self.container.name} pod={self.pod_name}"
        self._report("BackOff", "Back-off restarting failed container")
        self.kubelet.note(f"{self.namespace}/{self.pod_name}: {message}")
        self._back_off("CrashLoopBackOff", message)
        return True

    def _finish(self) -> None:
        """Stop the process and, when the pod was deleted, finish the deletion as the kubelet does."""
        if self.proc is not None:
            if self.gone:
                self._terminate(0)
            elif self.stopping:
                self._terminate(min(self._grace(), self.kubelet.teardown_grace))
            else:
                self._report("Killing", f"Stopping container {self.container.name}", kind="Normal")
                self._terminate(max(0.0, self.deleting_since + self._grace() - time.monotonic()))  # type: ignore[operator]
        if self.gone or self.stopping:
            return
        if self.phase not in ("Succeeded", "Failed"):  # a deleted pod ends terminal, as on a kubelet
            with self._changing():
                code = (self.container.state.get("terminated") or {}).get("exitCode", 1)
                self.phase = "Succeeded" if code == 0 else "Failed"
        self._write_status()
        self.kubelet.delete_pod(self.pod)

    def _write_status(self) -> None:
        with self.kubelet.changed:
            status = pod_status(
                phase=self.phase,
                start_time=self.start_time,
                container=self.container,
                previous_conditions=self._conditions,
            )
            self._conditions = status["conditions"]
        if not (self.gone or self.stopping):
            self.kubelet.write_status(self.pod, status)
