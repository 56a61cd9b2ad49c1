"""The ``filterjob`` command line.

Exit codes are defined once, in :mod:`filterjob_operator.exits`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
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
from rich.text import Text

from filterjob_operator import exits, samples, sources
from filterjob_operator.local import Listener, LocalOptions, run_local
from filterjob_operator.spec import JobSpecError, load_job
from filterjob_operator.summary import RunSummary
from filterjob_worker import __version__, catalog
from filterjob_worker.contract import Event
from filterjob_worker.processing import Outcome
from filterjob_worker.topology import Topology

#: _LAZY: broker code (aio-pika, aiohttp) is imported only by the commands that use
#: it. Local mode's pool processes re-import this module (multiprocessing imports
#: the main module in each child): 0.3 s per worker process otherwise.
EXIT_FAILED = exits.FAILED
T = TypeVar("T")
EXIT_INVALID = exits.INVALID


class _Bar(Listener):
    """Images done / total, rate, ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bar = progress.add_task("filtering", total=None)
        self.failed = 0
        self.depth = ""

    def started(self, total: int) -> None:
        self.progress.update(self.bar, total=total)

    def advanced(self, outcome: Outcome | None) -> None:
        if outcome is not None and not outcome.ok:
            self.failed += 1
            self._describe()
        self.progress.advance(self.bar)

    def queued(self, ready: int, unacked: int) -> None:
        self.depth = f"queued {ready}, in flight {unacked}"
        self._describe()

    def _describe(self) -> None:
        parts = [self.depth] if self.depth else []
        if self.failed:
            parts.append(f"[red]{self.failed} failed[/]")
        self.progress.update(self.bar, description="filtering" + (f" ({', '.join(parts)})" if parts else ""))


class _Rate(ProgressColumn):
    def render(self, task: ProgressTask) -> Text:
        speed = task.finished_speed or task.speed
        return Text("    - img/s" if speed is None else f"{speed:5.1f} img/s", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filterjob")
def main() -> None:
    """FilterJob: batch image filtering, on a laptop or on Kubernetes."""


@main.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Worker processes [default: CPUs].")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output exists (resume a run).")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@click.option(
    "--broker",
    metavar="AMQP_URL",
    envvar="FILTERJOB_BROKER_URL",
    help="Run through RabbitMQ with local worker processes (the pods' code) instead of a process pool.",
)
@click.option("--worker-logs", type=click.Path(file_okay=False, path_type=Path), help="With --broker: worker log dir.")
def run(
    job_file: Path,
    workers: int | None,
    skip_existing: bool,
    no_progress: bool,
    broker: str | None,
    worker_logs: Path | None,
) -> None:
    """Run the FilterJob in JOB_FILE on this machine.

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

    def execute() -> RunSummary:
        if broker is None:
            return run_local(job, options=LocalOptions(workers=workers, skip_existing=skip_existing), listener=listener)
        from filterjob_operator.local_broker import BrokerOptions, run_with_broker  # noqa: PLC0415 (see _LAZY)

        if worker_logs is not None:
            worker_logs.mkdir(parents=True, exist_ok=True)
        options = BrokerOptions(
            broker_url=broker,
            workers=workers,
            skip_existing=skip_existing,
            log_dir=str(worker_logs) if worker_logs else None,
        )

        async def through_broker() -> RunSummary:
            # SIGTERM ends the run as Ctrl-C does (asyncio.run turns that into a cancel).
            main_task = asyncio.current_task()
            assert main_task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
            return await run_with_broker(job, options=options, listener=listener)

        return asyncio.run(through_broker())

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
    summary.render(Console())
    if not summary.ok:
        sys.exit(EXIT_FAILED)


@main.command("watch")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--broker", metavar="AMQP_URL", envvar="FILTERJOB_BROKER_URL", required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
def watch_command(job_file: Path, broker: str, as_json: bool) -> None:
    """Print the task events of the job in JOB_FILE live (Ctrl-C to stop)."""
    console = Console(stderr=True)
    try:
        job = load_job(job_file, local=True)
    except JobSpecError as e:
        _invalid(console, e)
    out = Console(highlight=False, soft_wrap=True)

    def show(event: Event) -> None:
        if as_json:
            click.echo(event.to_json().decode(), nl=True)
            sys.stdout.flush()
            return
        colour = {"succeeded": "green", "retrying": "yellow", "failed": "red"}.get(event.kind, "white")
        where = event.input.rsplit("/", 1)[-1] or event.task
        reason = f": {event.reason}" if event.reason else ""
        out.print(f"[{colour}]{event.kind:<9}[/] {where} (attempt {event.attempt}, {event.worker}){reason}")

    from filterjob_operator.watch import watch  # noqa: PLC0415 (see _LAZY)
    from filterjob_operator.workerenv import topology_of  # noqa: PLC0415

    async def follow() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"watching {job.key} (Ctrl-C to stop)")
        await watch(broker, topology_of(job), show, stop=stop)

    asyncio.run(follow())


def _job_topology(console: Console, job: str) -> Topology:
    """The queues of JOB: a job file's (local mode), or a cluster job's from one of its queue names."""
    from filterjob_operator.workerenv import topology_of  # noqa: PLC0415 (see _LAZY)

    if Path(job).is_file():
        try:
            return topology_of(load_job(Path(job), local=True))
        except JobSpecError as e:
            _invalid(console, e)
    base = re.sub(r"\.(tasks|parked|events|dlx|retry\.\d+)$", "", job)
    if not re.fullmatch(r"fj\.[^.\s]+\.[^.\s]+\.[^.\s]+", base):
        raise click.BadParameter(f"neither a FilterJob file nor a job's queue name: {job!r}", param_hint="JOB")
    return Topology(base=base)


@main.command("parked")
@click.argument("job")
@click.option("--broker", metavar="AMQP_URL", envvar="FILTERJOB_BROKER_URL", required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parked task.")
def parked_command(job: str, broker: str, as_json: bool) -> None:
    """List the parked (failed for good) tasks of JOB with their reasons, leaving them in place.

    JOB is a FilterJob file (its local-mode queues) or any queue name of a cluster job,
    e.g. fj.photos.thumbnails.1a2b3c4d.parked.
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    from filterjob_operator import broker as amqp  # noqa: PLC0415 (see _LAZY)

    failures = _on_broker(broker, lambda connection: amqp.parked_failures(connection, topology))
    for failure in failures:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(failure)))
        else:
            click.echo(f"{failure.input or failure.task}  (attempt {failure.attempt}): {failure.reason}")
    console.print(f"{len(failures)} parked tasks in {topology.parked}", highlight=False, soft_wrap=True)


@main.command("redrive")
@click.argument("job")
@click.option("--broker", metavar="AMQP_URL", envvar="FILTERJOB_BROKER_URL", required=True)
def redrive_command(job: str, broker: str) -> None:
    """Move the parked tasks of JOB back to its task queue, with a fresh attempt count.

    JOB is a FilterJob file (its local-mode queues) or any queue name of a cluster job,
    e.g. fj.photos.thumbnails.1a2b3c4d.parked.

    \b
    Fix the cause first. On a cluster, for a job that has finished, annotate it instead
    (kubectl annotate fj NAME filterjob.dev/redrive=$(date +%s) --overwrite): the operator
    then moves the tasks and runs the job again.
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    from filterjob_operator import broker as amqp  # noqa: PLC0415 (see _LAZY)

    moved = _on_broker(broker, lambda connection: amqp.redrive(connection, topology))
    console.print(f"moved {len(moved)} parked tasks back to {topology.tasks}", highlight=False, soft_wrap=True)


def _on_broker(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(connection)`` on a fresh broker connection, closed afterwards."""
    import aio_pika  # noqa: PLC0415 (see _LAZY)

    async def run() -> T:
        connection = await aio_pika.connect(url, client_properties={"connection_name": "filterjob cli"})
        async with connection:
            return await action(connection)

    return asyncio.run(run())


@main.command("list-inputs")
@click.option("--broker", metavar="AMQP_URL", envvar="FILTERJOB_BROKER_URL", required=True)
def list_inputs_command(broker: str) -> None:
    """List a cluster job's source into its inputs queue (what the operator's lister Job runs).

    \b
    The FilterJob comes as JSON in FILTERJOB_JOB. A source that cannot be listed is
    reported to the operator through the queue, and the command still exits 0.
    """
    from filterjob_operator import lister  # noqa: PLC0415 (see _LAZY)
    from filterjob_worker import logs  # noqa: PLC0415

    logs.configure("INFO")
    console = Console(stderr=True)
    try:
        job = lister.job_from_env(os.environ)
    except JobSpecError as e:
        _invalid(console, e)
    result = asyncio.run(lister.list_inputs(job, broker))
    if result.error is not None:
        lister.log.warning("%s cannot be listed: %s (reported in %s)", job.key, result.error, result.queue)
    else:
        lister.log.info(
            "%s: %d inputs listed into %s (%d messages)", job.key, result.keys, result.queue, result.messages
        )


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
    from filterjob_worker import logs  # noqa: PLC0415

    logs.configure("INFO")
    if namespaces and all_namespaces:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
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
        console.print(f"[bold]{fdef.name}[/]  {fdef.description}", highlight=False, soft_wrap=True)
        for param in fdef.params:
            console.print(f"    {param.name}: {param.summary()} — {param.description}", highlight=False, soft_wrap=True)
        if fdef.check is not None and (problem := fdef.check({})):
            console.print(f"    ({problem})", highlight=False, soft_wrap=True)


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
        console.print(f"  - {problem}", highlight=False, soft_wrap=True)
    sys.exit(EXIT_INVALID)
