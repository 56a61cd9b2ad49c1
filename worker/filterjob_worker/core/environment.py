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
| ``FILTERJOB_WORKER_ID`` | name in logs, events and the AMQP connection's name | hostname-pid |
| ``FILTERJOB_PARENT_PID`` | local mode: drain and exit when this process (the supervisor) dies | unset |
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from filterjob_worker.core.errors import SpecError, shown
from filterjob_worker.core.limits import ATTEMPTS, BACKOFF_SECONDS, CONCURRENCY, MAX_BACKOFF_SECONDS, Range
from filterjob_worker.core.topology import TASKS_SUFFIX, RetryPolicy, Topology
from filterjob_worker.core.urls import broker_url_problem


class Var:
    """The worker's environment variables, named once: :meth:`WorkerConfig.to_env` writes them,
    :meth:`WorkerConfig.from_env` reads them, the operator and ``filterjob run`` set them."""

    BROKER_URL: Final = "FILTERJOB_BROKER_URL"
    QUEUE: Final = "FILTERJOB_QUEUE"
    CONCURRENCY: Final = "FILTERJOB_CONCURRENCY"
    PREFETCH: Final = "FILTERJOB_PREFETCH"
    HEALTH_PORT: Final = "FILTERJOB_HEALTH_PORT"
    LOG_LEVEL: Final = "FILTERJOB_LOG_LEVEL"
    MAX_ATTEMPTS: Final = "FILTERJOB_MAX_ATTEMPTS"
    BACKOFF_SECONDS: Final = "FILTERJOB_BACKOFF_SECONDS"
    MAX_BACKOFF_SECONDS: Final = "FILTERJOB_MAX_BACKOFF_SECONDS"
    GRACE_SECONDS: Final = "FILTERJOB_GRACE_SECONDS"
    EXECUTOR: Final = "FILTERJOB_EXECUTOR"
    WORKER_ID: Final = "FILTERJOB_WORKER_ID"
    PARENT_PID: Final = "FILTERJOB_PARENT_PID"


#: What a worker's AMQP connection name starts with; the rest is its worker id (a Deployment's pod
#: name), so the operator finds each pod's unacked deliveries in the management API by it.
CONNECTION_PREFIX: Final = "filterjob-worker "


def connection_name(worker_id: str) -> str:
    """The name a worker gives its AMQP connection (``client_properties.connection_name``)."""
    return CONNECTION_PREFIX + worker_id


def worker_of(name: str) -> str | None:
    """The worker id a connection name holds, or None for a connection that is no worker's."""
    worker = name.removeprefix(CONNECTION_PREFIX)
    return worker if worker != name and worker else None


#: The worker's exit code when it rejects its configuration (as ``filterjob``'s ``exits.INVALID``):
#: restarting it cannot help, so the local supervisor stops the run instead.
INVALID_CONFIG_EXIT = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    def from_env(cls, env: Mapping[str, str]) -> WorkerConfig:
        """The configuration ``env`` holds; raises :class:`SpecError` naming every bad variable.

        No worker id when ``env`` names none: the worker names itself at startup
        (:func:`filterjob_worker.config.load`).
        """
        read = _Reader(env)
        url = read.text(Var.BROKER_URL)
        if url and (problem := broker_url_problem(url)) is not None:
            read.problems.append(f"{Var.BROKER_URL} {problem}")
        queue = read.text(Var.QUEUE)
        if queue and (not queue.endswith(TASKS_SUFFIX) or queue == TASKS_SUFFIX):
            read.problems.append(f"{Var.QUEUE} must name a job's task queue (ending in .tasks), got {shown(queue)}")
        # The worker's own bound, wider than what a FilterJob may ask for (spec.workers.concurrency).
        concurrency = int(read.number(Var.CONCURRENCY, CONCURRENCY.default, CONCURRENCY.minimum, 256))
        prefetch = int(read.number(Var.PREFETCH, concurrency + 1, 1, 10_000))
        if prefetch < concurrency:
            read.problems.append(f"{Var.PREFETCH} ({prefetch}) must be at least {Var.CONCURRENCY} ({concurrency})")
        # The class attributes are the fields' defaults.
        port = int(read.number(Var.HEALTH_PORT, cls.health_port, 0, 65535))
        level = read.text(Var.LOG_LEVEL, cls.log_level).upper()
        if level not in LOG_LEVELS:
            read.problems.append(f"{Var.LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}, got {shown(level)}")
        retry = _retry(read)
        grace = read.number(Var.GRACE_SECONDS, cls.grace_seconds, 0, 3600, integer=False)
        executor = read.text(Var.EXECUTOR, cls.executor)
        if executor not in ("process", "thread"):
            read.problems.append(f"{Var.EXECUTOR} must be process or thread, got {shown(executor)}")
        parent = int(read.number(Var.PARENT_PID, 0, 0, 2**22)) or None
        if read.problems or retry is None:
            raise SpecError(read.problems)
        return cls(
            broker_url=url,
            queue=queue,
            concurrency=concurrency,
            prefetch=prefetch,
            health_port=port,
            log_level=level,
            retry=retry,
            grace_seconds=grace,
            executor="process" if executor == "process" else "thread",
            worker_id=read.text(Var.WORKER_ID, ""),
            parent_pid=parent,
        )

    def to_env(self, *, only: Collection[str] | None = None) -> dict[str, str]:
        """The environment :meth:`from_env` reads back as this configuration; ``only``: just these variables.

        No worker id or parent pid when there is none (the worker then names itself, and
        has no parent to watch).
        """
        env = {
            Var.BROKER_URL: self.broker_url,
            Var.QUEUE: self.queue,
            Var.CONCURRENCY: str(self.concurrency),
            Var.PREFETCH: str(self.prefetch),
            Var.HEALTH_PORT: str(self.health_port),
            Var.LOG_LEVEL: self.log_level,
            Var.MAX_ATTEMPTS: str(self.retry.max_attempts),
            Var.BACKOFF_SECONDS: str(self.retry.backoff_seconds),
            Var.MAX_BACKOFF_SECONDS: str(self.retry.max_backoff_seconds),
            Var.GRACE_SECONDS: str(self.grace_seconds),
            Var.EXECUTOR: self.executor,
        }
        if self.worker_id:
            env[Var.WORKER_ID] = self.worker_id
        if self.parent_pid is not None:
            env[Var.PARENT_PID] = str(self.parent_pid)
        return env if only is None else {name: value for name, value in env.items() if name in only}


@dataclass
class _Reader:
    """Reads variables, collecting every problem instead of stopping at the first."""

    env: Mapping[str, str]
    problems: list[str] = field(default_factory=list)

    def text(self, name: str, default: str | None = None) -> str:
        """The value; blank means the default (``None``: the variable is required)."""
        value = self.env.get(name, "").strip()
        if not value:
            if default is None:
                self.problems.append(f"{name} is required")
                return ""
            return default
        return value

    def number(self, name: str, default: float, low: float, high: float, *, integer: bool = True) -> float:
        raw = self.text(name, str(default))
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number"
            self.problems.append(f"{name} must be {kind}, got {shown(raw)}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low} and {high}, got {value}")
            return default
        return value


def _retry(read: _Reader) -> RetryPolicy | None:
    """The retry policy, or None when a variable of it is wrong (a problem says which)."""
    attempts = int(read.number(Var.MAX_ATTEMPTS, ATTEMPTS.default, ATTEMPTS.minimum, ATTEMPTS.maximum))
    # Positive, like RetryPolicy and the FilterJob API (spec.retry), so any valid job's workers start.
    backoff = read.number(Var.BACKOFF_SECONDS, *_bounds(BACKOFF_SECONDS), integer=False)
    max_backoff = read.number(Var.MAX_BACKOFF_SECONDS, *_bounds(MAX_BACKOFF_SECONDS), integer=False)
    positive = True
    for name, seconds in ((Var.BACKOFF_SECONDS, backoff), (Var.MAX_BACKOFF_SECONDS, max_backoff)):
        if seconds <= 0:
            read.problems.append(f"{name} must be positive, got {seconds}")
            positive = False
    return (
        RetryPolicy(max_attempts=attempts, backoff_seconds=backoff, max_backoff_seconds=max_backoff)
        if positive
        else None
    )
