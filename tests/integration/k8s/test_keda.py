"""``autoscaling.mode: keda`` on the real control plane, with KEDA's own CRDs (from KEDA's Go module,
tests/helpers/keda.py) installed by server-side apply for the test and deleted after it, so no other
test sees KEDA's API. No KEDA operator runs here: the API server validates the objects against
KEDA's schemas, and the test plays KEDA's part by setting the worker Deployment's replicas.

The operator runs as the ServiceAccount of a release with ``keda.enabled`` that watches the test's
namespace (its Role there), so the real RBAC authorizer decides every call; the audit log then says
it used each KEDA grant and nothing refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from filterjob_operator.control.builders import keda
from filterjob_operator.core.samples import make_samples
from tests.helpers import keda as kedacrds
from tests.helpers.controlplane import ControlPlane
from tests.helpers.filterjobs import job_body, kopf_settled, phase_is, png_outputs
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube, Permission, Release, install_release, operator_for, tool
from tests.helpers.watching import named, wait_for_list

KEDA_GRANTS: set[Permission] = {
    *(
        (verb, "keda.sh", plural, "")
        for plural in ("scaledobjects", "triggerauthentications")
        for verb in ("create", "patch", "delete")
    ),
    ("create", "", "secrets", ""),
    ("patch", "", "secrets", ""),
}


@pytest.fixture
def keda_crds(control_plane: ControlPlane, cluster_api: Any) -> Iterator[None]:
    """KEDA's ScaledObject and TriggerAuthentication CRDs, established; deleted (and gone) after the test."""
    paths = list(kedacrds.crd_paths().values())
    names = [f"{plural}.{keda.GROUP}" for plural in kedacrds.CRD_FILES]
    applied = tool(control_plane, "kubectl", "apply", "--server-side", *(a for p in paths for a in ("-f", p)))
    assert applied.returncode == 0, applied.stderr

    def established(found: list[Any]) -> bool:
        conditions = (found[0].status.conditions or []) if found else []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    try:
        for name in names:
            wait_for_list(cluster_api.extensions.list_custom_resource_definition, established, what=name, **named(name))
        yield
    finally:
        deleted = tool(control_plane, "kubectl", "delete", "--ignore-not-found", *(a for p in paths for a in ("-f", p)))
        assert deleted.returncode == 0, deleted.stderr
        for name in names:
            wait_for_list(
                cluster_api.extensions.list_custom_resource_definition,
                lambda found: not found,
                what=f"{name} gone",
                **named(name),
            )


@pytest.fixture
def keda_release(
    control_plane: ControlPlane, operator_release: Release, kube: Kube, tmp_path: Path
) -> Iterator[Release]:
    """A release with ``keda.enabled`` that watches only the test's namespace (the CRD is the first release's)."""
    name = f"filterjob-{kube.namespace}"
    values = {"watchNamespaces": [kube.namespace], "crds": {"install": False}, "keda": {"enabled": True}}
    release = install_release(control_plane, name, name, values, tmp_path)
    yield release
    uninstalled = tool(control_plane, "helm", "uninstall", name, "--namespace", name)
    assert uninstalled.returncode == 0, uninstalled.stderr
    kube.api.core.delete_namespace(name)


@pytest.fixture
def keda_operator(
    control_plane: ControlPlane,
    keda_release: Release,
    broker_secret: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> FilterJobOperator:
    """The operator of ``keda_release``, with what its chart sets (FILTERJOB_KEDA) and a short status interval."""
    monkeypatch.setenv("FILTERJOB_KEDA", "true")
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    return operator_for(control_plane, keda_release, tmp_path, monkeypatch)


def run(operator: FilterJobOperator, kube: Kube, *, timeout: float = 30) -> Any:
    return operator.run(args=("--namespace", kube.namespace, "--standalone", "--verbose"), timeout=timeout)


def keda_object(kube: Kube, plural: str, name: str, predicate: Any = bool, *, timeout: float = 30) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def holds(items: list[Any]) -> bool:
        seen[:] = items
        return bool(items) and predicate(items[0])

    list_call = kube.api.custom.list_namespaced_custom_object
    where = {"group": keda.GROUP, "version": keda.VERSION, "plural": plural, "namespace": kube.namespace}
    wait_for_list(list_call, holds, timeout=timeout, what=f"{plural} {name}", **where, **named(name))
    return seen[0]


def keda_gone(kube: Kube, plural: str, name: str) -> None:
    list_call = kube.api.custom.list_namespaced_custom_object
    where = {"group": keda.GROUP, "version": keda.VERSION, "plural": plural, "namespace": kube.namespace}
    wait_for_list(list_call, lambda items: not items, what=f"{plural} {name} gone", **where, **named(name))


def scale_patches(control_plane: ControlPlane, operator: FilterJobOperator, name: str) -> int:
    """How often the operator set the replicas of Deployment ``name`` (its scale subresource)."""
    return sum(
        1
        for event in control_plane.audit_events(since=operator.since)
        if event["user"]["username"] == operator.release.user
        and event.get("stage") == "ResponseComplete"
        and event["verb"] == "patch"
        and event.get("objectRef", {}).get("subresource") == "scale"
        and event["objectRef"].get("name") == name
    )


def assert_audited(kube: Kube, operator: FilterJobOperator) -> set[Permission]:
    refused = operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"
    used = operator.api_usage()
    granted = operator.release.granted(kube.api)
    assert used <= granted, f"the operator used what the chart does not grant: {sorted(used - granted)}"
    return used


@pytest.mark.slow
@pytest.mark.usefixtures("keda_crds")
def test_keda_mode_hands_the_workers_to_a_scaled_object_and_takes_them_back_at_the_end(
    control_plane: ControlPlane,
    kube: Kube,
    keda_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    made = make_samples(tmp_path / "in", count=6, size=(16, 12))
    body = job_body("scaled", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {
        "mode": "keda",
        "maxReplicas": 3,
        "messagesPerReplica": 2,
        "scaleDownDelaySeconds": 0,
    }
    stored = kube.create_job(body)
    created.append(stored)
    with run(keda_operator, kube):
        # Accepted by the API server, which validates it against KEDA's own schema.
        scaled = keda_object(kube, keda.SCALED_OBJECTS, "scaled-workers")
        authentication = keda_object(kube, keda.TRIGGER_AUTHENTICATIONS, "scaled-workers")
        kube.wait("filterjobs", "scaled", lambda o: o["status"].get("enqueued") == 6, timeout=30)
        secret = kube.wait("secrets", "scaled-keda")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "scaled-workers"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 3)
    assert spec["triggers"][0]["metadata"]["protocol"] == "http"
    assert scaled["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
    assert authentication["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "scaled-keda", "key": "host"}]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == authentication["metadata"]["uid"]
    assert kube.get("horizontalpodautoscalers", "scaled-workers") is None  # never an HPA of its own
    assert kube.get("deployments", "scaled-workers")["spec"]["replicas"] == 0  # the operator left them to KEDA
    # Changed behind its back while the operator was down: the restarted one patches everything back.
    kube.api.custom.patch_namespaced_custom_object(
        keda.GROUP,
        keda.VERSION,
        kube.namespace,
        keda.SCALED_OBJECTS,
        "scaled-workers",
        {"spec": {"maxReplicaCount": 9}},
    )
    with run(keda_operator, kube, timeout=60):
        keda_object(kube, keda.SCALED_OBJECTS, "scaled-workers", lambda o: o["spec"]["maxReplicaCount"] == 3)
        # KEDA's part: two workers for the backlog. The operator does not fight it, and the job finishes.
        kube.api.apps.patch_namespaced_deployment_scale("scaled-workers", kube.namespace, {"spec": {"replicas": 2}})
        job = kube.wait("filterjobs", "scaled", phase_is("Succeeded"), timeout=90)
        keda_gone(kube, keda.SCALED_OBJECTS, "scaled-workers")
        keda_gone(kube, keda.TRIGGER_AUTHENTICATIONS, "scaled-workers")
        workers = kube.wait("deployments", "scaled-workers", lambda d: d["spec"]["replicas"] == 0)
    assert job["status"]["succeeded"] == 6
    assert png_outputs(tmp_path / "out") == {
        p.relative_to(tmp_path / "in").with_suffix(".png").as_posix() for p in made.good
    }
    assert workers["spec"]["replicas"] == 0
    kube.gone("secrets", "scaled-keda")  # by the garbage collector, with its TriggerAuthentication
    assert kube.get("horizontalpodautoscalers", "scaled-workers") is None
    assert scale_patches(control_plane, keda_operator, "scaled-workers") == 1  # only at the end
    used = assert_audited(kube, keda_operator)
    assert used >= KEDA_GRANTS, f"granted by keda.enabled but not used: {sorted(KEDA_GRANTS - used)}"


def test_keda_mode_without_kedas_crds_fails_the_job_once_naming_what_to_install(
    kube: Kube, keda_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    body = job_body("nokeda", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "keda"}
    created.append(kube.create_job(body))
    with run(keda_operator, kube):
        job = kube.wait("filterjobs", "nokeda", lambda o: phase_is("Failed")(o) and kopf_settled(o), timeout=30)
        kube.wait_for_event("KedaNotInstalled")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "KedaNotInstalled"
    assert "scaledobjects.keda.sh" in failed["message"]
    assert "install KEDA" in failed["message"]
    assert len(kube.events("KedaNotInstalled")) == 1  # said once: no retry loop
    assert kube.get("horizontalpodautoscalers", "nokeda-workers") is None
    assert kube.get("secrets", "nokeda-keda") is None
    assert job["status"].get("enqueued", 0) == 0
    assert_audited(kube, keda_operator)


@pytest.mark.usefixtures("keda_crds")
def test_a_users_secret_of_the_operators_name_is_left_alone_and_fails_the_job(
    kube: Kube, keda_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    kube.api.core.create_namespaced_secret(
        kube.namespace, {"metadata": {"name": "mine-keda"}, "stringData": {"host": "the user's"}}
    )
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    body = job_body("mine", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "keda"}
    created.append(kube.create_job(body))
    with run(keda_operator, kube):
        job = kube.wait("filterjobs", "mine", lambda o: phase_is("Failed")(o) and kopf_settled(o), timeout=30)
        keda_gone(kube, keda.TRIGGER_AUTHENTICATIONS, "mine-workers")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "KedaSecretTaken"
    assert f"the Secret {kube.namespace}/mine-keda exists and is not this job's" in failed["message"]
    secret = kube.api.core.read_namespaced_secret("mine-keda", kube.namespace)
    assert secret.data == {"host": "dGhlIHVzZXIncw=="}  # "the user's", untouched
    assert not secret.metadata.owner_references
    with pytest.raises(kubernetes.client.ApiException):
        kube.api.custom.get_namespaced_custom_object(
            keda.GROUP, keda.VERSION, kube.namespace, keda.SCALED_OBJECTS, "mine-workers"
        )
    assert_audited(kube, keda_operator)


@pytest.mark.usefixtures("keda_crds")
def test_switching_between_hpa_and_keda_removes_the_other_modes_objects(
    kube: Kube, keda_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    make_samples(tmp_path / "in", count=4, size=(16, 12))
    body = job_body("switch", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "keda", "maxReplicas": 2}
    created.append(kube.create_job(body))
    with run(keda_operator, kube):
        keda_object(kube, keda.SCALED_OBJECTS, "switch-workers")
        kube.wait("filterjobs", "switch", lambda o: o["status"].get("enqueued") == 4, timeout=30)
    # A job's mode is read at each attempt: here, when the operator starts again.
    kube.patch_job("switch", {"spec": {"autoscaling": {"mode": "hpa"}}})
    with run(keda_operator, kube):
        kube.wait("horizontalpodautoscalers", "switch-workers", timeout=30)
        keda_gone(kube, keda.SCALED_OBJECTS, "switch-workers")
        keda_gone(kube, keda.TRIGGER_AUTHENTICATIONS, "switch-workers")
    kube.patch_job("switch", {"spec": {"autoscaling": {"mode": "keda"}}})
    with run(keda_operator, kube):
        keda_object(kube, keda.SCALED_OBJECTS, "switch-workers")
        kube.gone("horizontalpodautoscalers", "switch-workers", timeout=30)
    assert assert_audited(kube, keda_operator)
