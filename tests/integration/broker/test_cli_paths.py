"""The ``filterjob`` commands' rarer paths against the real RabbitMQ, run as a user runs them:
``parked`` and ``redrive`` of a job file, ``list-inputs`` of a bad job, a ``redrive`` the
broker will not take. Exact output, exit codes from exits.py, and queue contents."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from filterjob_operator.adapters.broker.topology import delete
from filterjob_operator.core import exits, listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image
from filterjob_operator.core.spec import load_job, parse_job
from filterjob_worker.core.envelope import REASON_HEADER
from filterjob_worker.core.topology import Topology
from filterjob_worker.core.urls import redact
from tests.helpers.brokers import BROKER_URL, MANAGEMENT_URL, filterjob, ready_count
from tests.helpers.jobfiles import unique, write_job


async def take_all(connection: AbstractRobustConnection, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name, ensure=False)
    taken = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        taken.append(message)
    await channel.close()
    return taken


async def park(channel: AbstractChannel, topology: Topology, ids: list[str]) -> None:
    for task_id in ids:
        await channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps({"task": task_id}).encode(),
                message_id=task_id,
                headers={REASON_HEADER: "boom"},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=topology.parked,
        )


# -- parked and redrive of a job file -------------------------------------------------


@pytest.fixture
async def local_job_file(tmp_path: Path) -> AsyncIterator[Path]:
    """A job file whose run parks two of its three inputs; its queues go afterwards."""
    src = tmp_path / "in"
    src.mkdir()
    make_image((60, 40), seed=1).save(src / "good.jpg")
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_bytes(b"hello")
    path = write_job(tmp_path, unique("parked-file"))
    yield path
    topology = topology_of(load_job(path, local=True))
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(topology.progress)
        await delete(channel, topology)


def test_parked_and_redrive_of_a_job_file_say_exactly_what_they_did(local_job_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    parked_queue = topology_of(load_job(local_job_file, local=True)).parked
    logs = ["--worker-logs", str(tmp_path / "logs")]
    run = filterjob("run", str(local_job_file), "--broker", BROKER_URL, "--workers", "1", "--no-progress", *logs)
    assert run.returncode == exits.FAILED, run.stdout + run.stderr

    empty = f"{(src / 'empty.jpg').as_uri()}  (attempt 1): not a usable image: file is empty\n"
    text = f"{(src / 'text.jpg').as_uri()}  (attempt 1): not a usable image: not a recognized image format\n"
    for _ in range(2):  # listing leaves them in place
        listed = filterjob("parked", str(local_job_file), "--broker", BROKER_URL)
        assert listed.returncode == exits.OK, listed.stderr
        assert sorted(listed.stdout.splitlines(keepends=True)) == [empty, text]
        assert listed.stderr == f"2 parked tasks in {parked_queue}\n"
    as_json = filterjob("parked", str(local_job_file), "--broker", BROKER_URL, "--json")
    assert as_json.returncode == exits.OK, as_json.stderr
    records = sorted((json.loads(line) for line in as_json.stdout.splitlines()), key=lambda r: r["input"])
    assert [(r["input"], r["attempt"], r["reason"]) for r in records] == [
        ((src / "empty.jpg").as_uri(), 1, "not a usable image: file is empty"),
        ((src / "text.jpg").as_uri(), 1, "not a usable image: not a recognized image format"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["task"]) for r in records)

    make_image((60, 40), seed=2).save(src / "empty.jpg", format="JPEG")  # one cause fixed, not the other
    again = filterjob("redrive", str(local_job_file), "--broker", BROKER_URL, "--workers", "1", "--no-progress", *logs)
    assert again.returncode == exits.FAILED, again.stdout + again.stderr
    job_key = load_job(local_job_file, local=True).key
    assert again.stderr.startswith(
        f"re-driving {job_key} through RabbitMQ at {redact(BROKER_URL)} with 1 worker processes\n"
    )
    assert "Traceback" not in again.stderr
    for row in ("│ total      │ 2", "│ succeeded  │ 1", "│ failed     │ 1"):
        assert row in again.stdout
    assert "failed text.jpg: not a usable image: not a recognized image format" in again.stdout
    assert (tmp_path / "out" / "empty.png").is_file()

    left = filterjob("parked", str(local_job_file), "--broker", BROKER_URL)
    assert (left.returncode, left.stdout, left.stderr) == (exits.OK, text, f"1 parked tasks in {parked_queue}\n")


# -- list-inputs of a bad job -----------------------------------------------------------


def cluster_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": unique("lister"), "namespace": "test", "uid": uuid.uuid4().hex},
        "spec": {
            "source": {"uri": "file:///nonexistent-filterjob-source/"},
            "destination": {"uri": "file:///tmp/filterjob-never-written/"},
            "filters": [{"name": "grayscale"}],
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("job", "problem"),
    [
        (None, "FILTERJOB_JOB is not set (the FilterJob as JSON)"),
        ("{not json", "FILTERJOB_JOB is not JSON: "),
        (json.dumps(cluster_doc(filters=[{"name": "nope"}])), "spec.filters[0]: name is unknown filter 'nope'"),
        (
            json.dumps({**cluster_doc(), "metadata": {"name": "x", "namespace": "test"}}),
            "FILTERJOB_JOB: metadata.uid is required (it names the job's queues)",
        ),
    ],
    ids=["unset", "not-json", "invalid-spec", "no-uid"],
)
def test_list_inputs_of_an_invalid_job_is_one_message_and_exit_2(job: str | None, problem: str) -> None:
    env = {"FILTERJOB_JOB": job} if job is not None else {"FILTERJOB_JOB": ""}
    result = filterjob("list-inputs", "--broker", BROKER_URL, env=env)
    assert result.returncode == exits.INVALID, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "invalid FilterJob:"
    assert len(lines) == 2, result.stderr
    assert lines[1].startswith(f"  - {problem}"), result.stderr
    assert result.stdout == ""


async def test_list_inputs_of_a_source_that_cannot_be_listed_reports_it_in_the_queue_and_exits_0(
    connection: AbstractRobustConnection,
) -> None:
    """A fact about the job, not a failure of the lister Job (which would retry it): the error
    goes to the operator through the inputs queue (see lister.py)."""
    doc = cluster_doc()
    topology = topology_of(parse_job(doc))
    try:
        result = filterjob("list-inputs", "--broker", BROKER_URL, env={"FILTERJOB_JOB": json.dumps(doc)})
        assert result.returncode == exits.OK, result.stdout + result.stderr
        error = "spec.source.uri: source 'file:///nonexistent-filterjob-source/' is not an existing directory"
        (line,) = (json.loads(text) for text in result.stderr.splitlines())
        assert (line["level"], line["msg"]) == (
            "warning",
            f"test/{doc['metadata']['name']} cannot be listed: {error} (reported in {topology.inputs})",
        )
        found = listing.decode(m.body for m in await take_all(connection, topology.inputs))
        assert found is not None
        assert (found.keys, found.error) == ([], error)
    finally:
        channel = await connection.channel()
        await channel.queue_delete(topology.inputs)
        await channel.close()


# -- redrive that the broker will not take ------------------------------------------------


def _management() -> tuple[str, dict[str, str]]:
    parts = urlsplit(MANAGEMENT_URL)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}/api"
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
    return base, {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


@pytest.fixture
async def full_task_queue(declared: Topology) -> AsyncIterator[Topology]:
    """A policy that lets the task queue hold one message and refuses publishes beyond it."""
    base, auth = _management()
    policy = f"{base}/policies/%2F/test-{uuid.uuid4().hex[:8]}"
    queue = f"{base}/queues/%2F/{quote(declared.tasks, safe='')}"
    definition = {"max-length": 1, "overflow": "reject-publish"}
    async with aiohttp.ClientSession(headers=auth) as session:
        body = {"pattern": f"^{re.escape(declared.tasks)}$", "definition": definition, "apply-to": "queues"}
        async with session.put(policy, json={**body, "priority": 100}) as response:
            assert response.status in (201, 204), await response.text()
        async with asyncio.timeout(30):
            while True:  # the broker applies a policy a moment later; nothing to await but the queue's state
                async with session.get(queue) as response:
                    if (await response.json()).get("effective_policy_definition") == definition:
                        break
                await asyncio.sleep(0.1)
        yield declared
        async with session.delete(policy) as response:
            assert response.status == 204, await response.text()


async def test_a_redrive_the_broker_refuses_is_one_line_exit_3_and_loses_no_parked_task(
    channel: AbstractChannel, connection: AbstractRobustConnection, full_task_queue: Topology
) -> None:
    topology = full_task_queue
    ids = ["t0", "t1", "t2"]
    await park(channel, topology, ids)
    result = filterjob("redrive", topology.base, "--broker", BROKER_URL)
    assert result.returncode == exits.BROKER, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    found = re.fullmatch(
        rf"broker error: the broker refused a parked task moved back to {re.escape(topology.tasks)}: (\d+) moved,"
        rf" the others are still parked in {re.escape(topology.parked)}; check that queue's limits"
        r" \(a max-length policy\) and run redrive again",
        line,
    )
    assert found, line
    moved = int(found[1])
    assert moved < len(ids)
    assert result.stdout == ""
    tasks = [m.message_id for m in await take_all(connection, topology.tasks)]
    parked = [m.message_id for m in await take_all(connection, topology.parked)]
    assert len(tasks) == moved
    assert sorted(tasks + parked) == ids  # each in exactly one place


async def test_a_redrive_into_a_missing_task_queue_is_one_line_exit_3_and_leaves_the_parked_tasks(
    channel: AbstractChannel, connection: AbstractRobustConnection, declared: Topology
) -> None:
    await park(channel, declared, ["t0", "t1"])
    await channel.queue_delete(declared.tasks)
    result = filterjob("redrive", declared.base, "--broker", BROKER_URL)
    assert result.returncode == exits.BROKER, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"broker error: the broker at {redact(BROKER_URL)} has no queue '{declared.tasks}' in vhost '/';"
        " check the name (the job's queues exist once it has run)"
    ]
    assert await ready_count(connection, declared.parked) == 2
