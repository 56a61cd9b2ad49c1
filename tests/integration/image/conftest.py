"""The broker fixtures of tests/integration/broker, for the worker container that consumes a real job."""

from tests.integration.broker.conftest import channel, connection  # noqa: F401 -- fixtures, used by name
