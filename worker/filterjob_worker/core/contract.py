"""The task contract: versioned JSON between whoever enqueues and the workers.

Never pickle: a task is data that any language can write and read. Decoding is
strict and turns every malformed body into :class:`MalformedMessage` with a reason,
so a bad message is parked instead of crashing a worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filterjob_worker.core.codec import OutputFormat
from filterjob_worker.core.errors import MalformedMessage, SpecError, shown

VERSION = 1
CONTENT_TYPE = "application/json"
#: A task id is the AMQP message id of the task's retried and parked copies: a short string.
MAX_TASK_ID_BYTES = 255


def _load(body: bytes) -> dict[str, Any]:
    """A body's JSON object; MalformedMessage for anything else (the decoders are total)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise MalformedMessage("body is not JSON a worker reads: nested too deep") from None
    except ValueError as e:  # not JSON, not UTF-8/16/32 text, a number past Python's 4300 digits
        raise MalformedMessage(f"body is not JSON: {str(e).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise MalformedMessage(f"body must be a JSON object, got {type(data).__name__}")
    return data


def _text(data: Mapping[str, Any], key: str, *, empty: bool = False) -> str:
    """A string field; lone surrogates (JSON's ``"\\ud800"``) are no text a header or a path can hold."""
    value = data.get(key)
    if not isinstance(value, str) or not (value or empty):
        kind = "a string" if empty else "a non-empty string"
        raise MalformedMessage(f"field {key!r} must be {kind}, got {shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage(f"field {key!r} must be UTF-8 text, got {shown(value)}") from None
    return value


def _count(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """A whole number from 0 (``True == 1`` in Python; a boolean is not a count)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedMessage(f"field {key!r} must be a whole number from 0, got {shown(value)}")
    return value


@dataclass(frozen=True, kw_only=True)
class Task:
    """One image to process."""

    job: str  # "<namespace>/<name>"
    job_uid: str
    task: str  # deterministic id, also the message id
    input: str
    output: str
    filters: tuple[Mapping[str, Any], ...]
    format: OutputFormat = field(default_factory=OutputFormat)
    #: The job's source prefix (optional in the contract): a worker never writes below it.
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {"source": self.source} if self.source is not None else {}
        return {
            "v": VERSION,
            "job": self.job,
            "jobUid": self.job_uid,
            "task": self.task,
            "input": self.input,
            "output": self.output,
            "filters": [dict(f) for f in self.filters],
            "format": {"format": self.format.format, "quality": self.format.quality},
            **extra,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> Task:
        """Decode a message body; raises :class:`MalformedMessage` naming what is wrong."""
        return cls.from_dict(_load(body))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        # ``True == 1`` in Python; a boolean is not a version number.
        if isinstance(data.get("v"), bool) or data.get("v") != VERSION:
            raise MalformedMessage(f"unsupported task version {shown(data.get('v'))}, expected {VERSION}")
        strings = {key: _text(data, key) for key in ("job", "jobUid", "task", "input", "output")}
        if len(strings["task"].encode()) > MAX_TASK_ID_BYTES:
            raise MalformedMessage(
                f"field 'task' must be at most {MAX_TASK_ID_BYTES} bytes, got {shown(strings['task'])}"
            )
        filters = data.get("filters")
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise MalformedMessage(f"field 'filters' must be a list of objects, got {shown(filters)}")
        fmt = data.get("format", {})
        if not isinstance(fmt, dict):
            raise MalformedMessage(f"field 'format' must be an object, got {shown(fmt)}")
        if unknown := sorted(set(fmt) - {"format", "quality"}):
            raise MalformedMessage(f"field 'format': unknown key {shown(unknown[0])}; its keys are format and quality")
        try:
            output = OutputFormat(**fmt)
        except SpecError as e:
            raise MalformedMessage(f"field 'format': {e}") from e
        source = _text(data, "source") if data.get("source") is not None else None
        return cls(
            job=strings["job"],
            job_uid=strings["jobUid"],
            task=strings["task"],
            input=strings["input"],
            output=strings["output"],
            filters=tuple(filters),
            format=output,
            source=source,
        )


EVENT_KINDS = ("succeeded", "retrying", "failed")


@dataclass(frozen=True, kw_only=True)
class Event:
    """What happened to a task, published to the job's events exchange as ``task.<kind>``."""

    kind: str  # one of EVENT_KINDS
    job: str
    task: str
    input: str
    output: str
    attempt: int
    worker: str
    seconds: float = 0.0
    reason: str | None = None
    redelivered: bool = False

    @property
    def routing_key(self) -> str:
        return f"task.{self.kind}"

    def to_json(self) -> bytes:
        body = {
            "v": VERSION,
            "event": self.kind,
            "job": self.job,
            "task": self.task,
            "input": self.input,
            "output": self.output,
            "attempt": self.attempt,
            "worker": self.worker,
            "seconds": round(self.seconds, 4),
            "reason": self.reason,
            "redelivered": self.redelivered,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> Event:
        """Decode an event body; raises :class:`MalformedMessage` naming what is wrong."""
        try:
            data = _load(body)
            kind = data.get("event")
            if kind not in EVENT_KINDS:
                raise MalformedMessage(f"field 'event' must be one of {', '.join(EVENT_KINDS)}, got {shown(kind)}")
            seconds = data.get("seconds", 0.0)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 <= seconds <= sys.float_info.max
            ):
                raise MalformedMessage(f"field 'seconds' must be a finite number from 0, got {shown(seconds)}")
            reason = _text(data, "reason", empty=True) if data.get("reason") is not None else None
            redelivered = data.get("redelivered", False)
            if not isinstance(redelivered, bool):
                raise MalformedMessage(f"field 'redelivered' must be true or false, got {shown(redelivered)}")
            strings = {key: _text(data, key, empty=True) for key in ("job", "task", "input", "output", "worker")}
            attempt = _count(data, "attempt")
            return cls(
                kind=kind, attempt=attempt, seconds=float(seconds), reason=reason, redelivered=redelivered, **strings
            )
        except MalformedMessage as e:
            raise MalformedMessage(f"not a task event: {e}") from None


JOB_FINISHED_KEY = "job.finished"
JOB_PHASES = ("Succeeded", "Failed", "Interrupted")


@dataclass(frozen=True, kw_only=True)
class JobFinished:
    """The end of a run, published to the job's events exchange as ``job.finished``.

    A watcher stops on it; ``succeeded + failed + skipped == total`` unless the run
    was interrupted.
    """

    job: str
    phase: str  # one of JOB_PHASES
    total: int
    succeeded: int
    failed: int
    skipped: int = 0

    @property
    def routing_key(self) -> str:
        return JOB_FINISHED_KEY

    def to_json(self) -> bytes:
        body = {
            "v": VERSION,
            "event": "finished",
            "job": self.job,
            "phase": self.phase,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> JobFinished:
        """Decode a ``job.finished`` body; raises :class:`MalformedMessage` naming what is wrong."""
        try:
            data = _load(body)
            if data.get("event") != "finished":
                raise MalformedMessage(f"event {shown(data.get('event'))} is not 'finished'")
            phase = data.get("phase")
            if phase not in JOB_PHASES:
                raise MalformedMessage(f"field 'phase' must be one of {', '.join(JOB_PHASES)}, got {shown(phase)}")
            return cls(
                job=_text(data, "job", empty=True),
                phase=phase,
                total=_count(data, "total"),
                succeeded=_count(data, "succeeded"),
                failed=_count(data, "failed"),
                skipped=_count(data, "skipped", 0),
            )
        except MalformedMessage as e:
            raise MalformedMessage(f"not a job.finished event: {e}") from None
