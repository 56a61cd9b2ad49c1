"""Worker configuration from the environment, and logs that never print credentials."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys

import pytest

from filterjob_worker.config import load
from filterjob_worker.core.environment import Var, WorkerConfig
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.topology import RetryPolicy, Topology
from filterjob_worker.core.urls import broker_url_problem, redact, scrub
from filterjob_worker.logs import CONTEXT_FIELDS, JsonFormatter

URL = "amqp://user:s3cret@rabbit:5672/vhost"
QUEUE = "fj.photos.thumbs.0f5c7a1e.tasks"
REQUIRED = {"FILTERJOB_BROKER_URL": URL, "FILTERJOB_QUEUE": QUEUE}


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(SpecError) as info:
        WorkerConfig.from_env(env)
    return info.value.problems


def test_defaults() -> None:
    config = load(REQUIRED)
    assert config.broker_url == URL
    assert config.queue == QUEUE
    assert config.concurrency == 2
    assert config.prefetch == 3  # concurrency + 1
    assert config.health_port == 8080
    assert config.log_level == "INFO"
    assert config.retry == RetryPolicy(max_attempts=3, backoff_seconds=2.0, max_backoff_seconds=300.0)
    assert config.grace_seconds == 25.0
    assert config.executor == "thread"
    assert config.worker_id == f"{socket.gethostname()}-{os.getpid()}"
    assert config.topology == Topology.from_task_queue(QUEUE)


def test_blank_values_mean_default() -> None:
    config = WorkerConfig.from_env({**REQUIRED, "FILTERJOB_CONCURRENCY": "  ", "FILTERJOB_LOG_LEVEL": ""})
    assert config.concurrency == 2
    assert config.log_level == "INFO"


def test_every_variable_is_parsed() -> None:
    env = {
        "FILTERJOB_BROKER_URL": " amqps://u:p@rabbit.example:5671/jobs ",
        "FILTERJOB_QUEUE": QUEUE,
        "FILTERJOB_CONCURRENCY": "4",
        "FILTERJOB_PREFETCH": "16",
        "FILTERJOB_HEALTH_PORT": "0",
        "FILTERJOB_LOG_LEVEL": "debug",
        "FILTERJOB_MAX_ATTEMPTS": "5",
        "FILTERJOB_BACKOFF_SECONDS": "0.25",
        "FILTERJOB_MAX_BACKOFF_SECONDS": "10",
        "FILTERJOB_GRACE_SECONDS": "7.5",
        "FILTERJOB_EXECUTOR": "process",
        "FILTERJOB_WORKER_ID": "worker-7",
        "UNRELATED": "ignored",
    }
    config = WorkerConfig.from_env(env)
    assert config == WorkerConfig(
        broker_url="amqps://u:p@rabbit.example:5671/jobs",
        queue=QUEUE,
        concurrency=4,
        prefetch=16,
        health_port=0,
        log_level="DEBUG",
        retry=RetryPolicy(max_attempts=5, backoff_seconds=0.25, max_backoff_seconds=10.0),
        grace_seconds=7.5,
        executor="process",
        worker_id="worker-7",
    )
    assert config.topology.retry_queues == [f"fj.photos.thumbs.0f5c7a1e.retry.{n}" for n in range(4)]


def test_any_positive_backoff_is_accepted() -> None:
    # The FilterJob API and RetryPolicy accept any positive backoff; so must the worker.
    env = {**REQUIRED, "FILTERJOB_BACKOFF_SECONDS": "0.0001", "FILTERJOB_MAX_BACKOFF_SECONDS": "1e-05"}
    retry = WorkerConfig.from_env(env).retry
    assert (retry.backoff_seconds, retry.max_backoff_seconds) == (0.0001, 1e-05)


def test_prefetch_defaults_to_concurrency() -> None:
    assert WorkerConfig.from_env({**REQUIRED, "FILTERJOB_CONCURRENCY": "9"}).prefetch == 10


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FILTERJOB_CONCURRENCY", "3")
    config = load()
    assert (config.queue, config.concurrency) == (QUEUE, 3)


def test_the_contract_leaves_an_unnamed_worker_unnamed() -> None:
    # The environment's contract is pure: naming a worker after its host and process is the
    # running worker's business, so the same environment reads the same anywhere.
    assert WorkerConfig.from_env(REQUIRED).worker_id == ""
    assert WorkerConfig.from_env({**REQUIRED, Var.WORKER_ID: "  "}).worker_id == ""


def test_a_worker_named_by_its_environment_keeps_the_name() -> None:
    assert load({**REQUIRED, Var.WORKER_ID: "pod-3"}).worker_id == "pod-3"
    assert load({**REQUIRED, Var.WORKER_ID: " "}).worker_id == f"{socket.gethostname()}-{os.getpid()}"


def test_required_variables() -> None:
    assert problems_of({}) == ["FILTERJOB_BROKER_URL is required", "FILTERJOB_QUEUE is required"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("BROKER_URL", "http://u:pw@rabbit/", "FILTERJOB_BROKER_URL must be an amqp:// or amqps:// URL"),
        ("BROKER_URL", "rabbit:5672", "FILTERJOB_BROKER_URL must be an amqp:// or amqps:// URL"),
        ("QUEUE", "fj.a.b.c.parked", "FILTERJOB_QUEUE must name a job's task queue"),
        ("CONCURRENCY", "two", "FILTERJOB_CONCURRENCY must be an integer, got 'two'"),
        ("CONCURRENCY", "1.5", "FILTERJOB_CONCURRENCY must be an integer, got '1.5'"),
        ("CONCURRENCY", "0", "FILTERJOB_CONCURRENCY must be between 1 and 256, got 0"),
        ("CONCURRENCY", "257", "FILTERJOB_CONCURRENCY must be between 1 and 256, got 257"),
        ("PREFETCH", "x", "FILTERJOB_PREFETCH must be an integer, got 'x'"),
        ("PREFETCH", "1", "FILTERJOB_PREFETCH (1) must be at least FILTERJOB_CONCURRENCY (2)"),
        ("PREFETCH", "10001", "FILTERJOB_PREFETCH must be between 1 and 10000, got 10001"),
        ("HEALTH_PORT", "-1", "FILTERJOB_HEALTH_PORT must be between 0 and 65535, got -1"),
        ("HEALTH_PORT", "65536", "FILTERJOB_HEALTH_PORT must be between 0 and 65535, got 65536"),
        ("HEALTH_PORT", "http", "FILTERJOB_HEALTH_PORT must be an integer, got 'http'"),
        ("LOG_LEVEL", "verbose", "FILTERJOB_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'VERBOSE'"),
        ("MAX_ATTEMPTS", "0", "FILTERJOB_MAX_ATTEMPTS must be between 1 and 100, got 0"),
        ("MAX_ATTEMPTS", "many", "FILTERJOB_MAX_ATTEMPTS must be an integer, got 'many'"),
        ("BACKOFF_SECONDS", "0", "FILTERJOB_BACKOFF_SECONDS must be positive, got 0.0"),
        ("BACKOFF_SECONDS", "-1", "FILTERJOB_BACKOFF_SECONDS must be between 0 and 3600, got -1.0"),
        ("BACKOFF_SECONDS", "nan", "FILTERJOB_BACKOFF_SECONDS must be between 0 and 3600, got nan"),
        ("BACKOFF_SECONDS", "inf", "FILTERJOB_BACKOFF_SECONDS must be between 0 and 3600, got inf"),
        ("BACKOFF_SECONDS", "soon", "FILTERJOB_BACKOFF_SECONDS must be a number, got 'soon'"),
        ("MAX_BACKOFF_SECONDS", "86401", "FILTERJOB_MAX_BACKOFF_SECONDS must be between 0 and 86400, got 86401.0"),
        ("MAX_BACKOFF_SECONDS", "0", "FILTERJOB_MAX_BACKOFF_SECONDS must be positive, got 0.0"),
        ("GRACE_SECONDS", "-1", "FILTERJOB_GRACE_SECONDS must be between 0 and 3600, got -1.0"),
        ("GRACE_SECONDS", "1m", "FILTERJOB_GRACE_SECONDS must be a number, got '1m'"),
        ("EXECUTOR", "fork", "FILTERJOB_EXECUTOR must be process or thread, got 'fork'"),
    ],
)
def test_each_bad_value_is_reported(name: str, value: str, expected: str) -> None:
    problems = problems_of({**REQUIRED, f"FILTERJOB_{name}": value})
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)
    assert f"FILTERJOB_{name}" in problems[0]


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "FILTERJOB_BROKER_URL": "https://admin:hunter2@rabbit/",
        "FILTERJOB_QUEUE": "jobs",
        "FILTERJOB_CONCURRENCY": "lots",
        "FILTERJOB_PREFETCH": "0",
        "FILTERJOB_HEALTH_PORT": "99999",
        "FILTERJOB_LOG_LEVEL": "loud",
        "FILTERJOB_MAX_ATTEMPTS": "1000",
        "FILTERJOB_BACKOFF_SECONDS": "-2",
        "FILTERJOB_MAX_BACKOFF_SECONDS": "never",
        "FILTERJOB_GRACE_SECONDS": "1e9",
        "FILTERJOB_EXECUTOR": "gpu",
    }
    problems = problems_of(env)
    named = [name for name in env if any(p.startswith(name) for p in problems)]
    assert named == list(env)
    assert len(problems) == len(env)
    message = str(SpecError(problems))
    assert "hunter2" not in message  # a rejected URL is reported redacted
    assert "admin:***@rabbit" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://user:s3cret@rabbit:5672/vhost", "amqp://user:***@rabbit:5672/vhost"),
        ("amqps://user:s3cret@rabbit/", "amqps://user:***@rabbit/"),
        ("amqp://user:s3cret@rabbit", "amqp://user:***@rabbit"),
        ("amqp://user:@rabbit:5672/", "amqp://user:***@rabbit:5672/"),
        ("amqp://user:s3cret@rabbit/%2F?heartbeat=30", "amqp://user:***@rabbit/%2F?heartbeat=30"),
        ("amqp://user@rabbit:5672/", "amqp://user@rabbit:5672/"),
        ("amqp://rabbit:5672/", "amqp://rabbit:5672/"),
        ("amqp://rabbit", "amqp://rabbit"),
        # Hosts and ports as written, even ones a connection would reject.
        ("amqp://user:s3cret@[::1]:5672/", "amqp://user:***@[::1]:5672/"),
        ("amqp://user:s3cret@rabbit:56x2/", "amqp://user:***@rabbit:56x2/"),
        ("amqp://user:s3c@ret@rabbit/", "amqp://user:***@rabbit/"),
        ("amqp://user:s3cret@[::1", "amqp://user:***@[::1"),
        ("amqp://user:s3/cret@rabbit/", "amqp://user:***@rabbit/"),
        ("amqp://user:s3#cret@rabbit/", "amqp://user:***@rabbit/"),
    ],
)
def test_redact_hides_passwords(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("amqp://u:s3cret@rabbit:5672/", None),
        ("amqps://u:s3cret@[::1]:5671/jobs", None),
        ("amqp://rabbit/a%2Fb", None),
        ("http://u:s3cret@rabbit/", "must be an amqp:// or amqps:// URL, got 'http://u:***@rabbit/'"),
        ("amqp:///vhost", "has no host, got 'amqp:///vhost'"),
        ("amqp://u:s3cret@rabbit:http/", "has a port that is not a number from 0 to 65535"),
        ("amqp://u:s3cret@rabbit:99999/", "has a port that is not a number from 0 to 65535"),
        ("amqp://rabbit/a/b", "names one virtual host after the host"),
        ("amqp://u:s3cret@[::1", "is not a URL"),
        # A password with an unencoded / # ? cuts the URL short: named, and still masked.
        ("amqp://u:s3cr#et@rabbit/", "has a #, got 'amqp://u:***@rabbit/'"),
        ("amqp://u:12#et@rabbit/", "has a #"),
        ("amqp://u:s3/cret@rabbit/", "has a port that is not a number"),
        ("amqp://u:s3?cret@rabbit:5672/", "has a port that is not a number"),
    ],
)
def test_broker_url_problem(url: str, problem: str | None) -> None:
    found = broker_url_problem(url)
    assert found == problem if problem is None else (found is not None and found.startswith(problem)), found
    assert "s3cret" not in (found or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connecting to amqp://user:s3cret@rabbit:5672/", "connecting to amqp://user:***@rabbit:5672/"),
        ("AMQPS://U:P@host", "AMQPS://U:***@host"),
        ("a http://a:b@x and s3+https://c:d@y.", "a http://a:***@x and s3+https://c:***@y."),
        ("pw with colon amqp://u:a:b:c@h/", "pw with colon amqp://u:***@h/"),
        ("no user amqp://:tok@h", "no user amqp://:***@h"),
        (
            "ConnectionError('amqp://guest:guest@127.0.0.1:5672/')",
            "ConnectionError('amqp://guest:***@127.0.0.1:5672/')",
        ),
        ("amqp://rabbit:5672/ and mail@example.com", "amqp://rabbit:5672/ and mail@example.com"),
        ("amqp://user@rabbit/", "amqp://user@rabbit/"),
        ("nothing secret here: a:b@c", "nothing secret here: a:b@c"),
    ],
)
def test_scrub_hides_credentials_in_text(text: str, expected: str) -> None:
    assert scrub(text) == expected


def record(msg: str, *args: object, level: int = logging.INFO, exc_info: object = None, **extra: object) -> str:
    logger = logging.getLogger("filterjob.test")
    rec = logger.makeRecord(logger.name, level, __file__, 1, msg, args, exc_info, extra=extra or None)  # type: ignore[arg-type]
    return JsonFormatter().format(rec)


def test_json_formatter_writes_one_object_with_context() -> None:
    line = record(
        "processed %s in %.2f s", "a.jpg", 0.25, job="photos/thumbs", task="t1", attempt=2, worker="w0", other="x"
    )
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "info"
    assert out["logger"] == "filterjob.test"
    assert out["msg"] == "processed a.jpg in 0.25 s"
    assert (out["job"], out["task"], out["attempt"], out["worker"]) == ("photos/thumbs", "t1", 2, "w0")
    assert "other" not in out
    assert out["ts"].endswith("Z")
    assert "exc" not in out


def test_json_formatter_leaves_out_missing_context() -> None:
    out = json.loads(record("hello", level=logging.WARNING, task="t9"))
    assert out["level"] == "warning"
    assert out["task"] == "t9"
    assert not {"job", "attempt", "worker", "queue", "event"} & out.keys()
    assert set(CONTEXT_FIELDS) >= {"job", "task", "attempt", "worker"}


def test_json_formatter_scrubs_message_and_exception() -> None:
    try:
        raise ConnectionError("cannot reach amqp://guest:topsecret@rabbit:5672/\nsecond line")
    except ConnectionError:
        exc_info = sys.exc_info()
    line = record("lost amqp://guest:topsecret@rabbit/", level=logging.ERROR, exc_info=exc_info, job="j")
    assert "topsecret" not in line
    assert len(line.splitlines()) == 1
    out = json.loads(line)
    assert out["level"] == "error"
    assert out["msg"] == "lost amqp://guest:***@rabbit/"
    assert "Traceback" in out["exc"]
    assert "ConnectionError: cannot reach amqp://guest:***@rabbit:5672/" in out["exc"]
    assert out["job"] == "j"


def test_json_formatter_through_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("filterjob.test.handler")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("attempt %d", 3, extra={"task": "t", "attempt": 3, "worker": "w", "job": "ns/j"})
    out = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert out == {**out, "msg": "attempt 3", "task": "t", "attempt": 3, "worker": "w", "job": "ns/j"}


def test_the_parent_pid_is_local_modes_only() -> None:
    required = {"FILTERJOB_BROKER_URL": "amqp://h/", "FILTERJOB_QUEUE": "fj.a.b.c.tasks"}
    assert WorkerConfig.from_env(required).parent_pid is None
    assert WorkerConfig.from_env({**required, "FILTERJOB_PARENT_PID": "4242"}).parent_pid == 4242
    with pytest.raises(SpecError, match="FILTERJOB_PARENT_PID must be an integer"):
        WorkerConfig.from_env({**required, "FILTERJOB_PARENT_PID": "me"})


FULL = WorkerConfig(
    broker_url="amqps://u:p%2F@rabbit.example:5671/v",
    queue=QUEUE,
    concurrency=256,
    prefetch=10_000,
    health_port=0,
    log_level="DEBUG",
    retry=RetryPolicy(max_attempts=100, backoff_seconds=1e-4, max_backoff_seconds=86400.0),
    grace_seconds=0.5,
    executor="process",
    worker_id="pod-7",
    parent_pid=4242,
)


@pytest.mark.parametrize(
    "config",
    [
        FULL,
        WorkerConfig(broker_url=URL, queue=QUEUE, worker_id="w"),
        WorkerConfig(broker_url=URL, queue=QUEUE, concurrency=1, prefetch=1, worker_id="w", grace_seconds=0.0),
        WorkerConfig(broker_url=URL, queue=QUEUE, retry=RetryPolicy(backoff_seconds=0.1, max_backoff_seconds=0.3)),
    ],
)
def test_to_env_then_from_env_is_the_same_config(config: WorkerConfig) -> None:
    again = WorkerConfig.from_env(config.to_env())
    assert again == (config if config.worker_id else dataclasses.replace(config, worker_id=again.worker_id))


def test_to_env_writes_every_variable_and_every_field() -> None:
    names = {value for key, value in vars(Var).items() if key.isupper()}
    assert set(FULL.to_env()) == names
    assert all(name.startswith("FILTERJOB_") for name in names)
    # Each field shows in the environment: changing any one changes it.
    other = WorkerConfig(broker_url=URL, queue="fj.x.tasks", retry=RetryPolicy(max_attempts=2))
    for name in (f.name for f in dataclasses.fields(WorkerConfig)):
        changed = dataclasses.replace(FULL, **{name: getattr(other, name)})
        assert changed.to_env() != FULL.to_env(), name


def test_to_env_without_worker_id_or_parent_leaves_them_to_the_worker() -> None:
    env = WorkerConfig(broker_url=URL, queue=QUEUE).to_env()
    assert Var.WORKER_ID not in env
    assert Var.PARENT_PID not in env
    assert WorkerConfig.from_env(env).parent_pid is None


def test_to_env_only_some() -> None:
    assert FULL.to_env(only=(Var.QUEUE, Var.PREFETCH)) == {Var.QUEUE: QUEUE, Var.PREFETCH: "10000"}
    assert FULL.to_env(only=()) == {}
