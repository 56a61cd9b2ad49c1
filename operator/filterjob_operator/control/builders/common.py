"""Names, labels, owner references and pod parts shared by the children of a FilterJob."""

from __future__ import annotations

import copy
from typing import Any

from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import API_VERSION, KIND, FilterJob
from filterjob_worker.core.environment import Var

Manifest = dict[str, Any]
JOB_LABEL = "filterjob.dev/job"
#: The image's user and group (see the Dockerfile).
RUN_AS = 10001


def workers_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-workers"


def lister_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-list"


def verifier_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-verify"


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


def pod_security_context(job: FilterJob) -> Manifest:
    """The restricted Pod Security Standard, as the image's user, with the job's overrides on top.

    ``OnRootMismatch``: a volume already owned by ``fsGroup`` is not walked and re-owned
    at every pod start (on a large volume that takes minutes). ``podpolicy`` keeps the
    overrides from making the pods root.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
        **copy.deepcopy(job.spec.workers.pod_security_context),
    }


def pull_secrets(settings: Settings) -> Manifest:
    """``imagePullSecrets`` for a pod spec, if the operator was given any (else nothing)."""
    if not settings.image_pull_secrets:
        return {}
    return {"imagePullSecrets": [{"name": name} for name in settings.image_pull_secrets]}


def container_security_context(job: FilterJob) -> Manifest:
    """No privileges and a read-only root, with the job's overrides on top; all capabilities stay dropped."""
    override = copy.deepcopy(job.spec.workers.security_context)
    added = (override.pop("capabilities", None) or {}).get("add")  # podpolicy allows only harmless ones
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        **override,
        "capabilities": {"drop": ["ALL"], **({"add": added} if added else {})},
    }


def pod_metadata(job: FilterJob, labels: dict[str, str], annotations: dict[str, str] | None = None) -> Manifest:
    """A pod template's metadata: the job's labels and annotations, then the operator's (``podpolicy``
    keeps the two apart, so the Deployment's selector always matches)."""
    workers = job.spec.workers
    out: Manifest = {"labels": {**workers.pod_labels, **labels}}
    if workers.pod_annotations or annotations:
        out["annotations"] = {**workers.pod_annotations, **(annotations or {})}
    return out


def _scheduling(job: FilterJob) -> Manifest:
    """Where and as whom the pods run: only what the job sets."""
    workers = job.spec.workers
    fields = {
        "serviceAccountName": workers.service_account_name,
        "priorityClassName": workers.priority_class_name,
        "nodeSelector": dict(workers.node_selector),
        "tolerations": workers.tolerations,
        "affinity": workers.affinity,
    }
    return {key: copy.deepcopy(value) for key, value in fields.items() if value}


def volumes(job: FilterJob) -> list[Manifest]:
    """A writable /tmp (the root filesystem is read-only), then the job's volumes."""
    return [{"name": "tmp", "emptyDir": {}}, *job.spec.workers.volumes]


def volume_mounts(job: FilterJob) -> list[Manifest]:
    return [{"name": "tmp", "mountPath": "/tmp"}, *job.spec.workers.volume_mounts]  # noqa: S108


def broker_url_env(broker_secret: str) -> Manifest:
    """``FILTERJOB_BROKER_URL`` from the broker Secret's ``url``."""
    return {"name": Var.BROKER_URL, "valueFrom": {"secretKeyRef": {"name": broker_secret, "key": "url"}}}


def pod_spec(job: FilterJob, settings: Settings, container: Manifest, **spec: Any) -> Manifest:
    """A locked-down pod running the job's image with its volumes: worker and lister pods alike.

    ``container`` gives the name, command, env and anything else of its own; image,
    resources, security context, mounts, the job's extra env and where the pod is
    scheduled are the same for every pod of a job. The operator's env entries win over
    ``envFrom`` (Kubernetes' rule), and ``podpolicy`` keeps ``env`` off them.
    """
    workers = job.spec.workers
    own = {key: value for key, value in container.items() if key != "env"}
    env = [*container.get("env", []), *copy.deepcopy(workers.env)]
    return {
        # These pods never call the Kubernetes API, whatever ServiceAccount they run as.
        "automountServiceAccountToken": False,
        **spec,
        **_scheduling(job),
        "securityContext": pod_security_context(job),
        **pull_secrets(settings),
        "containers": [
            {
                "image": workers.image or settings.worker_image,
                **own,
                **({"env": env} if env else {}),
                **({"envFrom": copy.deepcopy(workers.env_from)} if workers.env_from else {}),
                "resources": copy.deepcopy(dict(workers.resources or settings.worker_resources)),
                "securityContext": container_security_context(job),
                "volumeMounts": volume_mounts(job),
            }
        ],
        "volumes": volumes(job),
    }
