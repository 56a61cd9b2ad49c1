"""The lister Job on the real control plane when its pod cannot start: the FilterJob says why, and
the Job's deadline (run by the real Job controller) ends it ``Failed``; deleting a FilterJob that
waits for its lister lets the real garbage collector take the Job and its pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_samples
from filterjob_operator.core.spec import parse_job
from tests.helpers.filterjobs import job_body, phase_is, queue_exists, ready_reason
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube

#: Short, so the deadline comes within the test; the real default is 600 s.
DEADLINE = 8
PULL_ERROR = 'failed to resolve reference "ghcr.io/filterjob/filterjob": not found'


@pytest.fixture
def lister_env(monkeypatch: pytest.MonkeyPatch, broker_secret: str) -> None:
    """A lister Job for every source, with a short deadline."""
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", "job")
    monkeypatch.setenv("FILTERJOB_LISTER_DEADLINE", str(DEADLINE))


@pytest.fixture(autouse=True)
def nothing_refused(filterjob_operator: FilterJobOperator) -> Iterator[None]:
    yield
    refused = filterjob_operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"
    # The chart's rule for it is used: the lister's pods are read, as the chart's ServiceAccount.
    assert ("list", "", "pods", "") in filterjob_operator.api_usage(decision="allow")


def condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


@pytest.mark.usefixtures("lister_env")
def test_a_lister_pod_that_cannot_pull_its_image_is_named_then_fails_the_job_at_the_deadline(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    cluster_kubelet.refuse_image = lambda image: PULL_ERROR
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    created.append(kube.create_job(job_body("nopull", kube.namespace, tmp_path / "in", tmp_path / "out")))
    with filterjob_operator.run(timeout=60):
        # Before the deadline, the job says why it waits, in its Ready condition and an Event.
        waiting = kube.wait("filterjobs", "nopull", ready_reason("ListerNotStarted"), timeout=30)
        assert waiting["status"]["phase"] == "Pending"
        ready = condition(waiting, "Ready")
        assert ready["message"].startswith("the lister Job nopull-list has not started: pod nopull-list-")
        assert (
            "ErrImagePull: " + PULL_ERROR in ready["message"]
            or "ImagePullBackOff: Back-off pulling image" in (ready["message"])
        )
        assert f"fails {DEADLINE}s after it began (FILTERJOB_LISTER_DEADLINE)" in ready["message"]
        events = kube.wait_for_event("ListerNotStarted")
        warned = [e for e in events if e.get("reason") == "ListerNotStarted"]
        assert [e["type"] for e in warned] == ["Warning"]
        assert warned[0]["involvedObject"]["name"] == "nopull"
        # The real Job controller ends the lister at its deadline, and the job with it.
        job = kube.wait("filterjobs", "nopull", phase_is("Failed", "Succeeded"), timeout=DEADLINE + 60)
    lister = kube.get("jobs", "nopull-list")
    assert lister is not None
    assert lister["spec"]["activeDeadlineSeconds"] == DEADLINE
    assert any(c["type"] == "Failed" and c["reason"] == "DeadlineExceeded" for c in lister["status"]["conditions"])
    assert job["status"]["phase"] == "Failed"
    failed = condition(job, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "ListerFailed")
    assert "the lister Job nopull-list failed without a listing: DeadlineExceeded" in failed["message"]
    assert "(its pod never started: pod nopull-list-" in failed["message"]
    assert job["status"].get("enqueued", 0) == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("lister_env")
def test_a_lister_pod_that_starts_late_clears_the_condition_and_lists(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry answers again before the deadline: back to ``Listing``, then the listing."""
    monkeypatch.setenv("FILTERJOB_LISTER_DEADLINE", "600")
    cluster_kubelet.refuse_image = lambda image: PULL_ERROR
    make_samples(tmp_path / "in", count=3, size=(16, 12))
    created.append(kube.create_job(job_body("late", kube.namespace, tmp_path / "in", tmp_path / "out")))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "late", ready_reason("ListerNotStarted"), timeout=30)
        cluster_kubelet.refuse_image = None
        job = kube.wait("filterjobs", "late", lambda o: o["status"].get("total") == 3, timeout=60)
    # Said in the same status write as the listing's total: never a listed job that "has not started".
    assert condition(job, "Ready")["reason"] in ("Listed", "Processing", "Finished")
    assert job["status"]["phase"] in ("Enqueuing", "Running", "Succeeded")


@pytest.mark.usefixtures("lister_env")
def test_deleting_a_job_waiting_for_its_lister_removes_the_lister_job_its_pods_and_the_queues(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    """No node here: the lister's pod cannot be scheduled, which the job says, until it is deleted."""
    make_samples(tmp_path / "in", count=2, size=(16, 12))
    stored = kube.create_job(job_body("halfway", kube.namespace, tmp_path / "in", tmp_path / "out"))
    created.append(stored)
    topology = topology_of(parse_job(stored))
    with filterjob_operator.run(timeout=60):
        waiting = kube.wait("filterjobs", "halfway", ready_reason("ListerNotStarted"), timeout=30)
        assert "Unschedulable: " in condition(waiting, "Ready")["message"]
        lister = kube.wait("jobs", "halfway-list")
        assert lister["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
        assert kube.wait_all("pods", bool, label_selector="batch.kubernetes.io/job-name=halfway-list")
        assert queue_exists(topology.tasks)
        kube.delete_job("halfway")
        kube.gone("filterjobs", "halfway", timeout=30)
    # The finalizer took the queues; the real garbage collector the lister Job and its pod.
    assert not queue_exists(topology.tasks)
    assert not queue_exists(topology.inputs)
    kube.gone("jobs", "halfway-list")
    kube.wait_all("pods", lambda found: not found)
