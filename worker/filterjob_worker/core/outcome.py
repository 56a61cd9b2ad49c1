"""What became of one task (pure): the one record every way of running reports, from the process
that ran it (``processing``), from an event read back off the broker (``envelope``), or from a local run."""

from __future__ import annotations

from dataclasses import dataclass

from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import TaskError, reason_of


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one task."""

    task: str
    input: str
    output: str
    ok: bool
    seconds: float
    reason: str | None = None
    permanent: bool = True
    bytes_written: int = 0
    #: The process that ran the task (None: recorded without running it, e.g. its process died).
    pid: int | None = None

    @classmethod
    def of(
        cls,
        task: Task,
        *,
        error: TaskError | None = None,
        seconds: float = 0.0,
        bytes_written: int = 0,
        pid: int | None = None,
    ) -> Outcome:
        """Success, or the failure that ``error`` describes."""
        return cls(
            task=task.task,
            input=task.input,
            output=task.output,
            ok=error is None,
            seconds=seconds,
            reason=None if error is None else reason_of(error),
            permanent=True if error is None else error.permanent,
            bytes_written=bytes_written,
            pid=pid,
        )
