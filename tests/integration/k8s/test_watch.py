"""``filterjob watch NAMESPACE/NAME``: a cluster job, read from the emulated API, followed on the real broker."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import kmock
import pytest

from filterjob_operator import exits
from filterjob_worker.contract import CONTENT_TYPE, Event
from filterjob_worker.topology import Topology, declare, delete
from tests.integration.broker.conftest import BROKER_URL, free_port

from .conftest import K8sApi
from .emulator import FILTERJOBS, GROUP, KUBECONFIG_TOKEN, PLURAL, VERSION, RunningCluster

FILTERJOB = str(Path(sys.executable).parent / "filterjob")
NS = "photos"


def create_job(k8s_api: K8sApi, name: str, src: Path) -> dict[str, Any]:
    body = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "source": {"uri": src.as_uri() + "/"},
            "destination": {"uri": (src.parent / "out").as_uri() + "/"},
            "filters": [{"name": "grayscale"}],
        },
    }
    created: dict[str, Any] = k8s_api.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    return created


def set_status(k8s_api: K8sApi, name: str, status: dict[str, Any]) -> None:
    k8s_api.custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, name, {"status": status})


def topology_of(job: dict[str, Any]) -> Topology:
    meta = job["metadata"]
    return Topology.for_job(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


@pytest.fixture
async def channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        yield await connection.channel()


async def start_watch(job: str, kubeconfig: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        FILTERJOB, "watch", job, "--broker", BROKER_URL, *args,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def one_line_failure(watcher: asyncio.subprocess.Process) -> str:
    _, stderr = await asyncio.wait_for(watcher.communicate(), 60)
    message = stderr.decode()
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    return message


async def test_watch_follows_a_cluster_job_until_it_finishes(
    cluster: RunningCluster, k8s_api: K8sApi, kubeconfig: Path, tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    job = create_job(k8s_api, "thumbs", tmp_path / "in")
    set_status(k8s_api, "thumbs", {"phase": "Running", "total": 3, "succeeded": 0, "failed": 0})
    # The job's queues, as the operator declares them: named after the FilterJob's uid.
    topology = topology_of(job)
    await declare(channel, topology)
    try:
        watcher = await start_watch(f"{NS}/thumbs", kubeconfig)
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        assert b"watching photos/thumbs" in await asyncio.wait_for(watcher.stderr.readline(), 30)
        event = Event(
            kind="succeeded",
            job=f"{NS}/thumbs",
            task="t1",
            input=(tmp_path / "in" / "trip" / "a.jpg").as_uri(),
            output=(tmp_path / "out" / "trip" / "a.jpg").as_uri(),
            attempt=1,
            worker="w0",
        )
        exchange = await channel.get_exchange(topology.events)
        await exchange.publish(aio_pika.Message(event.to_json(), content_type=CONTENT_TYPE), event.routing_key)
        line = (await asyncio.wait_for(watcher.stdout.readline(), 30)).decode()
        assert line.startswith("succeeded trip/a.jpg (attempt 1, w0)"), line

        set_status(k8s_api, "thumbs", {"phase": "Succeeded", "total": 3, "succeeded": 2, "failed": 1})
        stdout, _ = await asyncio.wait_for(watcher.communicate(), 30)
        assert watcher.returncode == exits.OK
        assert "finished  photos/thumbs: Succeeded, 2 succeeded, 1 failed of 3" in stdout.decode()
    finally:
        await delete(channel, topology)
    # Read-only on the cluster: the watcher only ever got the FilterJob.
    assert cluster.call(lambda em: em.rbac_usage(token=KUBECONFIG_TOKEN)) == {(GROUP, PLURAL, "get")}


async def test_watch_of_a_finished_cluster_job_prints_its_counts(
    k8s_api: K8sApi, kubeconfig: Path, tmp_path: Path
) -> None:
    create_job(k8s_api, "done", tmp_path / "in")
    set_status(k8s_api, "done", {"phase": "Failed", "total": 4, "succeeded": 1, "failed": 3})
    watcher = await start_watch(f"{NS}/done", kubeconfig)
    stdout, _ = await asyncio.wait_for(watcher.communicate(), 30)
    assert watcher.returncode == exits.OK
    assert "finished  photos/done: Failed, 1 succeeded, 3 failed of 4" in stdout.decode()


async def test_watch_of_a_cluster_job_without_queues_declares_nothing(
    k8s_api: K8sApi, kubeconfig: Path, tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    job = create_job(k8s_api, "unstarted", tmp_path / "in")
    watcher = await start_watch(f"{NS}/unstarted", kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.BROKER
    assert "no such job photos/unstarted" in message
    assert "has it started?" in message
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await channel.get_exchange(topology_of(job).events, ensure=True)


async def test_watch_of_a_missing_cluster_job_is_one_line(k8s_api: K8sApi, kubeconfig: Path) -> None:
    watcher = await start_watch(f"{NS}/nope", kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
    assert "no FilterJob photos/nope" in message


async def test_watch_refused_by_the_api_is_one_line(
    cluster: RunningCluster, k8s_api: K8sApi, kubeconfig: Path, tmp_path: Path
) -> None:
    create_job(k8s_api, "secret", tmp_path / "in")
    cluster.call(lambda em: em[kmock.method.GET, FILTERJOBS] << 403, copy_result=False)
    watcher = await start_watch(f"{NS}/secret", kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
    assert "403" in message


@pytest.mark.parametrize("problem", ["no kubeconfig", "unreachable API"])
async def test_watch_without_a_cluster_is_one_line(tmp_path: Path, problem: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if problem == "unreachable API":
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        )
    watcher = await start_watch(f"{NS}/any", kubeconfig)
    await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
