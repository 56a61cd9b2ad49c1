"""The KEDA objects of a FilterJob in ``autoscaling.mode: keda``: a ScaledObject, its TriggerAuthentication
and the Secret that holds the broker's management URL for KEDA.

KEDA's ``rabbitmq`` scaler reads queue depths over the management API (``protocol: http``), so
unacked messages count, as they do for the operator's own scaler. It counts the task queue and the
retry queues in one trigger: a regex (``useRegex``) over the job's queue names, summed
(``operation: sum``). A trigger per retry queue would be wrong: KEDA scales on the largest of its
triggers, not on their sum.

KEDA wants the URL with its credentials in one value (``host``), which the broker Secret need not
hold (``managementUrl`` is optional, and derived from ``url`` when missing): the operator writes it
into a Secret of its own (``<job>-keda``), always, so that KEDA reads the same URL the operator
uses, in the one shape KEDA parses (see :func:`host_url`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from filterjob_operator.control.builders.common import JOB_LABEL, Manifest, metadata, workers_name
from filterjob_operator.core.spec import FilterJob
from filterjob_worker.core.topology import Topology

GROUP, VERSION = "keda.sh", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SCALED_OBJECTS, TRIGGER_AUTHENTICATIONS = "scaledobjects", "triggerauthentications"
#: The key of the operator's Secret that the TriggerAuthentication maps to the trigger's ``host``.
HOST_KEY = "host"
#: The labels that make a Secret of :func:`secret_name` the operator's (a user's of that name is never touched).
CLAIM_LABELS = ("app.kubernetes.io/managed-by", JOB_LABEL)
#: The longest scale-down stabilization window the HPA that KEDA makes may have (the HPA API's limit).
MAX_STABILIZATION_SECONDS = 3600


def secret_name(job: FilterJob) -> str:
    return f"{job.metadata.name}-keda"


def host_url(management_url: str) -> str:
    """The management API URL as KEDA's scaler parses it: credentials kept, the path ending in ``/``.

    KEDA takes the path's last segment for the vhost and the rest for a prefix the API sits under;
    with a trailing ``/`` the last segment is empty (the default vhost, or ``vhostName``) and a prefix
    (``http://host/rabbitmq``) stays a prefix instead of being read as a vhost. A URL without
    credentials gets RabbitMQ's default ones, as the operator's own client uses it (``Management``).
    """
    parts = urlsplit(management_url)
    netloc = parts.netloc if parts.username is not None else f"guest:guest@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/", "", ""))


def queue_pattern(topology: Topology) -> str:
    """A regex matching exactly the job's task queue and retry queues (RabbitMQ's ``use_regex``)."""
    return rf"^{re.escape(topology.base)}\.(tasks|retry\.[0-9]+)$"


def build_secret(job: FilterJob, *, management_url: str, authentication_uid: str) -> Manifest:
    """Owned by the TriggerAuthentication (``authentication_uid``): the copy of the credentials goes
    with it, whether the job ends, leaves ``mode: keda`` or is deleted."""
    owner = {
        "apiVersion": API_VERSION,
        "kind": "TriggerAuthentication",
        "name": workers_name(job),
        "uid": authentication_uid,
        "controller": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {**metadata(job, secret_name(job), "autoscaler"), "ownerReferences": [owner]},
        "type": "Opaque",
        "stringData": {HOST_KEY: host_url(management_url)},
    }


def build_trigger_authentication(job: FilterJob) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": metadata(job, workers_name(job), "autoscaler"),
        "spec": {"secretTargetRef": [{"parameter": HOST_KEY, "name": secret_name(job), "key": HOST_KEY}]},
    }


def build_scaled_object(job: FilterJob, *, topology: Topology, vhost: str, polling_seconds: int) -> Manifest:
    """The ScaledObject of the worker Deployment; ``vhost`` the broker URL's (the queues are in it).

    ``polling_seconds``: how often KEDA reads the queues (the operator's own status interval, so
    KEDA reacts as fast as ``mode: queue`` does; KEDA's default is 30 s).
    """
    scaling = job.spec.autoscaling
    window = min(scaling.scale_down_delay_seconds, MAX_STABILIZATION_SECONDS)
    trigger = {
        "protocol": "http",
        "mode": "QueueLength",
        "value": str(scaling.messages_per_replica),
        "activationValue": "0",
        "queueName": queue_pattern(topology),
        "useRegex": "true",
        "operation": "sum",
        **({"vhostName": vhost} if vhost != "/" else {}),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledObject",
        "metadata": metadata(job, workers_name(job), "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workers_name(job)},
            # KEDA itself goes from zero to one and back, so minReplicas 0 holds here (not for an HPA).
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": polling_seconds,
            # Both waits before fewer workers: the last one's (to zero), and the HPA's for the others
            # (KEDA could not create an HPA with a longer window than the HPA API allows).
            "cooldownPeriod": scaling.scale_down_delay_seconds,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": window}}}
            },
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": trigger,
                    "authenticationRef": {"name": workers_name(job), "kind": "TriggerAuthentication"},
                }
            ],
        },
    }
