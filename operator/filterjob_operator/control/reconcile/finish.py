"""The end of a job: its outputs verified at the destination, its final counts, phase and conditions.

The derived counts say the queues are empty; what the destination holds says what succeeded:
a task purged from its queue, or an output deleted after it was written, is no success (see
``verification``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import kopf

from filterjob_operator.adapters import verification, verifier
from filterjob_operator.adapters.broker.parked import Parked
from filterjob_operator.control.builders import lister
from filterjob_operator.control.builders.common import verifier_name
from filterjob_operator.control.reconcile.children import release_workers
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome
from filterjob_operator.core import status

#: Lost inputs named in the final message; the rest are counted.
SHOWN_LOST = 5


async def finish(
    ctx: JobContext, attempt: Attempt, result: status.Counts, keys: Sequence[str], *, sure: Collection[str] | None
) -> Outcome:
    """End the job with counts observed at its destination (:attr:`Outcome.STOPPED` if stopped first).

    ``sure``: the keys known to be tasks of the job (None: all of ``keys``); only those are
    named lost, the others are counted.
    """
    job = attempt.job
    await release_workers(ctx, attempt)
    parked = await attempt.broker.parked()
    observed = await observe_outputs(ctx, attempt, planned=bool(keys))
    if isinstance(observed, Outcome):
        return observed
    if observed.problem is not None:
        await ctx.fail("VerificationFailed", observed.problem)
        ctx.services.metrics.forget(ctx.namespace, ctx.name)
        return Outcome.FINISHED
    plan = verification.planned(job, keys)
    verified = verification.verify(plan, present=observed.present, failed={p.task for p in parked})
    counted = verification.final(verified, total=result.total, parked=len(parked), sure=sure)
    final = status.Counts(
        total=result.total,
        enqueued=result.enqueued,
        succeeded=counted.succeeded,
        failed=counted.failed,
        retrying=0,
        queued=0,
        in_flight=0,
    )
    phase = status.final_phase(final, max_failed_ratio=job.spec.max_failed_ratio)
    message = _message(final, counted)
    await ctx.patch(
        **final.as_status(),
        phase=phase,
        completionTime=status.now_iso(),
        observedGeneration=ctx.generation,
        workers={"desired": 0, "ready": 0, "summary": "0/0"},
        recentFailures=_failures(counted, plan, parked)[: status.RECENT_FAILURES],
        conditions=_conditions(ctx, phase, message),
    )
    if phase == status.SUCCEEDED:
        ctx.events.info("Succeeded", message)
    else:
        ctx.events.warn("Failed", f"{message}: above maxFailedRatio {job.spec.max_failed_ratio}")
    ctx.services.metrics.forget(ctx.namespace, ctx.name)
    return Outcome.FINISHED


def _message(final: status.Counts, counted: verification.Final) -> str:
    message = f"{final.succeeded} succeeded, {final.failed} failed of {final.total}"
    if counted.lost:
        shown = [t.input for t in counted.named[:SHOWN_LOST]]
        if counted.lost > len(shown):  # more than shown, or some not known by name (a source changed)
            shown.append("…")
        message += f" ({counted.lost} {verification.LOST}: {', '.join(shown)})"
    return message


def _failures(
    counted: verification.Final, plan: Sequence[verification.Planned], parked: Sequence[Parked]
) -> list[dict[str, str]]:
    """``status.recentFailures``: the lost first, since nothing else tells of them, while the parked
    queue keeps every parked task; named by input key (a task id tells a user nothing; a malformed
    task has no key)."""
    failures = [{"key": t.input, "reason": verification.LOST} for t in counted.named]
    inputs = {t.task: t.input for t in plan}
    return failures + [{"key": inputs.get(p.task, p.task), "reason": p.reason} for p in parked]


def _conditions(ctx: JobContext, phase: status.Phase, message: str) -> list[dict[str, Any]]:
    previous, generation = ctx.conditions, ctx.generation
    return [
        status.condition("Ready", False, "Finished", message, generation=generation, previous=previous),
        status.condition(
            "Complete", phase == status.SUCCEEDED, phase, message, generation=generation, previous=previous
        ),
        status.condition("Failed", phase == status.FAILED, phase, message, generation=generation, previous=previous),
        *ctx.source_conditions,
    ]


async def observe_outputs(ctx: JobContext, attempt: Attempt, *, planned: bool) -> verifier.Observed | Outcome:
    """What the destination holds: listed here if the operator sees it (as for the source),
    else by a verifier Job next to the workers; :attr:`Outcome.STOPPED` if stopped first."""
    if not planned:
        return verifier.Observed()  # nothing to look for
    # Even with FILTERJOB_LIST_INPUTS=operator: an operator that sees the source need not
    # see the destination, and a destination it cannot see is no proof that nothing is there.
    job = attempt.job
    if ctx.services.settings.list_inputs != "job" and await asyncio.to_thread(verifier.visible, job):
        return await asyncio.to_thread(verifier.observe, job)
    return await run_verifier(ctx, attempt)


async def run_verifier(ctx: JobContext, attempt: Attempt) -> verifier.Observed | Outcome:
    job, kube = attempt.job, ctx.services.kube
    name = verifier_name(job)
    interval = ctx.services.settings.status_interval
    # From nothing: no report or Job of an earlier verification (before a re-drive) answers for this one.
    await attempt.broker.forget_listing(queue_name=attempt.topology.outputs)
    await kube.delete_batch_job(ctx.namespace, name)
    manifest = lister.build_verifier(job, settings=ctx.services.settings, broker_secret=attempt.secret)
    if not await kube.create_job(manifest):
        raise kopf.TemporaryError(f"the verifier Job {name} of an earlier check is still being deleted", delay=interval)
    message = f"created the verifier Job {name} to check the outputs at {job.spec.destination.uri}"
    ctx.info(message)
    ctx.events.info("Verifying", message)
    async with attempt.broker.watch_listing(queue_name=attempt.topology.outputs) as watch:
        while not ctx.stopped:
            failure = await kube.job_failure(ctx.namespace, name)
            # After a failure, one more interval for a report on its way from an earlier attempt.
            if (found := await watch.next(interval)) is not None:
                return verifier.from_listing(found)
            if failure is not None:
                return verifier.Observed(
                    problem=f"the verifier Job {name} failed without a report, so the outputs at"
                    f" {job.spec.destination.uri} cannot be verified: {failure}"
                )
    return Outcome.STOPPED
