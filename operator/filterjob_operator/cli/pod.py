"""The commands the cluster runs: the operator itself, and its lister and verifier Jobs' pods."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from filterjob_operator.cli.common import broker_option, invalid, on_broker_errors
from filterjob_operator.core import exits
from filterjob_operator.core.spec import FilterJob, JobSpecError

if TYPE_CHECKING:
    from filterjob_operator.control.metricsapi import Unservable

T = TypeVar("T")


def _in_job_pod(broker: str, task: Callable[[FilterJob, str], Coroutine[Any, Any, T]]) -> tuple[FilterJob, T]:
    """What the operator's lister and verifier Jobs share: the FilterJob from FILTERJOB_JOB
    (exit 2 if it is not one), then ``task(job, broker)`` with broker errors as one line."""
    from filterjob_operator.control import lister  # noqa: PLC0415 (see _LAZY in cli.common)
    from filterjob_worker import logs  # noqa: PLC0415

    logs.configure("INFO")
    try:
        job = lister.job_from_env(os.environ)
    except JobSpecError as e:
        invalid(Console(stderr=True), e)
    return job, on_broker_errors(broker, lambda: asyncio.run(task(job, broker)))


@click.command("list-inputs")
@broker_option(required=True, text="The RabbitMQ of the job's queues.")
def list_inputs_command(broker: str) -> None:
    """List a cluster job's source into its inputs queue (what the operator's lister Job runs).

    \b
    The FilterJob comes as JSON in FILTERJOB_JOB. A source that cannot be listed is
    reported to the operator through the queue, and the command still exits 0.
    """
    from filterjob_operator.control import lister  # noqa: PLC0415 (see _LAZY in cli.common)

    job, result = _in_job_pod(broker, lister.list_inputs)
    if result.error is not None:
        lister.log.warning("%s cannot be listed: %s (reported in %s)", job.key, result.error, result.queue)
    else:
        lister.log.info(
            "%s: %d inputs listed into %s (%d messages)", job.key, result.keys, result.queue, result.messages
        )


@click.command("verify-outputs")
@broker_option(required=True, text="The RabbitMQ of the job's queues.")
def verify_outputs_command(broker: str) -> None:
    """List a cluster job's destination into its outputs queue (what the operator's verifier Job runs).

    \b
    The FilterJob comes as JSON in FILTERJOB_JOB. The operator counts a finished job's
    outputs from this listing. A destination that cannot be listed completely is
    reported to the operator through the queue, and the command still exits 0.
    """
    from filterjob_operator.adapters import verifier  # noqa: PLC0415 (see _LAZY in cli.common)

    job, result = _in_job_pod(broker, verifier.verify_outputs)
    if result.error is not None:
        verifier.log.warning("%s: %s (reported in %s)", job.key, result.error, result.queue)
    else:
        verifier.log.info("%s: %d outputs found, listed into %s", job.key, result.keys, result.queue)


@click.command()
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Watch this namespace (repeatable).")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace (the default without -n).")
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True, help="Liveness endpoint.")
def operator(namespaces: tuple[str, ...], all_namespaces: bool, liveness: str) -> None:
    """Run the FilterJob operator (in-cluster or with the current kubeconfig)."""
    import kopf  # noqa: PLC0415 (see _LAZY in cli.common)

    from filterjob_operator.control import handlers  # noqa: F401, PLC0415 -- registers the handlers
    from filterjob_operator.control.settings import Settings  # noqa: PLC0415
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
    try:
        kopf.run(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness,
        )
    except Exception as e:  # kopf's ActivityError (not exported): a startup handler failed for good
        unservable = _unservable(e)
        if unservable is None:
            raise
        Console(stderr=True).print(
            f"[red]cannot serve the External metrics API:[/] {escape(str(unservable))}", highlight=False, soft_wrap=True
        )
        sys.exit(exits.CLUSTER if unservable.cluster else exits.INVALID)


def _unservable(error: BaseException) -> Unservable | None:
    """The External metrics server's startup error behind kopf's, if that is why kopf stopped."""
    from filterjob_operator.control.metricsapi import Unservable  # noqa: PLC0415 (see _LAZY in cli.common)

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, Unservable):
            return seen
        seen = seen.__cause__
    return None
