"""What went wrong with the broker, in one line a user can act on.

aio-pika and aiormq report a closed port, an unknown host, a refused login or a
missing queue as a chain of exceptions (an ``AMQPConnectionError`` caused by the
``OSError``, a ``CancelledError`` in between), which the commands used to print
as a traceback. :func:`describe` turns such a chain into one sentence naming the
problem, the broker (password masked) and what to check; :func:`translated` and
the two connect functions apply it, so every command fails the same way, with
:class:`BrokerUnavailable` and the exit code :data:`exits.BROKER`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions as amqp
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from aio_pika.connection import make_url

from filterjob_worker.core.urls import redact, scrub

#: Seconds to wait for the broker to complete the AMQP handshake (a port that accepts
#: TCP but never speaks AMQP would otherwise hang the command forever).
CONNECT_TIMEOUT = 10.0
TIMEOUT_ENV = "FILTERJOB_CONNECT_TIMEOUT"
C = TypeVar("C", bound=AbstractConnection)


class BrokerUnavailable(Exception):
    """The broker cannot be reached or refused us; ``str(error)`` is the whole message."""


def connect_timeout(env: Mapping[str, str] | None = None) -> float:
    """The handshake timeout: ``FILTERJOB_CONNECT_TIMEOUT`` seconds, or :data:`CONNECT_TIMEOUT`.

    Raises ValueError naming the variable if it is not a positive number.
    """
    raw = (os.environ if env is None else env).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return CONNECT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return seconds


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it, nearest first (aiormq also wraps causes in a CancelledError's args)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _text(error: BaseException) -> str:
    return scrub(" ".join(str(a) for a in error.args if not isinstance(a, BaseException)) or type(error).__name__)


@dataclass(frozen=True, kw_only=True)
class _Target:
    """The parts of a broker URL that a message about it names (never its password)."""

    broker: str
    hostname: str | None
    hostport: str
    user: str
    vhost: str
    tls: bool


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return _Target(
        broker=f"the broker at {redact(url)}",
        hostname=parts.hostname,
        hostport=f"{host}:{_port(url)}",
        user=parts.username or "guest",
        vhost=parts.path[1:] or "/",
        tls=parts.scheme == "amqps",
    )


def _not_reached(cause: BaseException, at: _Target) -> str | None:
    """TLS, name resolution, a refused connection, a refused login: checked first, in this order."""
    broker, hostport = at.broker, at.hostport
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"{broker}: TLS certificate not accepted ({cause.verify_message}); give the CA that signed it "
            "with ?cafile=PATH in the URL"
        )
    if isinstance(cause, ssl.SSLError):
        return (
            f"{broker}: TLS handshake failed ({cause.reason or _text(cause)}); is {hostport} a TLS port "
            "(RabbitMQ's is usually 5671; amqp:// without TLS uses 5672)?"
        )
    if isinstance(cause, socket.gaierror):
        return f"{broker}: unknown host {at.hostname!r} ({cause.strerror}); check the host name in the URL"
    if isinstance(cause, ConnectionRefusedError):
        return f"{broker}: connection refused by {hostport}; is RabbitMQ running and listening on that port?"
    if isinstance(cause, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return f"{broker} refused the login of user {at.user!r}; check the user name and password in the URL"
    return None


def _refused_or_closed(cause: BaseException, at: _Target, timeout: float | None) -> str | None:
    """What the broker refused once reached, or how the connection ended; after ``_not_reached``."""
    broker, hostport = at.broker, at.hostport
    if isinstance(cause, amqp.ConnectionNotAllowed) or (
        isinstance(cause, amqp.InvalidFrameError) and "Connection.OpenOk" in str(cause)
    ):
        return (
            f"{broker} refused the virtual host {at.vhost!r}: it does not exist or user {at.user!r} may not use it; "
            "check the path of the URL (amqp://HOST/ is the default vhost /)"
        )
    if isinstance(cause, amqp.ChannelNotFoundEntity):
        missing = _text(cause).removeprefix("NOT_FOUND - ")
        return f"{broker} has {missing}; check the name (the job's queues exist once it has run)"
    if isinstance(cause, amqp.ChannelAccessRefused):
        return f"{broker} refused user {at.user!r}: {_text(cause).removeprefix('ACCESS_REFUSED - ')}"
    if isinstance(cause, TimeoutError):
        waited = f" within {timeout:g} s" if timeout is not None else ""
        return f"{broker} did not answer as RabbitMQ{waited}; is {hostport} an AMQP port?"
    if isinstance(cause, amqp.IncompatibleProtocolError | amqp.InvalidFrameError | amqp.ConnectionClosed):
        return f"{broker} closed the connection ({_text(cause)}); is {hostport} an AMQP port?"
    if isinstance(cause, amqp.AMQPConnectionError) and "unexpectedly closed" in str(cause):
        what = "TLS " if at.tls else ""
        return f"{broker} closed the connection during the {what}handshake; is {hostport} an AMQP port?"
    if isinstance(cause, OSError) and not isinstance(cause, amqp.AMQPConnectionError):
        return f"{broker}: cannot connect to {hostport} ({cause.strerror or _text(cause)})"
    return None


def describe(error: BaseException, url: str, *, timeout: float | None = None) -> str | None:
    """One line saying what ``error`` means for the broker at ``url``; None if it is not a broker error."""
    at = _target(url)
    for cause in _chain(error):
        if (found := _not_reached(cause, at) or _refused_or_closed(cause, at, timeout)) is not None:
            return found
    if isinstance(error, amqp.AMQPError):
        return f"{at.broker}: {_text(error)}"
    return None


def unreachable(error: BaseException) -> bool:
    """Whether the broker was not reached at all (network, DNS, TLS, a silent port), as
    opposed to reached and refusing (login, vhost, permissions)."""
    for cause in _chain(error):
        if isinstance(cause, amqp.AMQPError) and not isinstance(cause, amqp.AMQPConnectionError):
            return False  # the broker answered: it refused
        if isinstance(cause, amqp.ProbableAuthenticationError | amqp.AuthenticationError | amqp.ConnectionNotAllowed):
            return False
        if isinstance(cause, OSError | TimeoutError) and not isinstance(cause, amqp.AMQPConnectionError):
            return True
    return False


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (5671 if parts.scheme == "amqps" else 5672)


@contextlib.contextmanager
def translated(url: str, *, timeout: float | None = None) -> Iterator[None]:
    """Turn a broker error raised inside the block into :class:`BrokerUnavailable`."""
    try:
        yield
    except BrokerUnavailable:
        raise
    except Exception as e:
        message = describe(e, url, timeout=timeout)
        if message is None:
            raise
        raise BrokerUnavailable(message) from e


async def connect(url: str, *, name: str) -> AbstractConnection:
    """A plain connection (closed by its user), or :class:`BrokerUnavailable`."""
    return await _open(aio_pika.Connection(make_url(url), client_properties={"connection_name": name}), url)


async def connect_robust(url: str, *, name: str) -> AbstractRobustConnection:
    """A reconnecting connection; a first attempt that fails raises :class:`BrokerUnavailable`."""
    return await _open(aio_pika.RobustConnection(make_url(url), client_properties={"connection_name": name}), url)


async def _open(connection: C, url: str) -> C:
    timeout = connect_timeout()
    # aiormq logs each failed attempt at ERROR level; the one line of BrokerUnavailable says it better.
    library = logging.getLogger("aiormq.connection")
    level = library.level
    library.setLevel(logging.CRITICAL)
    try:
        with translated(url, timeout=timeout):
            await connection.connect(timeout=timeout)
    except BaseException:
        # Closed here: aio-pika would otherwise close it from __del__, after the loop has gone.
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    finally:
        library.setLevel(level)
    return connection
