"""Worker configuration from environment variables (the pod template's contract).

| variable | meaning | default |
|---|---|---|
| ``FILTERJOB_BROKER_URL`` | amqp(s):// URL of RabbitMQ | required |
| ``FILTERJOB_QUEUE`` | the job's task queue (``….tasks``) | required |
| ``FILTERJOB_CONCURRENCY`` | images processed at once | 2 |
| ``FILTERJOB_PREFETCH`` | unacked deliveries held (≥ concurrency) | concurrency + 1 |
| ``FILTERJOB_HEALTH_PORT`` | port of /healthz, /readyz, /metrics (0: any, logged as ``port``) | 8080 |
| ``FILTERJOB_LOG_LEVEL`` | DEBUG, INFO, WARNING, ERROR | INFO |
| ``FILTERJOB_MAX_ATTEMPTS`` | attempts before a failing task is parked | 3 |
| ``FILTERJOB_BACKOFF_SECONDS`` | first retry delay, doubled each retry | 2 |
| ``FILTERJOB_MAX_BACKOFF_SECONDS`` | cap of the retry delay | 300 |
| ``FILTERJOB_GRACE_SECONDS`` | time to finish in-flight images on SIGTERM | 25 |
| ``FILTERJOB_EXECUTOR`` | ``thread`` or ``process`` pool for the CPU work | thread |
| ``FILTERJOB_WORKER_ID`` | name in logs and events | hostname-pid |
| ``FILTERJOB_PARENT_PID`` | local mode: drain and exit when this process (the supervisor) dies | unset |
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from filterjob_worker.errors import SpecError
from filterjob_worker.limits import ATTEMPTS, BACKOFF_SECONDS, CONCURRENCY, MAX_BACKOFF_SECONDS, Range
from filterjob_worker.logs import scrub
from filterjob_worker.topology import RetryPolicy, Topology

PREFIX = "FILTERJOB_"
#: The worker's exit code when it rejects its configuration (as ``filterjob``'s ``exits.INVALID``):
#: restarting it cannot help, so the local supervisor stops the run instead.
INVALID_CONFIG_EXIT = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENCODE_HINT = " (a / # ? or @ in the user name or password must be percent-encoded, e.g. / as %2F)"


def redact(url: str) -> str:
    """A URL with its password replaced, safe for logs (even a URL that does not parse).

    A password holding an unencoded ``/``, ``#`` or ``?`` ends the netloc early for
    ``urlsplit``; :func:`scrub` reads such a URL as written, up to its last ``@``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        return scrub(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return scrub(url)
    # The netloc as written (brackets of an IPv6 host, a port that is not a number): only the password goes.
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def broker_url_problem(url: str) -> str | None:
    """What is wrong with an AMQP URL, or None: checked before anything connects.

    One check for the worker's ``FILTERJOB_BROKER_URL`` and the ``--broker`` of the
    ``filterjob`` command, so a URL the command accepts is one its workers accept.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return f"is not a URL ({e}), got {redact(url)!r}"
    if parts.scheme not in ("amqp", "amqps"):
        return f"must be an amqp:// or amqps:// URL, got {redact(url)!r}"
    if parts.fragment or url.endswith("#"):
        # Never part of an AMQP URL: a password's "#" that ended the URL early.
        return f"has a #, got {redact(url)!r}{ENCODE_HINT}"
    if not parts.hostname:
        return f"has no host, got {redact(url)!r} (e.g. amqp://USER:PASSWORD@HOST:5672/VHOST)"
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError:
        return f"has a port that is not a number from 0 to 65535, got {redact(url)!r}{ENCODE_HINT}"
    if "/" in parts.path.removeprefix("/"):
        # aiormq takes the whole path as the vhost name; a second "/" is a typo far more often than a name.
        return f"names one virtual host after the host (write a / inside its name as %2F), got {redact(url)!r}"
    return None


def _bounds(limits: Range[float]) -> tuple[float, float, float]:
    return limits.default, limits.minimum, limits.maximum


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    broker_url: str
    queue: str
    concurrency: int = CONCURRENCY.default
    # One delivery beyond the concurrency waits ready, so no slot idles for a round trip.
    prefetch: int = CONCURRENCY.default + 1
    health_port: int = 8080
    log_level: str = "INFO"
    retry: RetryPolicy = RetryPolicy()
    grace_seconds: float = 25.0
    # Pillow releases the GIL in decode, filters and encode: threads match processes
    # in throughput (bench/executor_bench.py) without IPC or orphaned children.
    executor: Literal["process", "thread"] = "thread"
    worker_id: str = ""
    #: Local mode: the supervising ``filterjob run`` process; the worker must not outlive it.
    parent_pid: int | None = None

    @property
    def topology(self) -> Topology:
        return Topology.from_task_queue(self.queue, self.retry)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerConfig:
        """Read the configuration; raises :class:`SpecError` naming every bad variable."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str:
            value = env.get(PREFIX + name, "").strip()
            if not value:
                if default is None:
                    problems.append(f"{PREFIX}{name} is required")
                    return ""
                return default
            return value

        def number(name: str, default: float, low: float, high: float, *, integer: bool = True) -> float:
            raw = text(name, str(default))
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                kind = "an integer" if integer else "a number"
                problems.append(f"{PREFIX}{name} must be {kind}, got {raw!r}")
                return default
            if not low <= value <= high:
                problems.append(f"{PREFIX}{name} must be between {low} and {high}, got {value}")
                return default
            return value

        url = text("BROKER_URL")
        if url and (problem := broker_url_problem(url)) is not None:
            problems.append(f"{PREFIX}BROKER_URL {problem}")
        queue = text("QUEUE")
        if queue and not queue.endswith(".tasks"):
            problems.append(f"{PREFIX}QUEUE must name a job's task queue (ending in .tasks), got {queue!r}")
        # The worker's own bound, wider than what a FilterJob may ask for (spec.workers.concurrency).
        concurrency = int(number("CONCURRENCY", CONCURRENCY.default, CONCURRENCY.minimum, 256))
        # One delivery beyond the concurrency waits ready, so no slot idles for a round trip.
        prefetch = int(number("PREFETCH", concurrency + 1, 1, 10_000))
        if prefetch < concurrency:
            problems.append(f"{PREFIX}PREFETCH ({prefetch}) must be at least {PREFIX}CONCURRENCY ({concurrency})")
        port = int(number("HEALTH_PORT", 8080, 0, 65535))
        level = text("LOG_LEVEL", "INFO").upper()
        if level not in LOG_LEVELS:
            problems.append(f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        attempts = int(number("MAX_ATTEMPTS", ATTEMPTS.default, ATTEMPTS.minimum, ATTEMPTS.maximum))
        # Positive, like RetryPolicy and the FilterJob API (spec.retry), so any valid job's workers start.
        backoff = number("BACKOFF_SECONDS", *_bounds(BACKOFF_SECONDS), integer=False)
        max_backoff = number("MAX_BACKOFF_SECONDS", *_bounds(MAX_BACKOFF_SECONDS), integer=False)
        for name, seconds in (("BACKOFF_SECONDS", backoff), ("MAX_BACKOFF_SECONDS", max_backoff)):
            if seconds <= 0:
                problems.append(f"{PREFIX}{name} must be positive, got {seconds}")
        grace = number("GRACE_SECONDS", 25.0, 0, 3600, integer=False)
        executor = text("EXECUTOR", "thread")
        if executor not in ("process", "thread"):
            problems.append(f"{PREFIX}EXECUTOR must be process or thread, got {executor!r}")
        parent = int(number("PARENT_PID", 0, 0, 2**22)) or None
        if problems:
            raise SpecError(problems)
        return cls(
            broker_url=url,
            queue=queue,
            concurrency=concurrency,
            prefetch=prefetch,
            health_port=port,
            log_level=level,
            retry=RetryPolicy(max_attempts=attempts, backoff_seconds=backoff, max_backoff_seconds=max_backoff),
            grace_seconds=grace,
            executor="process" if executor == "process" else "thread",
            worker_id=text("WORKER_ID", f"{socket.gethostname()}-{os.getpid()}"),
            parent_pid=parent,
        )
