"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

The binaries are the pinned builds of ``scripts/ensure-k8s-binaries.sh`` (tools/k8s/README.md). Flags
follow controller-runtime's envtest (``pkg/internal/testing/controlplane``) and kwok's binary runtime
(``pkg/kwokctl/components``), with what this project needs on top:

- every port is a free loopback port chosen at start (a port taken in between is detected in the
  component's log and the component started again on another);
- the API server advertises 127.0.0.1, which it refuses as an endpoint of the ``kubernetes``
  Service, hence ``--endpoint-reconciler-type=none``: that Service exists but has no endpoints
  (nothing here routes ClusterIPs anyway; pods reach the API server at ``server``);
- the ServiceAccount admission plugin stays on (envtest turns it off) and the controller-manager runs
  the serviceaccount and token controllers, so pods get their ``default`` account as in a cluster;
- ``--authorization-mode=Node,RBAC`` with the NodeRestriction admission plugin, as kubeadm sets
  it: a kubelet with the identity ``system:node:NAME`` (group ``system:nodes``, see
  ``write_kubeconfig``) may write its Node, its Lease and the status of pods bound to it, nothing
  else; the admin (``O=system:masters``) may do anything;
- an audit log of every request at level Metadata (JSON lines), read back by ``audit_events`` and
  ``api_usage`` (what a user actually called, for RBAC assertions);
- the aggregation-layer flags (front-proxy CA, ``--requestheader-*``, proxy client certificate), so
  an APIService (metrics adapters) can be registered later.

``ControlPlane.start(directory)`` returns once every component answers its health endpoint
(``/health``, ``/readyz``, ``/healthz``) and the ``default`` ServiceAccount exists; ``stop()`` stops
them in reverse order (SIGTERM, then SIGKILL after a grace period). In tests each component also
gets the parent-death signal, so none outlives a killed test session. ``detached=True`` starts them
to outlive this process, their pids in ``state.json``: tests/helpers/devcluster.py runs the same
control plane in the background for a person (``scripts/dev-cluster.sh``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes.client
import yaml

from tests.helpers.pki import CertificateAuthority, signing_key

ROOT = Path(__file__).resolve().parents[2]
ENSURE_BINARIES = ROOT / "scripts" / "ensure-k8s-binaries.sh"

#: Controllers of kube-controller-manager (names as its ``--help`` of v1.37 lists them). Beyond the
#: workload ones the tests need: the PV/PVC protection controllers, without which deleting a claim
#: hangs on its finalizer; taint-eviction, which evicts pods from a node node-lifecycle tainted;
#: pod-garbage-collector, which deletes pods left on a deleted node; root-ca-certificate-publisher,
#: which gives each namespace its ``kube-root-ca.crt`` ConfigMap; clusterrole-aggregation, which
#: fills the admin/edit/view ClusterRoles.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "horizontal-pod-autoscaler-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)

#: Every request, with who made it and on what, but no bodies; RequestReceived is left out so a
#: request is one event (a watch is two: ResponseStarted and ResponseComplete).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FRONT_PROXY_CLIENT = "front-proxy-client"
#: The HPA controller's sync period (``--horizontal-pod-autoscaler-sync-period``).
HPA_SYNC_SECONDS = 1
ADMIN_USER = "kubernetes-admin"
START_DEADLINE = 120.0  # seconds per component: generous, the two cores are shared
STOP_GRACE = 15.0


class ControlPlaneError(Exception):
    """A component could not be built, started or reached; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    """The folders of the built binaries, as ``scripts/ensure-k8s-binaries.sh`` prints them."""

    path: str

    @classmethod
    def ensure(cls, *, build: bool = True) -> Binaries:
        """Build what is missing (unless ``build`` is false) and return where the binaries are."""
        argv = [str(ENSURE_BINARIES)] if build else [str(ENSURE_BINARIES), "--no-build"]
        found = subprocess.run(argv, capture_output=True, text=True, check=False)
        if found.returncode != 0:
            raise ControlPlaneError(f"the control-plane binaries are not there: {found.stderr.strip()}")
        return cls(found.stdout.strip())

    def __getitem__(self, name: str) -> str:
        for folder in self.path.split(os.pathsep):
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise ControlPlaneError(f"{name} is not in {self.path}; run scripts/ensure-k8s-binaries.sh")


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the caller starts a server on it at once).

    Checked, then bound by another process, so another may take it in between: etcd's and the API
    server's ports must be known before they start (the kubeconfigs, etcd's peer URL and the API
    server's etcd URL name them) and port 0 makes etcd log a port it does not serve on and turns
    the API server's secure port off, so :meth:`ControlPlane._launch` starts a component again on
    another port when its own was taken ("address already in use").
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def die_with_parent() -> None:
    """In the child before exec: be killed when the process that started us dies (Linux prctl)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` is still a running ``binary`` (not a zombie, not a reused pid)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return argv0 == binary and state != "Z"


def stop_process_group(pid: int, binary: str, *, grace: float = STOP_GRACE, wait: Callable[[float], bool]) -> None:
    """SIGTERM the process group of ``pid``, wait up to ``grace`` for it, then SIGKILL the group."""
    if not alive(pid, binary):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not wait(grace):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait(5.0)
    # The leader is gone; whatever it forked into its group goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_gone(pid: int, binary: str, timeout: float) -> bool:
    """Wait for a process that is not our child (a detached dev cluster's) to be gone."""
    deadline = time.monotonic() + timeout
    while alive(pid, binary):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def get(url_port: int, path: str, context: ssl.SSLContext | None) -> tuple[int, str]:
    """GET ``path`` from 127.0.0.1:PORT (HTTPS with ``context``, else HTTP); (0, why) if it does not answer."""
    connection = (
        http.client.HTTPSConnection("127.0.0.1", url_port, context=context, timeout=2)
        if context
        else http.client.HTTPConnection("127.0.0.1", url_port, timeout=2)
    )
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    except (OSError, ssl.SSLError, http.client.HTTPException) as error:
        return 0, f"(no answer: {error})"
    finally:
        connection.close()


@dataclasses.dataclass
class Component:
    """One running binary: its command line, log file, port and process."""

    name: str
    binary: str
    port: int
    log: Path
    pid: int
    process: subprocess.Popen[bytes] | None  # None when found again from a dev cluster's state file

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return alive(self.pid, self.binary)

    def tail(self, size: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def stop(self, grace: float = STOP_GRACE) -> None:
        process = self.process

        def wait(timeout: float) -> bool:
            if process is None:
                return wait_gone(self.pid, self.binary, timeout)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True

        stop_process_group(self.pid, self.binary, grace=grace, wait=wait)
        if process is not None and process.poll() is None:
            process.wait()


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to start a component on a given port and how to tell it is ready."""

    name: str
    argv: Callable[[int], list[str]]
    ready: Callable[[int], bool]


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler under ``directory``.

    Files: ``pki/`` (CAs, certificates, the service-account key), ``etcd/`` (data), ``logs/NAME.log``,
    ``audit.log``, ``admin.kubeconfig`` (user ``kubernetes-admin``, group ``system:masters``) and a
    kubeconfig per controller. A directory used before keeps its PKI and etcd data (the dev cluster
    restarts with its objects); the tests always start from an empty one.
    """

    def __init__(self, directory: Path, *, binaries: Binaries, detached: bool = False) -> None:
        self.directory = directory.resolve()
        self.binaries = binaries
        self.detached = detached
        self.pki = self.directory / "pki"
        self.logs = self.directory / "logs"
        self.audit_log = self.directory / "audit.log"
        self.kubeconfig = self.directory / "admin.kubeconfig"
        self.state_file = self.directory / "state.json"
        self.components: dict[str, Component] = {}
        self._started: dict[str, float] = {}  # when each component was (last) spawned
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority.load_or_create(self.pki, "ca", common_name="filterjob-test-ca")
        self.front_proxy_ca = CertificateAuthority.load_or_create(
            self.pki, "front-proxy-ca", common_name="filterjob-test-front-proxy-ca"
        )
        self.ca_file = self.ca.cert_file
        self.admin = self.ca.issue("admin", common_name=ADMIN_USER, organizations=["system:masters"], client=True)

    # -- starting and stopping ---------------------------------------------------------------

    @classmethod
    def start(cls, directory: Path, *, binaries: Binaries, detached: bool = False) -> ControlPlane:
        """Start every component and wait until each is ready; on failure stop what started and raise."""
        plane = cls(directory, binaries=binaries, detached=detached)
        try:
            plane._start()
        except BaseException:
            plane.stop()
            raise
        return plane

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.components['kube-apiserver'].port}"

    def _start(self) -> None:
        self._launch([self._etcd()])
        self._launch([self._apiserver()])
        self.write_kubeconfig(self.kubeconfig)
        for name, user in (
            ("kube-controller-manager", "system:kube-controller-manager"),
            ("kube-scheduler", "system:kube-scheduler"),
        ):
            self.write_kubeconfig(self.directory / f"{name}.kubeconfig", user=user)
        self._launch([self._controller_manager(), self._scheduler()])
        self._await_default_service_account()

    def _launch(self, specs: list[Spec]) -> None:
        """Start the components of ``specs`` together, then wait for each; a taken port gets another try."""
        pending = {spec.name: spec for spec in specs}
        attempts = dict.fromkeys(pending, 0)
        for spec in specs:
            self._spawn(spec)
        while pending:
            for name, spec in list(pending.items()):
                component = self.components[name]
                # Exited first: whoever else holds a port it could not bind may never answer a probe.
                if component.running() and spec.ready(component.port):
                    del pending[name]
                    continue
                if not component.running():
                    code = component.process.returncode if component.process else "?"
                    attempts[name] += 1
                    if "address already in use" in component.tail() and attempts[name] < 3:
                        self._spawn(spec)
                        continue
                    raise ControlPlaneError(f"{name} exited with {code} before it was ready:\n{component.tail()}")
                if time.monotonic() - self._started[name] > START_DEADLINE:
                    raise ControlPlaneError(
                        f"{name} was not ready within {START_DEADLINE:.0f} s (its health endpoint did not answer"
                        f" 200 ok):\n{component.tail()}"
                    )
            if pending:
                time.sleep(0.2)

    def _spawn(self, spec: Spec) -> None:
        port = free_port()
        argv = spec.argv(port)
        log = self.logs / f"{spec.name}.log"
        # A fresh log per start: a retry must not find the previous attempt's "address already in use".
        with log.open("wb") as out:  # the child keeps its own descriptor
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=None if self.detached else die_with_parent,  # noqa: PLW1509 - prctl only
            )
        self.components[spec.name] = Component(spec.name, argv[0], port, log, process.pid, process)
        self._started[spec.name] = time.monotonic()
        self.save_state()

    def stop(self) -> None:
        """Stop every component, last started first (an API server without etcd is slow to stop)."""
        for component in reversed(list(self.components.values())):
            component.stop()

    def save_state(self) -> None:
        """Record pids and ports, so ``down`` (another process) finds them; written after each start."""
        state = {
            "server": self.server if "kube-apiserver" in self.components else None,
            "kubeconfig": str(self.kubeconfig),
            "components": {
                name: {"binary": c.binary, "pid": c.pid, "port": c.port, "log": str(c.log)}
                for name, c in self.components.items()
            },
        }
        scratch = self.state_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(state, indent=2))
        scratch.replace(self.state_file)

    @classmethod
    def attach(cls, directory: Path) -> ControlPlane | None:
        """The control plane a state file under ``directory`` describes (None without one)."""
        try:
            state = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return None
        plane = cls(directory, binaries=Binaries(""), detached=True)
        for name, entry in state["components"].items():
            plane.components[name] = Component(
                name, entry["binary"], entry["port"], Path(entry["log"]), entry["pid"], None
            )
        return plane

    # -- the components ----------------------------------------------------------------------

    def _etcd(self) -> Spec:
        def argv(port: int) -> list[str]:
            peer = free_port()
            return [
                self.binaries["etcd"],
                "--name=filterjob-test",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{port}",
                f"--advertise-client-urls=http://127.0.0.1:{port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=filterjob-test=http://127.0.0.1:{peer}",
                # Test data is throwaway and an fsync per write would make every test wait on a shared
                # disk; a person's cluster (detached) keeps its data through a power loss instead.
                f"--unsafe-no-fsync={str(not self.detached).lower()}",
            ]

        def ready(port: int) -> bool:
            status, body = get(port, "/health", None)
            return status == 200 and '"health":"true"' in body.replace(" ", "")

        return Spec("etcd", argv, ready)

    def _apiserver(self) -> Spec:
        serving = self.ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server=True,
            ips=["127.0.0.1", "10.96.0.1"],
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        )
        proxy = self.front_proxy_ca.issue("front-proxy-client", common_name=FRONT_PROXY_CLIENT, client=True)
        service_accounts = signing_key(self.pki, "sa")
        policy = self.directory / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        etcd = self.components["etcd"].port

        def argv(port: int) -> list[str]:
            return [
                self.binaries["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Loopback is refused as the kubernetes Service's endpoint; nothing routes it here.
                "--endpoint-reconciler-type=none",
                f"--secure-port={port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca_file}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",  # ServiceAccount stays on (a default one)
                f"--service-account-key-file={service_accounts.cert}",
                f"--service-account-signing-key-file={service_accounts.key}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--allow-privileged=true",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",  # the event is on disk before the request returns
                f"--requestheader-client-ca-file={self.front_proxy_ca.cert_file}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={proxy.cert}",
                f"--proxy-client-key-file={proxy.key}",
            ]

        def ready(port: int) -> bool:
            return get(port, "/readyz", self.ssl_context()) == (200, "ok")

        return Spec("kube-apiserver", argv, ready)

    def _controller_common(self, name: str, port: int) -> list[str]:
        serving = self.ca.issue(f"{name}-serving", common_name=name, server=True, ips=["127.0.0.1"])
        kubeconfig = self.directory / f"{name}.kubeconfig"
        return [
            self.binaries[name],
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--leader-elect=false",  # one of each; an election would only delay the start
        ]

    def _healthz(self, port: int) -> bool:
        return get(port, "/healthz", self.ssl_context(client=False)) == (200, "ok")

    def _controller_manager(self) -> Spec:
        service_accounts = signing_key(self.pki, "sa")

        def argv(port: int) -> list[str]:
            return [
                *self._controller_common("kube-controller-manager", port),
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",  # each controller as its own account: real RBAC
                f"--service-account-private-key-file={service_accounts.key}",
                f"--root-ca-file={self.ca_file}",
                f"--cluster-signing-cert-file={self.ca_file}",
                f"--cluster-signing-key-file={self.pki / 'ca.key'}",
                "--service-cluster-ip-range=10.96.0.0/24",
                # The HPA acts within a second of a metric's change (15 s by default), so a test of
                # autoscaling waits for it, not for its timer.
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_SECONDS}s",
            ]

        return Spec("kube-controller-manager", argv, self._healthz)

    def _scheduler(self) -> Spec:
        return Spec("kube-scheduler", lambda port: self._controller_common("kube-scheduler", port), self._healthz)

    def _await_default_service_account(self) -> None:
        """Until the serviceaccount controller made ``default/default``, a Pod there would be refused."""
        deadline = time.monotonic() + START_DEADLINE
        with self.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            while True:
                try:
                    core.read_namespaced_service_account("default", "default")
                    return
                except kubernetes.client.ApiException as error:
                    if error.status != 404:
                        raise
                if time.monotonic() > deadline:
                    raise ControlPlaneError(
                        "kube-controller-manager made no default ServiceAccount in time:\n"
                        + self.components["kube-controller-manager"].tail()
                    )
                time.sleep(0.2)

    # -- clients -----------------------------------------------------------------------------

    def ssl_context(self, *, client: bool = True) -> ssl.SSLContext:
        """Trusts exactly this control plane's CA (checked against 127.0.0.1); with the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client:
            context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, user: str = ADMIN_USER, groups: tuple[str, ...] | None = None
    ) -> Path:
        """A kubeconfig for this API server: with ``token`` a bearer token, else a client certificate.

        Without a token the certificate is issued for ``user`` in ``groups`` (the admin's default to
        ``system:masters``). A kubelet's own identity is ``user="system:node:NAME",
        groups=("system:nodes",)``, which the Node authorizer limits to what that node's kubelet may do.
        """
        entry: dict[str, str]
        if token is not None:
            entry = {"token": token}
        else:
            if groups is None:
                groups = ("system:masters",) if user == ADMIN_USER else ()
            name = "admin" if user == ADMIN_USER else "user-" + "".join(c if c.isalnum() else "-" for c in user)
            issued = self.ca.issue(name, common_name=user, organizations=groups, client=True, reuse=user == ADMIN_USER)
            entry = {"client-certificate": str(issued.cert), "client-key": str(issued.key)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "filterjob-test",
                            "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                        }
                    ],
                    "users": [{"name": user, "user": entry}],
                    "contexts": [{"name": "filterjob-test", "context": {"cluster": "filterjob-test", "user": user}}],
                    "current-context": "filterjob-test",
                }
            )
        )
        path.chmod(0o600)
        return path

    def node_kubeconfig(self, path: Path, node: str) -> Path:
        """A kubeconfig with the identity of ``node``'s kubelet (``system:node:NODE`` in ``system:nodes``).

        The Node authorizer and NodeRestriction let it create and update its own Node and Lease,
        read and write the status of pods bound to it, read the Secrets, ConfigMaps and claims
        those pods use and ask for their ServiceAccounts' tokens (bound to the pod); nothing more.
        """
        return self.write_kubeconfig(path, user=f"system:node:{node}", groups=("system:nodes",))

    def api_client(self, *, token: str | None = None) -> kubernetes.client.ApiClient:
        """A ``kubernetes`` client for this API server, as the admin or with a bearer ``token``."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        if token is None:
            configuration.cert_file = str(self.admin.cert)
            configuration.key_file = str(self.admin.key)
        else:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return kubernetes.client.ApiClient(configuration)

    def token_for(
        self, namespace: str, service_account: str, *, seconds: int = 3600, audiences: list[str] | None = None
    ) -> str:
        """A token for the ServiceAccount from the TokenRequest API (at least 600 s, the API's minimum)."""
        request = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=seconds)
        )
        with self.api_client() as client:
            answer = kubernetes.client.CoreV1Api(client).create_namespaced_service_account_token(
                service_account, namespace, request
            )
        if answer.status is None or not answer.status.token:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{service_account} returned no token")
        return answer.status.token

    # -- the audit log -----------------------------------------------------------------------

    def audit_offset(self) -> int:
        """Where the audit log ends now: pass it as ``since`` to see only what a test did after it."""
        try:
            return self.audit_log.stat().st_size
        except FileNotFoundError:
            return 0

    def audit_events(self, *, since: int = 0) -> list[dict[str, Any]]:
        """The audit events written after offset ``since`` (one JSON object a line; one being written
        is left for the next read)."""
        try:
            with self.audit_log.open("rb") as log:
                log.seek(since)
                text = log.read().decode()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def await_audit(
        self, match: Callable[[dict[str, Any]], bool], *, since: int = 0, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first audit event after ``since`` that ``match`` accepts, waiting for the log to get it (it
        is written as the response goes out, so a client can see its answer just before)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((event for event in self.audit_events(since=since) if match(event)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit event in {self.audit_log} matched within {timeout:.0f} s")
            time.sleep(0.1)

    def api_usage(self, user: str, *, since: int = 0, decision: str | None = None) -> set[tuple[str, str, str, str]]:
        """What ``user`` called, as (verb, apiGroup, resource, subresource); "" for the core group or none.

        Requests to non-resource URLs (``/version``, discovery) are left out; ``decision`` ("allow" or
        "forbid") keeps only requests the authorizer decided so; ``since`` as in ``audit_events``.
        """
        usage = set()
        for event in self.audit_events(since=since):
            target = event.get("objectRef")
            if event.get("user", {}).get("username") != user or not target:
                continue
            if decision and event.get("annotations", {}).get("authorization.k8s.io/decision") != decision:
                continue
            usage.add((event["verb"], target.get("apiGroup", ""), target["resource"], target.get("subresource", "")))
        return usage
