"""Parked failures: listed in place, then re-driven to the task queue once their cause is fixed.

A real worker parks corrupt inputs; the inputs are repaired; ``filterjob redrive`` moves
the parked tasks back and the same worker writes them. Driven through the CLI, as an
operator of the system would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters.broker.parked import parked_failures, redrive
from filterjob_operator.core.samples import make_image
from filterjob_worker.core.envelope import ATTEMPT_HEADER, REASON_HEADER, WORKER_HEADER
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, EventLog, make_tasks, publish
from tests.helpers.workers import WorkerFactory

FILTERJOB = shutil.which("filterjob", path=str(Path(sys.executable).parent)) or "filterjob"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FILTERJOB, *args, "--broker", BROKER_URL],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_parked_tasks_are_listed_then_redriven_and_processed(
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    declared: Topology,
    events: EventLog,
    spawn_worker: WorkerFactory,
    images: Callable[..., tuple[Path, Path]],
) -> None:
    src, dst = images(6, broken=3)
    tasks = make_tasks(declared, src, dst)
    broken = sorted(t.task for t in tasks if t.task.startswith("broken/"))
    assert len(broken) == 3
    worker = spawn_worker()
    await worker.consuming()
    await publish(channel, declared, tasks)
    await events.wait_for(lambda log: len(log.finished()) == len(tasks))
    assert sorted(e.task for e in events.of("failed")) == broken

    listed = cli("parked", f"{declared.base}.parked", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["task"] for r in rows) == broken
    assert all(r["reason"].startswith("not a usable image: ") and r["attempt"] == 1 for r in rows), rows
    assert all(r["input"].startswith("file://") for r in rows)
    assert "3 parked tasks" in listed.stderr
    # Listing leaves them in place.
    assert len(await parked_failures(connection, declared)) == 3

    for key in broken:  # the cause, fixed: the same keys now hold real images
        make_image((64, 48), seed=1).save(src / key, format="PNG")
    moved = cli("redrive", f"{declared.base}.tasks")
    assert moved.returncode == 0, moved.stderr
    assert f"moved 3 parked tasks back to {declared.tasks}" in moved.stderr
    # A cluster job's queue: what happens next is said, with the command for a finished job.
    _, namespace, name, _ = declared.base.split(".")
    assert f"kubectl annotate fj {name} -n {namespace} filterjob.dev/redrive=$(date +%s) --overwrite" in moved.stderr

    await events.wait_for(lambda log: len(log.of("succeeded")) == len(tasks))
    redriven = [e for e in events.of("succeeded") if e.task in broken]
    assert sorted(e.task for e in redriven) == broken
    assert all(e.attempt == 1 for e in redriven)  # a fresh attempt count
    assert all((dst / key).with_suffix(".png").is_file() for key in broken)
    assert await parked_failures(connection, declared) == []


async def test_redrive_strips_failure_headers_and_keeps_the_body(
    connection: AbstractRobustConnection, channel: AbstractChannel, declared: Topology
) -> None:
    body = b'{"not": "a task"}'
    await channel.default_exchange.publish(
        aio_pika.Message(
            body,
            message_id="m1",
            headers={ATTEMPT_HEADER: 3, REASON_HEADER: "MalformedTask: no", WORKER_HEADER: "w0", "x-custom": "kept"},
        ),
        routing_key=declared.parked,
    )
    parked = await parked_failures(connection, declared)
    assert [(p.task, p.input, p.attempt) for p in parked] == [("m1", "", 3)]  # malformed: no input

    moved = await redrive(connection, declared)
    assert [p.task for p in moved] == ["m1"]
    queue = await channel.get_queue(declared.tasks)
    message = await queue.get(no_ack=True)
    assert message.body == body
    assert message.message_id == "m1"
    headers = dict(message.headers or {})
    headers.pop("x-delivery-count", None)  # the quorum queue's own, set on delivery
    assert headers == {ATTEMPT_HEADER: 1, "x-custom": "kept"}
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert await parked_failures(connection, declared) == []


def test_a_job_argument_that_is_neither_file_nor_queue_is_rejected() -> None:
    result = cli("redrive", "photos/thumbnails")
    assert result.returncode == 2
    assert "neither a FilterJob file nor a job's queue name: 'photos/thumbnails'" in result.stderr
