"""The job's worker Deployment and the autoscaler its ``autoscaling.mode`` asks for: an HPA (``hpa``),
KEDA's ScaledObject (``keda``) or none; the objects of the other modes are removed, so that an HPA
and KEDA never both scale a job's workers (a job's mode is read anew at each attempt)."""

from __future__ import annotations

import math

from filterjob_operator.adapters.broker.management import vhost_of
from filterjob_operator.adapters.kubeerrors import KubeError, NotOurs
from filterjob_operator.control.builders import deployment, hpa, keda
from filterjob_operator.control.builders.common import workers_name
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome
from filterjob_operator.control.reconcile.redrive import ANNOTATION
from filterjob_operator.core.spec import FilterJob

INSTALL_KEDA = "install KEDA (https://keda.sh/docs/latest/deploy/)"
#: Then: how the job runs again, or without KEDA.
AFTERWARDS = f"then re-drive the job (annotation {ANNOTATION}), or choose autoscaling.mode queue or hpa"
KEDA_DISABLED = (
    f"autoscaling.mode keda is off in this operator: {INSTALL_KEDA}, then set the chart value"
    f" keda.enabled=true (FILTERJOB_KEDA=true), which lets the operator use KEDA's API; {AFTERWARDS}"
)
KEDA_NOT_INSTALLED = (
    f"autoscaling.mode keda needs KEDA, whose CRDs ({keda.SCALED_OBJECTS}.{keda.GROUP},"
    f" {keda.TRIGGER_AUTHENTICATIONS}.{keda.GROUP}) are not installed in this cluster: {INSTALL_KEDA}; {AFTERWARDS}"
)


async def ensure_workers(ctx: JobContext, attempt: Attempt, *, replicas: int) -> Outcome:
    """Create the workers, or bring them to the spec; their replicas stay the scaler's (or the autoscaler's).

    In ``mode: hpa`` the workers start at the HPA's minimum (an HPA leaves a Deployment at zero
    alone): created so, or raised to it once if they stand at zero (a job re-driven after its end);
    from then on only the HPA sets their replicas, until the job ends (:func:`release_workers`).
    :attr:`Outcome.FINISHED` if the job failed: ``mode: keda`` without KEDA.
    """
    job, settings, kube = attempt.job, ctx.services.settings, ctx.services.kube
    mode = job.spec.autoscaling.mode
    if mode == "keda" and not settings.keda:
        await ctx.fail("KedaDisabled", KEDA_DISABLED)
        return Outcome.FINISHED
    if mode == "hpa":
        replicas = hpa.start_replicas(job)
        existing = await kube.workers(ctx.namespace, workers_name(job))
        if existing is not None and existing.desired == 0:
            await kube.scale(ctx.namespace, workers_name(job), replicas)
    manifest = deployment.build(job, settings=settings, replicas=replicas, broker_secret=attempt.secret)
    await kube.apply_deployment(manifest, keep_replicas=True)
    if mode != "hpa":
        await kube.delete_hpa(ctx.namespace, workers_name(job))
    if mode != "keda" and settings.keda:
        await remove_keda(ctx, job)
    if mode == "hpa":
        await kube.apply_hpa(hpa.build(job))
    elif mode == "keda":
        return await ensure_keda(ctx, attempt)
    return Outcome.CONTINUE


async def ensure_keda(ctx: JobContext, attempt: Attempt) -> Outcome:
    """The TriggerAuthentication, the Secret it reads and the ScaledObject; :attr:`Outcome.FINISHED`
    (the job failed, what was made removed) if KEDA is not installed or the Secret's name is taken."""
    job, kube = attempt.job, ctx.services.kube
    # KEDA reads the queues as often as the operator would (its own default is every 30 s).
    polling = max(1, math.ceil(ctx.services.settings.status_interval))
    try:
        uid = await kube.apply_custom(keda.TRIGGER_AUTHENTICATIONS, keda.build_trigger_authentication(job))
        secret = keda.build_secret(job, management_url=attempt.management_url, authentication_uid=uid)
        await kube.apply_secret(secret, claim=keda.CLAIM_LABELS)
        scaled = keda.build_scaled_object(
            job, topology=attempt.topology, vhost=vhost_of(attempt.url), polling_seconds=polling
        )
        await kube.apply_custom(keda.SCALED_OBJECTS, scaled)
    except NotOurs:
        await remove_keda(ctx, job)
        name = f"{ctx.namespace}/{keda.secret_name(job)}"
        await ctx.fail(
            "KedaSecretTaken",
            f"the Secret {name} exists and is not this job's: the operator keeps KEDA's broker URL in a Secret"
            f" of that name; rename or delete yours (it was left as it is), {AFTERWARDS}",
        )
        return Outcome.FINISHED
    except KubeError as e:
        if e.status not in (404, 422):
            raise
        await remove_keda(ctx, job)  # what a partial install let be made
        if e.status == 404:  # the resource does not exist: KEDA's CRDs are not installed
            await ctx.fail("KedaNotInstalled", KEDA_NOT_INSTALLED)
        else:  # what KEDA's schema refuses and the FilterJob's admits, e.g. replicas beyond an int32
            refused = e.detail or str(e)
            await ctx.fail("KedaRefused", f"the API server refused the job's KEDA objects: {refused}; {AFTERWARDS}")
        return Outcome.FINISHED
    return Outcome.CONTINUE


async def remove_keda(ctx: JobContext, job: FilterJob) -> None:
    """The ScaledObject first (nothing scales the workers any more), then its TriggerAuthentication,
    whose Secret the garbage collector removes after it."""
    kube, name = ctx.services.kube, workers_name(job)
    await kube.delete_custom(keda.API_VERSION, keda.SCALED_OBJECTS, ctx.namespace, name)
    await kube.delete_custom(keda.API_VERSION, keda.TRIGGER_AUTHENTICATIONS, ctx.namespace, name)


async def release_workers(ctx: JobContext, attempt: Attempt) -> None:
    """A job with nothing left to do takes its workers back from the HPA, which keeps one replica at
    least, or from KEDA (a re-drive applies them again); the operator's own scaling has set zero already."""
    mode = attempt.job.spec.autoscaling.mode
    if mode == "hpa":
        await ctx.services.kube.delete_hpa(ctx.namespace, workers_name(attempt.job))
    elif mode == "keda":
        await remove_keda(ctx, attempt.job)
    else:
        return
    await ctx.services.kube.scale(ctx.namespace, workers_name(attempt.job), 0)
