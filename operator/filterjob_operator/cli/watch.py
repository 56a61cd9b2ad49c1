"""``filterjob watch``: a job's task events live, a local run's or a cluster FilterJob's.

The feed itself is :mod:`filterjob_operator.watch`; this module finds the job (a job
file, or NAMESPACE/NAME read from the cluster), prints the events and turns broker and
Kubernetes API failures into one line and their exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape

from filterjob_operator.adapters import sources
from filterjob_operator.cli.common import broker_option, invalid, on_broker_errors
from filterjob_operator.core import exits
from filterjob_operator.core.spec import JobSpecError, load_job
from filterjob_worker.core.contract import Event, JobFinished
from filterjob_worker.core.topology import Topology

if TYPE_CHECKING:
    from filterjob_operator.watch import Ended

T = TypeVar("T")


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
    """One line for a broker lost after it was reached (what :func:`.common.on_broker_errors` does not describe)."""
    from filterjob_worker.core.urls import redact  # noqa: PLC0415 (see _LAZY in cli.common)

    password = urlsplit(url).password
    detail = (str(error) or type(error).__name__).replace(password or "\0", "***")
    console.print(f"[red]broker {escape(redact(url))}:[/] {escape(detail)}", highlight=False, soft_wrap=True)
    sys.exit(exits.BROKER)


def _watched(console: Console, job: str) -> _Watched:
    from filterjob_operator.core.jobworkers import topology_of  # noqa: PLC0415 (see _LAZY in cli.common)

    path = Path(job)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json") or not _JOB_REF.fullmatch(job):
        if not path.is_file():
            raise click.BadParameter(
                f"neither a job file nor a cluster job's NAMESPACE/NAME: {job!r}", param_hint="JOB"
            )
        try:
            local = load_job(path, local=True)
        except JobSpecError as e:
            invalid(console, e)
        hint = f"start it with: filterjob run {job} --broker URL"
        return _Watched(key=local.key, topology=topology_of(local), source=local.spec.source.uri, hint=hint)
    from filterjob_operator.adapters import kube  # noqa: PLC0415 (see _LAZY in cli.common)

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
    import kubernetes  # noqa: PLC0415 (see _LAZY in cli.common)

    from filterjob_operator.adapters import kube  # noqa: PLC0415

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
    import urllib3  # noqa: PLC0415 (see _LAZY in cli.common)

    from filterjob_operator.adapters.kubeerrors import KubeError  # noqa: PLC0415

    try:
        return await action
    except KubeError as e:
        hint = " (RBAC: you need get on filterjobs.filterjob.dev)" if e.status == 403 else ""
        raise _ClusterFailed(f"cannot read FilterJob {job}: the API answered {e}{hint}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        reason = getattr(e, "reason", None) or e  # a MaxRetryError's cause, without the URL it retried
        raise _ClusterFailed(f"cannot reach the Kubernetes API for {job}: {reason}") from e


@click.command("watch")
@click.argument("job")
@broker_option(required=True, text="The job's broker; from a laptop, a port-forward (docs/operations.md).")
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
    from filterjob_operator import watch  # noqa: PLC0415 (see _LAZY in cli.common)

    if target.read is not None:
        current: dict[str, Any] | None = _on_cluster(console, job, target.read)
        if (already := watch.cluster_finished(current or {})) is not None:
            output.finish(already)
            return
    import aio_pika  # noqa: PLC0415 (see _LAZY in cli.common)

    # Their log lines repeat the errors reported below (and name the URL with its password).
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        end = on_broker_errors(broker, lambda: asyncio.run(_follow(console, target, broker, output.show)))
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
    from filterjob_operator import watch  # noqa: PLC0415 (see _LAZY in cli.common)

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
