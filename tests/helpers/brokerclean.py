"""Remove what tests left on the shared RabbitMQ: every queue and exchange of a namespace.

A test namespace's FilterJobs lose their finalizers at teardown (the operator may already
be gone), so the operator never deletes their queues. Left alone they pile up on the
broker, and a node restarted over hundreds of quorum queues has been seen to accept
connections without ever answering them.
"""

from __future__ import annotations

import asyncio
import base64
import os
from urllib.parse import quote, unquote, urlsplit

import aiohttp

MANAGEMENT_URL = os.environ.get("FILTERJOB_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672/")


async def _delete_prefixed(prefix: str, vhost: str) -> list[str]:
    parts = urlsplit(MANAGEMENT_URL)
    credentials = f"{unquote(parts.username or 'guest')}:{unquote(parts.password or 'guest')}"
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
    encoded = quote(vhost, safe="")
    deleted = []
    async with aiohttp.ClientSession(base, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for kind in ("queues", "exchanges"):
            async with session.get(f"{kind}/{encoded}", params={"columns": "name"}) as response:
                response.raise_for_status()
                names = [item["name"] for item in await response.json()]
            for name in names:
                if name.startswith(prefix):
                    async with session.delete(f"{kind}/{encoded}/{quote(name, safe='')}") as response:
                        if response.status != 404:  # gone already: what was wanted
                            response.raise_for_status()
                    deleted.append(name)
    return deleted


def delete_namespace_topology(namespace: str, vhost: str = "/") -> list[str]:
    """Delete the queues and exchanges named ``fj.<namespace>.*``; the names deleted."""
    return asyncio.run(_delete_prefixed(f"fj.{namespace}.", vhost))
