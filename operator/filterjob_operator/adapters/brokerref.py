"""A job's broker, from its Secret: read it and connect, or say exactly what is wrong.

A missing Secret, a Secret without ``url``, a URL that is no AMQP URL and a broker that
refuses or cannot be reached all end as :class:`BrokerUnavailable`, whose ``reason`` and
``message`` (naming the Secret, never the password) go into the job's status as they are.
"""

from __future__ import annotations

from typing import Protocol

from aio_pika.abc import AbstractConnection, AbstractRobustConnection

from filterjob_operator.adapters import broker_errors
from filterjob_operator.adapters.broker.management import management_url_for
from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_worker.core.urls import broker_url_problem

#: The reasons of :class:`BrokerUnavailable`, as conditions show them.
REASONS = ("BrokerSecretMissing", "BrokerSecretInvalid", "BrokerSecretUnreadable", "BrokerRefused", "BrokerUnreachable")


class Secrets(Protocol):
    """Where Secrets are read (``kube.Kube``)."""

    async def secret(self, namespace: str, name: str) -> dict[str, str]: ...


class BrokerUnavailable(Exception):
    """The job's broker cannot be used; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def check_url(url: str, where: str) -> str:
    """``url`` if it is an ``amqp(s)://host/...`` URL (the workers' own check); a robust
    connection would retry a bad one forever."""
    if (problem := broker_url_problem(url)) is not None:
        raise BrokerUnavailable("BrokerSecretInvalid", f"{where}: url {problem}")
    return url


async def urls(kube: Secrets, namespace: str, name: str) -> tuple[str, str]:
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
    return url, secret.get("managementUrl") or management_url_for(url)


class RememberedUrls:
    """The broker URLs last read from each Secret, for the finalizer.

    Deleting a namespace deletes its Secrets at once, while its FilterJobs wait for their
    finalizers: without a copy of the URL the operator could no longer reach the broker to
    delete their queues. The copy lives in memory only, so an operator restarted after the
    Secret went falls back to the finalizer timeout and its Warning.
    """

    def __init__(self) -> None:
        self._urls: dict[tuple[str, str], tuple[str, str]] = {}

    async def read(self, kube: Secrets, namespace: str, name: str) -> tuple[str, str]:
        """:func:`urls`, remembered."""
        found = await urls(kube, namespace, name)
        self._urls[namespace, name] = found
        return found

    async def read_or_remembered(self, kube: Secrets, namespace: str, name: str) -> tuple[str, str]:
        """:func:`urls`, or the last ones read if the Secret is gone."""
        try:
            return await self.read(kube, namespace, name)
        except BrokerUnavailable as e:
            if e.reason != "BrokerSecretMissing" or (namespace, name) not in self._urls:
                raise
            return self._urls[namespace, name]


def _unavailable(error: broker_errors.BrokerUnavailable, secret: str) -> BrokerUnavailable:
    """The command line's one-line message, with a condition reason: is it the network or the broker?"""
    reason = "BrokerUnreachable" if broker_errors.unreachable(error) else "BrokerRefused"
    return BrokerUnavailable(reason, f"Secret {secret}: {error}")


async def connect(url: str, *, secret: str, name: str) -> AbstractRobustConnection:
    """A robust connection (it reconnects by itself once it stood); the first attempt must succeed."""
    try:
        return await broker_errors.connect_robust(url, name=name)
    except broker_errors.BrokerUnavailable as e:
        raise _unavailable(e, secret) from None


async def connect_once(url: str, *, secret: str) -> AbstractConnection:
    """A plain connection, for one short task."""
    try:
        return await broker_errors.connect(url, name="filterjob operator")
    except broker_errors.BrokerUnavailable as e:
        raise _unavailable(e, secret) from None
