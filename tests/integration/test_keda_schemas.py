"""The KEDA objects the operator builds, checked against KEDA's own CRD schemas (KEDA's Go module,
fetched by tests/helpers/keda.py): every field known to KEDA, of its type; nothing the API server
would drop. The real API server checks them too: tests/integration/k8s/test_keda.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from filterjob_operator.control.builders import keda
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob, parse_job
from tests.helpers import keda as kedacrds

SCALINGS = {
    "defaults": {"mode": "keda"},
    "bounds": {
        "mode": "keda",
        "minReplicas": 3,
        "maxReplicas": 50,
        "messagesPerReplica": 1,
        "scaleDownDelaySeconds": 0,
    },
    "slow": {"mode": "keda", "maxReplicas": 1, "messagesPerReplica": 100000, "scaleDownDelaySeconds": 3600},
}


def keda_job(job_doc: dict[str, Any], scaling: dict[str, Any]) -> FilterJob:
    doc = copy.deepcopy(job_doc)
    doc["metadata"]["uid"] = "0b4d6f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"
    doc["spec"]["autoscaling"] = scaling
    doc["spec"]["retry"] = {"maxAttempts": 10}
    return parse_job(doc)


@pytest.mark.parametrize("scaling", SCALINGS.values(), ids=SCALINGS.keys())
@pytest.mark.parametrize("vhost", ["/", "photos"])
def test_the_scaled_object_is_valid_against_kedas_schema(
    job_doc: dict[str, Any], scaling: dict[str, Any], vhost: str
) -> None:
    job = keda_job(job_doc, scaling)
    manifest = keda.build_scaled_object(job, topology=topology_of(job), vhost=vhost, polling_seconds=5)
    assert kedacrds.problems(keda.SCALED_OBJECTS, manifest) == []


def test_the_trigger_authentication_is_valid_against_kedas_schema(job_doc: dict[str, Any]) -> None:
    manifest = keda.build_trigger_authentication(keda_job(job_doc, SCALINGS["defaults"]))
    assert kedacrds.problems(keda.TRIGGER_AUTHENTICATIONS, manifest) == []


def test_the_check_finds_what_the_api_server_would_refuse_or_drop(job_doc: dict[str, Any]) -> None:
    job = keda_job(job_doc, SCALINGS["defaults"])
    manifest = keda.build_scaled_object(job, topology=topology_of(job), vhost="/", polling_seconds=5)
    manifest["spec"]["minReplicaCounts"] = 1  # misspelt: pruned without a word
    manifest["spec"]["triggers"][0]["metadata"]["value"] = 20  # KEDA's trigger metadata is strings only
    del manifest["spec"]["scaleTargetRef"]
    found = kedacrds.problems(keda.SCALED_OBJECTS, manifest)
    assert any("'scaleTargetRef' is a required property" in p for p in found), found
    assert any(p.startswith("spec.triggers.0.metadata.value: 20 is not of type 'string'") for p in found), found
    assert any(p.startswith(".spec.minReplicaCounts: not in KEDA's schema") for p in found), found
