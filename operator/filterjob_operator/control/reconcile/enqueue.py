"""Enqueue the job's tasks from the cursor saved in its status on.

The cursor moves only past tasks the broker confirmed, so a restart never skips one.
Publishing and saving the cursor cannot be one atomic step (they go to two systems), so an
operator killed between a batch's confirmation and its save publishes that batch again when
it resumes: at most ``enqueue_batch`` tasks run twice. That is harmless by design (outputs
are rewritten atomically with the same bytes, failures are counted per distinct task at the
job's end), and the batch size bounds it. A graceful stop saves the cursor before returning,
so it duplicates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.broker.backlog import Backlog
from filterjob_operator.control.reconcile.context import Attempt, JobContext, Outcome

#: Persist the enqueue cursor at least this often (seconds), besides once per batch.
CURSOR_SECONDS = 2.0


@dataclass(kw_only=True)
class Checkpoint:
    """When a cursor is worth saving (pure): a batch further than the last save, or
    :data:`CURSOR_SECONDS` after it if it moved at all; always when forced."""

    batch: int
    #: The position last saved, and when (a monotonic clock's reading).
    saved: int = 0
    when: float = field(default_factory=time.monotonic)
    seconds: float = CURSOR_SECONDS

    def due(self, position: int, *, now: float, force: bool = False) -> bool:
        if force:
            return True
        if position == self.saved:
            return False
        return position - self.saved >= self.batch or now - self.when >= self.seconds

    def mark(self, position: int, *, now: float) -> None:
        self.saved, self.when = position, now


async def _save(
    ctx: JobContext, checkpoint: Checkpoint, backlog: Backlog, *, already: int, force: bool = False
) -> None:
    done = backlog.position
    if checkpoint.due(done, now=time.monotonic(), force=force):
        through = {"enqueuedThrough": backlog.through} if done else {}
        await ctx.patch(enqueued=already + done, **through)
        checkpoint.mark(done, now=time.monotonic())


async def enqueue(ctx: JobContext, attempt: Attempt, keys: Sequence[str], *, already: int) -> Outcome:
    """Publish a task for each of ``keys`` (those after the saved cursor): :attr:`Outcome.CONTINUE`
    once all are enqueued, :attr:`Outcome.STOPPED` if the daemon stopped first (the next one resumes)."""
    batch = ctx.services.settings.enqueue_batch
    backlog = Backlog(keys, batch=batch)
    checkpoint = Checkpoint(batch=batch)
    while not backlog.done:
        if await ctx.wait_unsuspended() is Outcome.STOPPED:
            return Outcome.STOPPED
        if ctx.stopped:
            await _save(ctx, checkpoint, backlog, already=already, force=True)
            return Outcome.STOPPED
        await attempt.broker.publish(sources.plan(attempt.job, backlog.pending()), cursor=backlog.cursor)
        await _save(ctx, checkpoint, backlog, already=already)
    await _save(ctx, checkpoint, backlog, already=already, force=True)
    ctx.events.info("Enqueued", f"{already + len(keys)} tasks enqueued")
    return Outcome.CONTINUE
