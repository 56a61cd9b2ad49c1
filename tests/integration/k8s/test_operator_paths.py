"""Operator paths the end-to-end tests do not take, each on the real control plane and the real broker:
``autoscaling.mode: none``, a job ending ``Failed`` above ``maxFailedRatio`` through real workers,
suspending a running job, re-drive requests on a running job and on a finished job whose spec
became invalid, the broker Secret's ``managementUrl``, the lister Job spending its retries, and the
finalizer's branches that other tests leave alone."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_image, write_broken
from filterjob_operator.core.spec import parse_job
from tests.helpers.brokers import BROKER_URL
from tests.helpers.brokerthread import BrokerThread, BusyWorkers
from tests.helpers.filterjobs import (
    container_restarts,
    job_body,
    kopf_settled,
    phase_is,
    png_outputs,
    queue_exists,
    ready_reason,
)
from tests.helpers.gates import POLL, Gates
from tests.helpers.kubelet import Kubelet
from tests.helpers.realcluster import FilterJobOperator, Kube

MANAGEMENT = "http://127.0.0.1:15672"


@pytest.fixture(autouse=True)
def nothing_refused(filterjob_operator: FilterJobOperator) -> Iterator[None]:
    yield
    refused = filterjob_operator.api_usage(decision="forbid")
    assert not refused, f"the API server refused the operator (403): {sorted(refused)}"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, broker_secret: str) -> None:
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")


def condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


def images(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        make_image((32, 24), seed).save(directory / name, format="PNG")


#: What a worker logs when it is told to stop (filterjob_worker.service).
DRAINING = "signal received, draining"


def wait_for_line(log: Path, text: str, *, timeout: float = 60.0) -> None:
    """Wait until a pod's log (written by the kubelet harness) has ``text``: a process says it there only."""
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{log.name} did not say {text!r} within {timeout:g}s"
        time.sleep(POLL)


def warnings_of(kube: Kube, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(reason) if e["type"] == "Warning"]


# --------------------------------------------------------------------------------------------------
# Scaling and the end of a job.


@pytest.mark.usefixtures("operator_env")
def test_mode_none_runs_min_replicas_whatever_the_backlog_and_no_hpa(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    broker_thread: BrokerThread,
) -> None:
    """A backlog that ``mode: queue`` would answer with 5 workers gets ``minReplicas``; a user's own
    scale is set back to it; when the job is done, zero. Never an HPA."""
    names = [f"{n}.png" for n in "abcdef"]
    images(tmp_path / "in", names)
    body = job_body("fixed", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"mode": "none", "minReplicas": 2, "maxReplicas": 5, "messagesPerReplica": 1}
    stored = kube.create_job(body)
    created.append(stored)
    with filterjob_operator.run(timeout=60):
        job = kube.wait(
            "filterjobs", "fixed", lambda o: o["status"]["queued"] == 6 and o["status"]["workers"]["desired"] == 2
        )
        assert job["status"]["phase"] == "Running"
        assert kube.wait("deployments", "fixed-workers")["spec"]["replicas"] == 2
        kube.api.apps.patch_namespaced_deployment_scale("fixed-workers", kube.namespace, {"spec": {"replicas": 4}})
        kube.wait("deployments", "fixed-workers", lambda d: d["spec"]["replicas"] == 2)
        # Nothing runs the pods here (no node): the test does the work, as workers would.
        busy = BusyWorkers(broker_thread, topology_of(parse_job(stored)).tasks)
        busy.take(6)
        busy.ack(6)
        job = kube.wait("filterjobs", "fixed", phase_is("Succeeded", "Failed"), timeout=60)
        kube.wait("deployments", "fixed-workers", lambda d: d["spec"]["replicas"] == 0)
    assert (job["status"]["phase"], job["status"]["total"], job["status"]["succeeded"]) == ("Succeeded", 6, 6)
    assert kube.list("horizontalpodautoscalers") == []


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_failures_above_max_failed_ratio_end_the_job_failed_with_a_warning(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    """Real workers park one broken input of three: 1/3 is above the default ``maxFailedRatio`` 0.1."""
    images(tmp_path / "in", ["a.png", "c.png"])
    write_broken(tmp_path / "in" / "b.png", "not-an-image")
    body = job_body("strict", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "scaleDownDelaySeconds": 0}
    created.append(kube.create_job(body))
    with filterjob_operator.run(timeout=60):
        job = kube.wait("filterjobs", "strict", phase_is("Succeeded", "Failed"), timeout=90)
        kube.wait_for_event("Failed")
        kube.wait("deployments", "strict-workers", lambda d: d["spec"]["replicas"] == 0)
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Failed", 3, 2, 1)
    assert (state["retrying"], state["queued"], state["inFlight"], state["progress"]) == (0, 0, 0, "2/3")
    assert state["completionTime"]
    message = "2 succeeded, 1 failed of 3"
    assert {c["type"]: (c["status"], c["reason"], c["message"]) for c in state["conditions"]} == {
        "Ready": ("False", "Finished", message),
        "Complete": ("False", "Failed", message),
        "Failed": ("True", "Failed", message),
    }
    (failure,) = state["recentFailures"]
    assert failure["key"] == "b.png"  # the input key (docs/reference.md), not the task id
    assert failure["reason"].startswith("not a usable image: ")
    (warning,) = warnings_of(kube, "Failed")
    assert warning["message"] == f"{message}: above maxFailedRatio 0.1"
    assert kube.events("Succeeded") == []
    assert png_outputs(tmp_path / "out") == {"a.png", "c.png"}


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_suspending_a_running_job_drains_its_workers_keeps_its_tasks_and_resume_finishes_it(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    """One worker, one image at a time, held at c.png: suspended then, it finishes c and exits, the
    three tasks behind it wait in the queue, and the counts say so; resumed, the job ends with all six."""
    names = [f"{n}.png" for n in "abcdef"]
    source = tmp_path / "in"
    images(source, names)
    cluster_kubelet.refuse_image = lambda image: "held back by the test"  # until the gate is in place
    body = job_body("paused", kube.namespace, source, tmp_path / "out")
    body["spec"]["workers"] = {"concurrency": 1}
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "messagesPerReplica": 100, "scaleDownDelaySeconds": 0}
    stored = kube.create_job(body)
    created.append(stored)
    tasks = topology_of(parse_job(stored)).tasks
    gates = Gates(source, ["c.png"])
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "paused", lambda o: o["status"].get("enqueued") == 6)
        gates.close()
        cluster_kubelet.refuse_image = None
        held = gates.reached("c.png", timeout=90)  # a and b done, c in the worker's hands
        (pod,) = kube.list("pods", label_selector="app.kubernetes.io/component=worker")
        kube.patch_job("paused", {"spec": {"suspend": True}})
        kube.wait("deployments", "paused-workers", lambda d: d["spec"]["replicas"] == 0)
        # The worker got its SIGTERM (the ReplicaSet controller deleted its pod): it takes nothing more.
        wait_for_line(cluster_kubelet.log_dir / f"{kube.namespace}.{pod['metadata']['name']}.log", DRAINING)
        gates.release("c.png", held)  # the draining worker finishes what it holds
        kube.wait_all("pods", lambda found: not found, label_selector="app.kubernetes.io/component=worker")
        suspended = kube.wait(
            "filterjobs",
            "paused",
            lambda o: (o["status"]["succeeded"], o["status"]["queued"], o["status"]["inFlight"]) == (3, 3, 0),
        )
        assert suspended["status"]["phase"] == "Suspended"
        ready = condition(suspended, "Ready")
        assert (ready["status"], ready["reason"], ready["message"]) == ("False", "Suspended", "3 of 6 tasks done")
        assert suspended["status"]["workers"]["desired"] == 0
        assert png_outputs(tmp_path / "out") == {"a.png", "b.png", "c.png"}
        assert kube.get("deployments", "paused-workers")["spec"]["replicas"] == 0  # type: ignore[index]
        assert queue_exists(tasks)
        kube.patch_job("paused", {"spec": {"suspend": False}})
        job = kube.wait("filterjobs", "paused", phase_is("Succeeded", "Failed"), timeout=90)
    state = job["status"]
    assert (state["phase"], state["total"], state["enqueued"], state["succeeded"], state["failed"]) == (
        "Succeeded",
        6,
        6,
        6,
        0,
    )
    assert png_outputs(tmp_path / "out") == set(names)
    assert container_restarts(kube, "paused-workers-") == 0


# --------------------------------------------------------------------------------------------------
# Re-drive requests.


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_a_redrive_of_a_running_job_moves_its_parked_tasks_back_at_once(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
) -> None:
    """While a worker is held at z.png, a.png is parked; fixed and re-driven, the running job's
    workers take it again, and the job ends with nothing failed."""
    source = tmp_path / "in"
    images(source, ["b.png", "z.png"])
    write_broken(source / "a.png", "not-an-image")
    cluster_kubelet.refuse_image = lambda image: "held back by the test"
    body = job_body("busy", kube.namespace, source, tmp_path / "out")
    body["spec"]["workers"] = {"concurrency": 2}
    body["spec"]["autoscaling"] = {"maxReplicas": 1, "messagesPerReplica": 100, "scaleDownDelaySeconds": 0}
    created.append(kube.create_job(body))
    gates = Gates(source, ["z.png"])
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "busy", lambda o: o["status"].get("enqueued") == 3)
        gates.close()
        cluster_kubelet.refuse_image = None
        held = gates.reached("z.png", timeout=90)
        running = kube.wait(
            "filterjobs", "busy", lambda o: o["status"]["failed"] == 1 and o["status"]["succeeded"] == 1
        )
        assert running["status"]["phase"] == "Running"
        make_image((32, 24), seed=9).save(source / "a.png", format="PNG")  # the cause, fixed
        kube.patch_job("busy", {"metadata": {"annotations": {"filterjob.dev/redrive": "while-running"}}})
        kube.wait("filterjobs", "busy", lambda o: o["status"].get("redriven") == "while-running")
        kube.wait("filterjobs", "busy", lambda o: o["status"]["failed"] == 0 and o["status"]["succeeded"] == 2)
        assert kube.get("filterjobs", "busy")["status"]["phase"] == "Running"  # type: ignore[index]
        gates.release("z.png", held)
        job = kube.wait("filterjobs", "busy", phase_is("Succeeded", "Failed"), timeout=90)
        kube.wait_for_event("Redriven")
    state = job["status"]
    assert (state["phase"], state["total"], state["succeeded"], state["failed"]) == ("Succeeded", 3, 3, 0)
    assert state["recentFailures"] == []
    (redriven,) = kube.events("Redriven")
    assert redriven["message"] == "1 parked tasks moved back to the task queue (filterjob.dev/redrive=while-running)"
    assert png_outputs(tmp_path / "out") == {"a.png", "b.png", "z.png"}


#: An edit the CRD admits and the operator refuses: it leaves label keys to the operator (a CEL
#: rule over every key would exceed the API server's cost budget).
INVALID_EDIT = {"workers": {"podLabels": {"not a label key": "x"}}}


def finished_job(kube: Kube, operator: FilterJobOperator, tmp_path: Path, name: str) -> dict[str, Any]:
    """A job run to ``Succeeded`` (nothing to do: it ends as soon as its queues settle); its body."""
    (tmp_path / "in").mkdir()
    kube.create_job(job_body(name, kube.namespace, tmp_path / "in", tmp_path / "out"))
    with operator.run(timeout=60):
        return kube.wait("filterjobs", name, lambda o: phase_is("Succeeded")(o) and kopf_settled(o), timeout=60)


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_a_redrive_of_a_finished_job_whose_spec_became_invalid_is_refused_once_naming_the_problem(
    kube: Kube, filterjob_operator: FilterJobOperator, tmp_path: Path, created: list[dict[str, Any]]
) -> None:
    done = finished_job(kube, filterjob_operator, tmp_path, "edited")
    created.append(done)
    request = {"annotations": {"filterjob.dev/redrive": "after-edit"}}
    kube.patch_job("edited", {"metadata": request, "spec": INVALID_EDIT})
    with filterjob_operator.run(timeout=60):
        kube.wait_for_event("RedriveRefused")
        job = kube.wait("filterjobs", "edited", lambda o: o["status"].get("redriven") == "after-edit")
    assert (job["status"]["phase"], job["status"]["completionTime"]) == ("Succeeded", done["status"]["completionTime"])
    assert job["status"]["succeeded"] == 0
    (refused,) = warnings_of(kube, "RedriveRefused")  # once, not at every look at the job
    assert refused["message"].startswith("filterjob.dev/redrive=after-edit not acted on: the spec is invalid: ")
    assert "spec.workers.podLabels: keys must be label keys" in refused["message"]
    assert refused["message"].endswith("fix the spec, then set filterjob.dev/redrive to a new value")
    assert kube.events("Redriven") == []


@pytest.mark.slow
@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_whose_spec_became_invalid_still_deletes_its_queues(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its queues are named in its status; its retry queues were numbered by a ``maxAttempts``
    (2 here: one retry queue) that the edit changed too."""
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "600")  # a finalizer that gives up would pass too
    done = finished_job(kube, filterjob_operator, tmp_path, "edited")
    created.append(done)
    topology = topology_of(parse_job(done))
    assert topology.retry_queues == [topology.retry_queue(0)]
    for name in topology.queues:
        assert queue_exists(name), name
    kube.patch_job("edited", {"spec": {**INVALID_EDIT, "retry": {"maxAttempts": 5}}})
    with filterjob_operator.run(timeout=60):
        kube.delete_job("edited")
        kube.gone("filterjobs", "edited", timeout=30)
    for name in (*topology.queues, topology.inputs):
        assert not queue_exists(name), name
    assert kube.events("QueuesLeftBehind") == []


# --------------------------------------------------------------------------------------------------
# The broker's management API.


class ManagementProxy:
    """The management API behind another loopback address, with every path it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        #: Answer every request with bytes that are no JSON, as a URL serving something else would.
        self.garbled = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.paths.append(self.path)
                if proxy.garbled:
                    self._answer(200, b"\x8b\x08 no JSON here")
                    return
                # Without Accept-Encoding: the answer goes back as it came, uncompressed.
                headers = {k: v for k, v in self.headers.items() if k.lower() != "accept-encoding"}
                request = urllib.request.Request(MANAGEMENT + self.path, headers=headers)  # noqa: S310 (http, loopback)
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback, http)
                        status, body = answer.status, answer.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                self._answer(status, body)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def management_proxy() -> Iterator[ManagementProxy]:
    proxy = ManagementProxy()
    yield proxy
    proxy.close()


@pytest.mark.parametrize("management", ["proxy", "closed-port", "garbled"])
def test_queue_depths_come_through_the_secrets_management_url(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    broker_thread: BrokerThread,
    management_proxy: ManagementProxy,
    caplog: pytest.LogCaptureFixture,
    management: str,
) -> None:
    """A task held unacked (a busy worker) shows as in flight only through the management API the
    Secret names; without one that answers, every task not ready counts as in flight (docs/scaling.md),
    and the operator says why."""
    monkeypatch.setenv("FILTERJOB_STATUS_INTERVAL", "0.5")
    monkeypatch.setenv("FILTERJOB_METRICS_PORT", "0")
    url = "http://guest:guest@127.0.0.1:1/" if management == "closed-port" else management_proxy.url
    management_proxy.garbled = management == "garbled"
    kube.api.core.create_namespaced_secret(
        kube.namespace, {"metadata": {"name": "rabbitmq"}, "stringData": {"url": BROKER_URL, "managementUrl": url}}
    )
    images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    stored = kube.create_job(job_body("sampled", kube.namespace, tmp_path / "in", tmp_path / "out"))
    created.append(stored)
    tasks = topology_of(parse_job(stored)).tasks
    caplog.set_level(logging.WARNING, logger="filterjob")
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "sampled", lambda o: o["status"].get("queued") == 3)
        BusyWorkers(broker_thread, tasks).take(1)
        if management == "proxy":
            # RabbitMQ samples unacked counts every 5 s: in flight once a sample has it.
            job = kube.wait(
                "filterjobs", "sampled", lambda o: (o["status"]["queued"], o["status"]["inFlight"]) == (2, 1)
            )
        else:
            job = kube.wait("filterjobs", "sampled", lambda o: o["status"]["queued"] == 2)
    assert job["status"]["phase"] == "Running"
    vhost_queue = f"/api/queues/%2F/{tasks}"
    if management == "proxy":
        assert vhost_queue in management_proxy.paths
        assert (job["status"]["succeeded"], job["status"]["failed"]) == (0, 0)
    else:  # no statistics: the task not ready counts as in flight (the job cannot end on a guess)
        assert job["status"]["inFlight"] == 1
        assert (job["status"]["succeeded"], job["status"]["failed"]) == (0, 0)
        unavailable = [r.getMessage() for r in caplog.records if "management API unavailable" in r.getMessage()]
        assert unavailable, "the operator did not say that the management API is unavailable"
        if management == "closed-port":
            assert management_proxy.paths == []
            assert "127.0.0.1:1" in unavailable[0]
        else:
            assert vhost_queue in management_proxy.paths
            port = management_proxy.server.server_address[1]
            assert (
                f"not the RabbitMQ management API at http://127.0.0.1:{port}/api: its answer is no JSON"
                in (unavailable[0])
            )


# --------------------------------------------------------------------------------------------------
# The lister Job spends its retries.


@pytest.mark.usefixtures("operator_env")
def test_a_lister_job_that_spends_its_retries_fails_the_job_as_lister_failed(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    cluster_kubelet: Kubelet,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lister's pod starts, cannot reach the broker (its Secret changed after the operator read
    it) and exits non-zero; the real Job controller fails the Job past its backoff limit (lowered to 0
    here, so one failed pod spends it) and the job ends ``Failed`` with ``ListerFailed``."""
    monkeypatch.setenv("FILTERJOB_LIST_INPUTS", "job")
    cluster_kubelet.refuse_image = lambda image: "held back by the test"
    images(tmp_path / "in", ["a.png"])
    created.append(kube.create_job(job_body("unlisted", kube.namespace, tmp_path / "in", tmp_path / "out")))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "unlisted", ready_reason("ListerNotStarted"), timeout=30)
        kube.api.batch.patch_namespaced_job("unlisted-list", kube.namespace, {"spec": {"backoffLimit": 0}})
        kube.api.core.patch_namespaced_secret(
            "rabbitmq", kube.namespace, {"stringData": {"url": "amqp://guest:guest@127.0.0.1:1/"}}
        )
        cluster_kubelet.refuse_image = None
        job = kube.wait("filterjobs", "unlisted", phase_is("Failed", "Succeeded"), timeout=60)
        kube.wait_for_event("ListerFailed")
    lister = kube.get("jobs", "unlisted-list")
    assert lister is not None
    assert any(c["type"] == "Failed" and c["reason"] == "BackoffLimitExceeded" for c in lister["status"]["conditions"])
    assert lister["status"]["failed"] == 1
    # Its pod ran: it started, and said why it failed (the job says nothing of a pod that never started).
    started = [e for e in kube.events("Started") if e["involvedObject"]["name"].startswith("unlisted-list-")]
    assert started
    (log,) = (tmp_path / "pods").glob(f"{kube.namespace}.unlisted-list-*.log")
    assert "connection refused by 127.0.0.1:1" in log.read_text()
    assert job["status"]["phase"] == "Failed"
    failed = condition(job, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "ListerFailed")
    assert failed["message"].startswith(
        "the lister Job unlisted-list failed without a listing: BackoffLimitExceeded: "
    ), failed["message"]
    assert "never started" not in failed["message"]
    assert condition(job, "Ready")["reason"] == "ListerFailed"
    assert job["status"].get("enqueued", 0) == 0
    (warning,) = warnings_of(kube, "ListerFailed")
    assert warning["message"] == failed["message"]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# The finalizer.


@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_whose_spec_was_never_valid_does_not_wait_for_a_broker(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "600")  # longer than this test may take
    body = job_body("invalid", kube.namespace, tmp_path / "in", tmp_path / "out")
    body["spec"]["source"] = {"uri": "s3://photos/in/"}
    body["spec"]["broker"] = {"secretRef": {"name": "nowhere"}}  # nothing to reach, nothing to read
    created.append(kube.create_job(body))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "invalid", phase_is("Failed"))
        kube.delete_job("invalid")
        kube.gone("filterjobs", "invalid", timeout=30)
    assert kube.events("QueuesLeftBehind") == []


@pytest.mark.usefixtures("operator_env")
def test_deleting_a_job_retries_while_its_broker_is_away_and_deletes_its_queues_once_it_is_back(
    kube: Kube,
    filterjob_operator: FilterJobOperator,
    tmp_path: Path,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILTERJOB_FINALIZER_TIMEOUT", "600")
    images(tmp_path / "in", ["a.png", "b.png"])
    stored = kube.create_job(job_body("away", kube.namespace, tmp_path / "in", tmp_path / "out"))
    created.append(stored)
    topology = topology_of(parse_job(stored))
    with filterjob_operator.run(timeout=60):
        kube.wait("filterjobs", "away", lambda o: o["status"].get("enqueued") == 2)
    kube.api.core.patch_namespaced_secret(
        "rabbitmq", kube.namespace, {"stringData": {"url": "amqp://guest:guest@127.0.0.1:1/"}}
    )
    with filterjob_operator.run(timeout=60):
        kube.delete_job("away")

        # kopf keeps the handler's last error on the job while it retries (kubectl get fj -o yaml).
        progress = "filterjob.dev/remove_queues"

        def retrying(job: dict[str, Any]) -> bool:
            return "cannot delete the queues" in job["metadata"]["annotations"][progress]

        said = json.loads(kube.wait("filterjobs", "away", retrying)["metadata"]["annotations"][progress])["message"]
        assert said.startswith(f"cannot delete the queues of {kube.namespace}/away: Secret {kube.namespace}/rabbitmq: ")
        assert "connection refused by 127.0.0.1:1" in said
        assert "giving up in " in said
        assert kube.get("filterjobs", "away") is not None  # kept while it retries
        assert queue_exists(topology.tasks)
        kube.api.core.patch_namespaced_secret("rabbitmq", kube.namespace, {"stringData": {"url": BROKER_URL}})
        kube.gone("filterjobs", "away", timeout=30)
    for name in (*topology.queues, topology.inputs):
        assert not queue_exists(name), name
    assert kube.events("QueuesLeftBehind") == []
