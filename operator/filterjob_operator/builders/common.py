"""Names, labels and owner references shared by every child of a FilterJob."""

from __future__ import annotations

from typing import Any

from filterjob_operator.spec import API_VERSION, KIND, FilterJob

Manifest = dict[str, Any]
JOB_LABEL = "filterjob.dev/job"


def workers_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-workers"


def labels(job: FilterJob, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "filterjob",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": job.metadata.name,
        "app.kubernetes.io/managed-by": "filterjob-operator",
        JOB_LABEL: job.metadata.name,
    }


def selector(job: FilterJob) -> dict[str, str]:
    return {JOB_LABEL: job.metadata.name, "app.kubernetes.io/component": "worker"}


def owner_reference(job: FilterJob) -> Manifest:
    """Makes the child garbage-collected with its FilterJob."""
    if not job.metadata.uid:
        raise ValueError(f"FilterJob {job.key} has no uid; children need one to be owned")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(job: FilterJob, name: str, component: str) -> Manifest:
    return {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": labels(job, component),
        "ownerReferences": [owner_reference(job)],
    }
