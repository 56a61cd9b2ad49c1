"""The worker environment the operator writes is the one the worker reads."""

from __future__ import annotations

from typing import Any

import pytest

from filterjob_operator.core.jobworkers import JOB_VARIABLES, retry_policy, topology_of, worker_env
from filterjob_operator.core.spec import FilterJob, parse_job
from filterjob_worker.core.environment import Var, WorkerConfig
from filterjob_worker.core.topology import RetryPolicy, Topology

BROKER_URL = "amqp://filterjob:pw@rabbitmq.filterjob.svc:5672/"
UID = "6a1f0c2e-93d4-4b7e-8f11-0c9e5d2b7a44"


def job(doc: dict[str, Any], **spec: Any) -> FilterJob:
    doc["metadata"]["uid"] = UID
    doc["spec"].update(spec)
    return parse_job(doc)


def test_env_matches_the_job(job_doc: dict[str, Any]) -> None:
    filterjob = job(
        job_doc,
        workers={"concurrency": 3},
        retry={"maxAttempts": 5, "backoffSeconds": 0.5, "maxBackoffSeconds": 30},
    )
    env = worker_env(filterjob)
    assert env == {
        "FILTERJOB_QUEUE": "fj.photos.thumbs.6a1f0c2e.tasks",
        "FILTERJOB_CONCURRENCY": "3",
        "FILTERJOB_PREFETCH": "4",
        "FILTERJOB_MAX_ATTEMPTS": "5",
        "FILTERJOB_BACKOFF_SECONDS": "0.5",
        "FILTERJOB_MAX_BACKOFF_SECONDS": "30.0",
    }
    # The whole env is above: FILTERJOB_BROKER_URL is not in it, a secret wired separately.
    assert env["FILTERJOB_QUEUE"] == topology_of(filterjob).tasks


def test_topology_and_policy_of_a_job(job_doc: dict[str, Any]) -> None:
    filterjob = job(job_doc, retry={"maxAttempts": 4, "backoffSeconds": 1, "maxBackoffSeconds": 8})
    policy = RetryPolicy(max_attempts=4, backoff_seconds=1.0, max_backoff_seconds=8.0)
    assert retry_policy(filterjob) == policy
    assert topology_of(filterjob) == Topology.for_job(namespace="photos", name="thumbs", uid=UID, retry=policy)


def test_job_without_uid_is_local(job_doc: dict[str, Any]) -> None:
    env = worker_env(parse_job(job_doc))
    assert env["FILTERJOB_QUEUE"] == "fj.photos.thumbs.local.tasks"


def test_overrides(job_doc: dict[str, Any]) -> None:
    env = worker_env(job(job_doc), concurrency=4, prefetch=12)
    assert (env["FILTERJOB_CONCURRENCY"], env["FILTERJOB_PREFETCH"]) == ("4", "12")
    assert worker_env(job(job_doc), concurrency=6)["FILTERJOB_PREFETCH"] == "7"


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"workers": {"concurrency": 1}, "retry": {"maxAttempts": 1}},
        {
            "workers": {"concurrency": 64},
            "retry": {"maxAttempts": 100, "backoffSeconds": 3600, "maxBackoffSeconds": 86400},
        },
        {"retry": {"maxAttempts": 7, "backoffSeconds": 0.001, "maxBackoffSeconds": 0.3}},
        {"retry": {"backoffSeconds": 1e-3, "maxBackoffSeconds": 1e-3}},
        # Any positive backoff is valid in the API; the worker used to reject those below 1 ms.
        {"retry": {"backoffSeconds": 1e-4, "maxBackoffSeconds": 5e-5}},
    ],
)
def test_worker_accepts_the_env_it_is_given(job_doc: dict[str, Any], spec: dict[str, Any]) -> None:
    filterjob = job(job_doc, **spec)
    topology = topology_of(filterjob)
    config = WorkerConfig.from_env({**worker_env(filterjob), "FILTERJOB_BROKER_URL": BROKER_URL})
    assert config.broker_url == BROKER_URL
    assert config.queue == topology.tasks
    assert config.concurrency == filterjob.spec.workers.concurrency
    assert config.prefetch == config.concurrency + 1  # one task ready while every slot is busy
    assert config.retry == retry_policy(filterjob)
    # The worker finds the same retry and parked queues the operator declared.
    assert config.topology == topology
    assert config.topology.arguments() == topology.arguments()


@pytest.mark.parametrize(
    "spec", [{}, {"workers": {"concurrency": 64}, "retry": {"maxAttempts": 100, "backoffSeconds": 0.25}}]
)
def test_the_env_written_is_the_env_the_worker_reads_back(job_doc: dict[str, Any], spec: dict[str, Any]) -> None:
    env = worker_env(job(job_doc, **spec))
    assert tuple(env) == JOB_VARIABLES
    config = WorkerConfig.from_env({**env, Var.BROKER_URL: BROKER_URL})
    assert config.to_env(only=JOB_VARIABLES) == env
