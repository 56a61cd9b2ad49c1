"""Turning a FilterJob's source into tasks: listing, include globs, ids, outputs.

Planning is deterministic: the same source yields the same keys in the same
order with the same task ids, which is what lets an interrupted enqueue resume
from a cursor without losing a task (and a batch published twice after a hard
kill carries the same ids, so it counts once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from filterjob_operator.core.locations import overlap
from filterjob_operator.core.spec import FilterJob, JobSpecError
from filterjob_worker.adapters import filelisting, storage
from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import SpecError

#: Inputs listed when a job gives no ``include`` globs.
DEFAULT_INCLUDE = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.bmp", "*.tif", "*.tiff")


def matches(key: str, include: Sequence[str]) -> bool:
    """Whether a key is selected: globs match the whole key or its file name, any case."""
    patterns = include or DEFAULT_INCLUDE
    lowered = key.lower()
    name = lowered.rsplit("/", 1)[-1]
    return any(fnmatchcase(lowered, p.lower()) or fnmatchcase(name, p.lower()) for p in patterns)


#: Unlisted paths named one by one in an error or a summary; the rest are counted.
SHOWN_UNLISTED = 20


@dataclass(frozen=True)
class Inputs:
    """A job's inputs: the keys to run, and the paths skipped (``skipUnreadable``) with why."""

    keys: list[str] = field(default_factory=list)
    skipped: list[filelisting.Unlisted] = field(default_factory=list)


def scan_inputs(job: FilterJob) -> Inputs:
    """Every selected input key, sorted, and what was skipped.

    Refuses (``JobSpecError``) a destination that overlaps the source, outputs that
    would collide, and, unless ``spec.source.skipUnreadable``, a source that cannot be
    listed completely: a job never runs on fewer inputs than its source holds.
    """
    spec = job.spec
    refuse_overlap(job)
    try:
        found = filelisting.scan(
            spec.source.uri, exclude=spec.destination.uri, select=lambda k: matches(k, spec.source.include)
        )
    except SpecError as e:
        raise JobSpecError([f"spec.source.uri: {p}" for p in e.problems]) from e
    if found.unlisted and not spec.source.skip_unreadable:
        shown = [f"spec.source.uri: {u}" for u in found.unlisted[:SHOWN_UNLISTED]]
        more = len(found.unlisted) - SHOWN_UNLISTED
        if more > 0:
            shown.append(f"spec.source.uri: … and {more} more paths that cannot be listed")
        shown.append(
            "spec.source: the source cannot be listed completely; fix the paths above (permissions, "
            "links, special files) or set spec.source.skipUnreadable: true to run without them"
        )
        raise JobSpecError(shown)
    _refuse_collisions(found.keys, job)
    return Inputs(keys=found.keys, skipped=found.unlisted)


def list_inputs(job: FilterJob) -> list[str]:
    """The keys of :func:`scan_inputs`."""
    return scan_inputs(job).keys


def refuse_overlap(job: FilterJob) -> None:
    """Refuse a destination that is, contains or lies inside the source, as found on this
    machine: symlinks followed, so a link into the source is caught too (the spec model
    refuses the textual cases already, before any path is looked at)."""
    spec = job.spec
    try:
        source = storage.to_path(spec.source.uri).resolve()
        destination = storage.to_path(spec.destination.uri).resolve()
    except (SpecError, OSError, RuntimeError):
        return  # not a path of this machine (or a loop): the worker checks again before writing
    problem = overlap(str(source), str(destination))
    if problem is not None:
        raise JobSpecError(
            f"spec.destination.uri: {spec.destination.uri} resolves to {destination}, {problem} "
            f"spec.source.uri {spec.source.uri} (resolved {source}): outputs would be written among the "
            "inputs and could overwrite them; choose a destination outside the source"
        )


def empty_message(job: FilterJob) -> str:
    """What to say about a source in which nothing was selected."""
    include = job.spec.source.include
    globs = ", ".join(include) if include else f"the default image extensions ({', '.join(DEFAULT_INCLUDE)})"
    return f"no inputs: nothing in {job.spec.source.uri} matches {globs}; check spec.source.uri and spec.source.include"


def visible(job: FilterJob) -> bool:
    """Whether this process sees the job's source (its directory exists here).

    An operator in a namespace of its own cannot mount the job's volume; then the
    source is listed by a lister Job next to the workers instead.
    """
    try:
        return storage.to_path(job.spec.source.uri).is_dir()
    except (SpecError, OSError):
        return False


def input_key(source_uri: str, uri: str) -> str:
    """The key of an input URI: its path relative to the source prefix (the URI itself if not below it)."""
    try:
        return storage.to_path(uri).relative_to(storage.to_path(source_uri)).as_posix()
    except (SpecError, ValueError):
        return uri


def output_key(key: str, extension: str) -> str:
    """The output key of an input: the same relative path, with the format's extension."""
    path = PurePosixPath(key)
    return str(path.with_suffix(extension)) if path.suffix.lower() != extension else key


def _refuse_collisions(keys: Iterable[str], job: FilterJob) -> None:
    fmt = job.spec.destination.output_format
    seen: dict[str, str] = {}
    clashes: list[str] = []
    for key in keys:
        out = output_key(key, fmt.extension(PurePosixPath(key).suffix))
        if out in seen:
            clashes.append(f"{seen[out]} and {key} would both write {out}")
        else:
            seen[out] = key
    if clashes:
        shown = "; ".join(clashes[:5]) + (f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else "")
        raise JobSpecError(f"spec.destination: outputs collide: {shown}; use format: same or narrow source.include")


def task_id(job: FilterJob, key: str) -> str:
    """A stable id per input of a job (also the broker's message id)."""
    digest = hashlib.sha256(f"{job.key}\0{job.spec.source.uri}\0{key}".encode())
    return digest.hexdigest()[:32]


def make_task(job: FilterJob, key: str) -> Task:
    spec = job.spec
    fmt = spec.destination.output_format
    try:
        input_uri = storage.join(spec.source.uri, key)
    except SpecError as e:
        raise JobSpecError(f"spec.source.uri: {e}") from e
    out = output_key(key, fmt.extension(PurePosixPath(key).suffix))
    try:
        output_uri = storage.join(spec.destination.uri, out, resolve=True)
    except SpecError as e:
        raise JobSpecError(f"spec.destination.uri: {e}") from e
    return Task(
        job=job.key,
        job_uid=job.metadata.uid or "local",
        task=task_id(job, key),
        input=input_uri,
        output=output_uri,
        filters=tuple(spec.filters),
        format=fmt,
        source=spec.source.uri,
    )


def plan(job: FilterJob, keys: Iterable[str]) -> Iterator[Task]:
    """One task per key, lazily (a million tasks need not sit in memory)."""
    for key in keys:
        yield make_task(job, key)
