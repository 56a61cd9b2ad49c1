"""A delivery is acked only after its follow-ups; whatever stops them, it is handed back, never held."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from aio_pika.exceptions import DeliveryError
from pamqp.commands import Basic
from prometheus_client import CollectorRegistry

from filterjob_worker.consumer import Consumer
from filterjob_worker.core.environment import WorkerConfig
from filterjob_worker.health import Health
from filterjob_worker.metrics import WorkerMetrics


@dataclass
class Settled:
    """The settling calls an incoming message received."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def ack(self) -> None:
        self.calls.append(("ack", {}))

    async def nack(self, **kwargs: Any) -> None:
        self.calls.append(("nack", kwargs))


def consumer() -> Consumer:
    config = WorkerConfig(broker_url="amqp://127.0.0.1:1/", queue="fj.ns.j.u.tasks", worker_id="w")
    metrics = WorkerMetrics(registry=CollectorRegistry())
    return Consumer(config, health=Health(), metrics=metrics, executor_factory=lambda: ThreadPoolExecutor(1))


async def follow_up(error: BaseException | None) -> None:
    if error is not None:
        raise error


async def test_a_delivery_is_acked_once_its_follow_ups_are_done() -> None:
    message = Settled()
    await consumer()._settle(message, follow_up(None))  # type: ignore[arg-type]
    assert message.calls == [("ack", {})]


@pytest.mark.parametrize(
    "error",
    [
        DeliveryError(None, Basic.Nack(delivery_tag=1)),
        ValueError("a header pamqp cannot encode"),
        ConnectionError("connection lost"),
    ],
)
async def test_a_follow_up_that_fails_hands_the_delivery_back_instead_of_holding_it(error: Exception) -> None:
    message = Settled()
    await consumer()._settle(message, follow_up(error))  # type: ignore[arg-type]
    assert message.calls == [("nack", {"requeue": True})]
