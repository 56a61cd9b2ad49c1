"""Reliability under faults: workers killed with SIGKILL, RabbitMQ restarted mid-run.

Invariant under test: every input ends as exactly one of an output written or a
parked failure with its reason, whatever dies and whenever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aio_pika.abc import AbstractChannel
from PIL import Image

from filterjob_operator.core.samples import make_image
from filterjob_worker.adapters.storage import TEMP_SUFFIX
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology
from tests.helpers import runs
from tests.helpers.brokers import EventLog, make_tasks, publish
from tests.helpers.gates import Gates
from tests.helpers.workers import WorkerFactory, WorkerProcess

SLOW_FILTERS = ({"name": "blur", "radius": 6}, {"name": "sharpen"})


def assert_every_input_accounted(src: Path, dst: Path, events: EventLog, broken: set[str]) -> None:
    keys = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    assert events.finished() == keys
    written = {
        p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file() and not p.name.endswith(TEMP_SUFFIX)
    }
    assert written == {str(Path(k).with_suffix(".png")) for k in keys - broken}
    for name in written:  # no partial file: every visible output decodes completely
        with Image.open(dst / name) as image:
            image.load()
    failed = {e.task for e in events.of("failed")}
    assert failed == broken


def slow_batch(
    images: Callable[..., tuple[Path, Path]], topology: Topology, count: int, broken: int
) -> tuple[Path, Path, list[Task], set[str]]:
    """Inputs slow enough to be interrupted, some broken: (src, dst, tasks, broken keys)."""
    src, dst = images(count, broken=broken, size=(320, 240))
    bad = {p.relative_to(src).as_posix() for p in (src / "broken").iterdir()}
    return src, dst, make_tasks(topology, src, dst, SLOW_FILTERS), bad


def holder(workers: list[WorkerProcess], fifo: Path) -> WorkerProcess:
    """The worker with ``fifo`` open (its thread executor reads inputs in the worker's own process).

    The gate opens for the test while the reader is still inside its open(): its descriptor shows
    in /proc a moment later, which nothing announces, so this looks until it does.
    """

    def found() -> WorkerProcess | None:
        for worker in workers:
            for fd in Path(f"/proc/{worker.pid}/fd").iterdir():
                with contextlib.suppress(OSError):  # a descriptor closed meanwhile
                    if os.readlink(fd) == str(fifo):
                        return worker
        return None

    runs.wait_for(lambda: found() is not None, timeout=30, message=f"a worker holding {fifo}")
    worker = found()
    assert worker is not None
    return worker


@pytest.mark.slow
async def test_sigkilled_workers_lose_nothing(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    """Three workers, and exactly three kills, each of the worker that holds a gate (an input the
    test keeps closed): killed mid-task, whatever the speed of the machine. Each gate's task comes
    back to another worker, which the test lets through."""
    src, dst = images(60, broken=6)
    broken = {p.relative_to(src).as_posix() for p in (src / "broken").iterdir()}
    names = [f"gate-{k}.png" for k in range(3)]
    for seed, name in enumerate(names):
        make_image((40, 30), seed).save(src / name)
    tasks = make_tasks(declared, src, dst)
    gates = Gates(src, names)
    gates.close()
    # Prefetch 1: a killed worker held its gate's task only. A task a worker had in hand each time
    # one died is parked after a few deaths, as a poison message would be; none here should be.
    one = {"FILTERJOB_PREFETCH": "1"}
    workers = [spawn_worker(**one), spawn_worker(**one), spawn_worker(**one)]
    await publish(channel, declared, tasks)
    killed_at: list[str] = []
    pending = list(names)
    while pending:
        # Every gate reached is dealt with at once, so no worker waits at one while the test
        # waits for another (a task can sit behind a held one in a worker's prefetch).
        name, fd = await asyncio.to_thread(gates.first_reached, pending)
        if name in killed_at:  # the second time: redelivered to another worker, let through
            gates.release(name, fd)
            pending.remove(name)
            continue
        victim = holder(workers, gates.fifos[name])
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        os.close(fd)
        killed_at.append(name)
        workers.remove(victim)
        workers.append(spawn_worker(**one))  # as a Deployment replaces a dead pod
    assert sorted(killed_at) == names
    await events.wait_for(lambda log: len(log.finished()) == len(tasks), within=120)
    # Killed mid-task, each gate's task came back and succeeded on its second delivery.
    for name in names:
        (done,) = [e for e in events.of("succeeded") if e.task == name]
        assert done.redelivered, done
    for name in names:  # the gates, readable again for the check of the outputs
        gates.fifos[name].unlink()
        gates.fifos[name].write_bytes(gates.data[name])
    assert_every_input_accounted(src, dst, events, broken)


def rabbitmqctl(*args: str) -> None:
    command = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([command, *args], check=True, capture_output=True, timeout=120)


async def status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


@pytest.mark.slow
async def test_broker_restart_mid_run_loses_nothing_and_readiness_follows(
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    src, dst, tasks, broken = slow_batch(images, declared, 120, broken=2)
    workers = [spawn_worker(), spawn_worker()]
    for worker in workers:
        await worker.consuming()
        assert await status(worker.health_url + "/readyz") == 200
    await publish(channel, declared, tasks)
    await events.wait_for(lambda log: len(log.finished()) >= 15)
    try:
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        for worker in workers:
            await asyncio.to_thread(worker.wait_log, lambda line: "connection lost" in line.get("msg", ""))
            assert await status(worker.health_url + "/readyz") == 503
            health = await status(worker.health_url + "/healthz")
            assert health == 200  # degraded, not dead: reconnecting within budget
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")
    for worker in workers:
        await asyncio.to_thread(worker.wait_log, lambda line: "connection restored" in line.get("msg", ""), 60)
        assert await status(worker.health_url + "/readyz") == 200
    await events.wait_for(lambda log: len(log.finished()) == len(tasks), within=180)
    assert_every_input_accounted(src, dst, events, broken)
