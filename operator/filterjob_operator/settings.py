"""Operator settings, from environment variables set by the chart.

| variable | meaning | default |
|---|---|---|
| ``FILTERJOB_WORKER_IMAGE`` | worker image when a job names none | ``ghcr.io/filterjob/filterjob:<version>`` |
| ``FILTERJOB_BROKER_SECRET`` | broker Secret (``url``, ``managementUrl``) if a job names none | filterjob-broker |
| ``FILTERJOB_STATUS_INTERVAL`` | seconds between status/scaling passes | 5 |
| ``FILTERJOB_METRICS_PORT`` | port of the operator's /metrics | 9090 |
| ``FILTERJOB_WORKER_GRACE_SECONDS`` | time a worker gets to finish in-flight images | 50 |
| ``FILTERJOB_ENQUEUE_BATCH`` | tasks published between two saves of the enqueue cursor | 500 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from filterjob_worker import __version__

DEFAULT_IMAGE = f"ghcr.io/filterjob/filterjob:{__version__}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    worker_image: str = DEFAULT_IMAGE
    broker_secret: str = "filterjob-broker"  # noqa: S105 -- a Secret's name, not a password
    status_interval: float = 5.0
    metrics_port: int = 9090
    worker_grace_seconds: int = 50
    enqueue_batch: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            worker_image=env.get("FILTERJOB_WORKER_IMAGE", DEFAULT_IMAGE),
            broker_secret=env.get("FILTERJOB_BROKER_SECRET", "filterjob-broker"),
            status_interval=float(env.get("FILTERJOB_STATUS_INTERVAL", "5")),
            metrics_port=int(env.get("FILTERJOB_METRICS_PORT", "9090")),
            worker_grace_seconds=int(env.get("FILTERJOB_WORKER_GRACE_SECONDS", "50")),
            enqueue_batch=int(env.get("FILTERJOB_ENQUEUE_BATCH", "500")),
        )
