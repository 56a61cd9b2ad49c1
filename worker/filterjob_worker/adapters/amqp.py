"""Confirmed publishing: the worker's retries and parked copies, and the operator's tasks
(here, as the worker never imports the operator)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import DeliveryError, PublishError
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from filterjob_worker.core.envelope import returned_why


async def publish_confirmed(exchange: AbstractExchange, message: aio_pika.Message, *, routing_key: str) -> None:
    """Publish ``message`` and wait for the broker to take it (on a channel with publisher confirms).

    Raises ``PublishError`` when the broker returns it as unroutable (no queue of that
    name): aio-pika hands a returned message back instead of raising unless the channel
    has ``on_return_raises``, and either way it was not enqueued. A nack raises
    aio-pika's ``DeliveryError`` (``PublishError`` is one too: catch it first).
    """
    result = await exchange.publish(message, routing_key=routing_key)
    if isinstance(result, DeliveredMessage):
        raise PublishError(result, result.delivery)


def describe_refusal(error: DeliveryError) -> str:
    """What the broker did with a message it did not take, naming the queue it was meant for."""
    if isinstance(error, PublishError) and error.message and isinstance(error.message.delivery, Basic.Return):
        queue = error.message.delivery.routing_key
        return f"the broker returned a message for queue {queue!r} ({returned_why(error)}: was the queue deleted?)"
    return f"the broker refused a message (nack): {error}"
