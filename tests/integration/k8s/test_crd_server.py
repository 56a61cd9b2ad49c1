"""The FilterJob CRD of the chart's ``helm install``, enforced by the real API server through ``kubectl``.

Invalid FilterJobs are refused by the server with the CRD's own messages (its schema and its CEL
rules, which tests/unit/test_crd.py also evaluates with cel-python), the printer columns and field
descriptions reach ``kubectl get``/``kubectl explain``, server-side apply works, and status changes only
through the status subresource.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from filterjob_operator.core import podpolicy
from filterjob_operator.core.crd import DESTINATION_APART_FROM_SOURCE, IMMUTABLE_WHILE_RUNNING, build_crd
from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.filterdef import FilterDef
from filterjob_worker.core.params import Rule
from filterjob_worker.core.pipeline import Pipeline
from tests.helpers.controlplane import ControlPlane
from tests.helpers.crd import problems, sample_steps
from tests.helpers.jobfiles import JOB
from tests.helpers.realcluster import Kube, tool

pytestmark = pytest.mark.usefixtures("operator_release")


def kubectl(
    control_plane: ControlPlane, *args: str, stdin: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    return tool(control_plane, "kubectl", *args, stdin=None if stdin is None else yaml.safe_dump(stdin))


def job(namespace: str, name: str = "thumbs", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(JOB)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"].update(spec)
    return doc


def apply(control_plane: ControlPlane, doc: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return kubectl(control_plane, "apply", "-f", "-", *extra, stdin=doc)


def refused(control_plane: ControlPlane, doc: dict[str, Any]) -> str:
    """kubectl apply's error, which must be the server refusing the object as invalid."""
    result = apply(control_plane, doc)
    assert result.returncode != 0, f"the API server accepted {doc['spec']}"
    assert "is invalid" in result.stderr, result.stderr
    return " ".join(result.stderr.split())


def test_the_server_refuses_a_name_too_long_for_the_jobs_children(control_plane: ControlPlane, kube: Kube) -> None:
    doc = job(kube.namespace)
    doc["metadata"]["name"] = "n" * 57
    message = refused(control_plane, doc)
    assert "metadata.name must be at most 56 characters" in message, message
    doc["metadata"]["name"] = "n" * 56  # the longest that fits: its Job NAME-verify is 63
    assert apply(control_plane, doc).returncode == 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"filters": [{"name": "sharpen-more"}]}, 'spec.filters[0].name: Unsupported value: "sharpen-more"'),
        ({"filters": [{"name": "blur", "radius": -1}]}, "spec.filters[0].radius: Invalid value: -1"),
        ({"filters": [{"name": "resize"}]}, "resize: width, height or scale is required"),
        ({"filters": [{"name": "grayscale", "radius": 2}]}, "filter grayscale takes no parameters"),
        (
            {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            "spec.autoscaling: Invalid value: minReplicas must not exceed maxReplicas",
        ),
        (
            {"source": {"uri": "file:///data/photos/"}, "destination": {"uri": "file:///data/photos"}},
            DESTINATION_APART_FROM_SOURCE["message"],
        ),
        (
            {"source": {"uri": "file:///data/"}, "destination": {"uri": "file:///data/out/"}},
            DESTINATION_APART_FROM_SOURCE["message"],
        ),
    ],
    ids=[
        "unknown-filter",
        "negative-radius",
        "resize-without-size",
        "foreign-parameter",
        "min-over-max",
        "same",
        "inside",
    ],
)
def test_the_server_refuses_an_invalid_filterjob_with_the_crds_message(
    control_plane: ControlPlane, kube: Kube, change: dict[str, Any], says: str
) -> None:
    message = refused(control_plane, job(kube.namespace, **change))
    assert says in message, message
    assert kube.list("filterjobs") == []


def _breaking_step(fdef: FilterDef, rule: Rule) -> dict[str, Any]:
    """A step that breaks this rule and nothing else the CRD checks (by cel-python, before the server)."""
    says = f"{fdef.name}: {rule.message}"
    for step in sample_steps(fdef):
        doc = copy.deepcopy(JOB)
        doc["spec"]["filters"] = [step]
        if not rule.holds({k: v for k, v in step.items() if k != "name"}) and problems(doc) == [says]:
            return step
    raise AssertionError(f"no sample step breaks only {says!r}")


RULES = [(f"{f.name}: {r.message}", _breaking_step(f, r)) for f in CATALOG.values() for r in f.all_rules]


@pytest.mark.parametrize(("says", "step"), RULES, ids=[says for says, _ in RULES])
def test_the_server_refuses_what_a_catalog_rule_refuses(
    control_plane: ControlPlane, kube: Kube, says: str, step: dict[str, Any]
) -> None:
    """Each rule of the catalog, said once there: its CEL twin in the real API server, its check in the worker."""
    with pytest.raises(SpecError):
        Pipeline.parse([step])
    message = refused(control_plane, job(kube.namespace, filters=[step]))
    assert says in message, message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("podSecurityContext", {"runAsUser": 0}),
        ("podSecurityContext", {"runAsNonRoot": False}),
        ("securityContext", {"runAsUser": 0}),
        ("securityContext", {"privileged": True}),
    ],
    ids=["pod-root", "pod-may-be-root", "container-root", "privileged"],
)
def test_the_server_refuses_pod_overrides_that_unrestrict_the_pods(
    control_plane: ControlPlane, kube: Kube, field: str, value: dict[str, Any]
) -> None:
    expected = podpolicy.problems(field, value)
    assert expected, f"{field}={value} should break the pod policy"
    message = refused(control_plane, job(kube.namespace, workers={field: value}))
    assert f"spec.workers.{field}" in message
    for problem in expected:
        assert problem in message, message


def start(control_plane: ControlPlane, kube: Kube, name: str = "thumbs") -> None:
    """The job as the operator leaves it once started (phase Running, through the status subresource)."""
    patched = kubectl(
        control_plane,
        "patch",
        "filterjob",
        name,
        "-n",
        kube.namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running"}}),
    )
    assert patched.returncode == 0, patched.stderr


@pytest.mark.parametrize(
    "change",
    [
        {"source": {"uri": "file:///data/elsewhere/"}},
        {"filters": [{"name": "grayscale"}]},
        {"destination": {"uri": "file:///data/other/", "format": "jpeg", "quality": 85}},
    ],
    ids=["source", "filters", "destination"],
)
def test_once_started_source_filters_and_destination_cannot_be_edited(
    control_plane: ControlPlane, kube: Kube, change: dict[str, Any]
) -> None:
    created = apply(control_plane, job(kube.namespace))
    assert created.returncode == 0, created.stderr
    # Still Pending, it may be fixed.
    pending = apply(control_plane, job(kube.namespace, suspend=True, **change))
    assert pending.returncode == 0, pending.stderr
    apply(control_plane, job(kube.namespace))
    start(control_plane, kube)
    message = refused(control_plane, job(kube.namespace, **change))
    assert IMMUTABLE_WHILE_RUNNING["message"] in message
    # What may change while it runs still can.
    resumed = apply(control_plane, job(kube.namespace, suspend=True))
    assert resumed.returncode == 0, resumed.stderr


def test_kubectl_get_fj_shows_the_printer_columns(control_plane: ControlPlane, kube: Kube) -> None:
    assert apply(control_plane, job(kube.namespace)).returncode == 0
    start(control_plane, kube)
    listed = kubectl(control_plane, "get", "fj", "-n", kube.namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "FAILED", "WORKERS", "AGE"]
    assert row.split()[:2] == ["thumbs", "Running"]
    wide = kubectl(control_plane, "get", "fj", "-n", kube.namespace, "-o", "wide")
    assert wide.stdout.splitlines()[0].split()[-1] == "QUEUES"


def test_kubectl_explain_shows_the_field_descriptions(control_plane: ControlPlane) -> None:
    explained = kubectl(control_plane, "explain", "fj.spec.filters")
    assert explained.returncode == 0, explained.stderr
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    text = " ".join(explained.stdout.split())
    assert " ".join(schema["filters"]["description"].split()) in text
    for name in ("name", "radius", "width"):
        assert re.search(rf"\b{name}\b", text), name


def test_server_side_apply_of_a_filterjob_works(control_plane: ControlPlane, kube: Kube) -> None:
    first = apply(control_plane, job(kube.namespace), "--server-side", "--field-manager=ops")
    assert first.returncode == 0, first.stderr
    assert "serverside-applied" in first.stdout
    again = apply(control_plane, job(kube.namespace, suspend=True), "--server-side", "--field-manager=ops")
    assert again.returncode == 0, again.stderr
    stored = kube.get("filterjobs", "thumbs")
    assert stored is not None
    assert stored["spec"]["suspend"] is True
    managers = {(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]}
    assert ("ops", "Apply") in managers
    # And the server refuses an invalid one the same way.
    invalid = apply(control_plane, job(kube.namespace, "other", filters=[]), "--server-side", "--field-manager=ops")
    assert "is invalid" in invalid.stderr, invalid.stderr


def test_status_changes_only_through_the_status_subresource(control_plane: ControlPlane, kube: Kube) -> None:
    assert apply(control_plane, job(kube.namespace)).returncode == 0
    on_main = kubectl(
        control_plane,
        "patch",
        "fj",
        "thumbs",
        "-n",
        kube.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"suspend": True}, "status": {"phase": "Succeeded"}}),
    )
    assert on_main.returncode == 0, on_main.stderr
    stored = kube.get("filterjobs", "thumbs")
    assert stored is not None
    assert stored["spec"]["suspend"] is True  # the spec part of the patch applies
    assert "status" not in stored  # the status part is dropped
    start(control_plane, kube)
    stored = kube.get("filterjobs", "thumbs")
    assert stored is not None
    assert stored["status"]["phase"] == "Running"
    # The subresource changes nothing else.
    assert stored["spec"]["suspend"] is True
    # The status subresource is checked against the status schema, too.
    bad = kubectl(
        control_plane,
        "patch",
        "fj",
        "thumbs",
        "-n",
        kube.namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Exploded"}}),
    )
    assert bad.returncode != 0
    assert 'Unsupported value: "Exploded"' in bad.stderr
