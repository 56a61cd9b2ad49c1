"""The RabbitMQ objects of one job: their names and declaration arguments (pure).

Per job (``base`` = ``fj.<namespace>.<name>.<uid[:8]>``):

- ``<base>.tasks`` — quorum queue of tasks. A delivery limit parks a message that
  keeps killing its consumers (crashes never ack), dead-lettering it through the
  ``<base>.dlx`` fanout exchange into ``.parked`` (observers may bind there too).
- ``<base>.retry.<n>`` — delay queues, one per retry: a message waits
  ``backoff * 2^n`` seconds (capped), then expires back into ``.tasks``.
- ``<base>.parked`` — failures for good, each carrying its reason and attempt count.
- ``<base>.events`` — topic exchange of task events (``task.succeeded`` …).
- ``<base>.inputs`` — the job's listing of its inputs, when a lister Job made it (the
  operator's business only: workers neither declare nor check it). A classic queue:
  the operator reads it without consuming (every message returns to the queue when
  its channel closes), as often as it restarts, and a quorum queue would count each
  such return against its delivery limit.
- ``<base>.outputs`` — what a verifier Job found at the destination when the job ended
  (the same listing format, the same kind of queue; the operator's business only).
- ``<base>.progress`` — a local run's queue of finished tasks (``filterjob run --broker``
  only; declared by the runner, not by ``declare``).

:class:`QueueName` reads these names back (the one grammar of them), for commands
that are given any queue of a job.

The task, retry, parked and progress queues are quorum queues (replicated, durable), the
task and retry queues with at-least-once dead-lettering, so no hop of a task's life can
drop it; the inputs and outputs queues are classic (see above). This module is used
everywhere a job's topology is needed: the operator, the local broker mode, the
worker (to find its retry and parked queues) and the tests. Only the operator's package
declares them (:mod:`filterjob_operator.adapters.broker.topology`, for the operator and
``filterjob run --broker``); the worker never does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from filterjob_worker.core.errors import SpecError, shown
from filterjob_worker.core.limits import ATTEMPTS, BACKOFF_SECONDS, MAX_BACKOFF_SECONDS

TASKS_SUFFIX = ".tasks"
#: The longest name of a queue or an exchange (AMQP's short string).
MAX_NAME_BYTES = 255
# Deliveries beyond the retry budget that a task may spend on crashing workers
# before it counts as poison (a worker killed by a scale-down must not park a task).
EXTRA_DELIVERIES = 5
#: Declaration arguments of ``<base>.inputs`` (classic even where a policy makes quorum the default).
INPUTS_ARGUMENTS: dict[str, Any] = {"x-queue-type": "classic"}
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
#: ``fj.<namespace>.<name>.<short uid>``: a namespace is a DNS label, a name a DNS subdomain
#: (dots allowed), the short uid the last segment (a Kubernetes uid has no dots).
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_BASE = rf"fj\.(?P<namespace>{_LABEL})\.(?P<name>{_LABEL}(?:\.{_LABEL})*)\.[a-zA-Z0-9_-]{{1,8}}"
#: What follows the base in each of a job's queue and exchange names.
KINDS = ("tasks", "parked", "events", "dlx", "inputs", "outputs", "progress", "retry.<n>")
_KIND = r"tasks|parked|events|dlx|inputs|outputs|progress|retry\.[0-9]+"
_WITH_KIND = re.compile(rf"(?P<base>{_BASE})\.(?P<kind>{_KIND})")
_BASE_ONLY = re.compile(rf"(?P<base>{_BASE})")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """``max_attempts`` tries in all; waits ``backoff * 2^n`` seconds, at most ``max_backoff``."""

    max_attempts: int = ATTEMPTS.default
    backoff_seconds: float = BACKOFF_SECONDS.default
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS.default

    def __post_init__(self) -> None:
        if self.max_attempts < ATTEMPTS.minimum:
            raise SpecError(f"max_attempts must be at least {ATTEMPTS.minimum}, got {self.max_attempts}")
        if self.backoff_seconds <= 0 or self.max_backoff_seconds <= 0:
            raise SpecError("backoff_seconds and max_backoff_seconds must be positive")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return float(min(self.backoff_seconds * 2**retry, self.max_backoff_seconds))

    @property
    def retries(self) -> int:
        return self.max_attempts - 1


@dataclass(frozen=True, kw_only=True)
class Topology:
    """Names and arguments of one job's queues and exchange."""

    base: str
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def for_job(cls, *, namespace: str, name: str, uid: str, retry: RetryPolicy = RetryPolicy()) -> Topology:
        short = _UNSAFE.sub("", uid)[:8] or "local"
        return cls(base=f"fj.{namespace}.{name}.{short}", retry=retry)

    @classmethod
    def from_task_queue(cls, queue: str, retry: RetryPolicy = RetryPolicy()) -> Topology:
        """The topology a worker serves, from the task queue name it was given."""
        if not queue.endswith(TASKS_SUFFIX) or len(queue) == len(TASKS_SUFFIX):
            raise SpecError(f"task queue names end in {TASKS_SUFFIX!r}, got {shown(queue)}")
        return cls(base=queue.removesuffix(TASKS_SUFFIX), retry=retry)

    @classmethod
    def from_queue_name(cls, queue: str, retry: RetryPolicy = RetryPolicy()) -> Topology:
        """The topology of a job from any of its queue or exchange names, or its base name."""
        return cls(base=QueueName.parse(queue).base, retry=retry)

    @property
    def tasks(self) -> str:
        return self.base + TASKS_SUFFIX

    @property
    def parked(self) -> str:
        return f"{self.base}.parked"

    @property
    def events(self) -> str:
        return f"{self.base}.events"

    @property
    def inputs(self) -> str:
        """The queue holding the listing of the job's inputs (not one of :attr:`queues`)."""
        return f"{self.base}.inputs"

    @property
    def outputs(self) -> str:
        """The queue holding what a verifier Job found at the destination (not one of :attr:`queues`)."""
        return f"{self.base}.outputs"

    @property
    def progress(self) -> str:
        """A local run's queue of finished tasks (not one of :attr:`queues`)."""
        return f"{self.base}.progress"

    @property
    def dead_letters(self) -> str:
        """Fanout exchange of tasks the broker parked (delivery limit exceeded)."""
        return f"{self.base}.dlx"

    def retry_queue(self, retry: int) -> str:
        return f"{self.base}.retry.{retry}"

    @property
    def retry_queues(self) -> list[str]:
        return [self.retry_queue(n) for n in range(self.retry.retries)]

    @property
    def queues(self) -> list[str]:
        """The queues a task lives in (task, retry and parked): their messages are the job's
        outstanding and failed work. The listing and progress queues are not among them."""
        return [self.tasks, *self.retry_queues, self.parked]

    @property
    def delivery_limit(self) -> int:
        return self.retry.max_attempts + EXTRA_DELIVERIES

    def arguments(self) -> dict[str, dict[str, Any]]:
        """Queue name → declaration arguments (pure; what ``declare`` sends)."""
        quorum: dict[str, Any] = {"x-queue-type": "quorum"}
        safe = {
            "x-dead-letter-strategy": "at-least-once",
            # at-least-once dead-lettering requires reject-publish overflow.
            "x-overflow": "reject-publish",
        }
        out = {
            self.tasks: {
                **quorum,
                **safe,
                "x-dead-letter-exchange": self.dead_letters,
                "x-delivery-limit": self.delivery_limit,
            },
            self.parked: dict(quorum),
        }
        for n, queue in enumerate(self.retry_queues):
            out[queue] = {
                **quorum,
                **safe,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.tasks,
                "x-message-ttl": int(self.retry.delay(n) * 1000),
            }
        return out


@dataclass(frozen=True, kw_only=True)
class QueueName:
    """A job's queue or exchange name read back: its base, namespace, name and kind (pure)."""

    base: str
    namespace: str
    name: str
    #: One of :data:`KINDS` (``retry.<n>`` with its number), or None for the base name itself.
    kind: str | None

    @classmethod
    def parse(cls, queue: str) -> QueueName:
        """Raises :class:`SpecError` for a name that is not one of a job's.

        ``fj.ns.a.b.parked`` is the parked queue of ``fj.ns.a.b``, not the base of a job
        ``a.b`` whose uid begins with "parked": a suffix is read as a kind first.
        """
        # A queue name is an AMQP short string: longer text is no queue's name (nor worth a regex).
        fits = len(queue) <= MAX_NAME_BYTES and len(queue.encode("utf-8", "replace")) <= MAX_NAME_BYTES
        found = (_WITH_KIND.fullmatch(queue) or _BASE_ONLY.fullmatch(queue)) if fits else None
        if found is None:
            kinds = ", ".join(KINDS)
            raise SpecError(
                f"not a job's queue name (fj.NAMESPACE.NAME.UID[.KIND], KIND one of {kinds}): {shown(queue)}"
            )
        groups = found.groupdict()
        return cls(base=groups["base"], namespace=groups["namespace"], name=groups["name"], kind=groups.get("kind"))
