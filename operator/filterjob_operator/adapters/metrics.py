"""The operator's Prometheus metrics: queue depth (the HPA's External metric) and replicas."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_messages = Gauge(
            "filterjob_queue_messages",
            "Outstanding tasks of a job (ready + unacked + retrying): the autoscaling signal.",
            ["namespace", "job"],
            registry=self.registry,
        )
        self.desired_replicas = Gauge(
            "filterjob_desired_replicas",
            "Worker replicas the operator wants.",
            ["namespace", "job"],
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    def forget(self, namespace: str, job: str) -> None:
        for gauge in (self.queue_messages, self.desired_replicas):
            gauge.remove(namespace, job)
