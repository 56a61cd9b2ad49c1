"""The AMQP calls the worker package owns, shared with the operator (the worker never imports the operator)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import PublishError
from aiormq.abc import DeliveredMessage


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
