"""A job's keys enqueued resumably, for whoever enqueues them: the operator (a batch at a time, its
position saved in the job's status between batches) and a local run (all at once, and again from
where the broker stopped confirming when it comes back).

The :class:`~.enqueue.Cursor` inside passes a key only once the broker confirmed it and every key
before it, so resuming from it skips none; the keys confirmed past a gap are published again, which
is harmless (outputs are written atomically with the same bytes, and a job's failures are counted
per distinct task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from filterjob_operator.adapters.broker.enqueue import Cursor


@dataclass
class Backlog:
    """The keys of a job to enqueue, and how far the broker confirmed them.

    Publish :meth:`pending` with :attr:`cursor` (``publish_tasks(..., cursor=backlog.cursor)``)
    until :attr:`done`; after a failure, :meth:`pending` starts again at the first key not confirmed.
    """

    keys: Sequence[str]
    #: Keys :meth:`pending` returns at most (None: every key not confirmed yet).
    batch: int | None = None
    cursor: Cursor = field(default_factory=Cursor)

    def __post_init__(self) -> None:
        # An empty batch would publish nothing and never be done.
        if self.batch is not None and self.batch < 1:
            raise ValueError(f"a batch holds at least one key, got {self.batch}")

    @property
    def position(self) -> int:
        """How many keys, from the first, the broker confirmed."""
        return self.cursor.position

    @property
    def done(self) -> bool:
        return self.position >= len(self.keys)

    @property
    def through(self) -> str | None:
        """The last key of those confirmed (None before the first): what a job's status saves."""
        return self.keys[self.position - 1] if self.position else None

    def pending(self) -> Sequence[str]:
        """The keys to publish next: from the first one not confirmed, a batch of them at most."""
        start = self.position
        return self.keys[start:] if self.batch is None else self.keys[start : start + self.batch]
