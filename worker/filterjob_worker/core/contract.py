"""The task contract: versioned JSON between whoever enqueues and the workers.

Never pickle: a task is data that any language can write and read. Decoding is
strict and turns every malformed body into :class:`MalformedMessage` with a reason,
so a bad message is parked instead of crashing a worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filterjob_worker.core.codec import OutputFormat
from filterjob_worker.core.errors import MalformedMessage, SpecError

VERSION = 1
CONTENT_TYPE = "application/json"


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
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MalformedMessage(f"body is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise MalformedMessage(f"body must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        # ``True == 1`` in Python; a boolean is not a version number.
        if isinstance(data.get("v"), bool) or data.get("v") != VERSION:
            raise MalformedMessage(f"unsupported task version {data.get('v')!r}, expected {VERSION}")
        strings = {}
        for key in ("job", "jobUid", "task", "input", "output"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise MalformedMessage(f"field {key!r} must be a non-empty string, got {value!r}")
            strings[key] = value
        filters = data.get("filters")
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise MalformedMessage(f"field 'filters' must be a list of objects, got {filters!r}")
        fmt = data.get("format", {})
        if not isinstance(fmt, dict):
            raise MalformedMessage(f"field 'format' must be an object, got {fmt!r}")
        try:
            output = OutputFormat(**fmt)
        except (TypeError, SpecError) as e:
            raise MalformedMessage(f"field 'format': {e}") from e
        source = data.get("source")
        if source is not None and (not isinstance(source, str) or not source):
            raise MalformedMessage(f"field 'source' must be a non-empty string when given, got {source!r}")
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
        try:
            data = json.loads(body)
            return cls(
                kind=data["event"],
                job=data["job"],
                task=data["task"],
                input=data["input"],
                output=data["output"],
                attempt=int(data["attempt"]),
                worker=data["worker"],
                seconds=float(data.get("seconds", 0.0)),
                reason=data.get("reason"),
                redelivered=bool(data.get("redelivered", False)),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedMessage(f"not a task event: {e}") from e


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
        try:
            data = json.loads(body)
            if data["event"] != "finished":
                raise ValueError(f"event {data['event']!r} is not 'finished'")
            return cls(
                job=str(data["job"]),
                phase=str(data["phase"]),
                total=int(data["total"]),
                succeeded=int(data["succeeded"]),
                failed=int(data["failed"]),
                skipped=int(data.get("skipped", 0)),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedMessage(f"not a job.finished event: {e}") from e
