"""The start every local run shares: its listener, its listing and its skipped inputs."""

from __future__ import annotations

from filterjob_operator.adapters import sources
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.local.summary import Failure, RunSummary
from filterjob_worker.adapters import storage
from filterjob_worker.core.outcome import Outcome


class Listener:
    """Receives progress; the CLI draws a bar, tests record."""

    def started(self, total: int) -> None:
        """Called once with the number of selected inputs."""

    def advanced(self, outcome: Outcome | None) -> None:
        """Called once per task; ``None`` means skipped."""

    def queued(self, ready: int, unacked: int) -> None:
        """Broker mode, where the management API answers: tasks waiting and being worked on."""


def begin_run(job: FilterJob, listener: Listener, *, skip_existing: bool) -> tuple[RunSummary, list[str]]:
    """The start every runner shares: list the inputs, announce the total, count the
    skipped ones (``--skip-existing``: their output exists); returns the keys to run."""
    inputs = sources.scan_inputs(job)
    keys = inputs.keys
    summary = RunSummary(
        total=len(keys),
        destination=job.spec.destination.uri,
        unlisted=[Failure(input=u.path, reason=u.reason) for u in inputs.skipped],
    )
    if not keys:
        summary.warnings.append(sources.empty_message(job))
    listener.started(summary.total)
    if not skip_existing:
        return summary, keys
    to_run = []
    for key in keys:
        if storage.exists(sources.make_task(job, key).output):
            summary.add(None, key)
            listener.advanced(None)
        else:
            to_run.append(key)
    return summary, to_run
