"""What a running job should look like after one look at it (pure): ``observation, memory -> decision``.

The follow step gathers an :class:`Observation` once per status interval, :func:`decide` says
the worker replicas, the phase, the ``Ready`` condition and whether the job is done, and the
follow step applies that. What must be remembered from one look to the next (since when the
queues read empty, since when fewer workers would do) is the :class:`Memory` it hands back.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterjob_operator.core import status
from filterjob_operator.core.workload import Autoscaling


@dataclass(frozen=True, kw_only=True)
class Observation:
    total: int
    depths: status.Depths
    #: The worker Deployment's replicas, and how many of them are ready (0 without a Deployment).
    replicas: int
    ready: int
    #: ``spec.suspend`` as the object holds it now.
    suspended: bool
    #: A monotonic clock's reading.
    now: float


@dataclass(frozen=True, kw_only=True)
class Memory:
    #: Since when the queues read empty (None while work is outstanding).
    empty_since: float | None = None
    #: Since when fewer replicas than there are would do (the scale-down delay's start).
    below_since: float | None = None


@dataclass(frozen=True, kw_only=True)
class Condition:
    """A condition's value, reason and message (its transition time is the status's to keep)."""

    status: bool
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    counts: status.Counts
    #: The worker replicas the job wants (for ``mode: hpa`` and ``keda``, what the HPA or KEDA set).
    replicas: int
    #: The Deployment must be scaled to :attr:`replicas`.
    scale: bool
    #: Workers may be removed while others stay (the scaler wants fewer, or an HPA may lower them):
    #: the pods' deletion costs must be kept up to date first (:mod:`.costs`).
    spare_busy: bool
    ready: int
    #: The queues have read empty for long enough: the job ends now.
    done: bool
    phase: status.Phase
    condition: Condition
    memory: Memory

    def workers(self) -> dict[str, object]:
        """``status.workers``."""
        return {"desired": self.replicas, "ready": self.ready, "summary": f"{self.ready}/{self.replicas}"}


#: The modes whose replicas an autoscaler sets (KEDA's through an HPA of its own), not the operator.
AUTOSCALERS = frozenset({"hpa", "keda"})


def decide(seen: Observation, memory: Memory, *, scaling: Autoscaling) -> Decision:
    depths = seen.depths
    counts = status.counts(total=seen.total, enqueued=seen.total, depths=depths)
    empty_since = status.drained_since(enqueued_all=True, depths=depths, now=seen.now, since=memory.empty_since)
    done = status.is_done(since=empty_since, now=seen.now)
    current = seen.replicas
    replicas, below_since = _replicas(seen, memory, scaling=scaling, current=current, done=done)
    return Decision(
        counts=counts,
        replicas=replicas,
        scale=replicas != current,
        spare_busy=_spare_busy(seen, scaling=scaling, current=current, done=done),
        ready=seen.ready,
        done=done,
        phase=status.SUSPENDED if seen.suspended else status.RUNNING,
        condition=Condition(
            status=not seen.suspended,
            reason="Suspended" if seen.suspended else "Processing",
            message=f"{counts.succeeded + counts.failed} of {seen.total} tasks done",
        ),
        memory=Memory(empty_since=empty_since, below_since=below_since),
    )


def _spare_busy(seen: Observation, *, scaling: Autoscaling, current: int, done: bool) -> bool:
    """Some workers may go while others stay: from more than one, to fewer but not to none."""
    if current <= 1 or seen.suspended or done:
        return False  # nothing to choose between, or every worker goes
    if scaling.mode in AUTOSCALERS:
        return True  # the HPA (or KEDA's) may lower the replicas at any time
    if scaling.mode == "none":
        return False
    return 0 < _desired(seen, scaling=scaling, done=done) < current


def _desired(seen: Observation, *, scaling: Autoscaling, done: bool) -> int:
    """The queue scaler's replicas for the backlog, before the scale-down delay."""
    return status.desired_replicas(
        depths=seen.depths,
        per_replica=scaling.messages_per_replica,
        minimum=scaling.min_replicas,
        maximum=scaling.max_replicas,
        finished=done,
    )


def _replicas(
    seen: Observation, memory: Memory, *, scaling: Autoscaling, current: int, done: bool
) -> tuple[int, float | None]:
    """The replicas to set and the scale-down delay's start to remember."""
    if scaling.mode in AUTOSCALERS:  # the HPA (or KEDA's) owns the replicas
        return current, memory.below_since
    if seen.suspended:
        return 0, memory.below_since
    if scaling.mode == "none":
        return (0 if done else max(1, scaling.min_replicas)), memory.below_since
    desired = _desired(seen, scaling=scaling, done=done)
    return status.next_replicas(
        current=current,
        desired=desired,
        now=seen.now,
        below_since=memory.below_since,
        delay=0 if done else scaling.scale_down_delay_seconds,
    )
