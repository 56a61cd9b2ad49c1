"""Follow a running job: observe it once per status interval, decide (:mod:`.decision`), act."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import replace

from filterjob_operator.control.builders.common import workers_name
from filterjob_operator.control.reconcile import costs, finish, redrive
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome
from filterjob_operator.control.reconcile.decision import Decision, Memory, Observation, decide
from filterjob_operator.core import status


async def observe(ctx: JobContext, attempt: Attempt, *, total: int) -> Observation:
    """The job's queues, its workers and its spec, as they are now."""
    depths = await attempt.broker.depths(enqueued=total)
    now = time.monotonic()
    suspended = bool(ctx.spec.get("suspend"))
    ctx.services.metrics.queue_messages.labels(ctx.namespace, ctx.name).set(depths.outstanding)
    workers = await ctx.services.kube.workers(ctx.namespace, workers_name(attempt.job))
    return Observation(
        total=total,
        depths=depths,
        replicas=workers.desired if workers else 0,
        ready=workers.ready if workers else 0,
        suspended=suspended,
        now=now,
    )


async def scale(ctx: JobContext, attempt: Attempt, decision: Decision) -> None:
    if decision.spare_busy:  # before the replicas go down, so the ReplicaSet removes idle pods first
        await costs.keep(ctx, attempt)
    if decision.scale:
        await ctx.services.kube.scale(ctx.namespace, workers_name(attempt.job), decision.replicas)
    ctx.services.metrics.desired_replicas.labels(ctx.namespace, ctx.name).set(decision.replicas)


async def report(ctx: JobContext, decision: Decision) -> None:
    """The status of a job still running."""
    ready = decision.condition
    await ctx.patch(
        **decision.counts.as_status(),
        phase=decision.phase,
        observedGeneration=ctx.generation,
        workers=decision.workers(),
        conditions=[
            status.condition(
                "Ready",
                ready.status,
                ready.reason,
                ready.message,
                generation=ctx.generation,
                previous=ctx.conditions,
            ),
            *ctx.source_conditions,
        ],
    )


async def follow(
    ctx: JobContext, attempt: Attempt, *, total: int, keys: Sequence[str], sure: Collection[str] | None
) -> Outcome:
    """Status and scaling until the job is done and finished (:mod:`.finish`), or the daemon stops."""
    memory = Memory()
    while True:
        decision = decide(await observe(ctx, attempt, total=total), memory, scaling=attempt.job.spec.autoscaling)
        memory = decision.memory
        await scale(ctx, attempt, decision)
        if (request := redrive.request(ctx)) is not None and await redrive.redrive(ctx, attempt, request):
            memory = replace(memory, empty_since=None)  # the tasks just moved are outstanding again
            continue
        if decision.done:
            return await finish.finish(ctx, attempt, decision.counts, keys, sure=sure)
        await report(ctx, decision)
        if await ctx.pause():
            return Outcome.STOPPED
