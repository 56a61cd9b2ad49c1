"""``filterjob watch NAMESPACE/NAME``: a cluster job, read from the real API server as a ServiceAccount
with only ``get`` on FilterJobs (the real RBAC authorizer decides), followed on the real broker."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.core import exits
from filterjob_worker.core.contract import CONTENT_TYPE, Event
from filterjob_worker.core.topology import Topology
from tests.helpers.brokers import BROKER_URL, closed_port
from tests.helpers.controlplane import ControlPlane
from tests.helpers.realcluster import GROUP, PLURAL, VERSION, ClusterApi, Kube, Release, remove_filterjobs

FILTERJOB = str(Path(sys.executable).parent / "filterjob")
#: What a user who only follows jobs may do: read one FilterJob.
READER_RULES = [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get"]}]


def create_job(kube: Kube, name: str, src: Path) -> dict[str, Any]:
    return kube.create_job(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FilterJob",
            "metadata": {"name": name},
            "spec": {
                "source": {"uri": src.as_uri() + "/"},
                "destination": {"uri": (src.parent / "out").as_uri() + "/"},
                "filters": [{"name": "grayscale"}],
            },
        }
    )


def set_status(kube: Kube, name: str, status: dict[str, Any]) -> None:
    kube.api.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, kube.namespace, PLURAL, name, {"status": status}
    )


def topology_of(job: dict[str, Any]) -> Topology:
    meta = job["metadata"]
    return Topology.for_job(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


class Account:
    """A ServiceAccount of the test's namespace, with a kubeconfig holding a TokenRequest token."""

    def __init__(self, control_plane: ControlPlane, kube: Kube, name: str, kubeconfig: Path) -> None:
        self.control_plane = control_plane
        self.user = f"system:serviceaccount:{kube.namespace}:{name}"
        core = kube.api.core
        core.create_namespaced_service_account(kube.namespace, {"metadata": {"name": name}})
        self.kubeconfig = control_plane.write_kubeconfig(
            kubeconfig, token=control_plane.token_for(kube.namespace, name)
        )
        #: The audit log's end before the account did anything.
        self.since = control_plane.audit_offset()

    def grant(self, api: ClusterApi, namespace: str, rules: list[dict[str, Any]]) -> None:
        """A Role with ``rules``, bound to this account (RBAC applies it at once)."""
        name = self.user.rsplit(":", 1)[1]
        api.rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
        api.rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )

    def used(self) -> set[tuple[str, str, str, str]]:
        """What the account called (its audit events are written as the answers go out: wait for one)."""
        self.control_plane.await_audit(
            lambda event: event.get("user", {}).get("username") == self.user, since=self.since
        )
        return self.control_plane.api_usage(self.user, since=self.since)


@pytest.fixture(autouse=True)
def no_jobs_left(kube: Kube) -> Iterator[None]:
    yield
    remove_filterjobs(kube)


@pytest.fixture
def reader(control_plane: ControlPlane, kube: Kube, operator_release: Release, tmp_path: Path) -> Account:
    """A ServiceAccount that may only ``get`` FilterJobs in the test's namespace (the CRD is the chart's)."""
    account = Account(control_plane, kube, "job-reader", tmp_path / "reader.kubeconfig")
    account.grant(kube.api, kube.namespace, READER_RULES)
    return account


@pytest.fixture
async def channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        yield await connection.channel()


#: The watchers a test started: any still running when it ends is killed (a failed test's too).
STARTED: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
async def no_watcher_left() -> AsyncIterator[None]:
    yield
    while STARTED:
        watcher = STARTED.pop()
        if watcher.returncode is None:
            watcher.kill()
        await watcher.communicate()


async def start_watch(job: str, kubeconfig: Path, *args: str) -> asyncio.subprocess.Process:
    watcher = await asyncio.create_subprocess_exec(
        FILTERJOB, "watch", job, "--broker", BROKER_URL, *args,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    STARTED.append(watcher)
    return watcher


async def ended(watcher: asyncio.subprocess.Process, within: float) -> tuple[str, str]:
    """The watcher's output once it ends by itself; what it said so far if it does not within ``within``."""
    try:
        stdout, stderr = await asyncio.wait_for(watcher.communicate(), within)
    except TimeoutError:
        watcher.kill()
        stdout, stderr = await watcher.communicate()
        raise AssertionError(
            f"the watch did not end within {within:g} s; it said:\n{stdout.decode()}\n{stderr.decode()}"
        ) from None
    return stdout.decode(), stderr.decode()


async def one_line_failure(watcher: asyncio.subprocess.Process) -> str:
    _, stderr = await asyncio.wait_for(watcher.communicate(), 60)
    message = stderr.decode()
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    return message


async def test_watch_follows_a_cluster_job_until_it_finishes(
    kube: Kube, reader: Account, tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    ns = kube.namespace
    job = create_job(kube, "thumbs", tmp_path / "in")
    set_status(kube, "thumbs", {"phase": "Running", "total": 3, "succeeded": 0, "failed": 0})
    # The job's queues, as the operator declares them: named after the FilterJob's uid.
    topology = topology_of(job)
    await declare(channel, topology)
    try:
        watcher = await start_watch(f"{ns}/thumbs", reader.kubeconfig)
        assert watcher.stderr is not None
        assert watcher.stdout is not None
        assert f"watching {ns}/thumbs".encode() in await asyncio.wait_for(watcher.stderr.readline(), 30)
        event = Event(
            kind="succeeded",
            job=f"{ns}/thumbs",
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

        set_status(kube, "thumbs", {"phase": "Succeeded", "total": 3, "succeeded": 2, "failed": 1})
        stdout, _ = await ended(watcher, 30)
        assert watcher.returncode == exits.OK
        assert f"finished  {ns}/thumbs: Succeeded, 2 succeeded, 1 failed of 3" in stdout
    finally:
        await delete(channel, topology)
    # Read-only on the cluster: the watcher only ever got the FilterJob, and was allowed to.
    assert reader.used() == {("get", GROUP, PLURAL, "")}


async def test_watch_of_a_finished_cluster_job_prints_its_counts(kube: Kube, reader: Account, tmp_path: Path) -> None:
    create_job(kube, "done", tmp_path / "in")
    set_status(kube, "done", {"phase": "Failed", "total": 4, "succeeded": 1, "failed": 3})
    watcher = await start_watch(f"{kube.namespace}/done", reader.kubeconfig)
    stdout, _ = await asyncio.wait_for(watcher.communicate(), 30)
    assert watcher.returncode == exits.OK
    assert f"finished  {kube.namespace}/done: Failed, 1 succeeded, 3 failed of 4" in stdout.decode()


async def test_watch_of_a_cluster_job_without_queues_declares_nothing(
    kube: Kube, reader: Account, tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    job = create_job(kube, "unstarted", tmp_path / "in")
    watcher = await start_watch(f"{kube.namespace}/unstarted", reader.kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.BROKER
    assert f"no such job {kube.namespace}/unstarted" in message
    assert "has it started?" in message
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await channel.get_exchange(topology_of(job).events, ensure=True)


async def test_watch_of_a_missing_cluster_job_is_one_line(kube: Kube, reader: Account) -> None:
    watcher = await start_watch(f"{kube.namespace}/nope", reader.kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
    assert f"no FilterJob {kube.namespace}/nope" in message


async def test_watch_refused_by_rbac_is_one_line(
    control_plane: ControlPlane, kube: Kube, operator_release: Release, tmp_path: Path
) -> None:
    """A ServiceAccount without ``get`` on FilterJobs: the real authorizer answers 403."""
    create_job(kube, "secret", tmp_path / "in")
    stranger = Account(control_plane, kube, "stranger", tmp_path / "stranger.kubeconfig")
    watcher = await start_watch(f"{kube.namespace}/secret", stranger.kubeconfig)
    message = await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
    assert "403" in message
    assert control_plane.api_usage(stranger.user, since=stranger.since, decision="forbid") == {
        ("get", GROUP, PLURAL, "")
    }


@pytest.mark.parametrize("problem", ["no kubeconfig", "unreachable API"])
async def test_watch_without_a_cluster_is_one_line(tmp_path: Path, problem: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    with closed_port() as port:
        if problem == "unreachable API":
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
                "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
            )
        watcher = await start_watch("photos/any", kubeconfig)
        await one_line_failure(watcher)
    assert watcher.returncode == exits.CLUSTER
