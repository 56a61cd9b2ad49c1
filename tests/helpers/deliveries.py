"""An incoming message as the envelope and the parked-task reader see it, for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from filterjob_worker.core.contract import CONTENT_TYPE, Task

TASK = Task(job="ns/j", job_uid="u", task="t1", input="file:///in/a.png", output="file:///out/a.png", filters=())


@dataclass
class Delivery:
    """The parts of an incoming message the envelope reads."""

    body: bytes = TASK.to_json()
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = "t1"
    content_type: str | None = CONTENT_TYPE
    exchange: str = ""
