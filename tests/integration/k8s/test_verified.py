"""Verified completion through the operator on the real control plane: a job's final counts are
what its destination holds, checked by a verifier Job next to the workers (``FILTERJOB_LIST_INPUTS=job``:
the operator does not see the volume) or by the operator itself (it does)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.adapters import verification
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image
from filterjob_operator.core.spec import parse_job
from tests.helpers.brokers import BROKER_URL
from tests.helpers.filterjobs import job_body, phase_is
from tests.helpers.gates import Gates, take_one_task
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube

NAMES = [f"{letter}.png" for letter in "abcdef"]


@pytest.fixture(autouse=True)
def nothing_refused(filterjob_operator: FilterJobOperator) -> Iterator[None]:
    yield
    refused = filterjob_operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"


@pytest.mark.slow
@pytest.mark.parametrize("list_inputs", ["job", "operator"])
def test_a_purged_task_and_a_deleted_output_end_the_job_failed_with_both_named_lost(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    broker_secret: str,
    list_inputs: str,
) -> None:
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", list_inputs)
    source = tmp_path / "in"
    source.mkdir()
    for seed, name in enumerate(NAMES):
        make_image((40, 30), seed).save(source / name)
    # Pods wait (a refused pull) until the test has taken a task and made f.png a gate; only the
    # lister's, the first pod of the job, starts at once.
    pulls: list[str] = []

    def hold_back(image: str) -> str | None:
        pulls.append(image)
        return None if list_inputs == "job" and len(pulls) == 1 else "held back by the test"

    cluster_kubelet.refuse_image = hold_back
    body = job_body("lost", kube.namespace, source, tmp_path / "out")
    # One worker taking one image at a time, in queue order.
    body["spec"]["workers"] = {"concurrency": 1}
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "messagesPerReplica": 100, "scaleDownDelaySeconds": 0}
    stored = kube.create_job(body)
    created.append(stored)
    gates = Gates(source, ["f.png"])
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "lost", lambda o: o.get("status", {}).get("enqueued") == len(NAMES), timeout=60)
        taken = asyncio.run(take_one_task(BROKER_URL, topology_of(parse_job(stored)).tasks))
        assert taken == "a.png"  # no worker has started: the first task is the first in the queue
        gates.close()
        cluster_kubelet.refuse_image = None
        held = gates.reached("f.png", timeout=90)  # the worker did b to e, in order
        (tmp_path / "out" / "b.png").unlink()  # written, its success reported, then gone
        gates.release("f.png", held)
        job = kube.wait("filterjobs", "lost", phase_is("Succeeded", "Failed"), timeout=120)
        kube.wait_for_event("Failed")
    state = job["status"]
    assert (state["total"], state["succeeded"], state["failed"]) == (6, 4, 2)
    assert state["progress"] == "4/6"
    assert state["phase"] == "Failed"  # 2 of 6 above the default maxFailedRatio of 0.1
    assert state["recentFailures"] == [
        {"key": "a.png", "reason": verification.LOST},
        {"key": "b.png", "reason": verification.LOST},
    ]
    failed = next(c for c in state["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True"
    assert failed["message"] == f"4 succeeded, 2 failed of 6 (2 {verification.LOST}: a.png, b.png)"
    warned = kube.events("Failed", of="FilterJob")  # not a worker pod's "Failed to pull image"
    assert [e["type"] for e in warned] == ["Warning"]
    assert warned[0]["message"].startswith(failed["message"] + ": above maxFailedRatio 0.1")
    verifier = kube.get("jobs", "lost-verify")
    if list_inputs == "job":
        assert verifier is not None
        assert verifier["spec"]["template"]["spec"]["containers"][0]["command"] == ["filterjob", "verify-outputs"]
    else:
        assert verifier is None  # the operator sees the destination: it looked itself


@pytest.mark.slow
def test_a_destination_the_verifier_cannot_list_ends_the_job_failed_naming_it(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    broker_secret: str,
) -> None:
    """A file where the destination should be: every write fails (parked), and the verifier
    Job reports that it cannot list the destination; the job says so rather than guess."""
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", "job")
    source = tmp_path / "in"
    source.mkdir()
    for seed, name in enumerate(NAMES[:2]):
        make_image((40, 30), seed).save(source / name)
    (tmp_path / "out").write_bytes(b"not a directory")
    body = job_body("unlistable", kube.namespace, source, tmp_path / "out", maxFailedRatio=1)
    created.append(kube.create_job(body))
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "unlistable", phase_is("Succeeded", "Failed"), timeout=120)
    assert kube.get("jobs", "unlistable-verify") is not None
    state = job["status"]
    assert state["phase"] == "Failed"
    failed = next(c for c in state["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "VerificationFailed")
    destination = body["spec"]["destination"]["uri"]
    assert failed["message"].startswith(
        f"the destination {destination} cannot be listed completely, so its outputs cannot be verified: "
    )
    assert f"{tmp_path / 'out'}: cannot be listed: Not a directory" in failed["message"]
