"""Broker URLs and credentials in text: a URL checked before anything connects, and never printed
with its password (in logs, messages and status alike)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from filterjob_worker.core.errors import shown

ENCODE_HINT = " (a / # ? or @ in the user name or password must be percent-encoded, e.g. / as %2F)"
# user:password@ in any URL-ish text; the password is replaced.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]*)@", re.I)


def scrub(text: str) -> str:
    """``text`` with the password of every URL in it replaced."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def redact(url: str) -> str:
    """A URL with its password replaced, safe for logs (even a URL that does not parse).

    A password holding an unencoded ``/``, ``#`` or ``?`` ends the netloc early for
    ``urlsplit``; :func:`scrub` reads such a URL as written, up to its last ``@``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        return scrub(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return scrub(url)
    # The netloc as written (brackets of an IPv6 host, a port that is not a number): only the password goes.
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def broker_url_problem(url: str) -> str | None:
    """What is wrong with an AMQP URL, or None: checked before anything connects.

    One check for the worker's ``FILTERJOB_BROKER_URL`` and the ``--broker`` of the
    ``filterjob`` command, so a URL the command accepts is one its workers accept.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return f"is not a URL ({e}), got {shown(redact(url))}"
    if parts.scheme not in ("amqp", "amqps"):
        return f"must be an amqp:// or amqps:// URL, got {shown(redact(url))}"
    if parts.fragment or url.endswith("#"):
        # Never part of an AMQP URL: a password's "#" that ended the URL early.
        return f"has a #, got {shown(redact(url))}{ENCODE_HINT}"
    if not parts.hostname:
        return f"has no host, got {shown(redact(url))} (e.g. amqp://USER:PASSWORD@HOST:5672/VHOST)"
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError:
        return f"has a port that is not a number from 0 to 65535, got {shown(redact(url))}{ENCODE_HINT}"
    if "/" in parts.path.removeprefix("/"):
        # aiormq takes the whole path as the vhost name; a second "/" is a typo far more often than a name.
        return f"names one virtual host after the host (write a / inside its name as %2F), got {shown(redact(url))}"
    return None
