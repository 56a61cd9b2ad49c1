"""``filterjob parked``, ``redrive`` and ``clean``: a job's parked tasks and its queues on the broker.

Each takes JOB as a FilterJob file (its local-mode queues) or any queue name of a cluster
job, read by the one grammar of queue names (:class:`filterjob_worker.core.topology.QueueName`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from filterjob_operator.cli.bar import Bar, make_progress
from filterjob_operator.cli.common import broker_option, invalid, on_broker
from filterjob_operator.cli.run import Stopped, broker_options, broker_run, finish, shown
from filterjob_operator.core import exits
from filterjob_operator.core.spec import FilterJob, JobSpecError, load_job
from filterjob_operator.local.summary import RunSummary
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.topology import QueueName, Topology


def _job_topology(console: Console, job: str) -> Topology:
    """The queues of JOB: a job file's (local mode), or a cluster job's from one of its queue names."""
    from filterjob_operator.core.jobworkers import topology_of  # noqa: PLC0415 (see _LAZY in cli.common)

    if Path(job).is_file():
        try:
            return topology_of(load_job(Path(job), local=True))
        except JobSpecError as e:
            invalid(console, e)
    try:
        return Topology.from_queue_name(job)
    except SpecError:
        message = f"neither a FilterJob file nor a job's queue name: {job!r}"
        raise click.BadParameter(message, param_hint="JOB") from None


@click.command("parked")
@click.argument("job")
@broker_option(required=True, text="The RabbitMQ of the job's queues.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parked task.")
def parked_command(job: str, broker: str, as_json: bool) -> None:
    """List the parked (failed for good) tasks of JOB with their reasons, leaving them in place.

    JOB is a FilterJob file (its local-mode queues) or any queue name of a cluster job,
    e.g. fj.photos.thumbnails.1a2b3c4d.parked, or its base name, which the FilterJob's
    status.queues holds (kubectl get fj -o wide).
    """
    console = Console(stderr=True)
    topology = _job_topology(console, job)
    from filterjob_operator.adapters.broker.parked import parked_failures  # noqa: PLC0415 (see _LAZY in cli.common)

    failures = on_broker(broker, lambda connection: parked_failures(connection, topology))
    for failure in failures:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(failure)))
        else:
            click.echo(f"{failure.input or failure.task}  (attempt {failure.attempt}): {failure.reason}")
    console.print(f"{len(failures)} parked tasks in {topology.parked}", highlight=False, soft_wrap=True)


@click.command("redrive")
@click.argument("job")
@broker_option(required=True, text="The RabbitMQ of the job's queues.")
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
    from filterjob_operator.adapters.broker.parked import redrive  # noqa: PLC0415 (see _LAZY in cli.common)

    moved = on_broker(broker, lambda connection: redrive(connection, topology))
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
    from filterjob_operator.core.jobworkers import topology_of  # noqa: PLC0415
    from filterjob_operator.local.brokered import redrive_with_broker  # noqa: PLC0415 (see _LAZY in cli.common)
    from filterjob_worker.core.urls import redact  # noqa: PLC0415

    workers = workers or os.cpu_count() or 1
    options = broker_options(broker, workers, worker_logs)
    progress = make_progress(console) if not no_progress else None
    listener = Bar(progress) if progress is not None else None
    console.print(
        f"re-driving {job.key} through RabbitMQ at {redact(broker)} with {workers} worker processes",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    stopped: Stopped = []

    def execute() -> RunSummary:
        return broker_run(broker, lambda: redrive_with_broker(job, options=options, listener=listener), stopped)

    summary = shown(progress, execute)
    if summary.total == 0 and not stopped:
        console.print(
            f"no parked tasks in {topology_of(job).parked}: nothing to re-drive", highlight=False, soft_wrap=True
        )
        return
    finish(console, summary, stopped)


@click.command("clean")
@click.argument("job")
@broker_option(required=True, text="The RabbitMQ of the job's queues.")
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
    from filterjob_operator.adapters.broker.inventory import existing, remove  # noqa: PLC0415 (see _LAZY in cli.common)

    extra = [topology.progress]
    found = on_broker(broker, lambda connection: existing(connection, topology, extra=extra))
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
    on_broker(broker, lambda connection: remove(connection, found))
    for item in found:
        counts = f" ({item.messages} messages)" if item.kind == "queue" else ""
        click.echo(f"deleted {item.kind} {item.name}{counts}")
