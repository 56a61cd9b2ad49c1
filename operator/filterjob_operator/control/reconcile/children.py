"""The job's worker Deployment and, for ``mode: hpa``, its HorizontalPodAutoscaler."""

from __future__ import annotations

from filterjob_operator.control.builders import deployment, hpa
from filterjob_operator.control.builders.common import workers_name
from filterjob_operator.control.reconcile.context import Attempt, JobContext


async def ensure_workers(ctx: JobContext, attempt: Attempt, *, replicas: int) -> None:
    """Create the workers, or bring them to the spec; their replicas stay the scaler's (or the HPA's)."""
    job, settings = attempt.job, ctx.services.settings
    manifest = deployment.build(job, settings=settings, replicas=replicas, broker_secret=attempt.secret)
    await ctx.services.kube.apply_deployment(manifest, keep_replicas=True)
    if job.spec.autoscaling.mode == "hpa":
        await ctx.services.kube.apply_hpa(hpa.build(job))


async def release_workers(ctx: JobContext, attempt: Attempt) -> None:
    """A job with nothing left to do takes its workers back from the HPA, which keeps one replica at
    least (a re-drive applies the HPA again); the operator's own scaling has set zero already."""
    if attempt.job.spec.autoscaling.mode == "hpa":
        name = workers_name(attempt.job)
        await ctx.services.kube.delete_hpa(ctx.namespace, name)
        await ctx.services.kube.scale(ctx.namespace, name, 0)
