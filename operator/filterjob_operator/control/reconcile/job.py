"""The order of a job's steps, attempt after attempt, until its daemon stops."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import kopf

from filterjob_operator.adapters import sources
from filterjob_operator.control.reconcile import children, enqueue, follow, inputs
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome, attempt
from filterjob_operator.control.reconcile.finished import AfterFinish, wait_finished
from filterjob_operator.control.reconcile.services import Services
from filterjob_operator.core import status
from filterjob_operator.core.spec import JobSpecError, parse_job


async def run(services: Services, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
    """Run the job to its end, then wait there for its TTL or a re-drive request, until stopped."""
    await run_context(JobContext.of(services, body, stopped))


async def run_context(ctx: JobContext) -> None:
    """:func:`run`, with the context given (and its Events with it)."""
    finished = ctx.observed.get("phase") in status.FINISHED
    while not ctx.stopped:
        if finished and await wait_finished(ctx) is not AfterFinish.REDRIVEN:
            return
        if await run_attempt(ctx) is Outcome.STOPPED:
            return  # the next daemon resumes the job where it stopped
        finished = True


async def run_attempt(ctx: JobContext) -> Outcome:
    """Validate, connect and run the steps: :attr:`Outcome.FINISHED` once the job has a final phase."""
    try:
        job = parse_job(dict(ctx.body))
    except JobSpecError as e:
        await ctx.fail("InvalidSpec", "; ".join(e.problems))
        return Outcome.FINISHED
    async with attempt(ctx, job) as this:
        return await steps(ctx, this)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What an attempt enqueues and follows, from the listing and the saved cursor."""

    keys: Sequence[str]
    #: Tasks enqueued by an earlier attempt.
    already: int
    remaining: Sequence[str]
    #: Which inputs surely are the job's tasks (None: all of them); see ``finish.finish``.
    sure: Collection[str] | None

    @property
    def total(self) -> int:
        return self.already + len(self.remaining)


async def steps(ctx: JobContext, this: Attempt) -> Outcome:
    await this.broker.declare()
    if ctx.observed.get("queues") != this.topology.base:
        # So users find the job's queues (filterjob parked), and its finalizer knows they exist.
        await ctx.patch(queues=this.topology.base)
    listed = await inputs.list_inputs(ctx, this)
    if isinstance(listed, Outcome):
        return listed
    plan = await start(ctx, this, listed)
    if await children.ensure_workers(ctx, this, replicas=0) is Outcome.FINISHED:
        return Outcome.FINISHED
    if await enqueue.enqueue(ctx, this, plan.remaining, already=plan.already) is Outcome.STOPPED:
        return Outcome.STOPPED
    return await follow.follow(ctx, this, total=plan.total, keys=plan.keys, sure=plan.sure)


async def start(ctx: JobContext, this: Attempt, listed: sources.Inputs) -> Plan:
    """Report what the listing found and where enqueueing resumes; the job's phase from now on."""
    job = this.job
    ctx.source_conditions = inputs.report_source(ctx, job, listed)
    already, remaining = status.resume(
        listed.keys, enqueued=int(ctx.observed.get("enqueued") or 0), through=ctx.observed.get("enqueuedThrough")
    )
    # Unless an earlier run enqueued part of a listing that is gone (a source changed
    # meanwhile: see ``status.resume``), every input is a task of the job.
    sure = None if already == 0 or not ctx.listed_here else set(remaining)
    plan = Plan(keys=listed.keys, already=already, remaining=remaining, sure=sure)
    await ctx.patch(
        total=plan.total,
        skipped=len(listed.skipped),
        skippedPaths=[{"path": u.path, "reason": u.reason} for u in listed.skipped[: status.SHOWN_SKIPPED]],
        conditions=[*inputs.listed(ctx, plan.total), *ctx.source_conditions],
        phase=status.SUSPENDED if job.spec.suspend else (status.RUNNING if not remaining else status.ENQUEUING),
        startTime=ctx.observed.get("startTime") or status.now_iso(),
        observedGeneration=ctx.generation,
    )
    return plan
