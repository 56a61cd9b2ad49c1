"""The broker user's permissions that docs/operations.md documents are enough, and needed.

A user of its own, in a vhost of its own, with exactly the documented configure, write
and read patterns and the ``management`` tag, runs a whole job through the real broker
(declare, enqueue, consume, retry, park, progress, queue depth, re-drive). Leaving out
the default exchange or the server-named queues breaks a part of it, so neither is
granted for nothing.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import aiohttp
import pytest
from aiormq.exceptions import ChannelAccessRefused

from filterjob_operator.adapters.broker.management import Management, QueueStats, management_url_for, vhost_of
from filterjob_operator.adapters.broker.parked import parked_failures, redrive
from filterjob_operator.adapters.broker_errors import BrokerUnavailable
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_samples
from filterjob_operator.core.spec import load_job
from filterjob_operator.local.brokered import run_with_broker
from filterjob_operator.local.options import BrokerOptions
from tests.helpers.brokers import MANAGEMENT_URL
from tests.helpers.jobfiles import write_job

#: What docs/operations.md ("The broker user") tells an administrator to grant.
CONFIGURE = r"^(fj\..*|amq\.gen-.*)$"
WRITE = r"^(fj\..*|amq\.default|amq\.gen-.*)$"
READ = r"^(fj\..*|amq\.gen-.*)$"
DOCS = Path(__file__).parents[3] / "docs" / "operations.md"


class Admin:
    """The management API as the administrator (guest) uses it to set up a tenant."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        parts = urlsplit(MANAGEMENT_URL)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port}"

    async def put(self, path: str, body: dict[str, object]) -> None:
        async with self.session.put(f"{self.base}/api/{path}", json=body) as response:
            assert response.status in (201, 204), await response.text()

    async def delete(self, path: str) -> None:
        async with self.session.delete(f"{self.base}/api/{path}") as response:
            assert response.status in (204, 404), await response.text()


@pytest.fixture
async def tenant() -> AsyncIterator[tuple[Admin, str, str]]:
    """A fresh vhost and a user with the documented permissions; the user's AMQP URL."""
    suffix = uuid.uuid4().hex[:8]
    vhost, user, password = f"fj-perm-{suffix}", f"fj-perm-{suffix}", uuid.uuid4().hex
    parts = urlsplit(MANAGEMENT_URL)
    credentials = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {credentials}"}) as session:
        admin = Admin(session)
        await admin.put(f"vhosts/{vhost}", {})
        await admin.put(f"users/{user}", {"password": password, "tags": "management"})
        yield admin, vhost, f"amqp://{user}:{password}@127.0.0.1:5672/{quote(vhost, safe='')}"
        await admin.delete(f"vhosts/{vhost}")
        await admin.delete(f"users/{user}")


async def grant(admin: Admin, vhost: str, url: str, *, configure: str, write: str, read: str) -> None:
    user = url.split("//", 1)[1].split(":", 1)[0]
    await admin.put(
        f"permissions/{quote(vhost, safe='')}/{user}", {"configure": configure, "write": write, "read": read}
    )


def test_the_docs_give_these_patterns() -> None:
    text = DOCS.read_text()
    for pattern in (CONFIGURE, WRITE, READ):
        assert f"'{pattern}'" in text, pattern
    assert "management" in text


async def test_a_user_with_the_documented_permissions_runs_a_whole_job(
    tmp_path: Path, tenant: tuple[Admin, str, str]
) -> None:
    admin, vhost, url = tenant
    await grant(admin, vhost, url, configure=CONFIGURE, write=WRITE, read=READ)
    made = make_samples(tmp_path / "in", count=6, broken=2, size=(60, 40))
    job = load_job(write_job(tmp_path, "perm"), local=True)
    summary = await asyncio.wait_for(run_with_broker(job, options=BrokerOptions(broker_url=url, workers=1)), 120)
    assert (summary.succeeded, summary.failed) == (len(made.good), 2), summary.failures
    topology = topology_of(job)
    connection = await aio_pika.connect(url)
    async with connection:
        assert len(await parked_failures(connection, topology)) == 2
        assert len(await redrive(connection, topology)) == 2
    # The management tag is what lets the user read its own queues' statistics.
    # (in the job's own vhost: the same queue name in "/" does not exist).
    async with Management(management_url_for(url), vhost=vhost_of(url)) as management:
        assert await management.available()
        # The read the operator's depths make: refused (401, 403), it raises.
        assert isinstance(await management.queue(topology.tasks), QueueStats)


async def test_the_default_exchange_needs_write_permission(tmp_path: Path, tenant: tuple[Admin, str, str]) -> None:
    """Tasks, retries and parked messages are published through the default exchange."""
    admin, vhost, url = tenant
    await grant(admin, vhost, url, configure=CONFIGURE, write=r"^(fj\..*|amq\.gen-.*)$", read=READ)
    make_samples(tmp_path / "in", count=2, size=(40, 30))
    job = load_job(write_job(tmp_path, "perm-narrow"), local=True)
    with pytest.raises(BrokerUnavailable, match=r"access to exchange 'amq\.default'"):
        await asyncio.wait_for(run_with_broker(job, options=BrokerOptions(broker_url=url, workers=1)), 60)


async def test_watchers_need_server_named_queues(tenant: tuple[Admin, str, str]) -> None:
    """``filterjob watch`` subscribes through an exclusive queue the broker names ``amq.gen-…``."""
    admin, vhost, url = tenant
    await grant(admin, vhost, url, configure=r"^fj\..*$", write=WRITE, read=READ)
    connection = await aio_pika.connect(url)
    async with connection:
        with pytest.raises(ChannelAccessRefused, match=r"amq\.gen-"):
            await (await connection.channel()).declare_queue(exclusive=True, auto_delete=True)
    await grant(admin, vhost, url, configure=CONFIGURE, write=WRITE, read=READ)
    connection = await aio_pika.connect(url)
    async with connection:
        queue = await (await connection.channel()).declare_queue(exclusive=True, auto_delete=True)
        assert queue.name.startswith("amq.gen-")
