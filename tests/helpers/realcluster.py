"""Fixtures for tests against the real control plane (``control_plane``, tests/helpers/controlplane.py).

tests/integration/k8s/conftest.py imports the fixtures, so every test module here can ask for them by name::

    def test_something(kube, broker_secret, cluster_kubelet, filterjob_operator):
        kube.create_job(body)                              # in kube.namespace, fresh for the test
        with filterjob_operator.run():                     # kopf in a KopfRunner thread, as the operator's account
            kube.wait("deployments", "thumbs-workers", lambda d: d["spec"]["replicas"] == 2)
        process = filterjob_operator.spawn(log=tmp_path / "operator.log")   # or as a process, to SIGKILL
        used = filterjob_operator.api_usage()              # what it called since the fixture started, audited
        assert used <= filterjob_operator.release.granted(kube.api)

- ``operator_release`` (session): ``helm install`` of ``charts/filterjob`` as release ``filterjob`` into
  ``filterjob-system``: the CRD, the operator's ServiceAccount and its RBAC come from the chart. The
  chart's operator Deployment stays Pending (a nodeSelector no node has, a chart value), so it never
  competes with the operator a test runs; :func:`install_release` installs other releases (e.g.
  ``watchNamespaces``) the same way.
- ``filterjob_operator`` (function): a TokenRequest token of the release's ServiceAccount in a
  kubeconfig (made the default for kopf and the ``kubernetes`` client), and two ways to run the operator
  with it, so the real RBAC authorizer decides each of its calls (a missing rule is a 403):
  ``run()`` (kopf's ``KopfRunner`` in a thread of this process: monkeypatches and env reach it) and
  ``spawn()`` (``filterjob operator`` as a subprocess with ``KUBECONFIG``: for SIGKILL).
- ``kube`` (function): :class:`Kube`, the test's namespace as the admin (``cluster_api``): objects as
  plain dicts, waits that follow a watch (``wait``, ``wait_all``, ``gone``, ``wait_for_event``), FilterJob
  create/patch/delete.
- ``cluster_namespace`` (function): a fresh namespace, deleted after the test; FilterJobs left in it lose
  their finalizer first (no operator may be running to remove it), so the namespace controller
  finalizes it without waiting for one. ``broker_secret`` adds the broker Secret ``rabbitmq``
  (``url`` = the test broker on 127.0.0.1:5672; pods share loopback, so worker pods reach it too).
- ``cluster_kubelet`` (function): the kubelet harness (tests/helpers/kubelet.py) as node ``NODE``, with
  the admin's client so that it deletes its Node when it stops (a node identity may not): without
  this fixture no node exists and pods stay Pending ("nothing consumes"). Pod logs go to
  ``<tmp_path>/pods/<namespace>.<pod>.log``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import os
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
import pytest
import yaml
from kopf.testing import KopfRunner

from tests.helpers.brokerclean import delete_namespace_topology
from tests.helpers.brokers import BROKER_URL
from tests.helpers.controlplane import ControlPlane, free_port
from tests.helpers.kubelet import Kubelet
from tests.helpers.watching import named, wait_for_list

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
CHART = ROOT / "charts" / "filterjob"
#: The operator's handlers, imported by kopf as a module (by name, as coverage measures it).
HANDLERS = "filterjob_operator.control.handlers"
GROUP, VERSION, PLURAL = "filterjob.dev", "v1alpha1", "filterjobs"
RELEASE, RELEASE_NAMESPACE = "filterjob", "filterjob-system"
NODE = "filterjob-node"
#: A node label no node has: the chart's own operator Deployment stays Pending.
NEVER_SCHEDULED = {"filterjob.dev/never-scheduled": "true"}
#: An RBAC permission as the audit log names a request: (verb, apiGroup, resource, subresource).
Permission = tuple[str, str, str, str]


@dataclasses.dataclass(frozen=True)
class ClusterApi:
    """The ``kubernetes`` client as the cluster's admin, with the API groups the tests use."""

    client: kubernetes.client.ApiClient
    custom: kubernetes.client.CustomObjectsApi
    apps: kubernetes.client.AppsV1Api
    core: kubernetes.client.CoreV1Api
    batch: kubernetes.client.BatchV1Api
    autoscaling: kubernetes.client.AutoscalingV2Api
    rbac: kubernetes.client.RbacAuthorizationV1Api
    extensions: kubernetes.client.ApiextensionsV1Api

    @classmethod
    def bind(cls, client: kubernetes.client.ApiClient) -> ClusterApi:
        return cls(
            client=client,
            custom=kubernetes.client.CustomObjectsApi(client),
            apps=kubernetes.client.AppsV1Api(client),
            core=kubernetes.client.CoreV1Api(client),
            batch=kubernetes.client.BatchV1Api(client),
            autoscaling=kubernetes.client.AutoscalingV2Api(client),
            rbac=kubernetes.client.RbacAuthorizationV1Api(client),
            extensions=kubernetes.client.ApiextensionsV1Api(client),
        )


#: Kinds ``Kube`` waits for and reads, by their list call's name and whether they are custom objects.
KINDS = {
    "filterjobs": "custom",
    "deployments": "apps",
    "replicasets": "apps",
    "jobs": "batch",
    "horizontalpodautoscalers": "autoscaling",
    "pods": "core",
    "events": "core",
    "secrets": "core",
    "persistentvolumeclaims": "core",
}
LIST_CALLS = {
    "deployments": "list_namespaced_deployment",
    "replicasets": "list_namespaced_replica_set",
    "jobs": "list_namespaced_job",
    "horizontalpodautoscalers": "list_namespaced_horizontal_pod_autoscaler",
    "pods": "list_namespaced_pod",
    "events": "list_namespaced_event",
    "secrets": "list_namespaced_secret",
    "persistentvolumeclaims": "list_namespaced_persistent_volume_claim",
}


@dataclasses.dataclass(frozen=True)
class Kube:
    """One namespace of the real cluster, as the admin: read objects as plain dicts, wait on watches.

    ``kind`` is a resource's plural (a key of ``KINDS``). Waits follow a watch (never a timer) until
    the predicate holds; a predicate that raises ``KeyError`` (no ``status`` yet) does not hold yet.
    """

    api: ClusterApi
    namespace: str

    def _call(self, kind: str) -> tuple[Callable[..., Any], dict[str, Any]]:
        if KINDS[kind] == "custom":
            args = {"group": GROUP, "version": VERSION, "plural": PLURAL}
            return self.api.custom.list_namespaced_custom_object, {**args, "namespace": self.namespace}
        return getattr(getattr(self.api, KINDS[kind]), LIST_CALLS[kind]), {"namespace": self.namespace}

    def plain(self, item: Any) -> dict[str, Any]:
        found: dict[str, Any] = item if isinstance(item, dict) else self.api.client.sanitize_for_serialization(item)
        return found

    def list(self, kind: str, **selection: Any) -> list[dict[str, Any]]:
        call, args = self._call(kind)
        listing = call(**args, **selection)
        items = listing["items"] if isinstance(listing, dict) else listing.items
        return [self.plain(item) for item in items]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = self.list(kind, **named(name))
        return found[0] if found else None

    def wait(
        self, kind: str, name: str, predicate: Callable[[dict[str, Any]], bool] = bool, *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """The object ``name`` once it exists and ``predicate`` holds for it."""
        seen: list[dict[str, Any]] = []

        def holds(items: list[Any]) -> bool:
            seen[:] = [self.plain(item) for item in items]
            try:
                return bool(seen) and predicate(seen[0])
            except KeyError:
                return False

        call, args = self._call(kind)
        wait_for_list(call, holds, timeout=timeout, what=f"{kind} {self.namespace}/{name}", **args, **named(name))
        return seen[0]

    def wait_all(
        self, kind: str, condition: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 60.0, **selection: Any
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` (``selection``: label/field selectors) once ``condition`` holds for them."""
        seen: list[dict[str, Any]] = []

        def holds(items: list[Any]) -> bool:
            seen[:] = [self.plain(item) for item in items]
            try:
                return condition(seen)
            except KeyError:
                return False

        call, args = self._call(kind)
        wait_for_list(call, holds, timeout=timeout, what=f"{kind} in {self.namespace}", **args, **selection)
        return seen

    def gone(self, kind: str, name: str, *, timeout: float = 60.0) -> None:
        """Wait until ``name`` no longer exists."""
        call, args = self._call(kind)
        wait_for_list(call, lambda items: not items, timeout=timeout, what=f"{kind} {name} gone", **args, **named(name))

    def events(self, reason: str, *, of: str | None = None) -> list[dict[str, Any]]:
        """The namespace's events of ``reason``; with ``of``, only those about objects of that kind (the
        kubelet's pod events share reasons such as ``Failed`` with the operator's)."""
        found = [e for e in self.list("events") if e.get("reason") == reason]
        return [e for e in found if of is None or e.get("involvedObject", {}).get("kind") == of]

    def wait_for_event(self, reason: str, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        return self.wait_all("events", lambda events: any(e.get("reason") == reason for e in events), timeout=timeout)

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        stored: dict[str, Any] = self.api.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return stored

    def patch_job(self, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a FilterJob, as ``kubectl patch fj NAME --type merge`` does."""
        self.api.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def delete_job(self, name: str) -> None:
        self.api.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)


def tool(
    control_plane: ControlPlane, name: str, *args: str | Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``helm``/``kubectl`` (from scripts/ensure-helm.sh) against ``control_plane`` as its admin.

    kubectl gets a discovery cache of its own each time: the shared one in ``~/.kube/cache`` holds
    what helm discovered before the chart's CRD existed, and ``kubectl explain fj`` trusted it.
    """
    with tempfile.TemporaryDirectory(prefix="kubectl-cache-") as cache:
        fresh = ("--cache-dir", cache) if name == "kubectl" else ()
        return subprocess.run(
            [BIN / name, *map(str, args), *fresh, "--kubeconfig", str(control_plane.kubeconfig)],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )


def rule_permissions(rules: Sequence[Any]) -> set[Permission]:
    """What RBAC rules grant, as (verb, apiGroup, resource, subresource)."""
    granted: set[Permission] = set()
    for rule in rules:
        for group, resource, verb in itertools.product(rule.api_groups or [], rule.resources or [], rule.verbs):
            name, _, subresource = resource.partition("/")
            granted.add((verb, group, name, subresource))
    return granted


@dataclasses.dataclass(frozen=True)
class Release:
    """An installed release of the chart: its namespace and the operator's ServiceAccount."""

    name: str
    namespace: str
    service_account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def granted(self, api: ClusterApi) -> set[Permission]:
        """What the RBAC bound to its ServiceAccount grants, read from the API server."""

        def bound(binding: Any) -> bool:
            return any(
                (s.kind, s.name, s.namespace) == ("ServiceAccount", self.service_account, self.namespace)
                for s in binding.subjects or []
            )

        granted: set[Permission] = set()
        for binding in api.rbac.list_cluster_role_binding().items:
            if bound(binding):
                granted |= rule_permissions(api.rbac.read_cluster_role(binding.role_ref.name).rules)
        for binding in api.rbac.list_role_binding_for_all_namespaces().items:
            if bound(binding):
                namespace = binding.metadata.namespace
                if binding.role_ref.kind == "ClusterRole":
                    granted |= rule_permissions(api.rbac.read_cluster_role(binding.role_ref.name).rules)
                else:
                    granted |= rule_permissions(api.rbac.read_namespaced_role(binding.role_ref.name, namespace).rules)
        return granted


def install_release(
    control_plane: ControlPlane, name: str, namespace: str, values: dict[str, Any], directory: Path
) -> Release:
    """``helm install`` the chart with ``values`` (the operator Deployment kept Pending), waiting for nothing.

    Without the External metrics API unless ``values`` turn it on (tests/helpers/aggregation.py): its
    APIService is cluster-wide, and one that no operator serves makes discovery fail for every client.
    """
    values_file = directory / f"{name}-values.yaml"
    operator = {"nodeSelector": NEVER_SCHEDULED, **values.pop("operator", {})}
    values = {"externalMetrics": {"enabled": False}, **values}
    values_file.write_text(yaml.safe_dump({**values, "operator": operator}))
    installed = tool(
        control_plane, "helm", "install", name, CHART, "--namespace", namespace, "--create-namespace", "-f", values_file
    )
    assert installed.returncode == 0, f"helm install {name} failed:\n{installed.stderr}"
    account = name if RELEASE in name else f"{name}-{RELEASE}"  # the chart's fullname
    return Release(name, namespace, account)


@pytest.fixture(scope="session")
def cluster_api(control_plane: ControlPlane) -> Iterator[ClusterApi]:
    """The admin's ``kubernetes`` client for the test's own calls (user ``kubernetes-admin``)."""
    with control_plane.api_client() as client:
        yield ClusterApi.bind(client)


@pytest.fixture(scope="session")
def operator_release(
    control_plane: ControlPlane, cluster_api: ClusterApi, tmp_path_factory: pytest.TempPathFactory
) -> Release:
    """The chart installed once per session (CRD established before the first test uses it)."""
    release = install_release(control_plane, RELEASE, RELEASE_NAMESPACE, {}, tmp_path_factory.mktemp("helm"))

    def established(found: list[Any]) -> bool:
        conditions = (found[0].status.conditions or []) if found else []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    crd = f"{PLURAL}.{GROUP}"
    wait_for_list(cluster_api.extensions.list_custom_resource_definition, established, what=crd, **named(crd))
    return release


@pytest.fixture
def cluster_namespace(cluster_api: ClusterApi) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount; deleted after the test (not waited for)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster_api.core.create_namespace({"metadata": {"name": name}})
    wait_for_list(
        cluster_api.core.list_namespaced_service_account,
        bool,
        what="the default ServiceAccount",
        namespace=name,
        **named("default"),
    )
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):  # no CRD: no FilterJobs either
        remove_filterjobs(Kube(cluster_api, name))
    try:
        cluster_api.core.delete_namespace(name)
    except kubernetes.client.ApiException as e:
        if e.status != 404:  # the test deleted it itself
            raise
    delete_namespace_topology(name)


def remove_filterjobs(kube: Kube) -> None:
    """Delete the namespace's FilterJobs (finalizers first: no operator runs now) and wait until they are gone.

    Left to the namespace's deletion, they live on for a while, and an operator of a later test
    that watches every namespace takes them up: it adds its finalizer, and they and their
    namespace stay until its finalizer gives up (their broker Secret is gone by then).
    """
    try:
        jobs = kube.list("filterjobs")
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
        return  # no CRD (no test of this session installed the chart yet): no FilterJobs either
    for job in jobs:
        name = job["metadata"]["name"]
        with contextlib.suppress(kubernetes.client.ApiException):  # gone meanwhile
            if job["metadata"].get("finalizers"):
                kube.patch_job(name, {"metadata": {"finalizers": None}})
            kube.delete_job(name)
    kube.wait_all("filterjobs", lambda found: not found, timeout=30)


@pytest.fixture
def created() -> list[dict[str, Any]]:
    """FilterJobs the test created (append what ``kube.create_job`` returns). The namespace's
    teardown removes them and every queue of the namespace."""
    return []


@pytest.fixture
def kube(cluster_api: ClusterApi, cluster_namespace: str) -> Kube:
    """The test's namespace as the admin (see :class:`Kube`)."""
    return Kube(cluster_api, cluster_namespace)


@pytest.fixture
def broker_secret(cluster_api: ClusterApi, cluster_namespace: str) -> str:
    """The Secret ``rabbitmq`` (key ``url``: the test broker) in the test's namespace; its name."""
    cluster_api.core.create_namespaced_secret(
        cluster_namespace, {"metadata": {"name": "rabbitmq"}, "stringData": {"url": BROKER_URL}}
    )
    return "rabbitmq"


@pytest.fixture
def cluster_kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Kubelet]:
    """The kubelet harness as node ``NODE``: pods bound to it run as local processes."""
    client = control_plane.api_client()
    try:
        with Kubelet(client, NODE, log_dir=tmp_path / "pods", restart_backoff=(0.2, 4.0)) as running:
            yield running
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert not running.errors, f"the kubelet harness failed: {running.errors!r}"


class FilterJobOperator:
    """The operator with a token of ``release``'s ServiceAccount: ``run()`` in a thread, ``spawn()`` a process."""

    def __init__(self, control_plane: ControlPlane, release: Release, kubeconfig: Path) -> None:
        self.control_plane = control_plane
        self.release = release
        self.kubeconfig = kubeconfig
        #: Where the audit log stood when the fixture started: ``api_usage`` counts from here.
        self.since = control_plane.audit_offset()

    @contextlib.contextmanager
    def run(
        self, *, args: Sequence[str] = ("--all-namespaces", "--standalone", "--verbose"), timeout: float = 30
    ) -> Iterator[KopfRunner]:
        """``kopf run ARGS -m filterjob_operator.control.handlers`` in a ``KopfRunner`` thread, logged in by kopf's own
        ``login_via_client`` from ``KUBECONFIG`` (the token), as ``filterjob operator`` logs in.

        A fresh registry each time, so the handlers never leak into kopf's process-wide default
        one, which is restored afterwards. Output, exit code and exception are on the runner after.
        """
        previous = kopf.get_default_registry()
        registry = kopf.OperatorRegistry()
        kopf.on.login(registry=registry)(kopf.login_via_client)
        # Imported afresh, so its decorators register the handlers in this run's registry.
        sys.modules.pop(HANDLERS, None)
        try:
            with KopfRunner(["run", *args, "-m", HANDLERS], registry=registry, timeout=timeout) as runner:
                yield runner
        finally:
            kopf.set_default_registry(previous)
            # kopf's API sessions die with its thread's event loop, some of them in reference
            # cycles, so their sockets were closed by whichever later test ran the garbage
            # collector: a ResourceWarning (an error here) blamed on that test. Collect them now.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()

    def spawn(self, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``filterjob operator ARGS`` as a process of its own session, output to ``log``.

        The caller stops it (``terminate``/``kill``, then ``wait``). Its liveness endpoint is on a
        free loopback port, so several can run one after another without a port clash.
        """
        environment = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **(env or {})}
        with log.open("ab") as output:
            return subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("filterjob")),
                    "operator",
                    # A free port of its own: kopf reads port 0 as 80, so two operators would clash.
                    f"--liveness=http://127.0.0.1:{free_port()}/healthz",
                    *args,
                ],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def api_usage(self, *, decision: str | None = None) -> set[Permission]:
        """What the operator's user called since the fixture started, from the audit log."""
        return self.control_plane.api_usage(self.release.user, since=self.since, decision=decision)


@pytest.fixture
def filterjob_operator(
    control_plane: ControlPlane, operator_release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FilterJobOperator:
    """The operator of ``operator_release``, with a fresh TokenRequest token of its ServiceAccount.

    Its kubeconfig is made the default: ``KUBECONFIG``, the client's default path (read from
    ``KUBECONFIG`` once at import) and the client's process-wide default configuration, which
    kopf's login overwrites, are restored after the test.
    """
    return operator_for(control_plane, operator_release, tmp_path, monkeypatch)


def operator_for(
    control_plane: ControlPlane, release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FilterJobOperator:
    """A :class:`FilterJobOperator` of any installed ``release`` (see ``filterjob_operator``)."""
    token = control_plane.token_for(release.namespace, release.service_account)
    path = control_plane.write_kubeconfig(tmp_path / f"{release.name}.kubeconfig", token=token)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", kubernetes.client.Configuration._default)
    return FilterJobOperator(control_plane, release, path)
