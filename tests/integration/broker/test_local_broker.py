"""``filterjob run --broker`` and ``filterjob watch``: the pods' code, run locally."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import yaml
from aio_pika.abc import AbstractIncomingMessage

from filterjob_operator.adapters import sources, verification
from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core import exits
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image, make_samples
from filterjob_operator.core.spec import FilterJob, load_job
from filterjob_operator.local.brokered import fresh_topology, run_with_broker
from filterjob_operator.local.options import BrokerOptions
from filterjob_operator.local.progress import declare_progress
from filterjob_operator.local.start import Listener
from filterjob_operator.local.summary import RunSummary
from filterjob_operator.local.supervisor import Supervisor
from filterjob_operator.local.tally import Tally, count_written, verify
from filterjob_worker.adapters import storage
from filterjob_worker.core.outcome import Outcome
from tests.helpers import runs
from tests.helpers.brokers import BROKER_URL, closed_port, filterjob
from tests.helpers.gates import Gates, take_one_task
from tests.helpers.jobfiles import unique, write_job

FILTERJOB = str(Path(sys.executable).parent / "filterjob")


@pytest.fixture(autouse=True)
async def forget_local_queues(tmp_path: Path) -> AsyncIterator[None]:
    """Local runs keep their queues (parked failures stay inspectable); tests do not."""
    yield
    job_file = tmp_path / "job.yaml"
    if job_file.exists():
        topology = topology_of(load_job(job_file, local=True))
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(topology.progress)
            await delete(channel, topology)


class Progress(Listener):
    """Counts finished tasks; tests await a count instead of sampling files."""

    def __init__(self) -> None:
        self.done = 0
        self.changed = asyncio.Event()

    def advanced(self, outcome: Outcome | None) -> None:
        self.done += 1
        self.changed.set()

    async def reach(self, count: int) -> None:
        while self.done < count:
            self.changed.clear()
            await self.changed.wait()


def outputs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.png")}


def test_run_with_broker_from_the_command_line(tmp_path: Path) -> None:
    made = make_samples(tmp_path / "in", count=12, broken=3, size=(120, 90))
    job = write_job(tmp_path, unique("cli"))
    result = subprocess.run(
        [FILTERJOB, "run", str(job), "--broker", BROKER_URL, "--workers", "2", "--worker-logs", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "│ succeeded  │ 12" in result.stdout
    assert "│ failed     │ 3" in result.stdout
    assert "failed broken/bad-002-empty.jpg: not a usable image: file is empty" in result.stdout
    assert len(outputs(tmp_path / "out")) == len(made.good)
    # The workers were the real entrypoint, logging JSON to the requested files.
    logs = sorted((tmp_path / "logs").glob("worker-*.log"))
    assert len(logs) == 2
    # Each wrote JSON lines; which of them got as far as consuming before 12 images were done is luck.
    assert all(line.startswith("{") for log in logs for line in log.read_text().splitlines())
    assert any('"msg": "consuming ' in log.read_text() for log in logs)
    assert "guest:guest" not in "".join(log.read_text() for log in logs)


def test_resume_with_skip_existing(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=6, size=(80, 60))
    job = load_job(write_job(tmp_path, unique("resume")), local=True)
    options = BrokerOptions(broker_url=BROKER_URL, workers=1)
    first = asyncio.run(run_with_broker(job, options=options))
    assert (first.succeeded, first.failed) == (6, 0)
    (tmp_path / "out" / "img-00000.png").unlink()
    again = asyncio.run(
        run_with_broker(job, options=BrokerOptions(broker_url=BROKER_URL, workers=1, skip_existing=True))
    )
    assert (again.succeeded, again.skipped, again.failed) == (1, 5, 0)


@pytest.mark.slow
async def test_killed_local_workers_are_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    made = make_samples(tmp_path / "in", count=80, size=(400, 300))
    job: FilterJob = load_job(
        write_job(tmp_path, unique("kill"), filters=[{"name": "blur", "radius": 8}, {"name": "sharpen"}]), local=True
    )
    ready: asyncio.Queue[Supervisor] = asyncio.Queue()
    progress = Progress()
    options = BrokerOptions(broker_url=BROKER_URL, workers=2)
    run = asyncio.create_task(run_with_broker(job, options=options, listener=progress, supervisor_ready=ready))
    supervisor = await ready.get()
    for round_ in range(3):
        await asyncio.wait_for(progress.reach(10 * (round_ + 1)), 60)
        pids = supervisor.pids
        assert pids, "no worker running"
        os.kill(pids[round_ % len(pids)], signal.SIGKILL)
    summary = await asyncio.wait_for(run, 180)
    assert supervisor.restarts >= 3
    assert summary.ok, summary.failures
    assert summary.succeeded == len(made.good)
    assert len(outputs(tmp_path / "out")) == len(made.good)


async def start_watch(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        FILTERJOB, "watch", *args, "--broker", BROKER_URL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def watching(watcher: asyncio.subprocess.Process) -> None:
    """Wait until the watcher has bound its queue (it says so on stderr)."""
    assert watcher.stderr is not None
    line = await asyncio.wait_for(watcher.stderr.readline(), 30)
    assert b"watching " in line, line


async def declare_job(path: Path) -> None:
    """The job's queues and exchanges, as a run (or an earlier one) declares them."""
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        await declare(await connection.channel(), topology_of(load_job(path, local=True)))


async def exchange_exists(name: str) -> bool:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        try:
            await (await connection.channel()).get_exchange(name, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True


async def test_watch_prints_events_live_and_stops_when_the_run_ends(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=4, broken=1, size=(60, 40))
    path = write_job(tmp_path, "watch")
    await declare_job(path)
    watcher = await start_watch(str(path), "--json")
    try:
        await watching(watcher)
        job = load_job(path, local=True)
        summary = await run_with_broker(job, options=BrokerOptions(broker_url=BROKER_URL, workers=1))
        assert summary.total == 5
        # The watcher ends by itself on the run's job.finished event, with the final counts.
        stdout, _ = await asyncio.wait_for(watcher.communicate(), 30)
        assert watcher.returncode == 0
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()
    lines = [yaml.safe_load(line) for line in stdout.decode().splitlines()]
    kinds = sorted(line["event"] for line in lines[:-1])
    assert kinds == ["failed", "succeeded", "succeeded", "succeeded", "succeeded"]
    final = lines[-1]
    assert final["event"] == "finished"
    assert (final["phase"], final["total"], final["succeeded"], final["failed"]) == ("Failed", 5, 4, 1)


async def test_watch_prints_the_input_key_relative_to_the_source(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=1, broken=1, size=(60, 40))
    path = write_job(tmp_path, "keys")
    await declare_job(path)
    watcher = await start_watch(str(path))
    try:
        await watching(watcher)
        await run_with_broker(load_job(path, local=True), options=BrokerOptions(broker_url=BROKER_URL, workers=1))
        stdout, _ = await asyncio.wait_for(watcher.communicate(), 30)
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()
    text = stdout.decode()
    assert watcher.returncode == 0, text
    assert "failed    broken/bad-000-corrupt.jpg (attempt" in text, text
    assert "file://" not in text
    name = load_job(path, local=True).metadata.name
    assert f"finished  local-test/{name}: Failed, 1 succeeded, 1 failed of 2" in text


async def test_watch_of_a_job_that_never_ran_declares_nothing(tmp_path: Path) -> None:
    path = write_job(tmp_path, "never-ran")
    topology = topology_of(load_job(path, local=True))
    watcher = await start_watch(str(path))
    _, stderr = await asyncio.wait_for(watcher.communicate(), 30)
    assert watcher.returncode == exits.BROKER
    message = stderr.decode()
    assert "no such job local-test/never-ran" in message
    assert "has it started?" in message
    assert len(message.strip().splitlines()) == 1, message
    assert not await exchange_exists(topology.events)
    assert not await exchange_exists(topology.dead_letters)


async def test_watch_stops_when_the_jobs_exchange_is_deleted(tmp_path: Path) -> None:
    path = write_job(tmp_path, "deleted")
    await declare_job(path)
    watcher = await start_watch(str(path))
    await watching(watcher)
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        await delete(await connection.channel(), topology_of(load_job(path, local=True)))
    _, stderr = await asyncio.wait_for(watcher.communicate(), 30)
    assert watcher.returncode == exits.OK
    assert "was deleted" in stderr.decode()


async def test_watch_with_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    path = write_job(tmp_path, "unreachable")
    with closed_port() as port:
        watcher = await asyncio.create_subprocess_exec(
            FILTERJOB, "watch", str(path), "--broker", f"amqp://guest:secret@127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(watcher.communicate(), 60)
    assert watcher.returncode == exits.BROKER
    message = stderr.decode()
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    assert "secret" not in message


async def test_ctrl_c_while_the_broker_does_not_answer_ends_the_watch(tmp_path: Path) -> None:
    path = write_job(tmp_path, "silent")
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()  # and never speak AMQP
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        watcher = await asyncio.create_subprocess_exec(
            FILTERJOB, "watch", str(path), "--broker", f"amqp://guest:guest@127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await asyncio.wait_for(connected.wait(), 30)
            watcher.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(watcher.communicate(), 10)
        finally:
            if watcher.returncode is None:
                watcher.kill()
                await watcher.wait()
    assert watcher.returncode == exits.OK, stderr
    assert b"Traceback" not in stderr


@pytest.mark.parametrize("url", ["foo", "http://127.0.0.1:15672/", "amqp://127.0.0.1:abc/"])
def test_watch_refuses_a_broker_url_that_is_not_amqp(tmp_path: Path, url: str) -> None:
    path = write_job(tmp_path, "bad-url")
    result = subprocess.run(
        [FILTERJOB, "watch", str(path), "--broker", url], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == exits.INVALID
    # The same check as every other --broker (the workers' own), naming what is wrong.
    assert "Invalid value for '--broker': the URL " in result.stderr
    assert f"got {url!r}" in result.stderr


def test_workers_that_reject_their_configuration_stop_the_run(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=3, size=(60, 40))
    job = write_job(tmp_path, unique("badenv"))
    logs = tmp_path / "logs"
    result = filterjob(
        "run", str(job), "--broker", BROKER_URL, "--workers", "2", "--no-progress", "--worker-logs", str(logs),
        env={"FILTERJOB_EXECUTOR": "bogus"},
    )  # fmt: skip
    assert result.returncode == exits.INVALID, result.stdout + result.stderr
    assert (
        "run stopped: the workers cannot run: filterjob-worker: invalid configuration: "
        "FILTERJOB_EXECUTOR must be process or thread, got 'bogus'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    # No worker was restarted: a log holds one complaint at most (a worker stopped with
    # the run may not have got as far as complaining), not a restart loop's worth.
    complaints = [log.read_text().count("invalid configuration") for log in sorted(logs.glob("worker-*.log"))]
    assert max(complaints) == 1, complaints


def test_run_says_which_mode_runs_and_where_the_url_came_from(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=2, size=(60, 40))
    job = write_job(tmp_path, unique("mode"))
    local = filterjob("run", str(job), "--workers", "1", "--no-progress", env={"FILTERJOB_BROKER_URL": ""})
    assert local.returncode == 0, local.stderr
    assert local.stderr.startswith("running locally with 1 processes\n")
    broker = filterjob("run", str(job), "--workers", "1", "--no-progress", env={"FILTERJOB_BROKER_URL": BROKER_URL})
    assert broker.returncode == 0, broker.stderr
    masked = BROKER_URL.replace("guest:guest@", "guest:***@")
    assert broker.stderr.startswith(
        f"running through RabbitMQ at {masked} (from FILTERJOB_BROKER_URL) with 1 worker processes\n"
    )
    given = filterjob("run", str(job), "--workers", "1", "--no-progress", "--broker", BROKER_URL)
    assert given.stderr.startswith(f"running through RabbitMQ at {masked} with 1 worker processes\n")


def test_redrive_of_a_job_file_runs_its_workers_until_the_tasks_are_done(tmp_path: Path) -> None:
    made = make_samples(tmp_path / "in", count=3, broken=2, size=(60, 40))
    job = write_job(tmp_path, "redrive")
    name = load_job(job, local=True).metadata.name
    first = filterjob("run", str(job), "--broker", BROKER_URL, "--workers", "1", "--no-progress")
    assert first.returncode == exits.FAILED, first.stdout + first.stderr
    assert "│ failed     │ 2" in first.stdout
    for path in made.broken:  # the cause, fixed
        make_image((60, 40), seed=3).save(path, format="PNG")

    again = filterjob("redrive", str(job), "--broker", BROKER_URL, "--workers", "1", "--no-progress")
    assert again.returncode == exits.OK, again.stdout + again.stderr
    assert "│ total      │ 2" in again.stdout
    assert "│ succeeded  │ 2" in again.stdout
    assert len(outputs(tmp_path / "out")) == len(made.good) + len(made.broken)
    nothing = filterjob("redrive", str(job), "--broker", BROKER_URL, "--no-progress")
    assert nothing.returncode == exits.OK, nothing.stderr
    assert f"no parked tasks in fj.local-test.{name}.local.parked: nothing to re-drive" in nothing.stderr


async def ignore(message: AbstractIncomingMessage) -> None:
    """A consumer that holds its deliveries (returned when it goes)."""


async def test_clean_deletes_a_jobs_queues_unless_consumers_are_attached(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, unique("clean"), retry={"maxAttempts": 2}), local=True)
    topology = topology_of(job)
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await fresh_topology(connection, topology)
        await declare_progress(channel, topology)  # what an interrupted run leaves
        # A retry queue of an earlier, longer retry policy.
        await channel.declare_queue(topology.retry_queue(1), durable=True, arguments={"x-queue-type": "quorum"})
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=topology.parked)
        consumer = await connection.channel()
        tasks = await consumer.get_queue(topology.tasks)
        tag = await tasks.consume(ignore)

        refused = await asyncio.to_thread(filterjob, "clean", str(tmp_path / "job.yaml"), "--broker", BROKER_URL)
        assert refused.returncode == exits.INVALID, refused.stderr
        assert f"consumers are attached to {topology.tasks} (1)" in refused.stderr
        assert "--force" in refused.stderr
        await tasks.cancel(tag)

        cleaned = await asyncio.to_thread(filterjob, "clean", str(tmp_path / "job.yaml"), "--broker", BROKER_URL)
        assert cleaned.returncode == exits.OK, cleaned.stderr
        deleted = set(cleaned.stdout.splitlines())
        assert deleted == {
            f"deleted queue {topology.tasks} (0 messages)",
            f"deleted queue {topology.parked} (1 messages)",
            f"deleted queue {topology.progress} (0 messages)",
            f"deleted queue {topology.retry_queue(0)} (0 messages)",
            f"deleted queue {topology.retry_queue(1)} (0 messages)",
            f"deleted exchange {topology.events}",
            f"deleted exchange {topology.dead_letters}",
        }
        probe = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await probe.declare_queue(topology.parked, passive=True)


def _written(root: Path) -> int:
    return len(outputs(root))


@pytest.mark.parametrize(
    ("sig", "group"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)], ids=str
)
def test_an_interrupted_broker_run_counts_every_output_it_wrote(
    tmp_path: Path, sig: signal.Signals, group: bool
) -> None:
    made = make_samples(tmp_path / "in", count=120, size=(480, 360))
    job = write_job(
        # A name of its own: workers of another run on the same broker never take its tasks.
        tmp_path,
        f"interrupted-{sig.name}-{group}-{uuid.uuid4().hex[:8]}".lower(),
        filters=[{"name": "blur", "radius": 6}],
    )
    argv = [FILTERJOB, "run", str(job), "--broker", BROKER_URL, "--workers", "2", "--no-progress"]
    output = runs.interrupted_run(argv, lambda: _written(tmp_path / "out"), sig, group=group)
    assert runs.succeeded(output) < len(made.good), "the run ended before the interrupt"
    assert runs.succeeded(output) == _written(tmp_path / "out"), output


def test_a_source_that_cannot_be_listed_completely_exits_two_with_the_broker_too(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=2, size=(20, 15))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    job = write_job(tmp_path, "unlisted")
    result = subprocess.run(
        [FILTERJOB, "run", str(job), "--broker", BROKER_URL, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{tmp_path / 'in' / 'gone.jpg'}: broken symbolic link" in result.stderr
    assert not (tmp_path / "out").exists()


def test_outputs_written_without_an_event_still_count_after_an_interrupt(tmp_path: Path) -> None:
    """A worker stopped between its atomic write and its event: the output is counted,
    an output left by an earlier run is not."""
    make_samples(tmp_path / "in", count=3, size=(20, 15))
    job = load_job(write_job(tmp_path, "written"), local=True)
    summary = RunSummary(total=3)
    tally = Tally(job, summary, Listener())
    keys = sources.list_inputs(job)
    for key in keys:
        tally.expect(sources.task_id(job, key), key)
    tasks = [sources.make_task(job, key) for key in keys]
    old = storage.to_path(tasks[0].output)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"from an earlier run")
    since = time.time_ns()
    os.utime(old, ns=(since - 10**9, since - 10**9))
    storage.write_atomic(tasks[1].output, b"written by this run")
    count_written(job, tally, since_ns=since)
    assert (summary.succeeded, summary.done) == (1, 1)
    assert summary.failures == []


class GatedRun(Listener):
    """Closes the gates once the inputs are listed, before any task is enqueued."""

    def __init__(self, gates: Gates) -> None:
        self.gates = gates
        self.closed = asyncio.Event()

    def started(self, total: int) -> None:
        self.gates.close()
        self.closed.set()

    async def reached(self, name: str) -> int:
        await self.closed.wait()
        return await asyncio.to_thread(self.gates.reached, name)


async def test_a_task_removed_from_the_queue_and_an_output_deleted_are_reported_lost_not_succeeded(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    names = [f"{letter}.png" for letter in "abcdef"]
    for seed, name in enumerate(names):
        make_image((40, 30), seed).save(source / name)
    job = load_job(write_job(tmp_path, unique("lost")), local=True)
    # One worker taking one image at a time, in queue order: gate a.png holds it while the test takes
    # a task from the queue; gate f.png (the last) holds it while the test deletes a finished output.
    gates = GatedRun(Gates(source, ["a.png", "f.png"]))
    options = BrokerOptions(broker_url=BROKER_URL, workers=1, concurrency=1)
    run = asyncio.create_task(run_with_broker(job, options=options, listener=gates))
    first = await gates.reached("a.png")
    taken = await take_one_task(BROKER_URL, topology_of(job).tasks)
    assert taken in {"b.png", "c.png"}  # the worker holds a.png and maybe b.png (prefetch 2)
    gates.gates.release("a.png", first)
    last = await gates.reached("f.png")
    deleted = next(name for name in ["b.png", "c.png", "d.png"] if name != taken)
    (tmp_path / "out" / deleted).unlink()  # written, its success reported, then gone
    gates.gates.release("f.png", last)
    summary = await asyncio.wait_for(run, 120)
    assert not summary.ok
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (6, 4, 2, 0)
    assert sorted((f.input, f.reason) for f in summary.failures) == sorted(
        [(taken, verification.LOST), (deleted, verification.LOST)]
    )
    assert outputs(tmp_path / "out") == set(names) - {taken, deleted}


def test_a_destination_that_cannot_be_listed_fails_what_it_cannot_confirm_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs found count; the others may be in the directory that cannot be read, and say so."""
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for seed, key in enumerate(["a.png", "sub/b.png", "c.png"]):
        make_image((20, 15), seed).save(source / key)
    job = load_job(write_job(tmp_path, "unlistable"), local=True)
    summary = RunSummary(total=3)
    tally = Tally(job, summary, Listener())
    for key in sources.list_inputs(job):
        task = sources.make_task(job, key)
        tally.expect(task.task, key)
        storage.write_atomic(task.output, b"written")
        tally.finish(Outcome.of(task))
    locked = tmp_path / "out" / "sub"
    real = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(storage.os, "scandir", scandir)
    verify(job, tally)
    assert (summary.succeeded, summary.failed, summary.done) == (2, 1, 3)
    assert [f.input for f in summary.failures] == ["sub/b.png"]
    assert summary.failures[0].reason.startswith(verification.LOST + ", or in a part of the destination")
    assert len(summary.warnings) == 1
    assert f"{locked}: cannot be listed: Permission denied" in summary.warnings[0]
