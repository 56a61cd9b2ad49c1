"""The lister and verifier Jobs of a FilterJob: list the source, or the destination, where the workers see it.

A ``file://`` source lives on the job's volumes, in the job's namespace; an operator
elsewhere cannot mount them. The lister runs ``filterjob list-inputs`` in a pod like
a worker's (same image, volumes, locked-down security context, broker URL from the
broker Secret) and publishes the listing to the job's ``<base>.inputs`` queue.

``activeDeadlineSeconds`` (``FILTERJOB_LISTER_DEADLINE``) bounds the whole Job, its pods'
start included: a pod that never starts (an image that cannot be pulled, a missing Secret,
no node that fits) makes the Job controller fail it with ``DeadlineExceeded``, and the job
ends ``Failed`` rather than ``Pending`` for ever.

The verifier Job (``filterjob verify-outputs``) is the same pod with another command: at the
job's end it lists the destination into the job's ``<base>.outputs`` queue, so the final
counts are what the volume holds (see ``verification``).
"""

from __future__ import annotations

import json
from typing import Any

from filterjob_operator.control.builders.common import (
    Manifest,
    broker_url_env,
    lister_name,
    metadata,
    pod_metadata,
    pod_spec,
    verifier_name,
)
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import API_VERSION, KIND, FilterJob

#: The variable that carries the FilterJob (JSON) to the lister.
JOB_ENV = "FILTERJOB_JOB"
#: Retries of a lister that fails (broker unreachable, an I/O error); a source that cannot
#: be listed is no failure of the lister: it reports it and succeeds.
BACKOFF_LIMIT = 4


def job_document(job: FilterJob) -> dict[str, Any]:
    """The FilterJob as the lister needs it: identity (the uid names its queues) and spec."""
    meta = job.metadata
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        "spec": job.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def build(job: FilterJob, *, settings: Settings, broker_secret: str) -> Manifest:
    return _listing_job(job, settings=settings, broker_secret=broker_secret, verify=False)


def build_verifier(job: FilterJob, *, settings: Settings, broker_secret: str) -> Manifest:
    return _listing_job(job, settings=settings, broker_secret=broker_secret, verify=True)


def _listing_job(job: FilterJob, *, settings: Settings, broker_secret: str, verify: bool) -> Manifest:
    component = "verifier" if verify else "lister"
    meta = metadata(job, verifier_name(job) if verify else lister_name(job), component)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": settings.lister_deadline,
            "template": {
                "metadata": pod_metadata(job, meta["labels"]),
                "spec": pod_spec(
                    job,
                    settings,
                    {
                        "name": component,
                        "command": ["filterjob", "verify-outputs" if verify else "list-inputs"],
                        "env": [
                            broker_url_env(broker_secret),
                            {"name": JOB_ENV, "value": json.dumps(job_document(job), separators=(",", ":"))},
                        ],
                    },
                    restartPolicy="OnFailure",
                ),
            },
        },
    }
