"""A channel whose default exchange records what is published and fails the ids it is told to."""

from __future__ import annotations

from typing import Any


class Exchange:
    """Takes every publish, except the ids in ``fail`` (each failing once if ``once``, else every time)."""

    def __init__(self, fail: set[str] | None = None, *, once: bool = False) -> None:
        self.fail = fail or set()
        self.once = once
        self.published: list[str] = []

    async def publish(self, message: Any, routing_key: str) -> None:
        self.published.append(message.message_id)
        if message.message_id in self.fail:
            if self.once:
                self.fail.discard(message.message_id)
            raise ConnectionError("channel closed")


class Channel:
    def __init__(self, exchange: Exchange) -> None:
        self.default_exchange = exchange
