"""A finished job waits: for a re-drive request (then it runs again) or its TTL (then it is deleted).

The body is kopf's live view, so the annotation is seen without asking the API.
"""

from __future__ import annotations

import logging
from enum import Enum

from filterjob_operator.control.builders.common import lister_name
from filterjob_operator.control.reconcile import redrive
from filterjob_operator.control.reconcile.context import JobContext, attempt, pause
from filterjob_operator.core import status
from filterjob_operator.core.spec import JobSpecError, parse_job

log = logging.getLogger("filterjob.operator")
#: A finished job checks for a re-drive request or its TTL every this many status intervals.
FINISHED_CHECKS = 6


class AfterFinish(Enum):
    #: Its parked tasks were moved back: the job runs again.
    REDRIVEN = "redriven"
    #: Its ``ttlSecondsAfterFinished`` passed: the job is deleted.
    DELETED = "deleted"
    #: The daemon was asked to stop.
    STOPPED = "stopped"
    #: A re-drive request was refused (the spec is invalid): the job waits on.
    REFUSED = "refused"


async def wait_finished(ctx: JobContext) -> AfterFinish:
    refused: str | None = None  # until kopf's view of the status shows it acted on
    while not ctx.stopped:
        if (request := redrive.request(ctx)) is not None and request != refused:
            if await _rerun(ctx, request) is AfterFinish.REDRIVEN:
                return AfterFinish.REDRIVEN
            # Acted on (refused) once, with the reason: a new value asks again after the fix.
            refused = request
            continue
        if await expired(ctx):
            return AfterFinish.DELETED
        # Finished jobs pile up; looking at their (in-memory) body less often costs a
        # re-drive or a TTL at most this much delay.
        await pause(ctx.stopped, FINISHED_CHECKS * ctx.services.settings.status_interval)
    return AfterFinish.STOPPED


async def _rerun(ctx: JobContext, request: str) -> AfterFinish:
    """Re-drive the finished job (:attr:`AfterFinish.REDRIVEN`), or refuse to if its spec is invalid."""
    try:
        job = parse_job(dict(ctx.body))
    except JobSpecError as e:
        message = (
            f"{redrive.ANNOTATION}={request} not acted on: the spec is invalid: {'; '.join(e.problems)};"
            f" fix the spec, then set {redrive.ANNOTATION} to a new value"
        )
        ctx.warning(message)
        ctx.events.warn("RedriveRefused", message)
        await ctx.patch(redriven=request)
        return AfterFinish.REFUSED
    async with attempt(ctx, job, management=False) as this:
        if redrive.failed_listing(ctx):
            # The source was the problem; once fixed, it must be listed again.
            await this.broker.forget_listing()
            await ctx.services.kube.delete_batch_job(ctx.namespace, lister_name(job))
        await redrive.redrive(ctx, this, request, phase=status.RUNNING, completionTime=None)
    return AfterFinish.REDRIVEN


async def expired(ctx: JobContext) -> bool:
    """Delete the job once ``ttlSecondsAfterFinished`` has passed since it finished; True if deleted."""
    ttl = ctx.spec.get("ttlSecondsAfterFinished")
    finished = ctx.observed.get("completionTime")
    # From completionTime, so an operator restart does not restart the clock.
    if ttl is None or not finished or status.seconds_since(finished) < float(ttl):
        return False  # no TTL, not yet, or just finished (the status carrying completionTime is on its way)
    log.info("deleting %s/%s: ttlSecondsAfterFinished passed", ctx.namespace, ctx.name)
    await ctx.services.kube.delete_filterjob(ctx.namespace, ctx.name)
    return True
