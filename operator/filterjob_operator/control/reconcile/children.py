"""The job's worker Deployment and, for ``mode: hpa``, its HorizontalPodAutoscaler."""

from __future__ import annotations

from filterjob_operator.control.builders import deployment, hpa
from filterjob_operator.control.builders.common import workers_name
from filterjob_operator.control.reconcile.context import Attempt, JobContext


async def ensure_workers(ctx: JobContext, attempt: Attempt, *, replicas: int) -> None:
    """Create the workers, or bring them to the spec; their replicas stay the scaler's (or the HPA's).

    In ``mode: hpa`` the workers start at the HPA's minimum (an HPA leaves a Deployment at zero
    alone): created so, or raised to it once if they stand at zero (a job re-driven after its end);
    from then on only the HPA sets their replicas, until the job ends (:func:`release_workers`).
    """
    job, settings, kube = attempt.job, ctx.services.settings, ctx.services.kube
    autoscaled = job.spec.autoscaling.mode == "hpa"
    if autoscaled:
        replicas = hpa.start_replicas(job)
        existing = await kube.workers(ctx.namespace, workers_name(job))
        if existing is not None and existing.desired == 0:
            await kube.scale(ctx.namespace, workers_name(job), replicas)
    manifest = deployment.build(job, settings=settings, replicas=replicas, broker_secret=attempt.secret)
    await kube.apply_deployment(manifest, keep_replicas=True)
    if autoscaled:
        await kube.apply_hpa(hpa.build(job))


async def release_workers(ctx: JobContext, attempt: Attempt) -> None:
    """A job with nothing left to do takes its workers back from the HPA, which keeps one replica at
    least (a re-drive applies the HPA again); the operator's own scaling has set zero already."""
    if attempt.job.spec.autoscaling.mode == "hpa":
        name = workers_name(attempt.job)
        await ctx.services.kube.delete_hpa(ctx.namespace, name)
        await ctx.services.kube.scale(ctx.namespace, name, 0)
