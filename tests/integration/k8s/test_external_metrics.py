"""The operator's External metrics API behind the real aggregator, and ``autoscaling.mode: hpa`` on the
real HPA controller with nothing but the chart installed (tests/helpers/aggregation.py says how the
API server reaches an operator on loopback).

The HPA controller syncs every ``HPA_SYNC_SECONDS`` on the test control plane; the job's
``scaleDownDelaySeconds: 0`` is its downscale stabilization window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.core.extmetrics import METRIC
from filterjob_operator.core.samples import make_samples
from tests.helpers.aggregation import (
    HPA_USER,
    PREFIX,
    Served,
    direct_get,
    get_raw,
    install_served_release,
    metric_path,
    uninstall,
    wait_available,
)
from tests.helpers.controlplane import ControlPlane
from tests.helpers.filterjobs import job_body, phase_is
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import NODE, ClusterApi, FilterJobOperator, Kube, Release, operator_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served(
    control_plane: ControlPlane, cluster_api: ClusterApi, operator_release: Release, kube: Kube, tmp_path: Path
) -> Iterator[Served]:
    """A release of the chart with its External metrics API (the CRD is the session release's)."""
    found = install_served_release(control_plane, cluster_api, f"xm-{kube.namespace}", tmp_path)
    yield found
    uninstall(control_plane, cluster_api, found)


@pytest.fixture
def metrics_operator(
    control_plane: ControlPlane, served: Served, broker_secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FilterJobOperator:
    """The served release's operator, with the chart's serving certificate, on loopback."""
    for name, value in {**served.env(), "FILTERJOB_STATUS_INTERVAL": "0.5", "FILTERJOB_METRICS_PORT": "0"}.items():
        monkeypatch.setenv(name, value)
    return operator_for(control_plane, served.release, tmp_path, monkeypatch)


def depth_of(control_plane: ControlPlane, kube: Kube, job: str, expected: str) -> dict[str, Any]:
    """The metric as ``kubectl get --raw`` reads it, once it reads ``expected`` (the broker samples its
    statistics every 5 s, and the server says it cannot tell until then: retried within a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        code, answer = get_raw(control_plane, metric_path(kube.namespace, METRIC, job))
        if code == 0 and isinstance(answer, dict) and answer["items"][0]["value"] == expected:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{METRIC} of {job} never read {expected}: last answer {answer!r}")
        time.sleep(0.5)


def test_the_apiservice_serves_each_jobs_depth_to_the_authorized_and_refuses_the_unauthenticated(
    control_plane: ControlPlane,
    cluster_api: ClusterApi,
    kube: Kube,
    served: Served,
    metrics_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    make_samples(tmp_path / "in", count=7, size=(16, 12))
    body = job_body("depth", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "none"}  # no node: the tasks wait in the queue
    created.append(kube.create_job(body))
    with metrics_operator.run(timeout=60):
        service = wait_available(cluster_api)
        assert service["spec"]["service"] == {
            "name": f"{served.release.service_account}-external-metrics",
            "namespace": served.release.namespace,
            "port": served.port,
        }
        code, discovery = get_raw(control_plane, PREFIX)
        assert code == 0, discovery
        assert isinstance(discovery, dict)
        assert discovery["resources"][0]["name"] == "externalmetrics"
        kube.wait("filterjobs", "depth", lambda o: o["status"]["enqueued"] == 7, timeout=30)
        answer = depth_of(control_plane, kube, "depth", "7")
        (item,) = answer["items"]
        assert item["metricLabels"] == {"namespace": kube.namespace, "job": "depth"}
        # A job that does not exist is an error, never an empty list (which an HPA reads as no work).
        code, missing = get_raw(control_plane, metric_path(kube.namespace, METRIC, "nosuch"))
        assert code != 0
        assert f"no FilterJob {kube.namespace}/nosuch" in str(missing)
        # Straight to the operator's port, without the aggregator's client certificate: refused.
        status, refused = direct_get(served, metric_path(kube.namespace, METRIC, "depth"))
        assert (status, refused["kind"], refused["reason"]) == (401, "Status", "Unauthorized")
    used = metrics_operator.api_usage()
    assert {("create", "authorization.k8s.io", "subjectaccessreviews", ""), ("get", "", "configmaps", "")} <= used
    assert ("get", "filterjob.dev", "filterjobs", "") in used
    refused_calls = metrics_operator.api_usage(decision="forbid")
    assert not refused_calls, f"the API server refused the operator (403): {sorted(refused_calls)}"
    assert used <= served.release.granted(cluster_api)


def test_hpa_mode_scales_up_to_max_on_a_backlog_and_down_when_drained_by_the_real_hpa_controller(
    control_plane: ControlPlane,
    cluster_api: ClusterApi,
    kube: Kube,
    served: Served,
    metrics_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    make_samples(tmp_path / "in", count=12, size=(16, 12))
    body = job_body("auto", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {
        "mode": "hpa",
        "minReplicas": 1,
        "maxReplicas": 3,
        "messagesPerReplica": 2,
        "scaleDownDelaySeconds": 0,
    }
    created.append(kube.create_job(body))
    since = control_plane.audit_offset()
    with metrics_operator.run(timeout=90):
        wait_available(cluster_api)
        # No node yet: the 12 tasks wait, and 12 / 2 per replica asks for 6, capped at maxReplicas.
        kube.wait("deployments", "auto-workers", lambda d: d["spec"]["replicas"] == 3, timeout=60)
        with Kubelet(control_plane.api_client(), NODE, log_dir=tmp_path / "pods", restart_backoff=(0.2, 4.0)):
            # The queue drains: the HPA lowers the workers to its minimum, before the job ends.
            kube.wait("deployments", "auto-workers", lambda d: d["spec"]["replicas"] == 1, timeout=90)
            job = kube.wait("filterjobs", "auto", phase_is("Succeeded", "Failed"), timeout=90)
            kube.gone("horizontalpodautoscalers", "auto-workers", timeout=30)
            kube.wait("deployments", "auto-workers", lambda d: d["spec"]["replicas"] == 0, timeout=30)
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 12, 12, 0)
    events = control_plane.audit_events(since=since)

    def scaled_by(user: str) -> list[int]:
        return [
            n
            for n, e in enumerate(events)
            if e["user"]["username"] == user
            and e.get("objectRef", {}).get("resource") == "deployments"
            and e["objectRef"].get("subresource") == "scale"
            and e["verb"] in ("patch", "update")
        ]

    assert len(scaled_by(HPA_USER)) >= 2  # up to 3, down to 1
    read = [
        e
        for e in events
        if e["user"]["username"] == HPA_USER and e.get("objectRef", {}).get("apiGroup") == "external.metrics.k8s.io"
    ]
    assert any(e.get("responseStatus", {}).get("code") == 200 for e in read)  # from the operator, via the aggregator
    # The operator set no replicas while the HPA owned them: its one scale comes after it removed the HPA.
    operator = metrics_operator.release.user
    (removed,) = [
        n
        for n, e in enumerate(events)
        if e["user"]["username"] == operator
        and e.get("objectRef", {}).get("resource") == "horizontalpodautoscalers"
        and e["verb"] == "delete"
    ]
    assert scaled_by(operator)
    assert all(n > removed for n in scaled_by(operator)), "the operator scaled the workers while the HPA owned them"
