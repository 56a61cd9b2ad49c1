"""The job's listing in its inputs queue: replaced by a lister, read without being consumed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator import broker, listing
from filterjob_worker.topology import Topology, delete


@pytest.fixture
async def inputs(channel: AbstractChannel, topology: Topology) -> AsyncIterator[Topology]:
    yield topology
    await delete(channel, topology)


async def test_no_inputs_queue_means_no_stored_listing(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    assert await broker.stored_listing(connection, topology) is None
    assert await broker.stored_listing(connection, topology) is None  # and the connection is still usable


async def test_a_listing_is_read_again_and_again_and_replaced_by_the_next_lister(
    connection: AbstractRobustConnection, channel: AbstractChannel, inputs: Topology
) -> None:
    keys = [f"{n:04d}.png" for n in range(25)]
    published = await broker.publish_listing(channel, inputs, listing.encode("first", keys, chunk=10))
    assert published == 3
    for _ in range(3):  # reading consumes nothing
        assert await broker.stored_listing(connection, inputs) == listing.Listing(run="first", keys=keys)
    await broker.publish_listing(channel, inputs, [listing.encode_error("second", "spec.source.uri: gone")])
    assert await broker.stored_listing(connection, inputs) == listing.Listing(
        run="second", error="spec.source.uri: gone"
    )


async def test_a_watch_wakes_when_the_listing_completes_and_leaves_it_in_place(
    connection: AbstractRobustConnection, channel: AbstractChannel, inputs: Topology
) -> None:
    messages = listing.encode("run", ["a", "b", "c"], chunk=1)
    async with broker.ListingWatch(connection, inputs) as watch:
        assert await watch.next(0.05) is None
        lister = asyncio.create_task(broker.publish_listing(channel, inputs, messages))
        found = None
        async with asyncio.timeout(10):
            while found is None:
                found = await watch.next(5)
        await lister
    assert found == listing.Listing(run="run", keys=["a", "b", "c"])
    assert await broker.stored_listing(connection, inputs) == found
