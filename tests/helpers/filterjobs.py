"""FilterJobs as the Kubernetes tests make and read them: a job's body, predicates on its status,
what its worker pods did, and what its run left on the broker and the disk."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aio_pika

from tests.helpers.brokers import BROKER_URL
from tests.helpers.realcluster import Kube


def job_body(name: str, namespace: str, src: Path, dst: Path, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"uri": src.as_uri() + "/"},
            "destination": {"uri": dst.as_uri() + "/", "format": "png"},
            "filters": [{"name": "thumbnail", "width": 48, "height": 48}, {"name": "grayscale"}],
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.2},
            "broker": {"secretRef": {"name": "rabbitmq"}},
            **spec,
        },
    }


def queue_exists(name: str) -> bool:
    async def check() -> bool:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            return True

    return asyncio.run(check())


def ready_reason(reason: str) -> Any:
    def check(job: dict[str, Any]) -> bool:
        conditions = job.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "False" and c["reason"] == reason for c in conditions)

    return check


def phase_is(*phases: str) -> Any:
    return lambda o: o.get("status", {}).get("phase") in phases


def kopf_settled(body: dict[str, Any]) -> bool:
    """kopf has recorded the spec it handled (its last patch of a new object)."""
    return "filterjob.dev/last-handled-configuration" in body["metadata"].get("annotations", {})


def container_restarts(kube: Kube, prefix: str) -> int:
    """Restarts of the containers of pods named ``prefix...``, gone ones too: the kubelet posts a
    ``Started`` event at each start of a container (one per pod means none restarted)."""
    starts = Counter(
        e["involvedObject"]["name"] for e in kube.events("Started") if e["involvedObject"]["name"].startswith(prefix)
    )
    assert starts, f"no container of {prefix}* ever started"
    return sum(count - 1 for count in starts.values())


def png_outputs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
