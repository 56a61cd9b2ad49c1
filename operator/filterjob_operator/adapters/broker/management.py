"""RabbitMQ's HTTP management API: a queue's ready and unacked counts and consumers, the channels' unacked
deliveries, the connections' names, and where the API is."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp


@dataclass(frozen=True)
class QueueStats:
    ready: int
    unacked: int
    #: False until the broker sampled the queue's statistics once (the counts then read 0).
    sampled: bool = True

    @property
    def messages(self) -> int:
        return self.ready + self.unacked


def management_url_for(broker_url: str) -> str:
    """The usual management API URL of a broker: same host and credentials, port 15672."""
    parts = urlsplit(broker_url)
    # URL credentials are percent-encoded already: decode before encoding, never encode twice.
    user = quote(unquote(parts.username or "guest"), safe="")
    password = quote(unquote(parts.password or "guest"), safe="")
    return f"http://{user}:{password}@{parts.hostname or 'localhost'}:15672/"


def vhost_of(broker_url: str) -> str:
    """The virtual host an AMQP URL names, as aiormq reads it (``/`` when the path is empty)."""
    path = urlsplit(broker_url).path
    if path in ("", "/"):
        return "/"
    return unquote(path[1:])


class Management:
    """RabbitMQ's HTTP management API: ready and unacked counts per queue, who consumes it and holds what.

    ``vhost`` must be the one the AMQP connection uses (:func:`vhost_of`): queue names
    are per vhost, and the API answers 404 for the same name in another one.
    """

    def __init__(self, url: str, *, vhost: str = "/") -> None:
        parts = urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}/api"
        # A header rather than aiohttp.BasicAuth, which aiohttp 3.14 deprecates (and 4.0 removes).
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._vhost = quote(vhost, safe="")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Management:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def available(self) -> bool:
        try:
            await self._get("/overview")
        except (aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def queue(self, name: str) -> QueueStats:
        data = await self._get(f"/queues/{self._vhost}/{quote(name, safe='')}")
        return QueueStats(
            ready=int(data.get("messages_ready", 0)),
            unacked=int(data.get("messages_unacknowledged", 0)),
            sampled="messages_unacknowledged" in data,
        )

    async def messages(self, names: Sequence[str]) -> dict[str, QueueStats]:
        """The counts of the queues ``names`` of the vhost, in one call; a queue missing from the
        answer is missing from the result."""
        listed = await self._list(f"/queues/{self._vhost}?columns=name,messages_ready,messages_unacknowledged")
        wanted = set(names)
        return {
            str(q["name"]): QueueStats(
                ready=int(q.get("messages_ready", 0)),
                unacked=int(q.get("messages_unacknowledged", 0)),
                sampled="messages_unacknowledged" in q,
            )
            for q in listed
            if isinstance(q, dict) and q.get("name") in wanted
        }

    async def consumers(self, queue: str) -> list[dict[str, Any]]:
        """The consumers of ``queue``: each one's channel and the channel's connection (internal names)."""
        path = f"/queues/{self._vhost}/{quote(queue, safe='')}?columns=consumer_details.channel_details"
        found = (await self._get(path)).get("consumer_details")
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    async def channels(self) -> list[dict[str, Any]]:
        """The vhost's channels: name and unacked deliveries."""
        return await self._list(f"/vhosts/{self._vhost}/channels?columns=name,messages_unacknowledged")

    async def connections(self) -> list[dict[str, Any]]:
        """The vhost's connections: internal name and the name the client chose."""
        return await self._list(f"/vhosts/{self._vhost}/connections?columns=name,user_provided_name")

    async def _get(self, path: str) -> dict[str, Any]:
        """The JSON object at ``path``; an answer that is none raises ``aiohttp.ClientResponseError``,
        so callers treat a URL serving something else (a proxy's page, garbage) as an API that is down."""
        found = await self._json(path, dict, "JSON object")
        assert isinstance(found, dict)
        return found

    async def _list(self, path: str) -> list[dict[str, Any]]:
        """The JSON array at ``path`` (its objects), as :meth:`_get` reads an object."""
        found = await self._json(path, list, "JSON array")
        return [item for item in found if isinstance(item, dict)]

    async def _json(self, path: str, kind: type, what: str) -> Any:
        assert self._session is not None, "use Management as an async context manager"
        async with self._session.get(self._base + path) as response:
            response.raise_for_status()
            try:
                data = await response.json()
            except ValueError as e:  # not UTF-8, not JSON
                problem = f"not the RabbitMQ management API at {self._base}: its answer is no JSON ({e})"
            else:
                if isinstance(data, kind):
                    return data
                problem = f"not the RabbitMQ management API at {self._base}: its answer is no {what}"
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status, message=problem
            )
