"""Defaults and ranges of the FilterJob API's numbers, said once.

The API's model (``filterjob_operator.core.spec``, and from it the CRD's schema), the retry
policy and output format of the worker, and the worker's configuration from its
environment all read them here (the worker never imports the operator, so the shared
definition lives on this side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

N = TypeVar("N", int, float)


@dataclass(frozen=True, kw_only=True)
class Range(Generic[N]):
    """A default and the inclusive bounds around it; ``exclusive_minimum``: above the minimum."""

    default: N
    minimum: N
    maximum: N
    exclusive_minimum: bool = False


#: Images a worker pod processes at once (``spec.workers.concurrency``).
CONCURRENCY = Range(default=2, minimum=1, maximum=64)
#: Attempts before a failing task is parked (``spec.retry.maxAttempts``); bounds a job's retry queues.
ATTEMPTS = Range(default=3, minimum=1, maximum=100)
#: First retry delay, doubled for each further retry (``spec.retry.backoffSeconds``).
BACKOFF_SECONDS = Range(default=2.0, minimum=0, maximum=3600, exclusive_minimum=True)
#: Longest retry delay (``spec.retry.maxBackoffSeconds``).
MAX_BACKOFF_SECONDS = Range(default=300.0, minimum=0, maximum=86400, exclusive_minimum=True)
#: JPEG/WebP quality (``spec.destination.quality``).
QUALITY = Range(default=90, minimum=1, maximum=100)
#: Steps a job's pipeline may have (``spec.filters``): the CRD's per-step CEL rules are costed for
#: this many, and every task message carries the whole pipeline.
MAX_FILTERS = 64
