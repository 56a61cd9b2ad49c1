"""Parked tasks: listed in place with their reasons, and re-driven to the task queue."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError, PublishError

from filterjob_operator.adapters.broker_errors import BrokerUnavailable
from filterjob_worker.adapters import amqp
from filterjob_worker.core import envelope
from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import MalformedMessage
from filterjob_worker.core.topology import Topology

#: The reason of a task the broker parked (its delivery limit), which no worker explained.
DELIVERY_LIMIT_REASON = "the task kept failing its workers (delivery limit exceeded)"


@dataclass(frozen=True)
class Parked:
    task: str
    reason: str
    #: The input's URI, when the task decodes (a malformed task has none).
    input: str = ""
    attempt: int = 0


def parked_of(message: AbstractIncomingMessage) -> Parked:
    """What a parked message says about its task (attempt 0: its headers name none)."""
    try:
        source = Task.from_json(message.body).input
    except MalformedMessage:
        source = ""
    reason = envelope.reason_of(message.headers)
    return Parked(
        task=message.message_id or "",
        reason=DELIVERY_LIMIT_REASON if reason is None else reason,
        input=source,
        attempt=envelope.attempt_of(message.headers) or 0,
    )


async def parked_failures(connection: AbstractConnection, topology: Topology) -> list[Parked]:
    """Every distinct parked task with its reason, read without removing anything.

    Messages are fetched unacknowledged on a channel of their own and all return
    to the queue when it closes. Distinct by task id, so a task parked twice (a
    worker killed between parking and acking) counts once.
    """
    channel = await connection.channel()
    seen: dict[str, Parked] = {}
    try:
        queue = await channel.get_queue(topology.parked, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            parked = parked_of(message)
            seen.setdefault(parked.task, parked)
    finally:
        await channel.close()
    return list(seen.values())


async def redrive(connection: AbstractConnection, topology: Topology) -> list[Parked]:
    """Move every parked task back to the task queue with a fresh attempt count.

    One at a time: a task is acked off the parked queue only after its copy in the
    task queue is confirmed, so a crash in between leaves it in both places (done
    twice, harmlessly: outputs are idempotent) and never in neither.
    """
    channel = await connection.channel(publisher_confirms=True)
    moved: list[Parked] = []
    try:
        queue = await channel.get_queue(topology.parked, ensure=True)
        await channel.get_queue(topology.tasks, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            try:
                await amqp.publish_confirmed(
                    channel.default_exchange, envelope.redriven_message(message), routing_key=topology.tasks
                )
            except PublishError as e:  # returned: the task queue is gone
                raise RedriveRefused(topology, moved, f"returned ({envelope.returned_why(e)})") from e
            except DeliveryError as e:  # nacked: the queue is full (a max-length policy) or failing
                raise RedriveRefused(topology, moved, "refused") from e
            await message.ack()
            moved.append(parked_of(message))
    finally:
        # Closing returns an unacked parked task (the one refused) to the parked queue.
        with contextlib.suppress(Exception):
            await channel.close()
    return moved


class RedriveRefused(BrokerUnavailable):
    """The broker would not take a parked task back into the task queue; the tasks not
    moved are all still parked (each leaves the parked queue only once its copy is confirmed)."""

    def __init__(self, topology: Topology, moved: list[Parked], what: str) -> None:
        self.moved = moved
        super().__init__(
            f"the broker {what} a parked task moved back to {topology.tasks}: {len(moved)} moved,"
            f" the others are still parked in {topology.parked}; check that queue's limits"
            " (a max-length policy) and run redrive again"
        )
