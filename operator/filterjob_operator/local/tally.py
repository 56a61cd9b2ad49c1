"""The count of a run through the broker: distinct finished tasks, checked against the disk.

Every task ends in a persistent, confirmed event (or a dead letter) before its delivery is
acked, so the progress queue sees each task finish at least once; counting distinct task
ids makes the tally exact. What the events cannot tell, the destination does: an output
written by a worker stopped before its event (:func:`count_written`), and a task without
its output and without a failure (:func:`verify`: ``lost``).
"""

from __future__ import annotations

import asyncio

from filterjob_operator.adapters import sources, verification, verifier
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.local.start import Listener
from filterjob_operator.local.summary import Failure, RunSummary
from filterjob_worker.adapters import storage
from filterjob_worker.core.outcome import Outcome


class Tally:
    """Distinct finished tasks; done when every published task has finished."""

    def __init__(self, job: FilterJob, summary: RunSummary, listener: Listener) -> None:
        self.summary = summary
        self.listener = listener
        self.source_root = job.spec.source.uri
        self.expected: set[str] = set()
        self.finished: set[str] = set()
        #: Finished tasks that reported a failure.
        self.failed: set[str] = set()
        #: Set whenever a task finishes (for waits that look again then).
        self.progressed = asyncio.Event()
        self.keys: dict[str, str] = {}
        self.enqueued = False
        self.done = asyncio.Event()

    def expect(self, task_id: str, key: str) -> None:
        self.expected.add(task_id)
        self.keys[task_id] = key

    def finish(self, outcome: Outcome) -> None:
        if outcome.task in self.finished or outcome.task not in self.keys:
            return
        self.finished.add(outcome.task)
        if not outcome.ok:
            self.failed.add(outcome.task)
        self.summary.add(outcome, self.keys[outcome.task])
        self.progressed.set()
        self.listener.advanced(outcome)
        self.check()

    def all_enqueued(self) -> None:
        """Every task is in the queue: the tally may be done once they have finished."""
        self.enqueued = True
        self.check()

    def check(self) -> None:
        if self.enqueued and self.finished >= self.expected:
            self.done.set()


def count_written(job: FilterJob, tally: Tally, *, since_ns: int) -> None:
    """Count the unfinished tasks whose output this run wrote all the same (a worker
    stopped between its atomic write and its event): the summary matches the disk."""
    for task_id, key in tally.keys.items():
        if task_id in tally.finished:
            continue
        task = sources.make_task(job, key)
        if storage.written_since(task.output, since_ns):
            tally.finish(Outcome.of(task))


def verify(job: FilterJob, tally: Tally) -> None:
    """The summary as the destination has it: only outputs that exist count as succeeded."""
    observed = verifier.observe(job)
    tasks = [
        verification.Planned(task=task_id, input=key, output=verification.output_key(job, key))
        for task_id, key in tally.keys.items()
    ]
    verified = verification.verify(tasks, present=observed.present, failed=tally.failed)
    summary = tally.summary
    reason = verification.LOST
    if observed.problem is not None:
        summary.warnings.append(observed.problem)
        reason = f"{verification.LOST}, or in a part of the destination that cannot be listed (see the warning)"
    summary.succeeded = verified.succeeded
    summary.failures.extend(Failure(input=t.input, reason=reason) for t in verified.lost)
