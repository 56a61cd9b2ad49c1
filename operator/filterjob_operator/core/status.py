"""Progress arithmetic, phases and conditions: pure functions of observed facts.

Progress comes from the broker alone (see the design): with ``outstanding`` the
ready and unacked messages of the task and retry queues and ``failed`` the
distinct tasks parked, ``succeeded = enqueued - outstanding - failed``. A crash
anywhere cannot make this drift, because nothing is counted by hand.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """Where a FilterJob is in its life (``status.phase``): the CRD's enum is this, in this order."""

    PENDING = "Pending"
    ENQUEUING = "Enqueuing"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


PENDING, ENQUEUING, RUNNING, SUCCEEDED, FAILED, SUSPENDED = Phase
FINISHED = (SUCCEEDED, FAILED)
#: Management API statistics (the unacked counts) are sampled every 5 s by
#: default; the queues must read empty for longer than that before a job counts
#: as done, so no delivery still held by a worker is missed.
STATS_LAG_SECONDS = 10.0


@dataclass(frozen=True, kw_only=True)
class Depths:
    """Messages in a job's queues."""

    ready: int = 0  # task queue, ready
    unacked: int = 0  # task queue, delivered and not yet acked
    retrying: int = 0  # all retry delay queues
    parked: int = 0  # parked queue, messages (a task parked twice counts twice; parked_failures dedupes)

    @property
    def outstanding(self) -> int:
        return self.ready + self.unacked + self.retrying


@dataclass(frozen=True, kw_only=True)
class Counts:
    total: int
    enqueued: int
    succeeded: int
    failed: int
    retrying: int
    queued: int
    in_flight: int

    def as_status(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "enqueued": self.enqueued,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retrying": self.retrying,
            "queued": self.queued,
            "inFlight": self.in_flight,
            "progress": f"{self.succeeded}/{self.total}",
        }


def counts(*, total: int, enqueued: int, depths: Depths) -> Counts:
    failed = min(depths.parked, enqueued)
    succeeded = max(0, enqueued - depths.outstanding - failed)
    return Counts(
        total=total,
        enqueued=enqueued,
        succeeded=succeeded,
        failed=failed,
        retrying=depths.retrying,
        queued=depths.ready,
        in_flight=depths.unacked,
    )


def estimate_unacked(*, ready: int, retrying: int, parked: int, enqueued: int, sampled: tuple[int, int] | None) -> int:
    """Deliveries not yet acked, from exact counts and the management API's last ``(ready, unacked)`` sample.

    Only RabbitMQ's statistics count unacked messages, and they are sampled (every 5 s by
    default; a new queue has none for its first seconds), while the ready counts are
    exact. A worker that takes a task after the sample makes it leave ``ready`` without
    showing up as unacked, and read naively that looks like work done: busy workers
    scaled away, a job finished with tasks in flight. So a task that left the ready
    count since the sample counts as in flight until a newer sample says it was acked,
    and with no sample yet, every task not ready, retrying or parked does. Stale
    statistics can then delay a scale-down or a job's end by a sample, never hasten it.
    """
    at_most = max(0, enqueued - ready - retrying - parked)
    if sampled is None:
        return at_most
    sampled_ready, sampled_unacked = sampled
    return min(at_most, sampled_unacked + max(0, sampled_ready - ready))


def drained_since(*, enqueued_all: bool, depths: Depths, now: float, since: float | None) -> float | None:
    """When the queues started reading empty (None while work is outstanding)."""
    if not enqueued_all or depths.outstanding:
        return None
    return now if since is None else since


def is_done(*, since: float | None, now: float, lag: float = STATS_LAG_SECONDS) -> bool:
    """Done once the queues have read empty for longer than the statistics can lag."""
    return since is not None and now - since >= lag


def final_phase(result: Counts, *, max_failed_ratio: float) -> Phase:
    if result.total and result.failed / result.total > max_failed_ratio:
        return FAILED
    return SUCCEEDED


def desired_replicas(*, depths: Depths, per_replica: int, minimum: int, maximum: int, finished: bool) -> int:
    """``clamp(ceil((ready + unacked + retrying) / per_replica), min, max)``; zero once done.

    Unacked messages count, so busy workers are never scaled away; retrying ones
    count too, since they come back.
    """
    if finished:
        return 0
    wanted = -(-depths.outstanding // per_replica)
    return max(minimum, min(maximum, wanted))


def next_replicas(
    *, current: int, desired: int, now: float, below_since: float | None, delay: float
) -> tuple[int, float | None]:
    """Scale up at once; scale down only after ``desired`` stayed lower for ``delay`` seconds.

    Returns the replicas to set and the new ``below_since`` to remember.
    """
    if desired >= current:
        return desired, None
    since = now if below_since is None else below_since
    if now - since >= delay:  # with no delay (a finished job), at once
        return desired, None
    return current, since


ISO = "%Y-%m-%dT%H:%M:%SZ"


def now_iso() -> str:
    return datetime.now(UTC).strftime(ISO)


def seconds_since(timestamp: str) -> float:
    return (datetime.now(UTC) - datetime.strptime(timestamp, ISO).replace(tzinfo=UTC)).total_seconds()


def condition(
    type_: str, status: bool, reason: str, message: str, *, generation: int | None, previous: list[dict[str, Any]]
) -> dict[str, Any]:
    """A condition following the API conventions; the transition time moves only on change."""
    value = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value else now_iso()
    out: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def never_declared(observed: Mapping[str, Any], *, broker_reasons: Sequence[str]) -> bool:
    """The job never got its queues: it has been waiting for its broker since it was created.

    ``status.queues`` is written right after the queues are declared; a job without it whose
    ``Ready`` condition still says the broker could not be used never reached it. (A job from
    before ``status.queues`` existed has no such condition, so it never counts as one.)
    """
    if observed.get("queues") or observed.get("total") or observed.get("enqueued"):
        return False
    ready = next((c for c in observed.get("conditions") or [] if c.get("type") == "Ready"), None)
    return ready is not None and ready.get("reason") in broker_reasons


#: Conditions about what the listing found; present (status True) only when they apply.
SOURCE_EMPTY, INPUTS_SKIPPED = "SourceEmpty", "InputsSkipped"
SOURCE_CONDITIONS = (SOURCE_EMPTY, INPUTS_SKIPPED)
#: Skipped paths named in ``status.skippedPaths``; ``status.skipped`` counts them all.
SHOWN_SKIPPED = 20
#: Failures named in ``status.recentFailures`` (all are kept in the job's parked queue).
RECENT_FAILURES = 20


def source_conditions(
    *, skipped: Sequence[str], empty: str | None, generation: int | None, previous: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``InputsSkipped`` (paths left out under ``skipUnreadable``) and ``SourceEmpty``, when they apply."""
    found = []
    if skipped:
        shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        message = f"{len(skipped)} paths could not be listed and were skipped (spec.source.skipUnreadable): {shown}"
        found.append(
            condition(INPUTS_SKIPPED, True, "SkippedUnreadable", message, generation=generation, previous=previous)
        )
    if empty is not None:
        found.append(condition(SOURCE_EMPTY, True, "NoInputs", empty, generation=generation, previous=previous))
    return found


def resume(keys: Sequence[str], *, enqueued: int, through: str | None) -> tuple[int, Sequence[str]]:
    """After a restart: how many tasks were enqueued already, and the (sorted) keys still to enqueue.

    The cursor is the last key enqueued, not a position: the source is listed again on
    every start and may have changed meanwhile. Keys added before the cursor are then not
    part of the job (it takes what it found, in order), keys removed before it were
    enqueued already and fail as missing inputs, and the job's total stays the number of
    tasks it really enqueued. A status without a key (nothing saved yet) resumes by count.
    """
    if through is None:
        return enqueued, keys[enqueued:]
    return enqueued, keys[bisect.bisect_right(keys, through) :]
