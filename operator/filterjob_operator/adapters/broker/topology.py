"""Declaring and deleting a job's queues and exchanges (the names and arguments are
:mod:`filterjob_worker.core.topology`'s; only the control plane and local mode declare, never a worker)."""

from __future__ import annotations

from aio_pika.abc import AbstractChannel, AbstractQueue, ExchangeType

from filterjob_worker.core.topology import INPUTS_ARGUMENTS, Topology


async def declare(channel: AbstractChannel, topology: Topology) -> None:
    """Declare every queue and the events exchange; safe to call any number of times."""
    dead_letters = await channel.declare_exchange(topology.dead_letters, ExchangeType.FANOUT, durable=True)
    for queue, arguments in topology.arguments().items():
        declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
        if queue == topology.parked:
            await declared.bind(dead_letters)
    await channel.declare_exchange(topology.events, ExchangeType.TOPIC, durable=True)


async def declare_inputs(channel: AbstractChannel, topology: Topology, *, queue: str | None = None) -> AbstractQueue:
    """Declare the queue of the job's input listing (or another listing queue, ``queue``:
    :attr:`Topology.outputs`); safe to call any number of times."""
    return await channel.declare_queue(queue or topology.inputs, durable=True, arguments=INPUTS_ARGUMENTS)


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove a job's queues and exchange (when the job is deleted)."""
    for queue in [*topology.queues, topology.inputs, topology.outputs]:
        await channel.queue_delete(queue)
    await channel.exchange_delete(topology.events)
    await channel.exchange_delete(topology.dead_letters)
