"""The job's inputs: a listing stored in the broker, a listing made here, or one by a lister Job.

A listing stored in the broker by a lister Job is the job's for good: a restarted operator
takes it again rather than listing anew. Without one, the operator lists a source it can see
itself (``FILTERJOB_LIST_INPUTS``: ``auto`` or ``operator``), and otherwise runs a lister Job
next to the workers and waits for its listing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.control.builders import lister
from filterjob_operator.control.builders.common import lister_name
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome
from filterjob_operator.core import listing, podstart, status
from filterjob_operator.core.spec import FilterJob, JobSpecError
from filterjob_worker.adapters import filelisting

#: The ``Ready`` reason of a job whose lister Job's pod has not started (see ``podstart.lister_not_started``).
LISTER_NOT_STARTED = "ListerNotStarted"


class ListerFailed(Exception):
    """The lister Job gave up (its retries spent) without reporting a listing."""


async def list_inputs(ctx: JobContext, attempt: Attempt) -> sources.Inputs | Outcome:
    """The job's inputs, sorted; :attr:`Outcome.FINISHED` once a source that cannot be listed has
    failed the job, :attr:`Outcome.STOPPED` if the daemon stopped first."""
    try:
        return await _find(ctx, attempt)
    except JobSpecError as e:
        await ctx.fail("InvalidSource", "; ".join(e.problems))
    except ListerFailed as e:
        await ctx.fail("ListerFailed", str(e))
    return Outcome.FINISHED


async def _find(ctx: JobContext, attempt: Attempt) -> sources.Inputs | Outcome:
    """Raises ``JobSpecError`` for a bad source, ``ListerFailed`` for a lister Job that gave up."""
    stored = await attempt.broker.stored_listing()
    if stored is not None:
        return inputs_of(stored)
    mode = ctx.services.settings.list_inputs
    if mode == "operator" or (mode == "auto" and await asyncio.to_thread(sources.visible, attempt.job)):
        ctx.listed_here = True
        return await asyncio.to_thread(sources.scan_inputs, attempt.job)
    return await run_lister(ctx, attempt)


def inputs_of(found: listing.Listing) -> sources.Inputs:
    """The inputs of a lister's listing, or its error as the job's."""
    if found.error is not None:
        raise JobSpecError(found.error)
    skipped = [filelisting.Unlisted(path=path, reason=reason) for path, reason in found.skipped]
    return sources.Inputs(keys=sorted(found.keys), skipped=skipped)


async def run_lister(ctx: JobContext, attempt: Attempt) -> sources.Inputs | Outcome:
    job = attempt.job
    name = lister_name(job)
    if job.spec.suspend:  # a suspended job runs no pods, not even its lister
        await ctx.patch(phase=status.SUSPENDED, observedGeneration=ctx.generation)
        if await ctx.wait_unsuspended() is Outcome.STOPPED:
            return Outcome.STOPPED
    message = f"waiting for the lister Job {name} to list {job.spec.source.uri}"
    await ctx.patch(
        phase=status.PENDING,
        observedGeneration=ctx.generation,
        conditions=[
            status.condition("Ready", False, "Listing", message, generation=ctx.generation, previous=ctx.conditions)
        ],
    )
    manifest = lister.build(job, settings=ctx.services.settings, broker_secret=attempt.secret)
    if await ctx.services.kube.create_job(manifest):
        ctx.info(f"created the lister Job {name}")
        ctx.events.info("Listing", f"created the lister Job {name}")
    interval = ctx.services.settings.status_interval
    not_started: str | None = None
    async with attempt.broker.watch_listing() as watch:
        while not ctx.stopped:
            failure = await ctx.services.kube.job_failure(ctx.namespace, name)
            # After a failure, one more interval for a listing on its way from an earlier attempt.
            if (found := await watch.next(interval)) is not None:
                return inputs_of(found)
            if failure is not None:
                waited = f" (its pod never started: {not_started})" if not_started else ""
                raise ListerFailed(f"the lister Job {name} failed without a listing: {failure}{waited}")
            # After an interval without a listing: the pod had its time to appear and start.
            not_started = await lister_not_started(ctx, name, message, not_started)
    return Outcome.STOPPED


async def lister_not_started(ctx: JobContext, name: str, listing: str, previous: str | None) -> str | None:
    """Say in the ``Ready`` condition why the lister's pod has not started, if it is stuck; the reason.

    The Job's deadline ends the wait; until then, the user sees why (an image that cannot be
    pulled, a missing Secret, no node that fits) without looking at pods. Back to ``Listing``
    once the pod starts.
    """
    try:
        pods = await ctx.services.kube.job_pods(ctx.namespace, name)
    except KubeError as e:  # a diagnosis only: the Job's deadline still ends the wait
        ctx.warning(f"cannot read the pods of the lister Job {name}: {e}")
        return previous
    why = podstart.lister_not_started(pods, previous=previous, now=datetime.now(UTC))
    if why == previous:
        return why
    if why is None:
        reason, message = "Listing", listing
    else:
        reason = LISTER_NOT_STARTED
        message = (
            f"the lister Job {name} has not started: {why}; it fails"
            f" {ctx.services.settings.lister_deadline}s after it began (FILTERJOB_LISTER_DEADLINE)"
        )
        if previous is None:  # once: a pull that keeps failing alternates ErrImagePull and ImagePullBackOff
            ctx.warning(message)
            ctx.events.warn(reason, message)
    conditions = ctx.conditions
    await ctx.patch(
        conditions=[
            *(c for c in conditions if c.get("type") != "Ready"),
            status.condition("Ready", False, reason, message, generation=ctx.generation, previous=conditions),
        ]
    )
    return why


def report_source(ctx: JobContext, job: FilterJob, listed: sources.Inputs) -> list[dict[str, Any]]:
    """Events and conditions for what the listing found: skipped paths, an empty source."""
    found = status.source_conditions(
        skipped=[str(u) for u in listed.skipped],
        empty=sources.empty_message(job) if not listed.keys else None,
        generation=ctx.generation,
        previous=ctx.conditions,
    )
    for c in found:
        ctx.warning(c["message"])
        ctx.events.warn(c["reason"], c["message"])
    return found


def listed(ctx: JobContext, total: int) -> list[dict[str, Any]]:
    """The conditions once listed, besides the source's: no longer waiting for the lister (nor
    for its pod to start)."""
    conditions = [c for c in ctx.conditions if c.get("type") not in status.SOURCE_CONDITIONS]
    return [
        status.condition(
            "Ready", False, "Listed", f"{total} inputs listed", generation=ctx.generation, previous=conditions
        )
        if c.get("type") == "Ready" and c.get("reason") in ("Listing", LISTER_NOT_STARTED)
        else c
        for c in conditions
    ]
