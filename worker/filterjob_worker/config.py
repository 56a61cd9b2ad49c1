"""Worker configuration from environment variables (the pod template's contract).

| variable | meaning | default |
|---|---|---|
| ``FILTERJOB_BROKER_URL`` | amqp(s):// URL of RabbitMQ | required |
| ``FILTERJOB_QUEUE`` | the job's task queue (``….tasks``) | required |
| ``FILTERJOB_CONCURRENCY`` | images processed at once | 2 |
| ``FILTERJOB_PREFETCH`` | unacked deliveries held (≥ concurrency) | concurrency + 1 |
| ``FILTERJOB_HEALTH_PORT`` | port of /healthz, /readyz, /metrics (0: any) | 8080 |
| ``FILTERJOB_LOG_LEVEL`` | DEBUG, INFO, WARNING, ERROR | INFO |
| ``FILTERJOB_MAX_ATTEMPTS`` | attempts before a failing task is parked | 3 |
| ``FILTERJOB_BACKOFF_SECONDS`` | first retry delay, doubled each retry | 2 |
| ``FILTERJOB_MAX_BACKOFF_SECONDS`` | cap of the retry delay | 300 |
| ``FILTERJOB_GRACE_SECONDS`` | time to finish in-flight images on SIGTERM | 25 |
| ``FILTERJOB_EXECUTOR`` | ``thread`` or ``process`` pool for the CPU work | thread |
| ``FILTERJOB_WORKER_ID`` | name in logs and events | hostname-pid |
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from filterjob_worker.errors import SpecError
from filterjob_worker.topology import RetryPolicy, Topology

PREFIX = "FILTERJOB_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def redact(url: str) -> str:
    """A URL with its password replaced, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    broker_url: str
    queue: str
    concurrency: int = 2
    prefetch: int = 3
    health_port: int = 8080
    log_level: str = "INFO"
    retry: RetryPolicy = RetryPolicy()
    grace_seconds: float = 25.0
    # Pillow releases the GIL in decode, filters and encode: threads match processes
    # in throughput (bench/executor_bench.py) without IPC or orphaned children.
    executor: Literal["process", "thread"] = "thread"
    worker_id: str = ""

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
        if url and urlsplit(url).scheme not in ("amqp", "amqps"):
            problems.append(f"{PREFIX}BROKER_URL must be an amqp:// or amqps:// URL, got {redact(url)!r}")
        queue = text("QUEUE")
        if queue and not queue.endswith(".tasks"):
            problems.append(f"{PREFIX}QUEUE must name a job's task queue (ending in .tasks), got {queue!r}")
        concurrency = int(number("CONCURRENCY", 2, 1, 256))
        # One delivery beyond the concurrency waits ready, so no slot idles for a round trip.
        prefetch = int(number("PREFETCH", concurrency + 1, 1, 10_000))
        if prefetch < concurrency:
            problems.append(f"{PREFIX}PREFETCH ({prefetch}) must be at least {PREFIX}CONCURRENCY ({concurrency})")
        port = int(number("HEALTH_PORT", 8080, 0, 65535))
        level = text("LOG_LEVEL", "INFO").upper()
        if level not in LOG_LEVELS:
            problems.append(f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        attempts = int(number("MAX_ATTEMPTS", 3, 1, 100))
        # Positive, like RetryPolicy and the FilterJob API (spec.retry), so any valid job's workers start.
        backoff = number("BACKOFF_SECONDS", 2.0, 0, 3600, integer=False)
        max_backoff = number("MAX_BACKOFF_SECONDS", 300.0, 0, 86400, integer=False)
        for name, seconds in (("BACKOFF_SECONDS", backoff), ("MAX_BACKOFF_SECONDS", max_backoff)):
            if seconds <= 0:
                problems.append(f"{PREFIX}{name} must be positive, got {seconds}")
        grace = number("GRACE_SECONDS", 25.0, 0, 3600, integer=False)
        executor = text("EXECUTOR", "thread")
        if executor not in ("process", "thread"):
            problems.append(f"{PREFIX}EXECUTOR must be process or thread, got {executor!r}")
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
        )
