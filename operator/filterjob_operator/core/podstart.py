"""Why the lister Job's pod has not started: a pure reading of its pods' statuses.

The lister runs as a Kubernetes Job; a pod that cannot start (an image that cannot be pulled, a
missing Secret, no node to run on) would keep a job in ``Pending`` with no word of why, so the
reconciler reports the reason this module finds in the pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: Waiting reasons of a container on its way to start: no sign of trouble yet.
STARTING = ("ContainerCreating", "PodInitializing")
#: Seconds a container may stay in a ``STARTING`` reason before it counts as stuck: a volume that
#: cannot be mounted (a missing Secret or claim) keeps it there, with no reason of its own.
STARTING_PATIENCE = 60.0


def _age(pod: Mapping[str, Any], now: datetime) -> float:
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    try:  # RFC 3339 as the API sends it ("Z"), or as the client re-renders it ("+00:00")
        since = datetime.fromisoformat(str(created))
    except ValueError:
        return 0.0
    return (now - (since if since.tzinfo else since.replace(tzinfo=UTC))).total_seconds()


def _pod_waiting(pod: Mapping[str, Any], *, now: datetime, patience: float) -> str | None:
    """Why this pod's containers wait to start for the first time (``Reason: message``), if they are stuck."""
    status_ = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name")
    for container in [*(status_.get("initContainerStatuses") or []), *(status_.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting")
        if not waiting or container.get("restartCount"):
            continue
        if waiting.get("reason") not in STARTING:
            return ": ".join(part for part in (waiting.get("reason"), waiting.get("message")) if part) or "waiting"
        if _age(pod, now) >= patience:
            return (
                f"{waiting.get('reason')} for more than {patience:g}s (a volume that cannot be mounted?"
                f" kubectl describe pod {name} shows its events)"
            )
    for c in status_.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return ": ".join(part for part in (c.get("reason") or "Unschedulable", c.get("message")) if part)
    return None


def _pod_started(pod: Mapping[str, Any]) -> bool:
    """A container of the pod runs or ran (a restart counts: it crashed after it started)."""
    status_ = pod.get("status") or {}
    if status_.get("phase") in ("Running", "Succeeded"):
        return True
    containers = [*(status_.get("initContainerStatuses") or []), *(status_.get("containerStatuses") or [])]
    return any(c.get("restartCount") or set(c.get("state") or {}) & {"running", "terminated"} for c in containers)


def lister_not_started(
    pods: Sequence[Mapping[str, Any]],
    *,
    previous: str | None,
    now: datetime,
    patience: float = STARTING_PATIENCE,
) -> str | None:
    """Why the lister Job's pod has not started (``pod NAME: Reason: message``), None once one has.

    A container waiting with ``ImagePullBackOff``, ``CreateContainerConfigError`` (a missing
    Secret) and the like, or a pod the scheduler cannot place, will not start by itself; a
    container being created may, unless it stays so for ``patience`` seconds. ``previous``
    (the reason seen last) stands while no pod says otherwise: none made yet, or the Job
    controller deleting the stuck one at its deadline.
    A pod that ran once (a container restarted: it crashed) has started; its Job's retries
    decide what follows.
    """
    # A pod being deleted (at the deadline, or replaced) tells nothing new, whatever it says last.
    pods = [pod for pod in pods if not (pod.get("metadata") or {}).get("deletionTimestamp")]
    if any(_pod_started(pod) for pod in pods):
        return None
    newest = sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    for pod in newest:
        if (why := _pod_waiting(pod, now=now, patience=patience)) is not None:
            return f"pod {(pod.get('metadata') or {}).get('name')}: {why}"
    return previous
