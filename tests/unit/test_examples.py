"""The samples in manifests/examples/: accepted by the API server (schemas, CEL rules) and
by the operator, and consistent with each other (claims, broker Secret, namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from filterjob_operator.control.builders import deployment, hpa
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import parse_job
from tests.helpers.crd import problems

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
DOCS: list[tuple[str, dict[str, Any]]] = [
    (path.name, doc)
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    if doc
]
JOBS = [(name, doc) for name, doc in DOCS if doc["kind"] == "FilterJob"]
OTHERS = [(name, doc) for name, doc in DOCS if doc["kind"] != "FilterJob"]


def ids(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1]['metadata']['name']}"


def test_the_examples_cover_a_job_per_scaling_mode_its_claim_and_its_secret() -> None:
    assert {doc["kind"] for _, doc in DOCS} == {"FilterJob", "Secret", "PersistentVolumeClaim"}
    modes = {doc["spec"].get("autoscaling", {}).get("mode", "queue") for _, doc in JOBS}
    assert modes == {"queue", "hpa"}


@pytest.mark.parametrize("item", JOBS, ids=ids)
def test_each_job_passes_the_crd_schema_and_rules(item: tuple[str, dict[str, Any]]) -> None:
    assert problems(item[1]) == []


@pytest.mark.parametrize("item", JOBS, ids=ids)
def test_each_job_makes_valid_children(item: tuple[str, dict[str, Any]]) -> None:
    doc = item[1]
    job = parse_job({**doc, "metadata": {**doc["metadata"], "uid": "u-1"}})
    workers = deployment.build(job, settings=Settings(), replicas=1, broker_secret="filterjob-broker")
    kubernetes_validate.validate(workers, "1.33", strict=True)  # the job's volumes make a valid pod
    if job.spec.autoscaling.mode == "hpa":
        kubernetes_validate.validate(hpa.build(job), "1.33", strict=True)


@pytest.mark.parametrize("item", OTHERS, ids=ids)
def test_each_other_object_is_a_valid_kubernetes_object(item: tuple[str, dict[str, Any]]) -> None:
    kubernetes_validate.validate(item[1], "1.33", strict=True)


@pytest.mark.parametrize("item", JOBS, ids=ids)
def test_each_job_finds_its_claims_and_broker_secret_in_its_namespace(item: tuple[str, dict[str, Any]]) -> None:
    job = parse_job(item[1])
    namespace = job.metadata.namespace

    def names(kind: str) -> set[str]:
        return {
            d["metadata"]["name"] for _, d in OTHERS if d["kind"] == kind and d["metadata"]["namespace"] == namespace
        }

    claims = {v["persistentVolumeClaim"]["claimName"] for v in job.spec.workers.volumes if "persistentVolumeClaim" in v}
    assert claims
    assert claims <= names("PersistentVolumeClaim")
    secret = job.spec.broker.secret_ref.name if job.spec.broker else Settings().broker_secret
    assert secret in names("Secret")
    (body,) = [d for _, d in OTHERS if d["kind"] == "Secret" and d["metadata"]["name"] == secret]
    assert body["stringData"]["url"].startswith("amqp://")
    mounts = {m["mountPath"] for m in job.spec.workers.volume_mounts}
    assert any(job.spec.source.uri.startswith(f"file://{path.rstrip('/')}/") for path in mounts)
    assert any(job.spec.destination.uri.startswith(f"file://{path.rstrip('/')}/") for path in mounts)
