"""The schema of a FilterJob's ``status`` in the CRD, in small named pieces.

The status has no model of its own: the operator writes it as plain patches (``status``'s
``Counts.as_status``, the reconciler's steps), so its shape is said here, one piece per part of
it (counts, workers, skipped paths, conditions, failures), each next to what it bounds.
"""

from __future__ import annotations

from typing import Any

from filterjob_operator.core.schemagen import object_schema as obj
from filterjob_operator.core.status import RECENT_FAILURES, SHOWN_SKIPPED, Phase

Schema = dict[str, Any]
PHASES = [phase.value for phase in Phase]
_COUNT: Schema = {"type": "integer", "minimum": 0}
#: The counters of ``status``, each a non-negative integer.
COUNTS = {
    "total": "Inputs selected.",
    "enqueued": "Tasks published and confirmed by the broker.",
    "succeeded": "Outputs written.",
    "failed": "Tasks parked for good.",
    "retrying": "Tasks waiting in retry delay queues.",
    "queued": "Tasks ready in the task queue.",
    "inFlight": "Tasks being processed.",
    "observedGeneration": "The spec generation this status describes.",
}


def _text(description: str, **more: Any) -> Schema:
    return {"type": "string", **more, "description": description}


def _count(description: str) -> Schema:
    return {**_COUNT, "description": description}


def _workers() -> Schema:
    return obj(
        "Worker pods.",
        {
            "desired": _count("Replicas asked for."),
            "ready": _count("Replicas ready."),
            "summary": _text("ready/desired, for kubectl get."),
        },
    )


def _skipped_paths() -> Schema:
    return {
        "type": "array",
        "maxItems": SHOWN_SKIPPED,
        "description": "The first skipped paths with their reasons (status.skipped counts them all).",
        "items": obj(
            "A path left out of the job.",
            {
                "path": _text("The path, as the lister saw it."),
                "reason": _text("Why it could not be listed."),
            },
        ),
    }


def _conditions() -> Schema:
    return {
        "type": "array",
        "description": "Ready, Complete, Failed, Suspended; InputsSkipped and SourceEmpty when they apply "
        "(Kubernetes API conventions).",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": obj(
            "A condition.",
            {
                "type": _text("Condition type."),
                "status": _text("Status.", enum=["True", "False", "Unknown"]),
                "reason": _text("CamelCase reason."),
                "message": _text("Human-readable details."),
                "lastTransitionTime": _text("Last change.", format="date-time"),
                "observedGeneration": _count("Generation observed."),
            },
            required=["type", "status"],
        ),
    }


def _recent_failures() -> Schema:
    return {
        "type": "array",
        "maxItems": RECENT_FAILURES,
        "description": "The latest failures (bounded); all are kept in the job's parked queue.",
        "items": obj(
            "A failed input.",
            {"key": _text("Input key."), "reason": _text("Why it failed.")},
        ),
    }


def _progress() -> Schema:
    """Where the job is: its phase and counts, for ``kubectl get`` too."""
    return {
        "phase": _text("Where the job is in its life.", enum=PHASES),
        "progress": _text("succeeded/total, for kubectl get."),
        **{name: _count(description) for name, description in COUNTS.items()},
    }


def _bookkeeping() -> Schema:
    """What the operator keeps to resume and to act once on a user's request."""
    return {
        "queues": _text(
            "Base name of the job's RabbitMQ queues (fj.<namespace>.<name>.<uid8>): "
            "<base>.tasks, <base>.retry.<n>, <base>.parked; e.g. for filterjob parked."
        ),
        "skipped": _count("Paths below the source skipped (spec.source.skipUnreadable)."),
        "skippedPaths": _skipped_paths(),
        "enqueuedThrough": _text(
            "The last input key enqueued (inputs are enqueued in key order): where a restarted operator resumes."
        ),
        "redriven": _text(
            "The value of the filterjob.dev/redrive annotation last acted on: changing the "
            "annotation moves the parked tasks back to the task queue and runs the job again."
        ),
    }


def status_schema() -> Schema:
    """``status``: observed state, written by the operator (unknown fields kept, for older operators)."""
    return obj(
        "Observed state, written by the operator.",
        {
            **_progress(),
            "workers": _workers(),
            **_bookkeeping(),
            "startTime": _text("When work started.", format="date-time"),
            "completionTime": _text("When the job finished.", format="date-time"),
            "conditions": _conditions(),
            "recentFailures": _recent_failures(),
        },
        extra={"x-kubernetes-preserve-unknown-fields": True},
    )
