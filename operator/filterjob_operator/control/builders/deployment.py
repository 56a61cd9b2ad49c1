"""The worker Deployment of a FilterJob."""

from __future__ import annotations

from filterjob_operator.control.builders.common import (
    Manifest,
    broker_url_env,
    metadata,
    pod_metadata,
    pod_spec,
    selector,
    workers_name,
)
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.jobworkers import worker_env
from filterjob_operator.core.spec import FilterJob
from filterjob_worker.core.environment import Var

HEALTH_PORT = 8080


def _env(job: FilterJob, settings: Settings, broker_secret: str) -> list[Manifest]:
    plain = {
        **worker_env(job),
        Var.HEALTH_PORT: str(HEALTH_PORT),
        Var.GRACE_SECONDS: str(settings.worker_grace_seconds),
    }
    return [
        broker_url_env(broker_secret),
        {"name": Var.WORKER_ID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *({"name": k, "value": v} for k, v in sorted(plain.items())),
    ]


def _probe(path: str, *, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def build(job: FilterJob, *, settings: Settings, replicas: int, broker_secret: str) -> Manifest:
    """The worker Deployment; ``replicas`` is decided by the scaling logic."""
    meta = metadata(job, workers_name(job), "worker")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(job)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": pod_metadata(
                    job,
                    meta["labels"],
                    {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HEALTH_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                ),
                "spec": pod_spec(
                    job,
                    settings,
                    {
                        "name": "worker",
                        "command": ["filterjob-worker"],
                        "env": _env(job, settings, broker_secret),
                        "ports": [{"name": "http", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
                        "livenessProbe": _probe("/healthz", period=10, failures=3),
                        "readinessProbe": _probe("/readyz", period=5, failures=1),
                    },
                    # In-flight images finish within the worker's grace; the rest is margin.
                    terminationGracePeriodSeconds=settings.worker_grace_seconds + 10,
                ),
            },
        },
    }
