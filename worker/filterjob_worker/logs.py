"""Structured logs: one JSON object per line, credentials never printed.

Context fields (``job``, ``task``, ``attempt``, ``worker``) are passed with
``extra=`` and appear as top-level keys, so logs can be filtered per task.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from filterjob_worker.core.urls import scrub

CONTEXT_FIELDS = ("job", "task", "attempt", "worker", "queue", "event", "port")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def configure(level: str = "INFO", *, worker: str | None = None) -> None:
    """Route every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    if worker is not None:
        handler.addFilter(_WithWorker(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiormq/aio-pika are chatty at INFO during reconnects; their warnings still pass.
    for noisy in ("aiormq", "aio_pika", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class _WithWorker(logging.Filter):
    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "worker", None) is None:
            record.worker = self.worker
        return True
