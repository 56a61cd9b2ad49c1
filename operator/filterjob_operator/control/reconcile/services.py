"""What the reconciler is given: the Kubernetes API, a job's broker and the events, as it uses them.

Small interfaces (Protocols) of the real clients (:class:`kube.Kube`, :mod:`.amqp`, kopf's
events), so that the steps run against fakes in unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from filterjob_operator.adapters import brokerref
from filterjob_operator.adapters.broker.enqueue import Cursor
from filterjob_operator.adapters.broker.parked import Parked
from filterjob_operator.adapters.kube import Manifest, WorkerPod, Workers
from filterjob_operator.adapters.metrics import OperatorMetrics
from filterjob_operator.control.reconcile import amqp
from filterjob_operator.control.settings import Settings
from filterjob_operator.core import listing
from filterjob_operator.core.status import Depths
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology


class KubeApi(Protocol):
    """The calls of :class:`kube.Kube` the reconciler makes."""

    async def secret(self, namespace: str, name: str) -> dict[str, str]: ...
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    async def workers(self, namespace: str, name: str) -> Workers | None: ...
    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...
    async def apply_deployment(self, manifest: Manifest, *, keep_replicas: bool) -> None: ...
    async def apply_hpa(self, manifest: Manifest) -> None: ...
    async def delete_hpa(self, namespace: str, name: str) -> None: ...
    async def create_job(self, manifest: Manifest) -> bool: ...
    async def job_failure(self, namespace: str, name: str) -> str | None: ...
    async def job_pods(self, namespace: str, name: str) -> list[Manifest]: ...
    async def worker_pods(self, namespace: str, selector: dict[str, str]) -> list[WorkerPod]: ...
    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None: ...
    async def delete_batch_job(self, namespace: str, name: str) -> None: ...
    async def delete_filterjob(self, namespace: str, name: str) -> None: ...


class ListingWatcher(Protocol):
    async def next(self, seconds: float) -> listing.Listing | None:
        """The listing once complete, or None after ``seconds`` without it."""
        ...


class JobBroker(Protocol):
    """One job's queues on its broker, over one connection (see :mod:`.amqp`)."""

    async def declare(self) -> None:
        """Declare the job's queues (and open the channel that publishes and counts)."""
        ...

    async def publish(self, tasks: Iterable[Task], *, cursor: Cursor) -> None: ...
    async def depths(self, *, enqueued: int) -> Depths: ...
    async def unacked_by_worker(self) -> dict[str, int] | None:
        """Each worker consuming the job's tasks (by worker id) with its unacked deliveries; None
        without a management API (or while it does not answer)."""
        ...

    async def parked(self) -> list[Parked]: ...
    async def redrive(self) -> list[Parked]: ...
    async def stored_listing(self) -> listing.Listing | None: ...
    async def forget_listing(self, *, queue_name: str | None = None) -> None: ...
    def watch_listing(self, *, queue_name: str | None = None) -> AbstractAsyncContextManager[ListingWatcher]: ...
    async def close(self) -> None: ...


class BrokerConnect(Protocol):
    async def __call__(
        self, url: str, management_url: str | None, *, secret: str, name: str, topology: Topology
    ) -> JobBroker:
        """A job's broker, connected (without the management API if ``management_url`` is None);
        raises ``brokerref.BrokerUnavailable`` if it cannot be."""
        ...


class Events(Protocol):
    """Kubernetes Events about the job (kopf posts them)."""

    def info(self, reason: str, message: str) -> None: ...
    def warn(self, reason: str, message: str) -> None: ...


@dataclass
class Services:
    settings: Settings
    kube: KubeApi
    metrics: OperatorMetrics
    broker_urls: brokerref.RememberedUrls = field(default_factory=brokerref.RememberedUrls)
    connect: BrokerConnect = field(default=amqp.connect)
