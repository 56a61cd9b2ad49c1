"""Translating broker exceptions into one line (pure: exceptions built by hand)."""

from __future__ import annotations

import socket

import aiormq.exceptions
import pytest

from filterjob_operator.adapters.broker_errors import CONNECT_TIMEOUT, connect_timeout, describe, unreachable

URL = "amqp://app:s3cret@rabbit.example:5672/jobs"


def caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            caused(aiormq.exceptions.AMQPConnectionError(-2, "x"), socket.gaierror(-2, "Name or service not known")),
            "unknown host 'rabbit.example'",
        ),
        (
            # aiormq hands the real error on inside a CancelledError's arguments.
            caused(
                aiormq.exceptions.ProbableAuthenticationError("ACCESS_REFUSED"),
                BaseException(aiormq.exceptions.ProbableAuthenticationError("ACCESS_REFUSED")),
            ),
            "refused the login of user 'app'",
        ),
        (aiormq.exceptions.ConnectionNotAllowed(530, "vhost jobs not found"), "refused the virtual host 'jobs'"),
        (aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no queue 'q' in vhost 'jobs'"), "has no queue 'q'"),
        (TimeoutError(), "did not answer as RabbitMQ; is rabbit.example:5672 an AMQP port?"),
    ],
)
def test_describe_names_the_problem_with_the_password_masked(error: BaseException, expected: str) -> None:
    message = describe(error, URL)
    assert message is not None
    assert message.startswith("the broker at amqp://app:***@rabbit.example:5672/jobs")
    assert expected in message
    assert "s3cret" not in message
    assert "\n" not in message


def test_other_errors_are_not_broker_errors() -> None:
    assert describe(ValueError("bad"), URL) is None
    assert describe(KeyError("k"), URL) is None


def test_connect_timeout_from_the_environment() -> None:
    assert connect_timeout({}) == CONNECT_TIMEOUT
    assert connect_timeout({"FILTERJOB_CONNECT_TIMEOUT": " 2.5 "}) == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_connect_timeout_that_is_not_a_positive_number_is_named(value: str) -> None:
    with pytest.raises(
        ValueError, match=f"FILTERJOB_CONNECT_TIMEOUT must be a positive number of seconds, got '{value}'"
    ):
        connect_timeout({"FILTERJOB_CONNECT_TIMEOUT": value})


def test_unreachable_tells_the_network_from_a_refusal() -> None:
    def chained(outer: BaseException, cause: BaseException) -> BaseException:
        outer.__cause__ = cause
        return outer

    assert unreachable(chained(aiormq.exceptions.AMQPConnectionError("failed"), ConnectionRefusedError(111, "refused")))
    assert unreachable(socket.gaierror(-2, "Name or service not known"))
    assert unreachable(TimeoutError())
    assert not unreachable(aiormq.exceptions.ProbableAuthenticationError("ACCESS_REFUSED"))
    assert not unreachable(aiormq.exceptions.ChannelAccessRefused("ACCESS_REFUSED - access to exchange"))
