"""Reading a job's broker from its Secret: what is wrong is said, the password never."""

from __future__ import annotations

import pytest

from filterjob_operator.adapters.brokerref import BrokerUnavailable, check_url


@pytest.mark.parametrize("url", ["amqp://u:p@rabbit:5672/", "amqps://rabbit/vhost", "amqp://127.0.0.1"])
def test_amqp_urls_are_taken(url: str) -> None:
    assert check_url(url, "the broker Secret ns/s") == url


@pytest.mark.parametrize(
    "url", ["rabbit:5672", "http://u:hidden@rabbit:15672/", "amqp:///vhost", "amqp://u:hidden@rabbit:port/", "  "]
)
def test_what_a_robust_connection_would_retry_forever_is_refused(url: str) -> None:
    with pytest.raises(BrokerUnavailable) as refused:
        check_url(url, "the broker Secret ns/s")
    assert refused.value.reason == "BrokerSecretInvalid"
    assert refused.value.message.startswith("the broker Secret ns/s: url ")
    assert "hidden" not in refused.value.message
