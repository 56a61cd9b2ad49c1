"""Fixtures of the integration tests that talk to the real RabbitMQ (tests/helpers/brokers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from tests.helpers.brokers import BROKER_URL


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(BROKER_URL, client_properties={"connection_name": "filterjob tests"})
    yield conn
    await conn.close()


@pytest.fixture
async def channel(connection: AbstractRobustConnection) -> AbstractChannel:
    return await connection.channel(publisher_confirms=True)
