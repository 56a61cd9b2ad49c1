"""Broker clients for synchronous tests that block on the API server: an event loop in a thread
of its own (:class:`BrokerThread`) and stand-in workers that hold tasks unacked (:class:`BusyWorkers`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from filterjob_worker.adapters import storage
from filterjob_worker.core.contract import Task
from tests.helpers.brokers import BROKER_URL

T = TypeVar("T")


class BrokerThread:
    """An event loop in a thread of its own for broker connections that outlive one call (deliveries
    held unacked), usable from synchronous tests that block on the API server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broker-client", daemon=True)
        self.thread.start()
        self.connections: list[aio_pika.abc.AbstractConnection] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self) -> aio_pika.abc.AbstractConnection:
        """A connection, closed with this thread (unacked deliveries go back to their queues)."""
        connection = self.run(aio_pika.connect(BROKER_URL))
        self.connections.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.connections:
            self.run(connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class BusyWorkers:
    """Plays the workers at the broker: takes tasks and holds them unacked, as busy workers do, and
    finishes them when told. The queue states the scaler reads are then real and exactly known."""

    def __init__(self, broker_thread: BrokerThread, queue: str) -> None:
        self.broker = broker_thread
        self.held: list[AbstractIncomingMessage] = []
        self.queue = broker_thread.run(self._open(broker_thread.connect(), queue))

    @staticmethod
    async def _open(connection: aio_pika.abc.AbstractConnection, name: str) -> aio_pika.abc.AbstractQueue:
        channel = await connection.channel()
        return await channel.get_queue(name)

    def take(self, count: int) -> None:
        async def take() -> None:
            for _ in range(count):
                message = await self.queue.get(no_ack=False)
                assert message is not None
                self.held.append(message)

        self.broker.run(take())

    def ack(self, count: int) -> None:
        """Finish ``count`` held tasks as a worker does: the output written, then the ack (the
        operator counts only outputs its destination holds)."""

        async def ack() -> None:
            for message in self.held[:count]:
                output = storage.to_path(Task.from_json(message.body).output)
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_bytes(b"done")
                await message.ack()
            del self.held[:count]

        self.broker.run(ack())
