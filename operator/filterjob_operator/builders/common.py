"""Names, labels, owner references and pod parts shared by the children of a FilterJob."""

from __future__ import annotations

import copy
from typing import Any

from filterjob_operator.settings import Settings
from filterjob_operator.spec import API_VERSION, KIND, FilterJob

Manifest = dict[str, Any]
JOB_LABEL = "filterjob.dev/job"
#: The image's user and group (see the Dockerfile).
RUN_AS = 10001


def workers_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-workers"


def lister_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-list"


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


def pod_security_context() -> Manifest:
    """The restricted Pod Security Standard, as the image's user."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pull_secrets(settings: Settings) -> Manifest:
    """``imagePullSecrets`` for a pod spec, if the operator was given any (else nothing)."""
    if not settings.image_pull_secrets:
        return {}
    return {"imagePullSecrets": [{"name": name} for name in settings.image_pull_secrets]}


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def volumes(job: FilterJob) -> list[Manifest]:
    """A writable /tmp (the root filesystem is read-only), then the job's volumes."""
    return [{"name": "tmp", "emptyDir": {}}, *job.spec.workers.volumes]


def volume_mounts(job: FilterJob) -> list[Manifest]:
    return [{"name": "tmp", "mountPath": "/tmp"}, *job.spec.workers.volume_mounts]  # noqa: S108


def broker_url_env(broker_secret: str) -> Manifest:
    """``FILTERJOB_BROKER_URL`` from the broker Secret's ``url``."""
    return {"name": "FILTERJOB_BROKER_URL", "valueFrom": {"secretKeyRef": {"name": broker_secret, "key": "url"}}}


def pod_spec(job: FilterJob, settings: Settings, container: Manifest, **spec: Any) -> Manifest:
    """A locked-down pod running the job's image with its volumes: worker and lister pods alike.

    ``container`` gives the name, command, env and anything else of its own; image,
    resources, security context and mounts are the same for every pod of a job.
    """
    workers = job.spec.workers
    return {
        # These pods never call the Kubernetes API.
        "automountServiceAccountToken": False,
        **spec,
        "securityContext": pod_security_context(),
        **pull_secrets(settings),
        "containers": [
            {
                "image": workers.image or settings.worker_image,
                **container,
                "resources": copy.deepcopy(dict(workers.resources or settings.worker_resources)),
                "securityContext": container_security_context(),
                "volumeMounts": volume_mounts(job),
            }
        ],
        "volumes": volumes(job),
    }
