"""A broker that cannot be used is one line naming the problem (password masked) and exit 3.

Each mistake a user makes with ``--broker`` is made for real: a closed port, a name
under ``.invalid`` (never resolves, so nothing leaves the machine), a wrong password,
a missing vhost or queue, TLS to a plain port or with an untrusted certificate, and a
loopback port that accepts TCP but never speaks AMQP.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from filterjob_operator.core import exits
from tests.helpers.brokers import BROKER_URL, closed_port, filterjob

MISSING_QUEUE = f"fj.x.y.{uuid.uuid4().hex[:8]}.parked"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def untrusted_tls_port() -> Iterator[int]:
    """A loopback TLS server whose certificate comes from a CA nobody trusts."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed: the test is over
            # The client refuses the certificate, as it should.
            with conn, contextlib.suppress(ssl.SSLError, OSError):
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    server.close()
    thread.join(timeout=10)


def with_url(netloc: str, path: str = "/", scheme: str = "amqp") -> str:
    return f"{scheme}://{netloc}{path}"


def assert_one_line(result: Any, *expected: str) -> str:
    assert result.returncode == exits.BROKER, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return str(lines[0])


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test (see ``closed_port``)."""
    with closed_port() as port:
        yield port


def case_url(case: str, request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """The URL of a broker mistake and what its message must say."""
    closed = request.getfixturevalue("refused_port") if case == "refused" else 0
    silent_port = request.getfixturevalue("silent_port") if case == "silent port" else 0
    tls_port = request.getfixturevalue("untrusted_tls_port") if case == "untrusted certificate" else 0
    cases = {
        "refused": (with_url(f"guest:guest@127.0.0.1:{closed}"), [f"connection refused by 127.0.0.1:{closed}"]),
        "unknown host": (with_url("guest:guest@rabbit.invalid"), ["unknown host 'rabbit.invalid'"]),
        "wrong password": (
            with_url("guest:not-the-password@127.0.0.1:5672"),
            ["refused the login of user 'guest'", "guest:***@", "check the user name and password"],
        ),
        "unknown vhost": (with_url("guest:guest@127.0.0.1:5672", "/no-such-vhost"), ["virtual host 'no-such-vhost'"]),
        "TLS to a plain port": (
            with_url("guest:guest@127.0.0.1:5672", scheme="amqps"),
            ["TLS handshake failed", "is 127.0.0.1:5672 a TLS port"],
        ),
        "untrusted certificate": (
            with_url(f"guest:guest@127.0.0.1:{tls_port}", scheme="amqps"),
            ["TLS certificate not accepted", "cafile"],
        ),
        "silent port": (
            with_url(f"guest:guest@127.0.0.1:{silent_port}"),
            ["did not answer as RabbitMQ within 1 s", f"is 127.0.0.1:{silent_port} an AMQP port"],
        ),
    }
    return cases[case]


CASES = ["refused", "unknown host", "wrong password", "unknown vhost", "TLS to a plain port", "untrusted certificate"]


@pytest.mark.parametrize("case", [*CASES, "silent port"])
def test_each_broker_mistake_is_one_line_and_exit_3(case: str, request: pytest.FixtureRequest) -> None:
    url, expected = case_url(case, request)
    result = filterjob("parked", MISSING_QUEUE, "--broker", url, env={"FILTERJOB_CONNECT_TIMEOUT": "1"})
    line = assert_one_line(result, *expected)
    assert line.startswith("broker error: the broker at ")
    assert "guest:guest" not in line
    assert "not-the-password" not in line


def test_a_queue_that_does_not_exist_is_named() -> None:
    result = filterjob("parked", MISSING_QUEUE, "--broker", BROKER_URL)
    assert_one_line(result, f"has no queue '{MISSING_QUEUE}' in vhost '/'", "check the name")
    result = filterjob("redrive", MISSING_QUEUE.replace(".parked", ".tasks"), "--broker", BROKER_URL)
    assert_one_line(result, f"has no queue '{MISSING_QUEUE}'")


def job_file(tmp_path: Path, job_doc: dict[str, Any]) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    job_doc["metadata"]["name"] = f"unreachable-{uuid.uuid4().hex[:6]}"
    job_doc["spec"]["source"]["uri"] = "in"
    job_doc["spec"]["destination"]["uri"] = "out"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_doc))
    return path


@pytest.mark.parametrize("command", ["run", "watch", "parked", "redrive", "clean", "list-inputs", "verify-outputs"])
def test_every_broker_command_fails_the_same_way(
    command: str, tmp_path: Path, job_doc: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    url, expected = case_url("wrong password", request)
    env = {}
    if command in ("list-inputs", "verify-outputs"):  # a cluster job, as its lister (verifier) Job gets it
        job_doc["metadata"]["uid"] = "u-123"
        env["FILTERJOB_JOB"] = json.dumps(job_doc)
    job = job_file(tmp_path, job_doc)
    args = [command, str(job), "--broker", url]
    if command in ("list-inputs", "verify-outputs"):
        args = [command, "--broker", url]
    if command == "run":
        args += ["--no-progress", "--worker-logs", str(tmp_path / "logs")]
    result = filterjob(*args, env=env)
    assert result.returncode == exits.BROKER, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("broker error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert all(text in errors[0] for text in expected), errors[0]
    assert "not-the-password" not in result.stdout + result.stderr
    if command == "run":  # checked before any worker started
        assert list((tmp_path / "logs").glob("worker-*.log")) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "http://guest:pw@127.0.0.1:15672/",
            "must be an amqp:// or amqps:// URL, got 'http://guest:***@127.0.0.1:15672/'",
        ),
        ("amqp://guest:pw@127.0.0.1:56x2/", "has a port that is not a number"),
        ("amqp://guest:pw@/", "has no host"),
        ("amqp://guest:pw@127.0.0.1/a/b", "names one virtual host"),
    ],
)
def test_a_bad_broker_url_is_rejected_before_anything_starts(
    url: str, problem: str, tmp_path: Path, job_doc: dict[str, Any]
) -> None:
    job = job_file(tmp_path, job_doc)
    logs = tmp_path / "logs"
    result = filterjob("run", str(job), "--no-progress", "--worker-logs", str(logs), env={"FILTERJOB_BROKER_URL": url})
    assert result.returncode == exits.INVALID, result.stdout + result.stderr
    assert f"the URL (from FILTERJOB_BROKER_URL) {problem}" in result.stderr
    assert "Traceback" not in result.stderr
    assert ":pw@" not in result.stderr
    assert not logs.exists()
    assert not (tmp_path / "out").exists()
