"""Which workers hold which deliveries, read from the real management API
(``adapters.broker.consumers``): real worker processes, a task held at a gate, a consumer that is no
worker's, and the join of consumers, channels and connections that names each worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiohttp import web

from filterjob_operator.adapters.broker.consumers import unacked_by_worker
from filterjob_operator.adapters.broker.management import Management
from filterjob_operator.core.samples import make_image
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, MANAGEMENT_URL, make_tasks, publish
from tests.helpers.gates import Gates, holders
from tests.helpers.workers import WorkerFactory

#: Management statistics are emitted every 5 s: what a worker holds shows within a few of those.
WITHIN = 30.0


async def until_reported(management: Management, queue: str, expected: dict[str, int]) -> dict[str, int]:
    """What the API reports for ``queue``, once it reports ``expected`` (or the deadline passed)."""
    deadline = time.monotonic() + WITHIN
    while True:
        seen = await unacked_by_worker(management, queue)
        if seen == expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.25)  # polling interval of the management API


@pytest.mark.slow
async def test_each_worker_is_named_with_the_deliveries_it_holds_and_other_consumers_are_not(
    channel: AbstractChannel, declared: Topology, spawn_worker: WorkerFactory, tmp_path: Path
) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_image((40, 30), 1).save(src / "held.png")
    tasks = make_tasks(declared, src, dst)
    gates = Gates(src, ["held.png"])
    gates.close()
    workers = [spawn_worker(FILTERJOB_CONCURRENCY="1", FILTERJOB_PREFETCH="1") for _ in range(3)]
    for worker in workers:
        await worker.consuming()
    await publish(channel, declared, tasks)
    fd = await asyncio.to_thread(gates.reached, "held.png")
    (pid,) = await asyncio.to_thread(holders, gates.fifos["held.png"])
    (busy,) = (f"w{i}" for i, worker in enumerate(workers) if worker.pid == pid)
    expected = {f"w{i}": int(f"w{i}" == busy) for i in range(len(workers))}
    # Someone else's consumer on the task queue (once the task is taken), on a connection with a
    # name of its own: no worker.
    other = await aio_pika.connect(BROKER_URL, client_properties={"connection_name": "a person's consumer"})
    try:

        async def hold(message: AbstractIncomingMessage) -> None:
            pass  # never acked: it returns to the queue when the connection closes

        queue = await (await other.channel()).get_queue(declared.tasks)
        await queue.consume(hold, no_ack=False)

        async with Management(MANAGEMENT_URL) as management:
            assert await until_reported(management, declared.tasks, expected) == expected
            # Busy is ready: a pod's deletion cost orders only pods of equal readiness.
            busy_worker = workers[int(busy[1:])]
            async with aiohttp.ClientSession() as session, session.get(busy_worker.health_url + "/readyz") as answer:
                assert (answer.status, (await answer.json())["ready"]) == (200, True)
            gates.release("held.png", fd)
            idle = dict.fromkeys(expected, 0)
            assert await until_reported(management, declared.tasks, idle) == idle  # done: held no more
            assert await unacked_by_worker(management, declared.parked) == {}  # a queue no worker consumes
    finally:
        await other.close()


async def test_a_listing_that_is_no_json_array_is_an_api_that_is_down() -> None:
    async def an_object(request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_get("/api/vhosts/{vhost}/channels", an_object)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with Management(f"http://guest:guest@127.0.0.1:{runner.addresses[0][1]}/") as management:
            with pytest.raises(aiohttp.ClientResponseError, match="its answer is no JSON array"):
                await management.channels()
    finally:
        await runner.cleanup()
