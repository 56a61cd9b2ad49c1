"""FilterJob through RabbitMQ: messaging overhead vs Celery and Dramatiq, pipeline vs a bare loop.

Run: ``.venv/bin/python bench/broker_bench.py [--quick]`` (needs ``pip install -e '.[bench]'``
and a RabbitMQ; see bench/README.md). In one run, on the same broker:

(a) no-op tasks/s through ONE worker process, each queue pre-filled with N messages before
    the worker starts; every system: durable queue, persistent messages, ack after the
    task ran, one task at a time, prefetch 10 (the exact settings are printed):

    - FilterJob: ``bench/noop_filterjob_worker.py``, the real worker entrypoint whose
      ``Consumer`` gets ``work=noop``, on a job topology declared by
      ``filterjob_operator.adapters.broker.topology.declare`` (quorum queues), tasks published by
      ``publish_tasks``;
    - Celery: ``celery worker -P solo`` on ``bench/noop_celery_app.py``, on a classic queue
      (Celery's default) and on a quorum queue (FilterJob's kind);
    - Dramatiq: ``dramatiq -p 1 -t 1`` on ``bench/noop_dramatiq_app.py`` (classic queue);
    - (a2) ``python -m filterjob_worker`` itself on 1x1 JPEGs with no filters: the real
      per-task path (read, decode, encode, fsync'd write, event, ack).

    Timed the same way for all: the bench polls the task queue's ready count (passive
    ``queue.declare``) every few ms. The worker holds ``prefetch`` unacked deliveries, so
    once its window is full each ack lets exactly one more message leave the ready
    count: the clock starts at the first poll showing an ack (ready < N - prefetch) and
    stops at the first poll showing ready == 0; tasks/s = acks in between / seconds.
    Worker start-up is outside the window; the last ``prefetch`` tasks are too. The CPU
    time the worker's processes and (if local) RabbitMQ spent in the window is read from
    /proc and shown per task.

(b) images/s of the full pipeline (local_bench's: 1 MP JPEGs, resize 1024, grayscale,
    blur 2, brightness 1.2, edges, JPEG q90) through the broker with 1 and 2
    ``python -m filterjob_worker`` processes (concurrency 1), against local_bench's
    bare Pillow loop in this process, and two bare loops at once in two processes (what
    the machine gives two processes with no broker at all). Workers are timed by their
    ``task.succeeded`` events (a progress queue bound like the local broker mode's): from
    the moment every worker has finished its first image to the last event, so start-up
    skew between workers is not counted.

Rounds are interleaved and medians reported. Every queue and exchange the benchmark
creates is deleted at the end; inputs and outputs live in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from PIL import Image

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.broker.enqueue import publish_tasks
from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.local import progress as local_progress
from filterjob_worker.core.contract import Event, Task
from filterjob_worker.core.topology import Topology
from local_bench import FILTERS, QUALITY, SIZES, bare_loop, generate, make_job

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
#: (a): every system holds this many unacked deliveries and runs one task at a time.
PREFETCH = 10
#: (b): the worker's default prefetch, FILTERJOB_CONCURRENCY + 1 = 2, as in local broker mode.
PIPELINE_PREFETCH = 2
#: (a)'s row for the bare aio-pika consumer: the most any aio-pika worker can do here.
CEILING = "aio-pika receive+ack only"
#: Seconds between polls of a queue's ready count while timing (a).
POLL = 0.005
#: Seconds a worker may take to start consuming, or a phase to finish, before the bench gives up.
TIMEOUT = 120.0


# -- the broker, seen from the bench ----------------------------------------------------------


class Monitor:
    """One connection for declaring, publishing, polling and cleaning up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: AbstractRobustConnection | None = None
        self.queues: set[str] = set()  # to delete at the end
        self.exchanges: set[str] = set()
        self.topologies: list[Topology] = []

    async def __aenter__(self) -> Monitor:
        self.connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": "filterjob broker_bench"}
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.connection is not None
        channel = await self.connection.channel()
        for topology in self.topologies:
            with contextlib.suppress(Exception):
                await delete(channel, topology)
        for name in sorted(self.queues):
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in sorted(self.exchanges):
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
        await self.connection.close()

    async def ready(self, queue: str) -> int:
        """Ready messages now (a passive declare: exact, unlike the management API's stats)."""
        return (await self.stats(queue))[0]

    async def stats(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) now."""
        underlay = await self.channel.get_underlay_channel()
        result = await underlay.queue_declare(queue, passive=True)
        return int(result.message_count or 0), int(result.consumer_count or 0)

    async def purge(self, queue: str) -> None:
        underlay = await self.channel.get_underlay_channel()
        await underlay.queue_purge(queue)

    async def wait_ready(self, queue: str, n: int, label: str) -> None:
        """Wait for a pre-fill to land (Celery and Dramatiq publish without confirms)."""
        deadline = time.monotonic() + 30
        while (ready := await self.ready(queue)) != n:
            if ready > n or time.monotonic() > deadline:
                sys.exit(f"{label}: pre-fill gave {ready} messages, not {n}")
            await asyncio.sleep(0.05)

    async def filterjob_topology(self, base: str) -> Topology:
        topology = Topology(base=base)
        self.topologies.append(topology)
        await declare(self.channel, topology)
        return topology


# -- CPU accounting (Linux /proc; silently absent elsewhere) ------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Dramatiq's worker is a child of its CLI process)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in children.read_text().split())
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes (all their threads) so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def local_broker_pids() -> list[int]:
    """The local RabbitMQ's Erlang VM, if it runs on this machine (its CPU is shown too)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "beam.smp":
                pids.append(int(comm.parent.name))
    return pids


# -- worker processes ---------------------------------------------------------------------------


@dataclass
class System:
    """How to pre-fill a queue with N no-op tasks and start one worker on it."""

    label: str
    queue: str
    argv: list[str]
    env: dict[str, str]
    prefill: Callable[[int], Any]  # returns an awaitable or None
    settings: str
    #: Seconds from SIGTERM (sent once the queue is drained and the last deliveries had time to
    #: finish) to SIGKILL.
    stop_grace: float = 30.0
    rates: list[float] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)
    worker_cpu: list[float] = field(default_factory=list)  # CPU seconds per task in the timed window
    broker_cpu: list[float] = field(default_factory=list)


class Worker:
    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=BENCH_DIR,
                start_new_session=True,
            )

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            sys.exit(f"worker {self.proc.args} exited with {self.proc.returncode}:\n{tail}")

    async def stop(self, grace: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def timed_drain(monitor: Monitor, system: System, n: int, log: Path, broker_pids: list[int]) -> None:
    """Start the worker on the pre-filled queue and time it (see the module doc)."""
    worker = Worker(system.argv, system.env, log)
    try:
        deadline = time.monotonic() + TIMEOUT
        start: tuple[float, int] | None = None
        pids: list[int] = []
        while True:
            ready = await monitor.ready(system.queue)
            now = time.perf_counter()
            if not pids and ready < n:  # consuming: every process of the worker exists now
                pids = process_tree(worker.proc.pid)
            if start is None and ready < n - PREFETCH:
                start = (now, ready)
                cpu = (cpu_seconds(pids), cpu_seconds(broker_pids))
            if ready == 0:
                if start is not None:
                    cpu = (cpu_seconds(pids) - cpu[0], cpu_seconds(broker_pids) - cpu[1])
                break
            worker.check()
            if time.monotonic() > deadline:
                sys.exit(f"{system.label}: queue not drained after {TIMEOUT:.0f} s (ready {ready}); log {log}")
            await asyncio.sleep(POLL)
        if start is None or start[1] < n // 2:
            sys.exit(f"{system.label}: drained before the clock could start; raise N")
        acks = start[1]
        rate = acks / (now - start[0])
        system.rates.append(rate)
        system.windows.append(acks)
        system.worker_cpu.append(cpu[0] / acks)
        system.broker_cpu.append(cpu[1] / acks)
        # Let the last prefetch window finish (unacked deliveries would return to the queue).
        await asyncio.sleep(max(0.2, 3 * PREFETCH / rate))
    finally:
        await worker.stop(system.stop_grace)
    # Deliveries still unacked when the worker went return to the queue once its consumer is gone.
    for _ in range(200):
        left, consumers = await monitor.stats(system.queue)
        if not consumers:
            break
        await asyncio.sleep(0.05)
    if left:
        print(f"  note: {system.label}: {left} deliveries were unacked when the worker stopped; purged")
        await monitor.purge(system.queue)


# -- the systems of (a) --------------------------------------------------------------------------


def worker_env(url: str, queue: str, *, prefetch: int, worker_id: str) -> dict[str, str]:
    return {
        "FILTERJOB_BROKER_URL": url,
        "FILTERJOB_QUEUE": queue,
        "FILTERJOB_CONCURRENCY": "1",
        "FILTERJOB_PREFETCH": str(prefetch),
        "FILTERJOB_HEALTH_PORT": "0",
        "FILTERJOB_WORKER_ID": worker_id,
        "FILTERJOB_LOG_LEVEL": os.environ.get("FILTERJOB_LOG_LEVEL", "INFO"),  # the worker's default
    }


def tiny_tasks(root: Path, kind: str, n: int, filters: tuple[dict[str, Any], ...] = ()) -> list[Task]:
    """N tasks reading one 1x1 JPEG, each writing its own output."""
    source = root / "tiny-1x1.jpg"
    if not source.exists():
        Image.new("RGB", (1, 1), (200, 100, 50)).save(source, format="JPEG", quality=QUALITY)
    out = root / f"out-{kind}"
    return [
        Task(
            job="bench/broker",
            job_uid="bench",
            task=f"{kind}-{i}",
            input=source.as_uri(),
            output=(out / f"{i}.jpg").as_uri(),
            filters=filters,
        )
        for i in range(n)
    ]


async def make_systems(monitor: Monitor, url: str, run: str, root: Path) -> list[System]:
    py = sys.executable
    level = os.environ.get("FILTERJOB_LOG_LEVEL", "INFO")
    common = f"durable queue, persistent messages, ack after the task, 1 task at a time, prefetch {PREFETCH}"

    def filterjob(label: str, topology: Topology, argv: list[str], settings: str) -> System:
        kind = topology.base.rsplit(".", 1)[1]

        async def prefill(n: int) -> None:
            await publish_tasks(monitor.channel, topology, tiny_tasks(root, kind, n))

        env = worker_env(url, topology.tasks, prefetch=PREFETCH, worker_id=f"bench-{kind}")
        return System(label, topology.tasks, [py, *argv], env, prefill, f"{common}; quorum queues; {settings}")

    def celery(label: str, queue_type: str) -> System:
        from noop_celery_app import make_app  # noqa: PLC0415  (the bench runs without it if never asked)

        queue = f"fjbench.{run}.celery-{queue_type}"
        monitor.queues.add(queue)
        monitor.exchanges.add(queue)
        app = make_app(queue, queue_type=queue_type, prefetch=PREFETCH, broker=url)

        def prefill(n: int) -> None:
            with app.producer_or_acquire() as producer:
                for _ in range(n):
                    app.send_task("fjbench.noop", producer=producer)

        argv = [
            *(py, "-m", "celery", "-A", "noop_celery_app", "worker", "-P", "solo", "-c", "1"),
            *("--prefetch-multiplier", str(PREFETCH), "-Q", queue, "-l", "WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench-{run}-{queue_type}@%h"),
        ]
        env = {
            "PYTHONPATH": str(BENCH_DIR),
            "FJBENCH_BROKER_URL": url,
            "FJBENCH_QUEUE": queue,
            "FJBENCH_QUEUE_TYPE": queue_type,
            "FJBENCH_PREFETCH": str(PREFETCH),
        }
        settings = (
            f"{common}; {queue_type} queue; -P solo, acks_late=True, prefetch multiplier {PREFETCH}, "
            "no result backend, no remote control/gossip/mingle/heartbeat, log level WARNING (its default)"
        )
        # Celery's shutdown (warm or cold) waits ~10 s in its idle poll; by then nothing is left to finish.
        return System(label, queue, argv, env, prefill, settings, stop_grace=1.0)

    def dramatiq() -> System:
        queue = f"fjbench_{run}_dramatiq"
        monitor.queues.update({queue, f"{queue}.DQ", f"{queue}.XQ"})
        env = {"FJBENCH_BROKER_URL": url, "FJBENCH_QUEUE": queue}
        os.environ.update(env)  # the app reads them when imported (the pre-fill imports it here)

        def prefill(n: int) -> None:
            from noop_dramatiq_app import noop  # noqa: PLC0415  (reads FJBENCH_* at import)

            for _ in range(n):
                noop.send()

        argv = [py, "-m", "dramatiq", "noop_dramatiq_app", "-p", "1", "-t", "1", "-Q", queue]
        settings = (
            f"{common}; classic queue; RabbitmqBroker, -p 1 -t 1, dramatiq_queue_prefetch={PREFETCH}, "
            "default middleware, default logging (no line per task)"
        )
        env.update(PYTHONPATH=str(BENCH_DIR), dramatiq_queue_prefetch=str(PREFETCH))
        return System("Dramatiq no-op", queue, argv, env, prefill, settings)

    def bare_aiopika(topology: Topology) -> System:
        async def prefill(n: int) -> None:
            await publish_tasks(monitor.channel, topology, tiny_tasks(root, "bare", n))

        env = {"FJBENCH_BROKER_URL": url, "FJBENCH_QUEUE": topology.tasks, "FJBENCH_PREFETCH": str(PREFETCH)}
        argv = [py, str(BENCH_DIR / "bare_aiopika_consumer.py")]
        settings = f"{common}; quorum queues; aio-pika consumer that acks each delivery and does nothing else"
        return System(CEILING, topology.tasks, argv, env, prefill, settings)

    noop = await monitor.filterjob_topology(f"fj.bench.{run}.noop")
    tiny = await monitor.filterjob_topology(f"fj.bench.{run}.tiny")
    bare = await monitor.filterjob_topology(f"fj.bench.{run}.bare")
    return [
        filterjob(
            "FilterJob no-op",
            noop,
            [str(BENCH_DIR / "noop_filterjob_worker.py")],
            "service.serve with Consumer(work=noop) (bench/noop_filterjob_worker.py), thread executor, "
            f"concurrency 1, an event published with confirms per task (no queue bound to the events exchange), "
            f"LOG_LEVEL {level} (successes are logged at DEBUG)",
        ),
        celery("Celery no-op", "classic"),
        celery("Celery no-op, quorum", "quorum"),
        dramatiq(),
        filterjob(
            "FilterJob real path (a2)",
            tiny,
            ["-m", "filterjob_worker"],
            f"python -m filterjob_worker on a 1x1 JPEG, no filters, JPEG q{QUALITY} output written with fsync, "
            f"LOG_LEVEL {level}",
        ),
        bare_aiopika(bare),
    ]


async def measure_messaging(monitor: Monitor, url: str, run: str, root: Path, n: int, rounds: int) -> list[System]:
    systems = await make_systems(monitor, url, run, root)
    broker_pids = local_broker_pids()
    for r in range(rounds):
        for system in systems:
            result = system.prefill(n)
            if asyncio.iscoroutine(result):
                await result
            await monitor.wait_ready(system.queue, n, system.label)
            log = root / f"log-{system.label.split()[0].lower()}-{r}.txt"
            await timed_drain(monitor, system, n, log, broker_pids)
            shutil.rmtree(root / "out-tiny", ignore_errors=True)
        line = ", ".join(f"{s.label}: {s.rates[-1]:.0f}" for s in systems)
        print(f"  round {r + 1}/{rounds} tasks/s: {line}")
    return systems


# -- (b) the full pipeline ------------------------------------------------------------------------


class Progress:
    """task.succeeded events, timestamped as they arrive."""

    def __init__(self) -> None:
        self.times: list[tuple[float, str]] = []
        self.seconds: list[float] = []  # each image's processing time as the worker measured it
        self.failed: list[str] = []
        self.expected = 0
        self.done = asyncio.Event()

    def reset(self, expected: int) -> None:
        self.times.clear()
        self.seconds.clear()
        self.failed.clear()
        self.expected = expected
        self.done.clear()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        event = Event.from_json(message.body)
        if event.kind == "succeeded":
            self.times.append((now, event.worker))
            self.seconds.append(event.seconds)
        else:
            self.failed.append(f"{event.task}: {event.reason}")
        if len(self.times) + len(self.failed) >= self.expected:
            self.done.set()

    def rate(self, workers: int) -> float:
        """Images/s from the moment every worker has finished one image to the last event."""
        first: dict[str, int] = {}
        for i, (_, worker) in enumerate(self.times):
            first.setdefault(worker, i)
        if len(first) < workers:
            sys.exit(f"only {len(first)} of {workers} workers processed anything; raise the number of images")
        start = max(first.values())
        return (len(self.times) - 1 - start) / (self.times[-1][0] - self.times[start][0])


async def pipeline_run(
    monitor: Monitor, topology: Topology, tasks: list[Task], workers: int, url: str, progress: Progress, logs: Path
) -> float:
    progress.reset(len(tasks))
    await publish_tasks(monitor.channel, topology, tasks)
    env = worker_env(url, topology.tasks, prefetch=PIPELINE_PREFETCH, worker_id="")
    procs = []
    try:
        for w in range(workers):
            env["FILTERJOB_WORKER_ID"] = f"bench-{w}"
            procs.append(Worker([sys.executable, "-m", "filterjob_worker"], env, logs / f"log-pipeline-{w}.txt"))
        deadline = time.monotonic() + TIMEOUT
        while not progress.done.is_set():
            for proc in procs:
                proc.check()
            if time.monotonic() > deadline:
                sys.exit(f"pipeline run with {workers} workers did not finish in {TIMEOUT:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.done.wait(), 0.1)
    finally:
        await asyncio.gather(*(p.stop() for p in procs))
    if progress.failed:
        sys.exit(f"{len(progress.failed)} tasks failed, e.g. {progress.failed[0]}")
    return progress.rate(workers)


def parallel_bare(pool: Executor, inputs: list[Path], out: Path, processes: int) -> float:
    """Images/s of ``processes`` bare loops at once, in pool processes, each on its share of the images."""
    start = time.perf_counter()
    shares = [pool.submit(bare_loop, inputs[i::processes], out / str(i)) for i in range(processes)]
    for share in shares:
        share.result()
    return len(inputs) / (time.perf_counter() - start)


async def measure_pipeline(monitor: Monitor, url: str, run: str, root: Path, n: int, rounds: int) -> dict[str, float]:
    size = SIZES["1MP"]
    t = time.perf_counter()
    source = root / "in-1mp"
    inputs = generate(source, size, n, seed=1000)
    print(f"  generated {n} x {size[0]}x{size[1]} JPEGs in {time.perf_counter() - t:.1f} s")
    topology = await monitor.filterjob_topology(f"fj.bench.{run}.pipeline")
    progress_queue = await local_progress.declare_progress(monitor.channel, topology)
    monitor.queues.add(progress_queue.name)
    progress = Progress()
    consumer_tag = await progress_queue.consume(progress.on_message, no_ack=True)

    def tasks_to(out: Path, count: int = n) -> list[Task]:
        job = make_job(source, out, "broker-bench")
        return list(sources.plan(job, sources.list_inputs(job)[:count]))

    # Two bare loops in parallel: what two processes get from this machine without any broker.
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    # Warm-up (untimed): page cache, worker start; checks that the bare loop and the worker do equal work.
    bare_loop(inputs[:2], root / "warm-a")
    parallel_bare(pool, inputs[:4], root / "warm-p", 2)
    await pipeline_run(monitor, topology, tasks_to(root / "warm-b", 2), 1, url, progress, root)
    same = all((root / "warm-a" / p.name).read_bytes() == (root / "warm-b" / p.name).read_bytes() for p in inputs[:2])
    print(f"  bare loop and worker outputs byte-identical: {'yes' if same else 'NO'}")
    shutil.rmtree(root / "warm-a")
    shutil.rmtree(root / "warm-b")
    shutil.rmtree(root / "warm-p")

    rates: dict[str, list[float]] = {"bare": [], "bare2": [], "1": [], "2": []}
    work: dict[str, list[float]] = {"1": [], "2": []}  # median seconds per image inside the worker
    for r in range(rounds):
        for key, samples in rates.items():
            out = root / f"out-{key}-{r}"
            if key == "bare":
                samples.append(n / bare_loop(inputs, out)[0])
            elif key == "bare2":
                samples.append(parallel_bare(pool, inputs, out, 2))
            else:
                samples.append(await pipeline_run(monitor, topology, tasks_to(out), int(key), url, progress, root))
                work[key].append(statistics.median(progress.seconds))
            shutil.rmtree(out)
        print(f"  round {r + 1}/{rounds} images/s: " + ", ".join(f"{k}: {v[-1]:.2f}" for k, v in rates.items()))
    await progress_queue.cancel(consumer_tag)
    pool.shutdown()
    shutil.rmtree(source)
    out = {k: statistics.median(v) for k, v in rates.items()}
    out.update({f"work{k}": statistics.median(v) for k, v in work.items()})
    return out


# -- main ---------------------------------------------------------------------------------------


def report_messaging(systems: list[System], n_noop: int) -> None:
    medians = {s.label: statistics.median(s.rates) for s in systems}
    baselines = {"Celery": "Celery no-op", "Celery q": "Celery no-op, quorum", "Dramatiq": "Dramatiq no-op"}
    timed = min(min(s.windows) for s in systems)
    print(f"\n(a) messaging overhead, one worker process, {n_noop} tasks pre-filled, >= {timed} acks timed per round")
    cpu_note = "" if any(s.broker_cpu[0] for s in systems) else " (broker CPU: RabbitMQ not on this machine)"
    header = "".join(f" {'vs ' + k:>11}" for k in baselines)
    print(
        f"  {'measure':<26} {'tasks/s':>8} {'range':>11} {'us/task':>8} {'worker CPU':>10} {'broker CPU':>10}{header}"
    )
    for system in systems:
        rate = medians[system.label]
        spread = f"{min(system.rates):.0f}-{max(system.rates):.0f}"
        cpu = f"{statistics.median(system.worker_cpu) * 1e6:>10.0f} {statistics.median(system.broker_cpu) * 1e6:>10.0f}"
        ratios = "".join(f" {rate / medians[label]:>11.2f}" for label in baselines.values())
        print(f"  {system.label:<26} {rate:>8.0f} {spread:>11} {1e6 / rate:>8.0f} {cpu}{ratios}")
    print(f"  (worker/broker CPU: us of CPU time per task in the timed window, medians){cpu_note}")
    fj = medians["FilterJob no-op"]
    print(
        f"  FilterJob/Celery = {fj / medians['Celery no-op']:.2f} (Celery on a classic queue), "
        f"{fj / medians['Celery no-op, quorum']:.2f} (on a quorum queue, like FilterJob's) (goal >= 2); "
        f"FilterJob/Dramatiq = {fj / medians['Dramatiq no-op']:.2f}"
    )
    ceiling = medians[CEILING]
    print(
        f"  ceiling: an aio-pika consumer that only acks does {ceiling / medians['Celery no-op']:.2f}x Celery "
        f"({ceiling / medians['Celery no-op, quorum']:.2f}x on quorum); FilterJob reaches {fj / ceiling:.2f} of it"
    )
    real = medians["FilterJob real path (a2)"]
    print(f"  the real path (a2) costs {1e6 / real - 1e6 / fj:.0f} us/task more than the no-op worker")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> None:
    rounds = args.rounds or (2 if args.quick else 5)
    n_noop = args.n_noop or (300 if args.quick else 4000)
    n_images = args.n_images or (6 if args.quick else 48)
    cpus = os.cpu_count() or 1
    tag = uuid.uuid4().hex[:8]
    import celery  # noqa: PLC0415  (versions for the header)
    import dramatiq  # noqa: PLC0415

    print(
        f"python {sys.version.split()[0]}, Pillow {Image.__version__}, aio-pika {aio_pika.__version__}, "
        f"celery {celery.__version__}, dramatiq {dramatiq.__version__}, {cpus} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="filterjob-broker-bench-", dir=args.tmp) as tmp:
        root = Path(tmp)
        async with Monitor(args.broker) as monitor:
            server = monitor.connection.transport.connection.server_properties  # type: ignore[union-attr]
            version = server.get("version", b"?")
            version = version.decode() if isinstance(version, bytes) else version
            print(f"RabbitMQ {version} at {broker_host(args.broker)}; temp dir {root}")
            print(f"rounds: {rounds}, interleaved; median reported; load average at start {_load()}\n")

            print(f"(a) no-op tasks through one worker process, {n_noop} pre-filled tasks per round")
            systems = await measure_messaging(monitor, args.broker, tag, root, n_noop, rounds)
            print(f"\n(b) full pipeline, {n_images} x 1 MP images per round")
            pipeline = await measure_pipeline(monitor, args.broker, tag, root, n_images, rounds)

    print("\nsettings:")
    for system in systems:
        print(f"  {system.label}: {system.settings}")
    print(
        f"  (b) workers: python -m filterjob_worker, concurrency 1, prefetch {PIPELINE_PREFETCH} (the default), "
        f"thread executor, quorum queues, events to a quorum progress queue, "
        f"LOG_LEVEL {os.environ.get('FILTERJOB_LOG_LEVEL', 'INFO')}"
    )
    print("  pipeline: " + " -> ".join(f["name"] for f in FILTERS) + f"; output JPEG quality {QUALITY}")

    report_messaging(systems, n_noop)

    bare, bare2 = pipeline["bare"], pipeline["bare2"]
    print(f"\n(b) full pipeline, 1 MP JPEGs, {n_images} images per round")
    print(f"  {'measure':<40} {'images/s':>9} {'per process vs bare':>20} {'vs bare x same procs':>21}")
    for name, value, procs, same in (
        ("bare Pillow loop, 1 process", bare, 1, bare),
        ("bare Pillow loops, 2 processes at once", bare2, 2, bare2),
        ("1 FilterJob worker via RabbitMQ", pipeline["1"], 1, bare),
        ("2 FilterJob workers via RabbitMQ", pipeline["2"], 2, bare2),
    ):
        print(f"  {name:<40} {value:>9.2f} {value / (procs * bare):>20.2f} {value / same:>21.2f}")
    print(
        f"  1 worker / bare = {pipeline['1'] / bare:.2f}, 2 workers / (2 x bare) = {pipeline['2'] / (2 * bare):.2f} "
        f"(goal >= 0.9); 2 workers / 2 parallel bare loops = {pipeline['2'] / bare2:.2f}"
    )
    w1, w2 = pipeline["work1"] * 1000, pipeline["work2"] * 1000
    print(
        f"  ms per image: bare loop {1000 / bare:.1f} (2 at once: {2000 / bare2:.1f}); inside a worker (its events' "
        f"'seconds', median) {w1:.1f} with 1 worker, {w2:.1f} with 2; wall per image and worker beyond that: "
        f"{1000 / pipeline['1'] - w1:.1f} with 1 worker, {2000 / pipeline['2'] - w2:.1f} with 2"
    )
    print(f"\nload average at end {_load()} (other load on the machine makes these numbers unreliable)")


def broker_host(url: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5672}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few tasks and rounds: a smoke run (< 60 s)")
    parser.add_argument("--rounds", type=int, help="interleaved repetitions (default 5, quick 2)")
    parser.add_argument(
        "--n-noop", type=int, help="pre-filled no-op tasks per system and round (default 4000, quick 300)"
    )
    parser.add_argument("--n-images", type=int, help="1 MP images per pipeline round (default 48, quick 6)")
    parser.add_argument("--broker", default=os.environ.get("FILTERJOB_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--tmp", type=Path, help="parent of the temporary directory (default: system temp dir)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
