"""Verified completion (pure): a job's final counts from what its destination holds.

Progress during a run is derived from the broker (``status.counts``); the final word is
observed. Every planned output is looked for at the destination: a task with a failure
record (parked, or a failure event in local mode) failed; one whose output exists
succeeded; any other was lost (purged from its queue, dropped by a broker policy, its
output deleted after it was written) and fails with :data:`LOST`. So ``succeeded`` can
never count an output that is not there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from filterjob_operator.adapters import sources
from filterjob_operator.core.spec import FilterJob

LOST = "lost: no output and no failure record"


@dataclass(frozen=True)
class Planned:
    """One task of a job: its id, its input key and its output key (below the destination)."""

    task: str
    input: str
    output: str


@dataclass(frozen=True)
class Verified:
    total: int
    succeeded: int
    #: Planned tasks with a failure record.
    recorded: int
    #: Planned tasks with neither an output nor a failure record, in planned order.
    lost: list[Planned] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.recorded + len(self.lost)


def _suffix(name: str) -> str:
    """``PurePosixPath(name).suffix``, without building a path (a job's end plans every output again)."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def output_keys(job: FilterJob, keys: Iterable[str]) -> Iterator[str]:
    """Where the outputs of these input keys land, relative to the destination: ``sources.output_key``
    of each, with the format's extension looked up once per input suffix."""
    fmt = job.spec.destination.output_format
    extensions: dict[str, str] = {}
    for key in keys:
        suffix = _suffix(key.rpartition("/")[2])
        extension = extensions.get(suffix)
        if extension is None:
            extension = extensions[suffix] = fmt.extension(suffix)
        yield key if suffix.lower() == extension else key[: len(key) - len(suffix)] + extension


def output_key(job: FilterJob, key: str) -> str:
    """Where the output of input ``key`` lands, relative to the destination (as ``sources.make_task``)."""
    return next(output_keys(job, [key]))


def planned(job: FilterJob, keys: Sequence[str]) -> list[Planned]:
    """The tasks a job runs for these input keys (no filesystem access: cheap for 100k keys)."""
    return [
        Planned(task=sources.task_id(job, key), input=key, output=output)
        for key, output in zip(keys, output_keys(job, keys), strict=True)
    ]


def verify(tasks: Iterable[Planned], *, present: Collection[str], failed: Collection[str]) -> Verified:
    """Final counts: ``present`` the output keys found at the destination, ``failed`` the task ids
    with a failure record. A failure record wins over an output (one left by an earlier run)."""
    total = succeeded = recorded = 0
    lost: list[Planned] = []
    for task in tasks:
        total += 1
        if task.task in failed:
            recorded += 1
        elif task.output in present:
            succeeded += 1
        else:
            lost.append(task)
    return Verified(total=total, succeeded=succeeded, recorded=recorded, lost=lost)


@dataclass(frozen=True)
class Final:
    """A job's final counts, and the lost tasks known by name."""

    succeeded: int
    failed: int
    lost: int
    named: list[Planned] = field(default_factory=list)


def final(verified: Verified, *, total: int, parked: int, sure: Collection[str] | None) -> Final:
    """The counts of a job that enqueued ``total`` tasks and has ``parked`` distinct parked ones.

    ``sure``: the input keys known to be the job's tasks (None: every planned one). A job resumed
    on a source that changed meanwhile enqueued part of a listing it no longer has: a planned
    key before its cursor may be one it never enqueued (added later), so those are not named
    lost; the tasks no output and no parked failure accounts for still count as failed.
    """
    failed = total - verified.succeeded
    if sure is None:
        return Final(succeeded=verified.succeeded, failed=failed, lost=len(verified.lost), named=verified.lost)
    named = [t for t in verified.lost if t.input in sure]
    return Final(succeeded=verified.succeeded, failed=failed, lost=max(len(named), failed - parked), named=named)
