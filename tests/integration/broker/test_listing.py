"""The job's listing in its inputs queue: replaced by a lister, read without being consumed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters.broker.listings import ListingWatch, publish_listing, stored_listing
from filterjob_operator.adapters.broker.topology import delete
from filterjob_operator.core import exits, listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import parse_job
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, filterjob


@pytest.fixture
async def inputs(channel: AbstractChannel, topology: Topology) -> AsyncIterator[Topology]:
    yield topology
    await delete(channel, topology)


async def test_no_inputs_queue_means_no_stored_listing(
    connection: AbstractRobustConnection, topology: Topology
) -> None:
    assert await stored_listing(connection, topology) is None
    assert await stored_listing(connection, topology) is None  # and the connection is still usable


async def test_a_listing_is_read_again_and_again_and_replaced_by_the_next_lister(
    connection: AbstractRobustConnection, channel: AbstractChannel, inputs: Topology
) -> None:
    keys = [f"{n:04d}.png" for n in range(25)]
    published = await publish_listing(channel, inputs, listing.encode("first", keys, chunk=10))
    assert published == 3
    for _ in range(3):  # reading consumes nothing
        assert await stored_listing(connection, inputs) == listing.Listing(run="first", keys=keys)
    await publish_listing(channel, inputs, [listing.encode_error("second", "spec.source.uri: gone")])
    assert await stored_listing(connection, inputs) == listing.Listing(run="second", error="spec.source.uri: gone")


async def test_a_watch_wakes_when_the_listing_completes_and_leaves_it_in_place(
    connection: AbstractRobustConnection, channel: AbstractChannel, inputs: Topology
) -> None:
    messages = listing.encode("run", ["a", "b", "c"], chunk=1)
    async with ListingWatch(connection, inputs) as watch:
        assert await watch.next(0.05) is None
        lister = asyncio.create_task(publish_listing(channel, inputs, messages))
        found = None
        async with asyncio.timeout(10):
            while found is None:
                found = await watch.next(5)
        await lister
    assert found == listing.Listing(run="run", keys=["a", "b", "c"])
    assert await stored_listing(connection, inputs) == found


async def outputs_listing(connection: AbstractRobustConnection, topology: Topology) -> listing.Listing | None:
    async with ListingWatch(connection, topology, queue_name=topology.outputs) as watch:
        return await watch.next(10)


@pytest.fixture
def cluster_job(tmp_path: Path, job_doc: dict[str, Any]) -> dict[str, Any]:
    """A cluster job as its verifier Job gets it (``FILTERJOB_JOB``), with a name of its own."""
    job_doc["metadata"].update(name=f"verified-{uuid.uuid4().hex[:6]}", uid=uuid.uuid4().hex)
    job_doc["spec"]["source"]["uri"] = (tmp_path / "in").as_uri() + "/"
    job_doc["spec"]["destination"] = {"uri": (tmp_path / "out").as_uri() + "/", "format": "png"}
    return job_doc


@pytest.fixture
async def job_topology(channel: AbstractChannel, cluster_job: dict[str, Any]) -> AsyncIterator[Topology]:
    topology = topology_of(parse_job(cluster_job))
    yield topology
    await delete(channel, topology)


async def test_verify_outputs_lists_the_destination_into_the_outputs_queue_replacing_an_earlier_report(
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    cluster_job: dict[str, Any],
    job_topology: Topology,
    tmp_path: Path,
) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    for key in ("a.png", "sub/b.png"):
        (tmp_path / "out" / key).write_bytes(b"x")
    env = {"FILTERJOB_JOB": json.dumps(cluster_job)}
    for expected in (["a.png", "sub/b.png"], ["a.png"]):
        result = await asyncio.to_thread(filterjob, "verify-outputs", "--broker", BROKER_URL, env=env)
        assert result.returncode == exits.OK, result.stderr
        assert f"{len(expected)} outputs found, listed into {job_topology.outputs}" in result.stderr
        found = await outputs_listing(connection, job_topology)
        assert found is not None
        assert (found.keys, found.error) == (expected, None)
        (tmp_path / "out" / "sub" / "b.png").unlink(missing_ok=True)
    assert await stored_listing(connection, job_topology) is None  # the inputs' listing is another queue


async def test_verify_outputs_reports_a_destination_it_cannot_list_and_exits_zero(
    connection: AbstractRobustConnection, cluster_job: dict[str, Any], job_topology: Topology, tmp_path: Path
) -> None:
    (tmp_path / "out").write_bytes(b"a file where the destination should be")
    env = {"FILTERJOB_JOB": json.dumps(cluster_job)}
    result = await asyncio.to_thread(filterjob, "verify-outputs", "--broker", BROKER_URL, env=env)
    assert result.returncode == exits.OK, result.stderr
    found = await outputs_listing(connection, job_topology)
    assert found is not None
    assert found.keys == []
    assert found.error is not None
    assert found.error.startswith(f"the destination {cluster_job['spec']['destination']['uri']} cannot be listed")
    assert f"{tmp_path / 'out'}: cannot be listed: Not a directory" in found.error
    assert "Traceback" not in result.stderr
