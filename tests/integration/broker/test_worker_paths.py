"""The worker's rarer paths, run as real ``python -m filterjob_worker`` processes: a pool
process killed mid-task, a drain whose grace period runs out, a delivery that waits for a
slot while the worker drains.

Where a test must know that a worker holds a task, the task's input is a FIFO gate
(tests/helpers/gates.py): the worker that reads it waits there until the test writes the
image, so no test depends on an image being "slow enough".
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.core.samples import make_image
from filterjob_worker.adapters.storage import TEMP_SUFFIX, to_path
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import EventLog, make_tasks, publish, ready_count
from tests.helpers.gates import Gates, holders
from tests.helpers.workers import WorkerFactory, WorkerProcess

#: The reason a task gets when the pool process working on it died.
DIED = "the process handling this image died"


def flat_images(src: Path, count: int) -> list[str]:
    """``count`` small JPEGs directly in ``src``; their keys."""
    src.mkdir(parents=True)
    names = [f"img-{i}.jpg" for i in range(count)]
    for i, name in enumerate(names):
        make_image((64, 48), seed=i).save(src / name)
    return names


async def wait_ready(connection: AbstractRobustConnection, queue: str, count: int, within: float = 30.0) -> None:
    """Wait until ``queue`` holds ``count`` ready messages (a requeue reaches a quorum queue
    through its log, a moment after the worker that returned it has gone)."""
    async with asyncio.timeout(within):
        while True:
            if await ready_count(connection, queue) == count:
                return
            await asyncio.sleep(0.05)  # polling interval: the broker offers nothing to await


async def exit_code(worker: WorkerProcess, within: float = 60.0) -> int:
    return await asyncio.to_thread(worker.proc.wait, within)


def no_temp_files(dst: Path) -> bool:
    return not dst.exists() or not list(dst.rglob(f"*{TEMP_SUFFIX}"))


# -- the process executor -------------------------------------------------------------


async def test_a_pool_process_killed_mid_task_is_one_failed_attempt_and_the_worker_recovers(
    channel: AbstractChannel,
    connection: AbstractRobustConnection,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    names = flat_images(src, 3)
    tasks = make_tasks(declared, src, dst)
    gated = tasks[0]
    gates = Gates(src, [names[0]])
    gates.close()
    worker = spawn_worker(FILTERJOB_EXECUTOR="process", FILTERJOB_CONCURRENCY="1", FILTERJOB_PREFETCH="1")
    await worker.consuming()
    await publish(channel, declared, tasks)

    held = await asyncio.to_thread(gates.reached, names[0])
    (child,) = holders(gates.fifos[names[0]])
    assert child != worker.pid  # the image is read in a pool process, not in the worker itself
    os.kill(child, signal.SIGKILL)
    os.close(held)

    await events.wait_for(lambda log: bool(log.of("retrying")))
    (retrying,) = events.of("retrying")
    assert (retrying.task, retrying.attempt, retrying.reason) == (gated.task, 1, DIED)
    # The retry comes back through the delay queue to a fresh pool: let it read the image.
    gates.release(names[0], await asyncio.to_thread(gates.reached, names[0]))
    await events.wait_for(lambda log: len(log.of("succeeded")) == len(tasks))

    succeeded = events.of("succeeded")
    assert Counter(e.task for e in succeeded) == Counter(t.task for t in tasks)  # each exactly once
    assert {e.task: e.attempt for e in succeeded} == {t.task: (2 if t is gated else 1) for t in tasks}
    assert not events.of("failed")
    assert all(to_path(t.output).is_file() for t in tasks)
    assert no_temp_files(dst)
    assert worker.proc.poll() is None  # the worker itself lived on
    worker.proc.send_signal(signal.SIGTERM)
    assert await exit_code(worker) == 0
    assert await ready_count(connection, declared.tasks) == 0
    assert await ready_count(connection, declared.parked) == 0


# -- draining ---------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_a_task_still_running_when_the_grace_period_ends_returns_to_the_queue(
    channel: AbstractChannel,
    connection: AbstractRobustConnection,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    tmp_path: Path,
    executor: str,
) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    names = flat_images(src, 1)
    (task,) = make_tasks(declared, src, dst)
    gates = Gates(src, names)
    gates.close()
    first = spawn_worker(FILTERJOB_EXECUTOR=executor, FILTERJOB_GRACE_SECONDS="1", FILTERJOB_PREFETCH="1")
    await first.consuming()
    await publish(channel, declared, [task])
    held = await asyncio.to_thread(gates.reached, names[0])

    first.proc.send_signal(signal.SIGTERM)
    # The image never arrives while the first worker runs: the grace period must run out.
    assert await exit_code(first) == 0
    os.close(held)
    messages = first.messages()
    assert "draining 1 in-flight tasks (grace 1 s)" in messages
    assert "1 tasks did not finish within the grace period; they return to the queue" in messages
    assert messages[-1] == "worker stopped"
    assert not events.events  # neither succeeded nor retried nor failed: not acked, not counted
    await wait_ready(connection, declared.tasks, 1)
    assert await ready_count(connection, declared.parked) == 0
    assert not to_path(task.output).exists()
    assert no_temp_files(dst)

    second = spawn_worker()
    gates.release(names[0], await asyncio.to_thread(gates.reached, names[0]))
    await events.wait_for(lambda log: bool(log.of("succeeded")))
    (done,) = events.events
    assert (done.kind, done.task, done.worker, done.attempt) == ("succeeded", task.task, "w1", 1)
    assert done.redelivered
    assert to_path(task.output).is_file()
    second.proc.send_signal(signal.SIGTERM)
    assert await exit_code(second) == 0


async def test_a_delivery_waiting_for_a_slot_when_draining_starts_is_returned_unstarted(
    channel: AbstractChannel,
    connection: AbstractRobustConnection,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    names = flat_images(src, 2)
    running, waiting = make_tasks(declared, src, dst)
    gates = Gates(src, [names[0]])
    gates.close()
    first = spawn_worker(FILTERJOB_CONCURRENCY="1", FILTERJOB_PREFETCH="2")
    await first.consuming()
    await publish(channel, declared, [running, waiting])
    held = await asyncio.to_thread(gates.reached, names[0])
    # Nothing ready: the second task is delivered to this worker too, waiting for its one slot.
    await wait_ready(connection, declared.tasks, 0)

    first.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(first.wait_log, lambda line: str(line.get("msg", "")).startswith("draining"))
    assert "draining 2 in-flight tasks (grace 20 s)" in first.messages()
    gates.release(names[0], held)
    assert await exit_code(first) == 0

    await events.wait_for(lambda log: bool(log.of("succeeded")))
    assert [(e.kind, e.task, e.worker) for e in events.events] == [("succeeded", running.task, "w0")]
    assert not any("did not finish" in m for m in first.messages())
    assert not to_path(waiting.output).exists()  # never started
    await wait_ready(connection, declared.tasks, 1)

    second = spawn_worker()
    await events.wait_for(lambda log: len(log.of("succeeded")) == 2)
    later = events.events[1]
    assert (later.kind, later.task, later.worker, later.attempt) == ("succeeded", waiting.task, "w1", 1)
    assert to_path(waiting.output).is_file()
    second.proc.send_signal(signal.SIGTERM)
    assert await exit_code(second) == 0
