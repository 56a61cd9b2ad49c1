"""Reading an AMQP URL the way aiormq does, for the management API calls beside it."""

from __future__ import annotations

import pytest

from filterjob_operator.adapters.broker.management import management_url_for, vhost_of


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://u:p@host:5672", "/"),
        ("amqp://u:p@host:5672/", "/"),
        ("amqp://u:p@host/%2F", "/"),
        ("amqps://u:p@host/photos", "photos"),
        ("amqp://host/team%2Fphotos", "team/photos"),
        ("amqp://host/my%20vhost?heartbeat=30", "my vhost"),
    ],
)
def test_vhost_of(url: str, vhost: str) -> None:
    assert vhost_of(url) == vhost


def test_management_url_keeps_the_credentials_encoded_once() -> None:
    assert management_url_for("amqp://us%40er:p%2Fw@rabbit.svc/photos") == "http://us%40er:p%2Fw@rabbit.svc:15672/"
