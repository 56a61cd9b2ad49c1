"""The ``filterjob`` command line.

Exit codes are defined once, in :mod:`filterjob_operator.exits`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as ProgressTask
from rich.table import Column
from rich.text import Text

from filterjob_operator import exits, samples, sources
from filterjob_operator.local.options import LocalOptions
from filterjob_operator.local.pool import run_local
from filterjob_operator.local.start import Listener
from filterjob_operator.local.summary import RunSummary
from filterjob_operator.spec import FilterJob, JobSpecError, load_job
from filterjob_worker import __version__, catalog
from filterjob_worker.contract import Event, JobFinished
from filterjob_worker.errors import SpecError
from filterjob_worker.processing import Outcome
from filterjob_worker.topology import QueueName, Topology

if TYPE_CHECKING:
    from filterjob_operator.watch import Ended

#: _LAZY: broker code (aio-pika, aiohttp) is imported only by the commands that use
#: it. Local mode's pool processes re-import this module (multiprocessing imports
#: the main module in each child): 0.3 s per worker process otherwise.
EXIT_FAILED = exits.FAILED
T = TypeVar("T")
EXIT_INVALID = exits.INVALID
BROKER_ENV = "FILTERJOB_BROKER_URL"


class _Bar(Listener):
    """Images done / total, rate, ETA; in broker mode also the queue depth."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bar = progress.add_task("filtering", total=None, processed=0)
        self.failed = 0
        self.processed = 0
        self.depth = ""

    def started(self, total: int) -> None:
        self.progress.update(self.bar, total=total)

    def advanced(self, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.processed += 1
            if not outcome.ok:
                self.failed += 1
                self._describe()
        self.progress.update(self.bar, advance=1, processed=self.processed)

    def queued(self, ready: int, unacked: int) -> None:
        self.depth = f"{ready} queued, {unacked} running"
        self._describe()

    def _describe(self) -> None:
        parts = [f"[red]{self.failed} failed[/]"] if self.failed else []
        if self.depth:
            parts.append(self.depth)
        self.progress.update(self.bar, description=", ".join(parts) or "filtering")


class _Rate(ProgressColumn):
    """While running: the recent rate (Rich's 30 s window). At the end: images processed
    (skipped ones excluded) over the whole run, the measure of the summary's throughput."""

    def render(self, task: ProgressTask) -> Text:
        speed = task.speed
        if task.finished and task.elapsed:
            speed = task.fields.get("processed", task.completed) / task.elapsed
        return Text("    - img/s" if speed is None else f"{speed:5.1f} img/s", style="progress.data.speed")


#: Below this width the bar drops its percentage and elapsed time to stay on one line.
_WIDE = 110


def _progress(console: Console) -> Progress:
    wide = console.width >= _WIDE

    # The description (queue depth, failures) is cut rather than wrapped to a second line.
    def fixed() -> Column:
        return Column(no_wrap=True)

    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=40 if wide else None, table_column=Column(ratio=1)),
        MofNCompleteColumn(table_column=fixed()),
    ]
    if wide:
        columns.append(TaskProgressColumn(table_column=fixed()))
    columns.append(_Rate(table_column=fixed()))
    if wide:
        columns.append(TimeElapsedColumn(table_column=fixed()))
    columns += [TextColumn("ETA", table_column=fixed()), TimeRemainingColumn(table_column=fixed())]
    return Progress(*columns, console=console, disable=not console.is_terminal, expand=not wide)


def _broker_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--broker``, checked before anything starts (the workers' own check: one function)."""
    if value is None:
        return None
    from filterjob_operator.broker_errors import connect_timeout  # noqa: PLC0415 (see _LAZY)
    from filterjob_worker.config import broker_url_problem  # noqa: PLC0415

    try:
        connect_timeout()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if (problem := broker_url_problem(value)) is not None:
        raise click.BadParameter(f"the URL{_broker_origin(ctx)} {problem}")
    return value


def _broker_origin(ctx: click.Context) -> str:
    """Where the broker URL came from, when it was not the command line."""
    if ctx.get_parameter_source("broker") == click.core.ParameterSource.ENVIRONMENT:
        return f" (from {BROKER_ENV})"
    return ""


def _broker_option(*, required: bool, text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--broker",
        metavar="AMQP_URL",
        envvar=BROKER_ENV,
        required=required,
        callback=_broker_url,
        help=f"{text} [env: {BROKER_ENV}]",
    )


def _on_broker_errors(url: str, call: Callable[[], T]) -> T:
    """``call()``, which talks to the broker at ``url``: a broker failure is one line and exit BROKER."""
    from filterjob_operator.broker_errors import BrokerUnavailable, translated  # noqa: PLC0415 (see _LAZY)

    try:
        with translated(url):
            return call()
    except BrokerUnavailable as e:
        Console(stderr=True).print(Text.assemble(("broker error: ", "red"), str(e)), soft_wrap=True)
        sys.exit(exits.BROKER)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterjob")
def main() -> None:
    """FilterJob: batch image filtering, on a laptop or on Kubernetes."""


@main.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Worker processes [default: CPUs].")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output exists (resume a run).")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@_broker_option(
    required=False,
    text="Run through RabbitMQ with local worker processes (the pods' code) instead of a process pool;"
    " also taken from the environment, so unset it to run locally.",
)
@click.option("--worker-logs", type=click.Path(file_okay=False, path_type=Path), help="With --broker: worker log dir.")
@click.pass_context
def run(
    ctx: click.Context,
    job_file: Path,
    workers: int | None,
    skip_existing: bool,
    no_progress: bool,
    broker: str | None,
    worker_logs: Path | None,
) -> None:
    """Run the FilterJob in JOB_FILE on this machine.

    It says first which way it runs: locally with a process pool, or through the
    RabbitMQ of --broker (or of FILTERJOB_BROKER_URL, if set).

    \b
    Exit codes: 0 every image written, 1 some failed or the run was interrupted,
    2 invalid job, command line or worker configuration, 3 the broker cannot be
    reached or refused us (FILTERJOB_CONNECT_TIMEOUT: seconds to wait for it, 10).

    Ctrl-C or SIGTERM stops the run: images in progress finish and the summary counts
    every output written (exit 1; --skip-existing resumes). A source that cannot be
    listed completely stops the run before any image (exit 2) unless the job sets
    spec.source.skipUnreadable: true; then the summary lists each skipped path.
    """
    console = Console(stderr=True)
    try:
        job = load_job(job_file, local=True)
    except JobSpecError as e:
        _invalid(console, e)
    workers = workers or os.cpu_count() or 1
    progress = _progress(console) if not no_progress else None
    listener = _Bar(progress) if progress is not None else None
    if broker is None:
        console.print(f"running locally with {workers} processes", highlight=False, soft_wrap=True)
    else:
        from filterjob_worker.config import redact  # noqa: PLC0415 (see _LAZY)

        where = f"running through RabbitMQ at {redact(broker)}{_broker_origin(ctx)} with {workers} worker processes"
        console.print(where, highlight=False, soft_wrap=True, markup=False)

    def execute() -> RunSummary:
        if broker is None:
            return run_local(job, options=LocalOptions(workers=workers, skip_existing=skip_existing), listener=listener)
        from filterjob_operator.local.brokered import run_with_broker  # noqa: PLC0415 (see _LAZY)
        from filterjob_operator.local.options import BrokerOptions  # noqa: PLC0415

        if worker_logs is not None:
            worker_logs.mkdir(parents=True, exist_ok=True)
        options = BrokerOptions(
            broker_url=broker,
            workers=workers,
            skip_existing=skip_existing,
            log_dir=str(worker_logs) if worker_logs else None,
        )
        return _broker_run(broker, lambda: run_with_broker(job, options=options, listener=listener), stopped)

    stopped: list[tuple[int, str]] = []
    # SIGTERM (timeout, CI, kill) ends a run as Ctrl-C does: summary, resume hint, exit 1.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if progress is None:
            summary = execute()
        else:
            with progress:
                summary = execute()
    except JobSpecError as e:
        _invalid(console, e)
    except KeyboardInterrupt:
        # Interrupted before the first image (while listing): nothing was written.
        console.print("interrupted before any image was processed", highlight=False)
        sys.exit(EXIT_FAILED)
    _finish(console, summary, stopped)


def _broker_run(url: str, run: Callable[[], Awaitable[RunSummary]], stopped: list[tuple[int, str]]) -> RunSummary:
    """A run through the broker; if its workers cannot run, ``stopped`` gets the reason (and its exit code)."""
    from filterjob_operator.local.brokered import WorkersFailed  # noqa: PLC0415 (see _LAZY)

    try:
        return _on_broker_errors(url, lambda: asyncio.run(_awaited(run)))
    except WorkersFailed as e:
        code = exits.INVALID if e.failure.invalid_config else exits.FAILED
        stopped.append((code, f"the workers cannot run: {e.failure.reason}"))
        return e.summary


async def _awaited(run: Callable[[], Awaitable[T]]) -> T:
    # SIGTERM ends the run as Ctrl-C does (asyncio.run turns that into a cancel).
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    return await run()


def _finish(console: Console, summary: RunSummary, stopped: list[tuple[int, str]]) -> None:
    """The summary, then why the run stopped early if it did, and the exit code."""
    summary.render(Console())
    if stopped:
        code, reason = stopped[0]
        console.print(Text.assemble(("run stopped: ", "red"), reason), soft_wrap=True)
        sys.exit(code)
    if not summary.ok:
        sys.exit(EXIT_FAILED)


@dataclasses.dataclass(frozen=True)
class _Watched:
    """What ``filterjob watch`` follows: a local job file's queues or a cluster FilterJob's."""

    key: str
    topology: Topology
    source: str
    #: For a cluster job: reads the FilterJob (None once deleted). None for a local job.
    read: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
    hint: str = ""


#: NAMESPACE/NAME of a cluster job: a DNS label, then a DNS subdomain.
_JOB_REF = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)")


def _cluster_failed(console: Console, message: str) -> NoReturn:
    console.print(f"[red]cluster:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(exits.CLUSTER)


def _broker_failed(console: Console, url: str, error: BaseException) -> NoReturn:
    """One line for a broker lost after it was reached (what :func:`_on_broker_errors` does not describe)."""
    from filterjob_worker.config import redact  # noqa: PLC0415 (see _LAZY)

    password = urlsplit(url).password
    detail = (str(error) or type(error).__name__).replace(password or "\0", "***")
    console.print(f"[red]broker {escape(redact(url))}:[/] {escape(detail)}", highlight=False, soft_wrap=True)
    sys.exit(exits.BROKER)


def _watched(console: Console, job: str) -> _Watched:
    from filterjob_operator.workerenv import topology_of  # noqa: PLC0415 (see _LAZY)

    path = Path(job)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json") or not _JOB_REF.fullmatch(job):
        if not path.is_file():
            raise click.BadParameter(
                f"neither a job file nor a cluster job's NAMESPACE/NAME: {job!r}", param_hint="JOB"
            )
        try:
            local = load_job(path, local=True)
        except JobSpecError as e:
            _invalid(console, e)
        hint = f"start it with: filterjob run {job} --broker URL"
        return _Watched(key=local.key, topology=topology_of(local), source=local.spec.source.uri, hint=hint)
    from filterjob_operator import kube  # noqa: PLC0415 (see _LAZY)

    namespace, name = job.split("/", 1)
    client = kube.Kube(_kube_client(console))

    async def read() -> dict[str, Any] | None:
        return await client.filterjob(namespace, name, seconds=KUBE_TIMEOUT)

    found = _on_cluster(console, job, read)
    if found is None:
        _cluster_failed(console, f"no FilterJob {job} (kubectl get fj -n {namespace})")
    uid = str((found.get("metadata") or {}).get("uid") or "")
    source = str(((found.get("spec") or {}).get("source") or {}).get("uri") or "")
    topology = Topology.for_job(namespace=namespace, name=name, uid=uid)
    hint = f"see kubectl describe fj -n {namespace} {name}"
    return _Watched(key=job, topology=topology, source=source, read=read, hint=hint)


#: Seconds a request to the Kubernetes API may take before watch gives up.
KUBE_TIMEOUT = 15.0


def _kube_client(console: Console) -> Any:
    import kubernetes  # noqa: PLC0415 (see _LAZY)

    from filterjob_operator import kube  # noqa: PLC0415

    try:
        return kube.load_config()
    except (kubernetes.config.ConfigException, OSError) as e:
        _cluster_failed(console, f"no usable kubeconfig ({e}); set KUBECONFIG or run kubectl config use-context")


def _on_cluster(console: Console, job: str, action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` (Kubernetes API calls); its errors become one line and exit 4."""
    try:
        return asyncio.run(_cluster_errors(console, job, action()))
    except _ClusterFailed as e:
        _cluster_failed(console, str(e))


class _ClusterFailed(Exception):
    pass


async def _cluster_errors(console: Console, job: str, action: Awaitable[T]) -> T:
    import urllib3  # noqa: PLC0415 (see _LAZY)

    from filterjob_operator import kube  # noqa: PLC0415

    try:
        return await action
    except kube.KubeError as e:
        hint = " (RBAC: you need get on filterjobs.filterjob.dev)" if e.status == 403 else ""
        raise _ClusterFailed(f"cannot read FilterJob {job}: the API answered {e}{hint}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        reason = getattr(e, "reason", None) or e  # a MaxRetryError's cause, without the URL it retried
        raise _ClusterFailed(f"cannot reach the Kubernetes API for {job}: {reason}") from e


@main.command("watch")
@click.argument("job")
@_broker_option(required=True, text="The job's broker; from a laptop, a port-forward (docs/operations.md).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
def watch_command(job: str, broker: str, as_json: bool) -> None:
    """Print the task events of JOB live until it ends (Ctrl-C to stop).

    \b
    JOB is NAMESPACE/NAME of a FilterJob on the cluster (read with the current
    kubeconfig; the watch ends when it is Succeeded or Failed), or a job file run
    with `filterjob run FILE --broker URL` (the watch ends with the run).
    The watch never creates the job's queues; it prints the final counts.
    """
    console = Console(stderr=True)
    target = _watched(console, job)
    output = _WatchOutput(source=target.source, as_json=as_json)
    from filterjob_operator import watch  # noqa: PLC0415 (see _LAZY)

    if target.read is not None:
        current: dict[str, Any] | None = _on_cluster(console, job, target.read)
        if (already := watch.final_phase(current or {})) is not None:
            output.finish(already)
            return
    import aio_pika  # noqa: PLC0415 (see _LAZY)

    # Their log lines repeat the errors reported below (and name the URL with its password).
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        end = _on_broker_errors(broker, lambda: asyncio.run(_follow(console, target, broker, output.show)))
    except asyncio.CancelledError:  # Ctrl-C before the watch began
        return
    except watch.NoSuchJob:
        console.print(
            f"[red]no such job {escape(target.key)} on the broker[/] (no exchange {target.topology.events}): "
            f"has it started? {escape(target.hint)}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exits.BROKER)
    except _ClusterFailed as e:
        _cluster_failed(console, str(e))
    except (aio_pika.exceptions.AMQPError, OSError) as e:
        _broker_failed(console, broker, e)
    if end is None:
        return
    if end.finished is not None:
        output.finish(end.finished)
    else:
        console.print(f"stopped: {escape(end.why)}", highlight=False, soft_wrap=True)


@dataclasses.dataclass
class _WatchOutput:
    """How ``filterjob watch`` prints events and the end: a line each, or JSON."""

    source: str
    as_json: bool
    out: Console = dataclasses.field(default_factory=lambda: Console(highlight=False, soft_wrap=True))

    def show(self, event: Event) -> None:
        if self.as_json:
            click.echo(event.to_json().decode(), nl=True)
            sys.stdout.flush()
            return
        colour = {"succeeded": "green", "retrying": "yellow", "failed": "red"}.get(event.kind, "white")
        where = sources.input_key(self.source, event.input) if event.input else event.task
        reason = f": {event.reason}" if event.reason else ""
        self.out.print(
            f"[{colour}]{event.kind:<9}[/] {escape(where)} (attempt {event.attempt}, {event.worker}){escape(reason)}"
        )

    def finish(self, end: JobFinished) -> None:
        if self.as_json:
            click.echo(end.to_json().decode(), nl=True)
            return
        skipped = f", {end.skipped} skipped" if end.skipped else ""
        counts = f"{end.succeeded} succeeded, {end.failed} failed{skipped} of {end.total}"
        self.out.print(f"finished  {escape(end.job)}: {end.phase}, {counts}")


async def _follow(console: Console, target: _Watched, broker: str, show: Callable[[Event], None]) -> Ended | None:
    """Watch until the job ends or a signal; a signal while still connecting cancels the connection."""
    from filterjob_operator import watch  # noqa: PLC0415 (see _LAZY)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    watching = False

    def interrupt() -> None:
        stop.set()
        if not watching and main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    ended = None
    if target.read is not None:
        read = target.read

        def ended() -> Awaitable[watch.Ended]:
            return _cluster_errors(console, target.key, watch.cluster_end(read, target.key))

    def ready() -> None:
        nonlocal watching
        watching = True
        console.print(f"watching {escape(target.key)} (Ctrl-C to stop)", highlight=False, soft_wrap=True)

    return await watch.watch(broker, target.topology, show, stop=stop, ready=ready, ended=ended)


def _job_topology(console: Console, job: str) -> Topology:
    """The queues of JOB: a job file's (local mode), or a cluster job's from one of its queue names."""
    from filterjob_operator.workerenv import topology_of  # noqa: PLC0415 (see _LAZY)

    if Path(job).is_file():
        try:
            return topology_of(load_job(Path(job), local=True))
        except JobSpecError as e:
            _invalid(console, e)
    try:
        return Topology.from_queue_name(job)
    except SpecError:
        message = f"neither a FilterJob file nor a job's queue name: {job!r}"
        raise click.BadParameter(message, param_hint="JOB") from None


@main.command("parked")
@click.argument("job")
@_broker_option(required=True, text="The RabbitMQ of the job's queues.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parked task.")
def parked_command(job: str, broker: str, as_json: bool) -> None:
    """List the parked (failed for good) tasks of JOB with their reasons, leaving them in place.

    JOB is a FilterJob file (its local-mode queues) or any queue name of a cluster job,
    e.g. fj.photos.thumbnails.1a2b3c4d.parked, or its base name, which the FilterJob's
    status.queues holds (kubectl get fj -o wide).
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    from filterjob_operator.broker.parked import parked_failures  # noqa: PLC0415 (see _LAZY)

    failures = _on_broker(broker, lambda connection: parked_failures(connection, topology))
    for failure in failures:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(failure)))
        else:
            click.echo(f"{failure.input or failure.task}  (attempt {failure.attempt}): {failure.reason}")
    console.print(f"{len(failures)} parked tasks in {topology.parked}", highlight=False, soft_wrap=True)


@main.command("redrive")
@click.argument("job")
@_broker_option(required=True, text="The RabbitMQ of the job's queues.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="JOB file: worker processes [CPUs].")
@click.option("--no-progress", is_flag=True, help="JOB file: do not draw the progress bar.")
@click.option("--worker-logs", type=click.Path(file_okay=False, path_type=Path), help="JOB file: worker log dir.")
def redrive_command(job: str, broker: str, workers: int | None, no_progress: bool, worker_logs: Path | None) -> None:
    """Move the parked tasks of JOB back to its task queue, with a fresh attempt count.

    JOB is a FilterJob file (its local-mode queues) or any queue name of a cluster job,
    e.g. fj.photos.thumbnails.1a2b3c4d.parked, or its base name, which the FilterJob's
    status.queues holds (kubectl get fj -o wide). Fix the cause first.

    \b
    A FilterJob file: its workers then run here, as with `filterjob run --broker`,
    until every re-driven task is done, and it ends with the same summary and exit codes.
    A cluster job: the tasks wait in its task queue for the job's workers. A running
    job's workers take them; a finished job has none, so annotate it instead
    (kubectl annotate fj NAME filterjob.dev/redrive=$(date +%s) --overwrite): the
    operator then moves the tasks, scales the workers up and counts the results.
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    if Path(job).is_file():
        _redrive_here(console, load_job(Path(job), local=True), broker, workers, no_progress, worker_logs)
        return
    from filterjob_operator.broker.parked import redrive  # noqa: PLC0415 (see _LAZY)

    moved = _on_broker(broker, lambda connection: redrive(connection, topology))
    console.print(f"moved {len(moved)} parked tasks back to {topology.tasks}", highlight=False, soft_wrap=True)
    if moved:
        owner = QueueName.parse(topology.base)
        namespace, name = owner.namespace, owner.name
        console.print(
            "A running job's workers take them now. If the job has finished, its workers are at zero and the"
            f" tasks wait: kubectl annotate fj {name} -n {namespace} filterjob.dev/redrive=$(date +%s) --overwrite"
            " makes the operator run it again.",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


def _redrive_here(
    console: Console, job: FilterJob, broker: str, workers: int | None, no_progress: bool, worker_logs: Path | None
) -> None:
    """Re-drive a local job's parked tasks and run its workers until they are done."""
    from filterjob_operator.local.brokered import redrive_with_broker  # noqa: PLC0415 (see _LAZY)
    from filterjob_operator.local.options import BrokerOptions  # noqa: PLC0415
    from filterjob_operator.workerenv import topology_of  # noqa: PLC0415
    from filterjob_worker.config import redact  # noqa: PLC0415

    workers = workers or os.cpu_count() or 1
    if worker_logs is not None:
        worker_logs.mkdir(parents=True, exist_ok=True)
    options = BrokerOptions(broker_url=broker, workers=workers, log_dir=str(worker_logs) if worker_logs else None)
    progress = _progress(console) if not no_progress else None
    listener = _Bar(progress) if progress is not None else None
    console.print(
        f"re-driving {job.key} through RabbitMQ at {redact(broker)} with {workers} worker processes",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    stopped: list[tuple[int, str]] = []

    def execute() -> RunSummary:
        return _broker_run(broker, lambda: redrive_with_broker(job, options=options, listener=listener), stopped)

    if progress is None:
        summary = execute()
    else:
        with progress:
            summary = execute()
    if summary.total == 0 and not stopped:
        console.print(
            f"no parked tasks in {topology_of(job).parked}: nothing to re-drive", highlight=False, soft_wrap=True
        )
        return
    _finish(console, summary, stopped)


@main.command("clean")
@click.argument("job")
@_broker_option(required=True, text="The RabbitMQ of the job's queues.")
@click.option("--force", is_flag=True, help="Delete even while consumers (workers, a run) are attached.")
def clean_command(job: str, broker: str, force: bool) -> None:
    """Delete the queues and exchanges of JOB, messages and parked failures included.

    JOB is a FilterJob file (its local-mode queues: what an interrupted run leaves) or
    any queue name of a cluster job, e.g. fj.photos.thumbnails.1a2b3c4d.tasks. It refuses
    while consumers are attached, unless --force. A cluster job's queues go when the
    FilterJob is deleted (kubectl delete fj NAME); this is for what is left over.
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    from filterjob_operator.broker.inventory import existing, remove  # noqa: PLC0415 (see _LAZY)

    extra = [topology.progress]
    found = _on_broker(broker, lambda connection: existing(connection, topology, extra=extra))
    if not found:
        console.print(
            f"nothing to delete: no queue or exchange of {topology.base} exists", highlight=False, soft_wrap=True
        )
        return
    busy = [item for item in found if item.consumers]
    if busy and not force:
        attached = ", ".join(f"{item.name} ({item.consumers})" for item in busy)
        console.print(
            f"[red]not deleting:[/] consumers are attached to {attached}; stop the workers or the run"
            " (or, on a cluster, delete the FilterJob), or pass --force",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exits.INVALID)
    _on_broker(broker, lambda connection: remove(connection, found))
    for item in found:
        counts = f" ({item.messages} messages)" if item.kind == "queue" else ""
        click.echo(f"deleted {item.kind} {item.name}{counts}")


def _on_broker(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(connection)`` on a fresh broker connection, closed afterwards; broker errors exit BROKER."""
    from filterjob_operator import broker_errors  # noqa: PLC0415 (see _LAZY)

    async def run() -> T:
        connection = await broker_errors.connect(url, name="filterjob cli")
        async with connection:
            return await action(connection)

    return _on_broker_errors(url, lambda: asyncio.run(run()))


def _in_job_pod(broker: str, task: Callable[[FilterJob, str], Coroutine[Any, Any, T]]) -> tuple[FilterJob, T]:
    """What the operator's lister and verifier Jobs share: the FilterJob from FILTERJOB_JOB
    (exit 2 if it is not one), then ``task(job, broker)`` with broker errors as one line."""
    from filterjob_operator import lister  # noqa: PLC0415 (see _LAZY)
    from filterjob_worker import logs  # noqa: PLC0415

    logs.configure("INFO")
    try:
        job = lister.job_from_env(os.environ)
    except JobSpecError as e:
        _invalid(Console(stderr=True), e)
    return job, _on_broker_errors(broker, lambda: asyncio.run(task(job, broker)))


@main.command("list-inputs")
@_broker_option(required=True, text="The RabbitMQ of the job's queues.")
def list_inputs_command(broker: str) -> None:
    """List a cluster job's source into its inputs queue (what the operator's lister Job runs).

    \b
    The FilterJob comes as JSON in FILTERJOB_JOB. A source that cannot be listed is
    reported to the operator through the queue, and the command still exits 0.
    """
    from filterjob_operator import lister  # noqa: PLC0415 (see _LAZY)

    job, result = _in_job_pod(broker, lister.list_inputs)
    if result.error is not None:
        lister.log.warning("%s cannot be listed: %s (reported in %s)", job.key, result.error, result.queue)
    else:
        lister.log.info(
            "%s: %d inputs listed into %s (%d messages)", job.key, result.keys, result.queue, result.messages
        )


@main.command("verify-outputs")
@_broker_option(required=True, text="The RabbitMQ of the job's queues.")
def verify_outputs_command(broker: str) -> None:
    """List a cluster job's destination into its outputs queue (what the operator's verifier Job runs).

    \b
    The FilterJob comes as JSON in FILTERJOB_JOB. The operator counts a finished job's
    outputs from this listing. A destination that cannot be listed completely is
    reported to the operator through the queue, and the command still exits 0.
    """
    from filterjob_operator import verifier  # noqa: PLC0415 (see _LAZY)

    job, result = _in_job_pod(broker, verifier.verify_outputs)
    if result.error is not None:
        verifier.log.warning("%s: %s (reported in %s)", job.key, result.error, result.queue)
    else:
        verifier.log.info("%s: %d outputs found, listed into %s", job.key, result.keys, result.queue)


@main.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--local", is_flag=True, help="Accept plain paths, as `filterjob run` does.")
def validate(job_file: Path, local: bool) -> None:
    """Check a FilterJob file and print what is wrong with it, if anything."""
    console = Console(stderr=True)
    try:
        job = load_job(job_file, local=local)
        if local:  # the paths are this machine's: a symlink may lead the destination into the source
            sources.refuse_overlap(job)
    except JobSpecError as e:
        _invalid(console, e)
    click.echo(f"{job_file}: valid FilterJob {job.key} with {len(job.spec.filters)} filter steps")


@main.command()
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (the default without -n).")
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True, help="Liveness endpoint.")
def operator(namespaces: tuple[str, ...], all_namespaces: bool, liveness: str) -> None:
    """Run the FilterJob operator (in-cluster or with the current kubeconfig)."""
    import kopf  # noqa: PLC0415 (see _LAZY)

    from filterjob_operator import handlers  # noqa: F401, PLC0415 -- registers the handlers
    from filterjob_operator.settings import Settings  # noqa: PLC0415
    from filterjob_worker import logs  # noqa: PLC0415

    logs.configure("INFO")
    if namespaces and all_namespaces:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
    try:
        # Read here too, so a bad setting stops the operator with its name, instead of kopf
        # retrying the startup handler every minute for ever.
        Settings.from_env()
    except ValueError as e:
        Console(stderr=True).print(
            f"[red]invalid operator setting:[/] {escape(str(e))}", highlight=False, soft_wrap=True
        )
        sys.exit(exits.INVALID)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness,
    )


@main.command()
@click.option("--reference", is_flag=True, help="Print the FilterJob reference (Markdown) instead.")
def crd(reference: bool) -> None:
    """Print the FilterJob CustomResourceDefinition (YAML)."""
    import yaml  # noqa: PLC0415

    from filterjob_operator.crd import build_crd  # noqa: PLC0415
    from filterjob_operator.reference import render_reference  # noqa: PLC0415

    if reference:
        click.echo(render_reference(), nl=False)
        return
    click.echo(yaml.safe_dump(build_crd(), sort_keys=False), nl=False)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the JSON Schema of a filters list instead.")
def filters(as_json: bool) -> None:
    """List the filter catalog with parameters."""
    if as_json:
        click.echo(json.dumps(catalog.json_schema(), indent=2))
        return
    console = Console()
    for fdef in catalog.CATALOG.values():
        # Descriptions hold brackets ("[left, top, right, bottom]") that Rich would take for markup.
        console.print(f"[bold]{fdef.name}[/]  {escape(fdef.description)}", highlight=False, soft_wrap=True)
        for param in fdef.params:
            line = f"    {param.name}: {param.summary()} — {param.description}"
            console.print(escape(line), highlight=False, soft_wrap=True)
        if problem := fdef.check({}):
            console.print(escape(f"    ({problem})"), highlight=False, soft_wrap=True)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 640x480, got {value!r}") from None
    if w < 1 or h < 1:
        raise click.BadParameter(f"width and height must be positive, got {value!r}")
    return w, h


@main.command("samples")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", "-n", type=click.IntRange(min=0), default=24, show_default=True)
@click.option("--size", callback=_size, default="640x480", show_default=True, help="WIDTHxHEIGHT.")
@click.option("--broken", type=click.IntRange(min=0), default=0, show_default=True, help="Also write N bad files.")
@click.option("--seed", type=int, default=0, show_default=True)
def samples_command(directory: Path, count: int, size: tuple[int, int], broken: int, seed: int) -> None:
    """Write synthetic sample images into DIRECTORY."""
    made = samples.make_samples(directory, count=count, size=size, broken=broken, seed=seed)
    click.echo(f"wrote {len(made.good)} images and {len(made.broken)} broken files to {directory}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _invalid(console: Console, error: JobSpecError) -> Any:
    console.print("[red]invalid FilterJob:[/]", highlight=False, soft_wrap=True)
    for problem in error.problems:
        console.print(f"  - {escape(problem)}", highlight=False, soft_wrap=True)
    sys.exit(EXIT_INVALID)
