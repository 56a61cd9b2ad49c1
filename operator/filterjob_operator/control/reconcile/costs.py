"""Scale-in that spares busy workers: each worker pod's ``controller.kubernetes.io/pod-deletion-cost``.

When a ReplicaSet has more pods than replicas, its controller deletes first the pods of the
lowest cost among those of equal readiness (a pod not ready goes first whatever its cost). So
each worker pod's cost is what deleting it would send back to the queue: its unacked deliveries
(a pod that consumes nothing, starting or draining, lower still). :func:`patches` (pure) says
which pods' annotation must change; :func:`keep` reads the pods and the broker and patches them.
The annotation changes only when a pod's count does, never on every look.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from filterjob_operator.adapters.kube import WorkerPod
from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.control.builders.common import selector
from filterjob_operator.control.reconcile.context import Attempt, JobContext

log = logging.getLogger("filterjob.operator")
ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
#: The annotation is an int32.
MAX_COST = 2**31 - 1
#: A pod that consumes nothing: below an idle consumer (0), so it goes first.
NOT_CONSUMING = -1
#: Jobs whose pods could not be patched, so that the warning is logged once, not at every look.
_refused: set[tuple[str, str]] = set()


def cost(unacked: int | None) -> int:
    """A pod's deletion cost from its unacked deliveries (None: it consumes nothing)."""
    if unacked is None:
        return NOT_CONSUMING
    return min(max(unacked, 0), MAX_COST)


def patches(pods: Iterable[WorkerPod], unacked: Mapping[str, int]) -> dict[str, str]:
    """The new annotation value of each pod whose cost changed; pods being deleted are left alone."""
    out: dict[str, str] = {}
    for pod in pods:
        wanted = str(cost(unacked.get(pod.name)))
        if not pod.terminating and pod.annotations.get(ANNOTATION) != wanted:
            out[pod.name] = wanted
    return out


async def keep(ctx: JobContext, attempt: Attempt) -> int:
    """Bring the job's worker pods' costs up to date; how many pods were patched.

    Without a management API (or while it does not answer) nothing tells a busy worker from an
    idle one: the costs stay as they are rather than being guessed. So they do where the API
    server refuses (an operator upgraded before its RBAC): scaling goes on, without the order.
    """
    unacked = await attempt.broker.unacked_by_worker()
    if unacked is None:
        return 0
    kube = ctx.services.kube
    done = 0
    try:
        changed = patches(await kube.worker_pods(ctx.namespace, selector(attempt.job)), unacked)
        for name, value in sorted(changed.items()):
            await kube.annotate_pod(ctx.namespace, name, {ANNOTATION: value})
            done += 1
    except KubeError as e:
        if (ctx.namespace, ctx.name) in _refused:
            return done
        _refused.add((ctx.namespace, ctx.name))
        log.warning(
            "job %s/%s: the worker pods' deletion costs cannot be set, scale-in may remove busy workers "
            "(the operator needs list and patch on pods): %s",
            ctx.namespace,
            ctx.name,
            e,
        )
    else:
        _refused.discard((ctx.namespace, ctx.name))
    return done
