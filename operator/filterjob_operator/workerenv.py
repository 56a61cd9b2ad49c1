"""The worker's environment contract, built from a FilterJob (pure).

The local broker mode sets it on worker processes; the operator puts the same
variables in the worker pod template. One builder, so they never drift.
"""

from __future__ import annotations

from filterjob_operator.spec import FilterJob
from filterjob_worker.topology import RetryPolicy, Topology


def retry_policy(job: FilterJob) -> RetryPolicy:
    retry = job.spec.retry
    return RetryPolicy(
        max_attempts=retry.max_attempts,
        backoff_seconds=retry.backoff_seconds,
        max_backoff_seconds=retry.max_backoff_seconds,
    )


def topology_of(job: FilterJob) -> Topology:
    meta = job.metadata
    return Topology.for_job(namespace=meta.namespace, name=meta.name, uid=meta.uid or "local", retry=retry_policy(job))


def worker_env(job: FilterJob, *, concurrency: int | None = None, prefetch: int | None = None) -> dict[str, str]:
    """Every FILTERJOB_* variable but the broker URL (a secret, wired separately)."""
    topology = topology_of(job)
    policy = topology.retry
    concurrency = concurrency or job.spec.workers.concurrency
    return {
        "FILTERJOB_QUEUE": topology.tasks,
        "FILTERJOB_CONCURRENCY": str(concurrency),
        "FILTERJOB_PREFETCH": str(prefetch or concurrency + 1),
        "FILTERJOB_MAX_ATTEMPTS": str(policy.max_attempts),
        "FILTERJOB_BACKOFF_SECONDS": str(policy.backoff_seconds),
        "FILTERJOB_MAX_BACKOFF_SECONDS": str(policy.max_backoff_seconds),
    }
