"""``filterjob run``: a FilterJob on this machine, with a process pool or through RabbitMQ.

Also what a local re-drive (``filterjob redrive JOB.yaml``) shares with it: a run through
the broker, its progress bar, its summary and its exit code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from filterjob_operator.cli.bar import Bar, make_progress
from filterjob_operator.cli.common import broker_option, broker_origin, interrupt, invalid, on_broker_errors
from filterjob_operator.core import exits
from filterjob_operator.core.spec import FilterJob, JobSpecError, load_job
from filterjob_operator.local.options import BrokerOptions, LocalOptions
from filterjob_operator.local.pool import run_local
from filterjob_operator.local.summary import RunSummary

if TYPE_CHECKING:
    from filterjob_operator.local.start import Listener

T = TypeVar("T")
#: Why a run stopped early, with its exit code: filled by :func:`broker_run`, read by :func:`finish`.
Stopped = list[tuple[int, str]]


@click.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Worker processes [default: CPUs].")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output exists (resume a run).")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@broker_option(
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
    job = _load(console, job_file)
    workers = workers or os.cpu_count() or 1
    progress = make_progress(console) if not no_progress else None
    listener = Bar(progress) if progress is not None else None
    _say_where(console, ctx, broker, workers)
    stopped: Stopped = []

    # SIGTERM (timeout, CI, kill) ends a run as Ctrl-C does: summary, resume hint, exit 1.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        summary = shown(
            progress,
            lambda: _execute(
                job, broker, workers, worker_logs, skip_existing=skip_existing, listener=listener, stopped=stopped
            ),
        )
    except JobSpecError as e:
        invalid(console, e)
    except KeyboardInterrupt:
        # Interrupted before the first image (while listing): nothing was written.
        console.print("interrupted before any image was processed", highlight=False)
        sys.exit(exits.FAILED)
    finish(console, summary, stopped)


def _load(console: Console, job_file: Path) -> FilterJob:
    """The job of ``job_file`` (plain paths taken relative to it); an invalid one exits 2, naming its problems."""
    try:
        return load_job(job_file, local=True)
    except JobSpecError as e:
        invalid(console, e)


def _execute(
    job: FilterJob,
    broker: str | None,
    workers: int,
    worker_logs: Path | None,
    *,
    skip_existing: bool,
    listener: Bar | None,
    stopped: Stopped,
) -> RunSummary:
    """The run itself: a process pool, or local workers through the broker."""
    if broker is None:
        return run_local(job, options=LocalOptions(workers=workers, skip_existing=skip_existing), listener=listener)
    options = broker_options(broker, workers, worker_logs, skip_existing=skip_existing)
    return _through_broker(job, options, listener, stopped)


def _say_where(console: Console, ctx: click.Context, broker: str | None, workers: int) -> None:
    """Which way the run goes, first: a process pool, or the broker (and where its URL came from)."""
    if broker is None:
        console.print(f"running locally with {workers} processes", highlight=False, soft_wrap=True)
        return
    from filterjob_worker.core.urls import redact  # noqa: PLC0415 (see _LAZY in cli.common)

    where = f"running through RabbitMQ at {redact(broker)}{broker_origin(ctx)} with {workers} worker processes"
    console.print(where, highlight=False, soft_wrap=True, markup=False)


def _through_broker(job: FilterJob, options: BrokerOptions, listener: Listener | None, stopped: Stopped) -> RunSummary:
    from filterjob_operator.local.brokered import run_with_broker  # noqa: PLC0415 (see _LAZY in cli.common)

    return broker_run(options.broker_url, lambda: run_with_broker(job, options=options, listener=listener), stopped)


def broker_options(
    broker: str, workers: int, worker_logs: Path | None, *, skip_existing: bool = False
) -> BrokerOptions:
    """The options of a run through ``broker``; its worker log directory is made here."""
    if worker_logs is not None:
        worker_logs.mkdir(parents=True, exist_ok=True)
    return BrokerOptions(
        broker_url=broker,
        workers=workers,
        skip_existing=skip_existing,
        log_dir=str(worker_logs) if worker_logs else None,
    )


def shown(progress: Progress | None, execute: Callable[[], T]) -> T:
    """``execute()`` with the progress bar drawn meanwhile, if there is one."""
    if progress is None:
        return execute()
    with progress:
        return execute()


def broker_run(url: str, run: Callable[[], Awaitable[RunSummary]], stopped: Stopped) -> RunSummary:
    """A run through the broker; if its workers cannot run, ``stopped`` gets the reason (and its exit code)."""
    from filterjob_operator.local.brokered import WorkersFailed  # noqa: PLC0415 (see _LAZY in cli.common)

    try:
        return on_broker_errors(url, lambda: asyncio.run(_awaited(run)))
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


def finish(console: Console, summary: RunSummary, stopped: Stopped) -> None:
    """The summary, then why the run stopped early if it did, and the exit code."""
    summary.render(Console())
    if stopped:
        code, reason = stopped[0]
        console.print(Text.assemble(("run stopped: ", "red"), reason), soft_wrap=True)
        sys.exit(code)
    if not summary.ok:
        sys.exit(exits.FAILED)
