"""Turning a FilterJob's source into tasks: listing, include globs, ids, outputs.

Planning is deterministic: the same source yields the same keys in the same
order with the same task ids, which is what lets an interrupted enqueue resume
from a cursor without losing a task (and a batch published twice after a hard
kill carries the same ids, so it counts once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from filterjob_operator.spec import FilterJob, JobSpecError
from filterjob_worker import storage
from filterjob_worker.contract import Task
from filterjob_worker.errors import SpecError

#: Inputs listed when a job gives no ``include`` globs.
DEFAULT_INCLUDE = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.bmp", "*.tif", "*.tiff")


def matches(key: str, include: Sequence[str]) -> bool:
    """Whether a key is selected: globs match the whole key or its file name, any case."""
    patterns = include or DEFAULT_INCLUDE
    lowered = key.lower()
    name = lowered.rsplit("/", 1)[-1]
    return any(fnmatchcase(lowered, p.lower()) or fnmatchcase(name, p.lower()) for p in patterns)


def list_inputs(job: FilterJob) -> list[str]:
    """Every selected input key, sorted; refuses jobs whose outputs would collide."""
    spec = job.spec
    try:
        listed = storage.list_keys(spec.source.uri, exclude=spec.destination.uri)
        keys = [k for k in listed if matches(k, spec.source.include)]
    except SpecError as e:
        raise JobSpecError(f"spec.source.uri: {e}") from e
    _refuse_collisions(keys, job)
    return keys


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
    )


def plan(job: FilterJob, keys: Iterable[str]) -> Iterator[Task]:
    """One task per key, lazily (a million tasks need not sit in memory)."""
    for key in keys:
        yield make_task(job, key)
