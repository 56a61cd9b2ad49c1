"""What a FilterJob decides of its workers (pure): its queues (:func:`topology_of`, with the
job's :func:`retry_policy`) and the workers' environment (:func:`worker_env`).

The local broker mode sets the environment on worker processes; the operator puts the same
variables in the worker pod template. One builder, so they never drift.
"""

from __future__ import annotations

from filterjob_operator.core.spec import FilterJob
from filterjob_worker.core.environment import Var, WorkerConfig
from filterjob_worker.core.topology import RetryPolicy, Topology

#: What a job decides of its workers' configuration (the rest is the pod's or the run's).
JOB_VARIABLES = (
    Var.QUEUE,
    Var.CONCURRENCY,
    Var.PREFETCH,
    Var.MAX_ATTEMPTS,
    Var.BACKOFF_SECONDS,
    Var.MAX_BACKOFF_SECONDS,
)


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
    """The variables of :data:`JOB_VARIABLES`, as the worker reads them (``WorkerConfig.from_env``)."""
    topology = topology_of(job)
    concurrency = concurrency or job.spec.workers.concurrency
    config = WorkerConfig(
        broker_url="",
        queue=topology.tasks,
        concurrency=concurrency,
        prefetch=prefetch or concurrency + 1,
        retry=topology.retry,
    )
    return config.to_env(only=JOB_VARIABLES)
