"""Prometheus metrics of one worker, in a registry of its own (tests run several)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("succeeded", "retried", "parked")


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.tasks = Counter(
            "filterjob_tasks", "Tasks finished by this worker, by outcome.", ["outcome"], registry=self.registry
        )
        for outcome in OUTCOMES:
            self.tasks.labels(outcome)  # export zeros from the start
        self.duration = Histogram(
            "filterjob_task_duration_seconds",
            "Time to process one image (read, filter, write).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.in_flight = Gauge("filterjob_tasks_in_flight", "Tasks being processed now.", registry=self.registry)
        self.parked = Counter("filterjob_parked", "Tasks parked for good, by cause.", ["cause"], registry=self.registry)
        self.health = Gauge(
            "filterjob_worker_health",
            "1 for the current health state of this worker.",
            ["state"],
            registry=self.registry,
        )
