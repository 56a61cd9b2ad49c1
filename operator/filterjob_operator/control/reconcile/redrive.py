"""Re-drive on request: the job's parked tasks go back to its task queue.

Changing the :data:`ANNOTATION`'s value asks for it, once per value: ``status.redriven``
records the value acted on.
"""

from __future__ import annotations

from typing import Any

from filterjob_operator.control.reconcile.context import Attempt, JobContext
from filterjob_operator.core.spec import GROUP

#: Changing this annotation's value asks the operator to move the job's parked tasks back
#: to its task queue (and, if the job has finished, to run it again).
ANNOTATION = f"{GROUP}/redrive"
#: Failed reasons that a re-drive answers by listing the source again.
LISTING_FAILURES = ("InvalidSource", "ListerFailed")


def request(ctx: JobContext) -> str | None:
    """A value of the re-drive annotation not acted on yet, if any."""
    value = (ctx.body.metadata.annotations or {}).get(ANNOTATION)
    return None if value is None or value == ctx.observed.get("redriven") else str(value)


def failed_listing(ctx: JobContext) -> bool:
    """The job ended Failed because its inputs could not be listed."""
    return any(
        c.get("type") == "Failed" and c.get("status") == "True" and c.get("reason") in LISTING_FAILURES
        for c in ctx.conditions
    )


async def redrive(ctx: JobContext, attempt: Attempt, request: str, **status_fields: Any) -> int:
    """Move the parked tasks back and record the request as acted on; how many moved."""
    moved = await attempt.broker.redrive()
    message = f"{len(moved)} parked tasks moved back to the task queue ({ANNOTATION}={request})"
    ctx.info(message)
    ctx.events.info("Redriven", message)
    await ctx.patch(redriven=request, **status_fields)  # in one patch: no status says "re-driven" but "done"
    return len(moved)
