"""A job's broker, from its Secret: read it and connect, or say exactly what is wrong.

A missing Secret, a Secret without ``url``, a URL that is no AMQP URL and a broker that
refuses or cannot be reached all end as :class:`BrokerUnavailable`, whose ``reason`` and
``message`` (naming the Secret, never the password) go into the job's status as they are.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection

from filterjob_operator import broker
from filterjob_operator.kube import Kube, KubeError

#: Seconds a first connection attempt may take before the broker counts as unreachable.
CONNECT_TIMEOUT = 10.0
_SCHEMES = ("amqp", "amqps")
#: The reasons of :class:`BrokerUnavailable`, as conditions show them.
REASONS = ("BrokerSecretMissing", "BrokerSecretInvalid", "BrokerSecretUnreadable", "BrokerRefused", "BrokerUnreachable")


class BrokerUnavailable(Exception):
    """The job's broker cannot be used; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}:***@{host}{port}").geturl()


def check_url(url: str, where: str) -> str:
    """``url`` if it is an ``amqp(s)://host/...`` URL; a robust connection retries a bad one forever."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number
    except ValueError as e:
        raise BrokerUnavailable("BrokerSecretInvalid", f"{where}: url is not a valid URL ({e})") from None
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise BrokerUnavailable(
            "BrokerSecretInvalid", f"{where}: url must be amqp://user:password@host:5672/vhost, got {redacted(url)!r}"
        )
    return url


async def urls(kube: Kube, namespace: str, name: str) -> tuple[str, str]:
    """The broker's AMQP URL and management API URL, from Secret ``name``."""
    where = f"the broker Secret {namespace}/{name}"
    try:
        secret = await kube.secret(namespace, name)
    except KubeError as e:
        if e.status == 404:
            raise BrokerUnavailable(
                "BrokerSecretMissing",
                f"{where} does not exist: create it with key url (amqp://user:password@host:5672/vhost), "
                "or name another one in spec.broker.secretRef",
            ) from None
        raise BrokerUnavailable("BrokerSecretUnreadable", f"cannot read {where}: {e}") from None
    except ValueError:  # not base64, or not UTF-8 text
        raise BrokerUnavailable("BrokerSecretInvalid", f"{where} holds values that are not UTF-8 text") from None
    url = secret.get("url", "").strip()
    if not url:
        keys = ", ".join(sorted(secret)) or "none"
        raise BrokerUnavailable(
            "BrokerSecretInvalid", f"{where} has no key url (an amqp:// URL of RabbitMQ); its keys: {keys}"
        )
    check_url(url, where)
    return url, secret.get("managementUrl") or broker.management_url_for(url)


def _refused(url: str, secret: str, error: BaseException) -> BrokerUnavailable:
    detail = str(error) or type(error).__name__
    where = f"the broker {redacted(url)} of Secret {secret}"
    if isinstance(error, aio_pika.exceptions.ProbableAuthenticationError):
        return BrokerUnavailable("BrokerRefused", f"{where} refused the credentials: {detail}")
    if isinstance(error, OSError | TimeoutError):
        return BrokerUnavailable("BrokerUnreachable", f"{where} cannot be reached: {detail}")
    return BrokerUnavailable("BrokerRefused", f"{where} refused the connection (does the vhost exist?): {detail}")


async def connect(url: str, *, secret: str, name: str) -> AbstractRobustConnection:
    """A robust connection (it reconnects by itself once it stood); the first attempt must succeed."""
    try:
        return await aio_pika.connect_robust(url, timeout=CONNECT_TIMEOUT, client_properties={"connection_name": name})
    except (TimeoutError, aio_pika.exceptions.AMQPError, OSError, ValueError) as e:
        raise _refused(url, secret, e) from None


async def connect_once(url: str, *, secret: str) -> AbstractConnection:
    """A plain connection, for one short task."""
    try:
        return await aio_pika.connect(url, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, aio_pika.exceptions.AMQPError, OSError, ValueError) as e:
        raise _refused(url, secret, e) from None
