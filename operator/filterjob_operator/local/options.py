"""What a local run is given, beyond its FilterJob: one set of options per runner."""

from __future__ import annotations

import os
from dataclasses import dataclass

from filterjob_worker.core.codec import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    """A run with a process pool (:func:`filterjob_operator.local.pool.run_local`)."""

    workers: int = os.cpu_count() or 1
    skip_existing: bool = False
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True, kw_only=True)
class BrokerOptions:
    """A run through RabbitMQ (:mod:`filterjob_operator.local.brokered`)."""

    broker_url: str
    workers: int = 2
    concurrency: int = 1
    skip_existing: bool = False
    log_dir: str | None = None
