"""A job's broker as the reconciler uses it: one robust connection, one publishing channel, the
management API; each call one of :mod:`filterjob_operator.adapters.broker`'s."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters import brokerref
from filterjob_operator.adapters.broker.consumers import unacked_by_worker
from filterjob_operator.adapters.broker.depths import depths
from filterjob_operator.adapters.broker.enqueue import Cursor, publish_tasks
from filterjob_operator.adapters.broker.listings import ListingWatch, forget_listing, stored_listing
from filterjob_operator.adapters.broker.management import Management, vhost_of
from filterjob_operator.adapters.broker.parked import Parked, parked_failures, redrive
from filterjob_operator.adapters.broker.topology import declare
from filterjob_operator.core import listing
from filterjob_operator.core.status import Depths
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.operator")


class AmqpBroker:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        management: Management | None,
        topology: Topology,
        *,
        opened: contextlib.AsyncExitStack,
    ) -> None:
        self._connection = connection
        self._management = management
        self._topology = topology
        self._opened = opened
        self._channel: AbstractChannel | None = None

    @property
    def channel(self) -> AbstractChannel:
        assert self._channel is not None, "declare() opens the channel"
        return self._channel

    async def declare(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        await declare(self._channel, self._topology)

    async def publish(self, tasks: Iterable[Task], *, cursor: Cursor) -> None:
        await publish_tasks(self.channel, self._topology, tasks, cursor=cursor)

    async def depths(self, *, enqueued: int) -> Depths:
        return await depths(self.channel, self._topology, self._management, enqueued=enqueued)

    async def unacked_by_worker(self) -> dict[str, int] | None:
        if self._management is None:
            return None
        try:
            return await unacked_by_worker(self._management, self._topology.tasks)
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("management API unavailable, the workers' deletion costs stay as they are: %s", e)
            return None

    async def parked(self) -> list[Parked]:
        return await parked_failures(self._connection, self._topology)

    async def redrive(self) -> list[Parked]:
        return await redrive(self._connection, self._topology)

    async def stored_listing(self) -> listing.Listing | None:
        return await stored_listing(self._connection, self._topology)

    async def forget_listing(self, *, queue_name: str | None = None) -> None:
        await forget_listing(self._connection, self._topology, queue_name=queue_name)

    def watch_listing(self, *, queue_name: str | None = None) -> ListingWatch:
        return ListingWatch(self._connection, self._topology, queue_name=queue_name)

    async def close(self) -> None:
        await self._opened.aclose()


async def connect(url: str, management_url: str | None, *, secret: str, name: str, topology: Topology) -> AmqpBroker:
    """Connected (the first attempt must succeed: see ``brokerref.connect``), with the management API's
    session open unless ``management_url`` is None; closed again if that fails."""
    connection = await brokerref.connect(url, secret=secret, name=name)
    opened = contextlib.AsyncExitStack()
    opened.push_async_callback(connection.close)
    management = None
    if management_url is not None:
        try:
            management = await opened.enter_async_context(Management(management_url, vhost=vhost_of(url)))
        except BaseException:
            await opened.aclose()
            raise
    return AmqpBroker(connection, management, topology, opened=opened)
