"""What every step of a job's reconciliation is given.

:class:`JobContext` lives as long as the job's daemon: the job's object as kopf sees it (a
live view: a new annotation or ``spec.suspend`` shows without asking the API), its
services, and how to write its status and Events. :class:`Attempt` is opened once per
attempt: the typed job, its topology, its broker Secret, URLs and connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import kopf

from filterjob_operator.adapters import brokerref
from filterjob_operator.control.reconcile.services import Events, JobBroker, Services
from filterjob_operator.core import status
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob
from filterjob_worker.core.topology import Topology

log = logging.getLogger("filterjob.operator")
#: A job whose broker (or its Secret) cannot be used tries again after this many status intervals.
BROKER_RETRY_INTERVALS = 2


class Outcome(Enum):
    """How a step ended: whether the steps after it run."""

    #: The step's work is done: the next step follows.
    CONTINUE = "continue"
    #: The job has its final phase (it may have been failed by the step).
    FINISHED = "finished"
    #: The daemon was asked to stop first (the job's next daemon resumes it).
    STOPPED = "stopped"


async def pause(stopped: kopf.DaemonStopped, seconds: float) -> bool:
    """Wait up to ``seconds`` or until the daemon is asked to stop; True if it was.

    Not ``await stopped.wait(seconds)``: kopf runs that wait as a task of its own which ends in
    ``TimeoutError`` when the time is up, and at its exit kopf re-raises the error of every task it
    finds finished, so a pause that ran out while the operator stopped crashed the operator's exit.
    Here the pause ends by cancelling that task, an ending kopf lets pass.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopped.wait()
    return bool(stopped)


class KopfEvents:
    """Events posted by kopf, about the job's object."""

    def __init__(self, body: kopf.Body) -> None:
        self._body = body

    def info(self, reason: str, message: str) -> None:
        kopf.info(self._body, reason=reason, message=message)

    def warn(self, reason: str, message: str) -> None:
        kopf.warn(self._body, reason=reason, message=message)


@dataclass
class JobContext:
    services: Services
    body: kopf.Body
    stopped: kopf.DaemonStopped
    events: Events
    #: What the listing found (skipped paths, an empty source), kept in every status patch.
    source_conditions: list[dict[str, Any]] = field(default_factory=list)
    #: The inputs were listed by this process now, not taken from the job's stored listing.
    listed_here: bool = False
    namespace: str = field(init=False)
    name: str = field(init=False)
    #: The generation the daemon started with (what ``observedGeneration`` reports).
    generation: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.namespace = str(self.body.metadata.namespace)
        self.name = str(self.body.metadata.name)
        self.generation = self.body.metadata.get("generation")

    @classmethod
    def of(cls, services: Services, body: kopf.Body, stopped: kopf.DaemonStopped) -> JobContext:
        return cls(services=services, body=body, stopped=stopped, events=KopfEvents(body))

    @property
    def observed(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def conditions(self) -> list[dict[str, Any]]:
        """The job's conditions as last observed."""
        return list(self.observed.get("conditions") or [])

    @property
    def spec(self) -> Mapping[str, Any]:
        """The spec as the object holds it now (the typed job is the attempt's)."""
        return self.body.get("spec") or {}

    async def patch(self, **fields: Any) -> None:
        await self.services.kube.patch_status(self.namespace, self.name, fields)

    def info(self, message: str) -> None:
        log.info("job %s/%s: %s", self.namespace, self.name, message)

    def warning(self, message: str) -> None:
        log.warning("job %s/%s: %s", self.namespace, self.name, message)

    async def fail(self, reason: str, message: str) -> None:
        log.warning("job %s/%s failed: %s", self.namespace, self.name, message)
        self.events.warn(reason, message)
        await self.patch(
            phase=status.FAILED,
            completionTime=status.now_iso(),
            observedGeneration=self.generation,
            conditions=[
                status.condition("Ready", False, reason, message, generation=self.generation, previous=[]),
                status.condition("Failed", True, reason, message, generation=self.generation, previous=[]),
            ],
        )

    async def pause(self) -> bool:
        """One status interval, or less if the daemon is asked to stop; True if it was."""
        return await pause(self.stopped, self.services.settings.status_interval)

    async def wait_unsuspended(self) -> Outcome:
        """Until ``spec.suspend`` is unset, or the daemon is asked to stop (:attr:`Outcome.STOPPED`)."""
        while self.spec.get("suspend"):
            if await self.pause():
                return Outcome.STOPPED
        return Outcome.CONTINUE

    def broker_secret(self, job: FilterJob) -> str:
        return job.spec.broker.secret_ref.name if job.spec.broker else self.services.settings.broker_secret

    async def unavailable(self, error: brokerref.BrokerUnavailable) -> kopf.TemporaryError:
        """Say in the status why the job cannot go on; the error to retry with (the Secret or broker may come)."""
        previous = self.conditions
        ready: dict[str, Any] = next((c for c in previous if c.get("type") == "Ready"), {})
        if (ready.get("reason"), ready.get("message")) != (error.reason, error.message):
            self.warning(error.message)
            self.events.warn(error.reason, error.message)
        await self.patch(
            # A job that never started waits in Pending; one that did keeps its phase (its work is queued).
            phase=self.observed.get("phase") or status.PENDING,
            observedGeneration=self.generation,
            conditions=[
                *(c for c in previous if c.get("type") != "Ready"),
                status.condition(
                    "Ready", False, error.reason, error.message, generation=self.generation, previous=previous
                ),
            ],
        )
        return kopf.TemporaryError(error.message, delay=BROKER_RETRY_INTERVALS * self.services.settings.status_interval)


@dataclass(frozen=True)
class Attempt:
    """One attempt at the job: read from its object once, connected to its broker once."""

    job: FilterJob
    topology: Topology
    #: The name of the broker Secret, which the job's pods read too.
    secret: str
    broker: JobBroker
    #: The broker's AMQP and management API URLs, as read from that Secret (with credentials).
    url: str = ""
    management_url: str = ""


@contextlib.asynccontextmanager
async def attempt(ctx: JobContext, job: FilterJob, *, management: bool = True) -> AsyncIterator[Attempt]:
    """The job's broker URLs from its Secret, connected (with the management API unless not needed).

    Raises ``kopf.TemporaryError`` (a retry) if the Secret or the broker cannot be used, once the
    status says why.
    """
    secret = ctx.broker_secret(job)
    topology = topology_of(job)
    services = ctx.services
    try:
        url, management_url = await services.broker_urls.read(services.kube, ctx.namespace, secret)
        broker = await services.connect(
            url,
            management_url if management else None,
            secret=secret,
            name=f"filterjob {job.key}",
            topology=topology,
        )
    except brokerref.BrokerUnavailable as e:
        raise await ctx.unavailable(e) from None
    try:
        yield Attempt(job=job, topology=topology, secret=secret, broker=broker, url=url, management_url=management_url)
    finally:
        await broker.close()
