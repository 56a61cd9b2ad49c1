"""Stand-ins for what the reconciler's steps are given (``reconcile.services``): the Kubernetes API,
a job's broker and the Events, each recording what it was asked, so a step runs without a cluster."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kopf._cogs.aiokits.aioenums import AsyncFlagWaiter, FlagSetter

from filterjob_operator.adapters.broker.enqueue import Cursor
from filterjob_operator.adapters.broker.parked import Parked
from filterjob_operator.adapters.kube import Manifest, WorkerPod, Workers
from filterjob_operator.adapters.kubeerrors import KubeError, NotOurs
from filterjob_operator.adapters.metrics import OperatorMetrics
from filterjob_operator.control.reconcile.context import Attempt, JobContext
from filterjob_operator.control.reconcile.services import JobBroker, Services
from filterjob_operator.control.settings import Settings
from filterjob_operator.core import listing
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import FilterJob
from filterjob_operator.core.status import Depths
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology


@dataclass
class FakeKube:
    """Writes status patches into the job's object, as kopf's live view shows them a moment later."""

    body: dict[str, Any]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    deployment: Workers | None = None
    #: What ``job_failure`` says of every batch Job.
    failure: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    #: Custom resources (plurals) the API server does not know: creating one answers 404.
    missing: set[str] = field(default_factory=set)
    #: Custom resources (plurals) whose objects the API server refuses as invalid (422), with this message.
    invalid: dict[str, str] = field(default_factory=dict)
    #: Secrets (names) that exist and are not the operator's.
    taken: set[str] = field(default_factory=set)
    #: The worker pods ``worker_pods`` lists (``annotate_pod`` merges into their annotations).
    pods: list[WorkerPod] = field(default_factory=list)
    #: Called after each status patch (a test stops the daemon from here).
    on_patch: Callable[[dict[str, Any]], None] = lambda fields: None

    def called(self, name: str) -> list[Any]:
        return [args for called, args in self.calls if called == name]

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        if name not in self.secrets:
            raise KubeError(404, "Not Found")
        return self.secrets[name]

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("patch_status", status))
        merged = {**(self.body.get("status") or {}), **status}
        self.body["status"] = {k: v for k, v in merged.items() if v is not None}
        self.on_patch(status)

    async def workers(self, namespace: str, name: str) -> Workers | None:
        return self.deployment

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.calls.append(("scale", (name, replicas)))

    async def apply_deployment(self, manifest: Manifest, *, keep_replicas: bool) -> None:
        self.calls.append(("apply_deployment", manifest))

    async def apply_hpa(self, manifest: Manifest) -> None:
        self.calls.append(("apply_hpa", manifest))

    async def delete_hpa(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_hpa", name))

    async def apply_custom(self, plural: str, manifest: Manifest) -> str:
        if plural in self.missing:
            raise KubeError(404, "Not Found")
        if plural in self.invalid:
            raise KubeError(422, "Unprocessable Entity", detail=self.invalid[plural])
        self.calls.append(("apply_custom", manifest))
        return f"uid-of-{manifest['kind']}"

    async def delete_custom(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        self.calls.append(("delete_custom", (plural, name)))

    async def apply_secret(self, manifest: Manifest, *, claim: Collection[str]) -> None:
        assert set(claim) <= set(manifest["metadata"]["labels"])
        if manifest["metadata"]["name"] in self.taken:
            raise NotOurs(409, "taken")
        self.calls.append(("apply_secret", manifest))

    async def create_job(self, manifest: Manifest) -> bool:
        self.calls.append(("create_job", manifest))
        return True

    async def job_failure(self, namespace: str, name: str) -> str | None:
        return self.failure

    async def job_pods(self, namespace: str, name: str) -> list[Manifest]:
        return []

    async def worker_pods(self, namespace: str, selector: dict[str, str]) -> list[WorkerPod]:
        self.calls.append(("worker_pods", selector))
        return list(self.pods)

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.calls.append(("annotate_pod", (name, annotations)))
        self.pods = [
            dataclasses.replace(p, annotations={**p.annotations, **annotations}) if p.name == name else p
            for p in self.pods
        ]

    async def delete_batch_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_batch_job", name))

    async def delete_filterjob(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_filterjob", (namespace, name)))


@dataclass
class FakeWatch:
    found: listing.Listing | None = None

    async def next(self, seconds: float) -> listing.Listing | None:
        return self.found


@dataclass
class FakeBroker:
    """A job's broker: the depths it reports in turn (the last one for good), parked tasks, a listing."""

    depths_seen: list[Depths] = field(default_factory=lambda: [Depths()])
    parked_tasks: list[Parked] = field(default_factory=list)
    #: The listing stored in the inputs queue, and the one a watch of a listing queue sees arrive.
    listing: listing.Listing | None = None
    watched: listing.Listing | None = None
    #: What ``unacked_by_worker`` says (None: no management API).
    unacked: dict[str, int] | None = None
    published: list[Task] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    closed: bool = False

    async def declare(self) -> None:
        self.calls.append("declare")

    async def publish(self, tasks: Iterable[Task], *, cursor: Cursor) -> None:
        start = cursor.resume()
        for index, task in enumerate(tasks, start):
            self.published.append(task)
            cursor.confirm(index)

    async def depths(self, *, enqueued: int) -> Depths:
        return self.depths_seen.pop(0) if len(self.depths_seen) > 1 else self.depths_seen[0]

    async def unacked_by_worker(self) -> dict[str, int] | None:
        self.calls.append("unacked_by_worker")
        return None if self.unacked is None else dict(self.unacked)

    async def parked(self) -> list[Parked]:
        return list(self.parked_tasks)

    async def redrive(self) -> list[Parked]:
        self.calls.append("redrive")
        moved, self.parked_tasks = self.parked_tasks, []
        return moved

    async def stored_listing(self) -> listing.Listing | None:
        return self.listing

    async def forget_listing(self, *, queue_name: str | None = None) -> None:
        self.calls.append(f"forget_listing {queue_name}")

    @contextlib.asynccontextmanager
    async def watch_listing(self, *, queue_name: str | None = None) -> AsyncIterator[FakeWatch]:
        yield FakeWatch(self.watched)

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeEvents:
    posted: list[tuple[str, str, str]] = field(default_factory=list)

    def info(self, reason: str, message: str) -> None:
        self.posted.append(("Normal", reason, message))

    def warn(self, reason: str, message: str) -> None:
        self.posted.append(("Warning", reason, message))


@dataclass
class Harness:
    """A job's context on fakes; :meth:`stop` asks its daemon to stop."""

    ctx: JobContext
    kube: FakeKube
    broker: FakeBroker
    events: FakeEvents
    stopper: FlagSetter[object]
    #: What ``services.connect`` was called with.
    connected: list[dict[str, Any]] = field(default_factory=list)

    def stop(self) -> None:
        self.stopper.set()

    def attempt(self, job: FilterJob) -> Attempt:
        return Attempt(
            job=job,
            topology=topology_of(job),
            secret="broker",
            broker=self.broker,
            url="amqp://guest:guest@broker:5672/",
            management_url="http://guest:guest@broker:15672/",
        )


def harness(body: dict[str, Any], *, broker: FakeBroker | None = None, **settings: Any) -> Harness:
    kube = FakeKube(body)
    fake = broker or FakeBroker()
    connected: list[dict[str, Any]] = []

    async def connect(url: str, management_url: str | None, *, secret: str, name: str, topology: Topology) -> JobBroker:
        connected.append({"url": url, "management_url": management_url, "secret": secret, "topology": topology})
        return fake

    services = Services(
        settings=Settings(**{"status_interval": 0.001, **settings}),
        kube=kube,
        metrics=OperatorMetrics(),
        connect=connect,
    )
    stopper: FlagSetter[object] = FlagSetter()
    stopped: kopf.DaemonStopped = AsyncFlagWaiter(stopper)  # type: ignore[assignment]
    events = FakeEvents()
    ctx = JobContext(services=services, body=kopf.Body(body), stopped=stopped, events=events)
    return Harness(ctx=ctx, kube=kube, broker=fake, events=events, stopper=stopper, connected=connected)
