"""``filterjob run --broker`` and ``filterjob watch``: the pods' code, run locally."""

from __future__ import annotations

import asyncio
import os
import re
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

from filterjob_operator import sources
from filterjob_operator.local import Listener
from filterjob_operator.local_broker import BrokerOptions, _count_written, _Tally, progress_queue, run_with_broker
from filterjob_operator.samples import make_samples
from filterjob_operator.spec import FilterJob, load_job
from filterjob_operator.summary import RunSummary
from filterjob_operator.supervisor import Supervisor
from filterjob_operator.workerenv import topology_of
from filterjob_worker import storage
from filterjob_worker.processing import Outcome
from filterjob_worker.topology import delete

from .conftest import BROKER_URL

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
            await channel.queue_delete(progress_queue(topology))
            await delete(channel, topology)


def write_job(tmp_path: Path, name: str, **spec: Any) -> Path:
    doc = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name, "namespace": "local-test"},
        "spec": {
            "source": {"uri": "in"},
            "destination": {"uri": "out", "format": "png"},
            "filters": [{"name": "thumbnail", "width": 64, "height": 64}, {"name": "grayscale"}],
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.1},
            **spec,
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


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
    job = write_job(tmp_path, "cli")
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
    assert "failed broken/bad-002-empty.jpg: InvalidImage: file is empty" in result.stdout
    assert len(outputs(tmp_path / "out")) == len(made.good)
    # The workers were the real entrypoint, logging JSON to the requested files.
    logs = sorted((tmp_path / "logs").glob("worker-*.log"))
    assert len(logs) == 2
    assert all('"msg": "consuming ' in log.read_text() for log in logs)
    assert "guest:guest" not in "".join(log.read_text() for log in logs)


def test_resume_with_skip_existing(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=6, size=(80, 60))
    job = load_job(write_job(tmp_path, "resume"), local=True)
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
        write_job(tmp_path, "kill", filters=[{"name": "blur", "radius": 8}, {"name": "sharpen"}]), local=True
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


async def test_watch_prints_events_live(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=4, broken=1, size=(60, 40))
    path = write_job(tmp_path, "watch")
    watcher = await asyncio.create_subprocess_exec(
        FILTERJOB, "watch", str(path), "--broker", BROKER_URL, "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        # The watcher has bound its queue once it says so.
        assert b"watching local-test/watch" in await asyncio.wait_for(watcher.stderr.readline(), 30)
        job = load_job(path, local=True)
        summary = await run_with_broker(job, options=BrokerOptions(broker_url=BROKER_URL, workers=1))
        assert summary.total == 5
        lines = [await asyncio.wait_for(watcher.stdout.readline(), 30) for _ in range(5)]
        kinds = sorted(yaml.safe_load(line)["event"] for line in lines)
        assert kinds == ["failed", "succeeded", "succeeded", "succeeded", "succeeded"]
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 30) == 0


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
    process = subprocess.Popen(
        [FILTERJOB, "run", str(job), "--broker", BROKER_URL, "--workers", "2", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _written(tmp_path / "out") < 4:
            assert time.monotonic() < deadline, "no outputs appeared"
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.02)  # polling a condition with a deadline
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 1, output
    assert "rerun with --skip-existing" in output
    assert "Traceback" not in output
    found = re.search(r"succeeded\s*│\s*(\d+)", output)
    assert found is not None, output
    assert int(found.group(1)) < len(made.good), "the run ended before the interrupt"
    assert int(found.group(1)) == _written(tmp_path / "out"), output


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
    tally = _Tally(job, summary, Listener())
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
    _count_written(job, tally, since_ns=since)
    assert (summary.succeeded, summary.done) == (1, 1)
    assert summary.failures == []
