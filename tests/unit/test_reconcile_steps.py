"""The reconciler's steps on fakes of the Kubernetes API and the broker (``tests.helpers.reconcilefakes``):
what each asks of them, writes in the status and posts as Events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest

from filterjob_operator.adapters import verification
from filterjob_operator.adapters.broker.parked import Parked
from filterjob_operator.adapters.kube import Workers
from filterjob_operator.adapters.sources import Inputs
from filterjob_operator.control.reconcile import children, enqueue, finish, finished, follow, inputs, job
from filterjob_operator.control.reconcile.context import BROKER_RETRY_INTERVALS, Outcome, attempt
from filterjob_operator.control.reconcile.enqueue import Checkpoint
from filterjob_operator.control.reconcile.finished import AfterFinish
from filterjob_operator.control.reconcile.redrive import ANNOTATION
from filterjob_operator.core import status
from filterjob_operator.core.listing import Listing
from filterjob_operator.core.spec import parse_job
from filterjob_operator.core.status import Depths
from tests.helpers.reconcilefakes import FakeBroker, Harness, harness


def patches(h: Harness) -> list[dict[str, Any]]:
    return list(h.kube.called("patch_status"))


def stop_on(h: Harness, key: str) -> None:
    """Stop the daemon once a status patch writes ``key``."""
    h.kube.on_patch = lambda fields: h.stop() if key in fields else None


# The checkpoint: when the enqueue cursor is saved.


def test_a_forced_checkpoint_is_always_due() -> None:
    assert Checkpoint(batch=10, when=0.0).due(0, now=0.0, force=True)


def test_a_cursor_that_did_not_move_is_not_saved_however_long_ago() -> None:
    assert not Checkpoint(batch=10, when=0.0).due(0, now=1000.0)


def test_a_cursor_a_batch_further_is_saved_at_once_and_less_only_after_the_seconds() -> None:
    checkpoint = Checkpoint(batch=10, when=0.0, seconds=2.0)
    assert checkpoint.due(10, now=0.0)
    assert not checkpoint.due(9, now=1.9)
    assert checkpoint.due(1, now=2.0)
    checkpoint.mark(9, now=5.0)
    assert (checkpoint.saved, checkpoint.when) == (9, 5.0)
    assert not checkpoint.due(10, now=6.0)


# Enqueue.


async def test_enqueue_publishes_every_key_and_saves_the_cursor_per_batch_and_at_the_end(
    job_doc: dict[str, Any],
) -> None:
    h = harness(job_doc, enqueue_batch=2)
    job = parse_job(job_doc)
    keys = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]

    assert await enqueue.enqueue(h.ctx, h.attempt(job), keys, already=3) is Outcome.CONTINUE

    assert [t.input for t in h.broker.published] == [f"file:///data/in/{k}" for k in keys]
    saved = [(p["enqueued"], p.get("enqueuedThrough")) for p in patches(h)]
    assert saved == [(5, "b.jpg"), (7, "d.jpg"), (8, "e.jpg")]
    assert h.events.posted == [("Normal", "Enqueued", "8 tasks enqueued")]


async def test_enqueue_stopped_saves_the_cursor_and_publishes_nothing_more(job_doc: dict[str, Any]) -> None:
    h = harness(job_doc)
    h.stop()

    outcome = await enqueue.enqueue(h.ctx, h.attempt(parse_job(job_doc)), ["a.jpg"], already=4)

    assert outcome is Outcome.STOPPED
    assert h.broker.published == []
    assert patches(h) == [{"enqueued": 4}]


# Follow: observe, decide, act.


async def test_follow_scales_to_the_backlog_and_reports_the_job_running(job_doc: dict[str, Any]) -> None:
    busy = Depths(ready=50, unacked=10)
    h = harness(job_doc, broker=FakeBroker(depths_seen=[busy]))
    h.kube.deployment = Workers(desired=1, ready=1)
    stop_on(h, "phase")

    outcome = await follow.follow(h.ctx, h.attempt(parse_job(job_doc)), total=100, keys=[], sure=None)

    assert outcome is Outcome.STOPPED
    assert h.kube.called("scale") == [("thumbs-workers", 3)]
    (report,) = patches(h)
    assert report["phase"] == status.RUNNING
    assert report["workers"] == {"desired": 3, "ready": 1, "summary": "1/3"}
    assert (report["succeeded"], report["queued"], report["inFlight"]) == (40, 50, 10)
    (ready,) = report["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Processing")
    assert ready["message"] == "40 of 100 tasks done"
    metrics = h.ctx.services.metrics
    assert metrics.queue_messages.labels("photos", "thumbs")._value.get() == 60
    assert metrics.desired_replicas.labels("photos", "thumbs")._value.get() == 3


async def test_follow_acts_on_a_redrive_request_once_then_reports(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["annotations"] = {ANNOTATION: "1"}
    parked = [Parked(task="t1", reason="bad"), Parked(task="t2", reason="bad")]
    h = harness(job_doc, broker=FakeBroker(depths_seen=[Depths(parked=2)], parked_tasks=parked))
    stop_on(h, "phase")

    await follow.follow(h.ctx, h.attempt(parse_job(job_doc)), total=2, keys=[], sure=None)

    assert h.broker.calls == ["redrive"]
    first, report = patches(h)
    assert first == {"redriven": "1"}
    assert report["phase"] == status.RUNNING
    message = f"2 parked tasks moved back to the task queue ({ANNOTATION}=1)"
    assert h.events.posted == [("Normal", "Redriven", message)]


# The workers: the Deployment, and in hpa mode the HPA that owns its replicas.


async def test_queue_mode_creates_the_workers_at_the_replicas_given_and_no_hpa(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    h = harness(job_doc)
    await children.ensure_workers(h.ctx, h.attempt(parse_job(job_doc)), replicas=0)
    (manifest,) = h.kube.called("apply_deployment")
    assert manifest["spec"]["replicas"] == 0
    assert h.kube.called("apply_hpa") == []
    assert h.kube.called("scale") == []


@pytest.mark.parametrize(("minimum", "start"), [(0, 1), (1, 1), (3, 3)])
async def test_hpa_mode_creates_the_workers_at_the_hpas_minimum(
    job_doc: dict[str, Any], minimum: int, start: int
) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    job_doc["spec"]["autoscaling"] = {"mode": "hpa", "minReplicas": minimum, "maxReplicas": 5}
    h = harness(job_doc)  # no Deployment yet
    await children.ensure_workers(h.ctx, h.attempt(parse_job(job_doc)), replicas=0)
    (manifest,) = h.kube.called("apply_deployment")
    assert manifest["spec"]["replicas"] == start  # an HPA leaves a Deployment at zero alone
    (autoscaler,) = h.kube.called("apply_hpa")
    assert autoscaler["spec"]["minReplicas"] == start
    assert h.kube.called("scale") == []  # created so: never scaled by the operator


async def test_hpa_mode_raises_workers_at_zero_once_and_leaves_running_ones_to_the_hpa(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    job_doc["spec"]["autoscaling"] = {"mode": "hpa", "minReplicas": 2, "maxReplicas": 5}
    h = harness(job_doc)
    h.kube.deployment = Workers(desired=0, ready=0)  # a job re-driven after its end gave them back
    await children.ensure_workers(h.ctx, h.attempt(parse_job(job_doc)), replicas=0)
    assert h.kube.called("scale") == [("thumbs-workers", 2)]
    h = harness(job_doc)
    h.kube.deployment = Workers(desired=4, ready=4)  # the HPA's choice: kept
    await children.ensure_workers(h.ctx, h.attempt(parse_job(job_doc)), replicas=0)
    assert h.kube.called("scale") == []


# Finish: verified at the destination.


async def test_finish_counts_an_output_that_is_missing_as_lost(job_doc: dict[str, Any], tmp_path: Path) -> None:
    job_doc["spec"]["destination"]["uri"] = tmp_path.as_uri() + "/"
    job_doc["spec"]["autoscaling"] = {"mode": "hpa"}
    (tmp_path / "a.jpg").write_bytes(b"done")
    job = parse_job(job_doc)
    h = harness(job_doc, broker=FakeBroker(parked_tasks=[]))
    result = status.counts(total=2, enqueued=2, depths=Depths())

    assert await finish.finish(h.ctx, h.attempt(job), result, ["a.jpg", "b.jpg"], sure=None) is Outcome.FINISHED

    assert h.kube.called("delete_hpa") == ["thumbs-workers"]  # the HPA gives the workers back
    assert h.kube.called("scale") == [("thumbs-workers", 0)]
    (final,) = patches(h)
    assert (final["succeeded"], final["failed"], final["phase"]) == (1, 1, status.FAILED)  # 50% > maxFailedRatio
    assert final["recentFailures"] == [{"key": "b.jpg", "reason": verification.LOST}]
    assert final["workers"] == {"desired": 0, "ready": 0, "summary": "0/0"}
    assert [(c["type"], c["status"]) for c in final["conditions"]] == [
        ("Ready", "False"),
        ("Complete", "False"),
        ("Failed", "True"),
    ]
    message = f"1 succeeded, 1 failed of 2 (1 {verification.LOST}: b.jpg)"
    assert h.events.posted == [("Warning", "Failed", f"{message}: above maxFailedRatio 0.1")]


async def test_finish_stopped_while_the_verifier_runs_says_stopped(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"  # a verifier Job is owned by its FilterJob
    job = parse_job(job_doc)  # its destination, file:///data/out/, is not seen here: a verifier Job looks
    h = harness(job_doc)
    h.stop()
    result = status.counts(total=1, enqueued=1, depths=Depths())

    assert await finish.finish(h.ctx, h.attempt(job), result, ["a.jpg"], sure=None) is Outcome.STOPPED

    assert h.broker.calls == [f"forget_listing {h.attempt(job).topology.outputs}"]
    assert [m["metadata"]["name"] for m in h.kube.called("create_job")] == ["thumbs-verify"]
    assert patches(h) == []


# A finished job: its TTL, a re-drive request.


def finished_doc(job_doc: dict[str, Any], **status_fields: Any) -> dict[str, Any]:
    job_doc["status"] = {"phase": status.SUCCEEDED, "completionTime": "2020-01-01T00:00:00Z", **status_fields}
    return job_doc


async def test_a_finished_job_past_its_ttl_is_deleted(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["ttlSecondsAfterFinished"] = 60
    h = harness(finished_doc(job_doc))

    assert await finished.wait_finished(h.ctx) is AfterFinish.DELETED

    assert h.kube.called("delete_filterjob") == [("photos", "thumbs")]


@pytest.mark.parametrize(
    ("ttl", "completion"), [(None, "2020-01-01T00:00:00Z"), (60, None), (10**9, "2020-01-01T00:00:00Z")]
)
async def test_a_finished_job_within_or_without_a_ttl_waits_until_stopped(
    job_doc: dict[str, Any], ttl: int | None, completion: str | None
) -> None:
    if ttl is not None:
        job_doc["spec"]["ttlSecondsAfterFinished"] = ttl
    h = harness(finished_doc(job_doc, completionTime=completion))
    waiting = asyncio.ensure_future(finished.wait_finished(h.ctx))
    await asyncio.sleep(0)  # into its first pause
    h.stop()

    assert await waiting is AfterFinish.STOPPED
    assert h.kube.called("delete_filterjob") == []


async def test_a_redrive_request_of_an_invalid_spec_is_refused_once_with_the_reason(
    job_doc: dict[str, Any],
) -> None:
    job_doc["metadata"]["annotations"] = {ANNOTATION: "2"}
    job_doc["spec"]["filters"] = [{"name": "no-such-filter"}]
    h = harness(finished_doc(job_doc))
    stop_on(h, "redriven")

    assert await finished.wait_finished(h.ctx) is AfterFinish.STOPPED

    assert patches(h) == [{"redriven": "2"}]
    ((kind, reason, message),) = h.events.posted
    assert (kind, reason) == ("Warning", "RedriveRefused")
    assert message.startswith(f"{ANNOTATION}=2 not acted on: the spec is invalid: ")
    assert message.endswith(f"fix the spec, then set {ANNOTATION} to a new value")
    assert h.connected == []


@pytest.mark.parametrize("listing_failed", [False, True])
async def test_a_redrive_request_runs_a_finished_job_again(job_doc: dict[str, Any], listing_failed: bool) -> None:
    job_doc["metadata"]["annotations"] = {ANNOTATION: "3"}
    failed = [{"type": "Failed", "status": "True", "reason": "ListerFailed"}] if listing_failed else []
    h = harness(finished_doc(job_doc, conditions=failed))
    h.kube.secrets["filterjob-broker"] = {"url": "amqp://u:p@127.0.0.1:5672/v"}

    assert await finished.wait_finished(h.ctx) is AfterFinish.REDRIVEN

    (connected,) = h.connected
    assert (connected["url"], connected["management_url"], connected["secret"]) == (
        "amqp://u:p@127.0.0.1:5672/v",
        None,  # a re-drive needs no statistics
        "filterjob-broker",
    )
    # The source was the problem: it is listed anew.
    assert h.broker.calls == (["forget_listing None", "redrive"] if listing_failed else ["redrive"])
    assert h.kube.called("delete_batch_job") == (["thumbs-list"] if listing_failed else [])
    assert patches(h) == [{"redriven": "3", "phase": status.RUNNING, "completionTime": None}]
    assert h.broker.closed


# The attempt: the broker from the job's Secret.


async def test_an_attempt_without_its_broker_secret_says_why_and_retries_later(job_doc: dict[str, Any]) -> None:
    h = harness(job_doc)
    job = parse_job(job_doc)

    for _ in range(2):
        with pytest.raises(kopf.TemporaryError) as raised:
            async with attempt(h.ctx, job):
                pytest.fail("no attempt without a broker")
        assert raised.value.delay == BROKER_RETRY_INTERVALS * h.ctx.services.settings.status_interval

    first, again = patches(h)
    assert first["phase"] == status.PENDING
    (ready,) = first["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "BrokerSecretMissing")
    assert again["conditions"][0]["message"] == ready["message"]
    # One Warning: the second time, the status said so already.
    assert [(kind, reason) for kind, reason, _ in h.events.posted] == [("Warning", "BrokerSecretMissing")]
    assert h.connected == []


# The inputs: a stored listing, or a lister Job's.


async def test_a_stored_listing_is_the_jobs_inputs_sorted(job_doc: dict[str, Any]) -> None:
    stored = Listing(run="r", keys=["b.jpg", "a.jpg"], skipped=[("x/", "permission denied")])
    h = harness(job_doc, broker=FakeBroker(listing=stored))

    found = await inputs.list_inputs(h.ctx, h.attempt(parse_job(job_doc)))

    assert isinstance(found, Inputs)
    assert found.keys == ["a.jpg", "b.jpg"]
    assert [(u.path, u.reason) for u in found.skipped] == [("x/", "permission denied")]
    assert not h.ctx.listed_here
    assert h.kube.calls == []


@pytest.mark.parametrize(
    ("stored", "watched", "failure", "reason", "message"),
    [
        (Listing(run="r", error="no such bucket"), None, None, "InvalidSource", "no such bucket"),
        (
            None,
            None,
            "BackoffLimitExceeded: gave up",
            "ListerFailed",
            "the lister Job thumbs-list failed without a listing: BackoffLimitExceeded: gave up",
        ),
        (None, Listing(run="r", error="no such bucket"), None, "InvalidSource", "no such bucket"),
    ],
)
async def test_a_source_that_cannot_be_listed_fails_the_job(
    job_doc: dict[str, Any],
    stored: Listing | None,
    watched: Listing | None,
    failure: str | None,
    reason: str,
    message: str,
) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    h = harness(job_doc, broker=FakeBroker(listing=stored, watched=watched), list_inputs="job")
    h.kube.failure = failure

    assert await inputs.list_inputs(h.ctx, h.attempt(parse_job(job_doc))) is Outcome.FINISHED

    failed = patches(h)[-1]
    assert failed["phase"] == status.FAILED
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in failed["conditions"]] == [
        ("Ready", "False", reason, message),
        ("Failed", "True", reason, message),
    ]
    assert h.events.posted[-1] == ("Warning", reason, message)


async def test_a_lister_job_lists_a_source_the_operator_cannot_see(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    h = harness(job_doc, broker=FakeBroker(watched=Listing(run="r", keys=["b.jpg", "a.jpg"])), list_inputs="job")

    found = await inputs.list_inputs(h.ctx, h.attempt(parse_job(job_doc)))

    assert isinstance(found, Inputs)
    assert found.keys == ["a.jpg", "b.jpg"]
    (waiting,) = patches(h)
    assert waiting["phase"] == status.PENDING
    (ready,) = waiting["conditions"]
    assert (ready["reason"], ready["message"]) == (
        "Listing",
        "waiting for the lister Job thumbs-list to list file:///data/in/",
    )
    assert [m["metadata"]["name"] for m in h.kube.called("create_job")] == ["thumbs-list"]
    assert h.events.posted == [("Normal", "Listing", "created the lister Job thumbs-list")]


# The attempt: a spec that does not parse, where enqueueing resumes.


async def test_an_invalid_spec_fails_the_job_without_its_broker(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "no-such-filter"}]
    h = harness(job_doc)

    assert await job.run_attempt(h.ctx) is Outcome.FINISHED

    (failed,) = patches(h)
    assert failed["phase"] == status.FAILED
    assert failed["conditions"][1]["reason"] == "InvalidSpec"
    assert h.connected == []


@pytest.mark.parametrize("listed_here", [False, True])
async def test_a_job_resumes_after_the_last_key_enqueued(job_doc: dict[str, Any], listed_here: bool) -> None:
    listing_ready = {
        "type": "Ready",
        "status": "False",
        "reason": "Listing",
        "message": "waiting",
        "lastTransitionTime": "2020-01-01T00:00:00Z",
    }
    job_doc["status"] = {"enqueued": 1, "enqueuedThrough": "a.jpg", "conditions": [listing_ready]}
    h = harness(job_doc)
    h.ctx.listed_here = listed_here

    plan = await job.start(h.ctx, h.attempt(parse_job(job_doc)), Inputs(keys=["a.jpg", "b.jpg", "c.jpg"]))

    assert (plan.already, list(plan.remaining), plan.total) == (1, ["b.jpg", "c.jpg"], 3)
    # Listed here again, the inputs may differ from the first listing: only those still to enqueue are surely tasks.
    assert plan.sure == ({"b.jpg", "c.jpg"} if listed_here else None)
    (started,) = patches(h)
    assert (started["phase"], started["total"], started["skipped"]) == (status.ENQUEUING, 3, 0)
    (ready,) = started["conditions"]
    assert (ready["reason"], ready["message"]) == ("Listed", "3 inputs listed")
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z"  # still not ready: no transition


async def test_an_empty_source_says_so_in_a_condition_and_a_warning(job_doc: dict[str, Any]) -> None:
    h = harness(job_doc)

    plan = await job.start(h.ctx, h.attempt(parse_job(job_doc)), Inputs(keys=[]))

    assert plan.total == 0
    (started,) = patches(h)
    assert started["phase"] == status.RUNNING  # nothing to enqueue
    (empty,) = h.ctx.source_conditions
    assert (empty["type"], empty["reason"]) == (status.SOURCE_EMPTY, "NoInputs")
    assert started["conditions"] == [empty]
    assert h.events.posted == [("Warning", "NoInputs", empty["message"])]


# A whole run, on fakes.


async def test_a_job_runs_its_steps_in_order_to_its_end(
    job_doc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_doc["metadata"]["uid"] = "u-1"
    job_doc["spec"]["destination"]["uri"] = tmp_path.as_uri() + "/"
    for key in ("a.jpg", "b.jpg"):
        (tmp_path / key).write_bytes(b"done")
    readings = iter(range(0, 10**6, 60))  # a minute passes between two looks: the queues read empty long enough
    monkeypatch.setattr(follow.time, "monotonic", lambda: float(next(readings)))
    h = harness(job_doc, broker=FakeBroker(listing=Listing(run="r", keys=["b.jpg", "a.jpg"])))
    h.kube.secrets["filterjob-broker"] = {"url": "amqp://127.0.0.1:5672/"}
    h.kube.on_patch = lambda fields: h.stop() if fields.get("phase") == status.SUCCEEDED else None

    await job.run_context(h.ctx)

    phases = [p.get("phase") for p in patches(h)]
    assert phases == [None, status.ENQUEUING, None, status.RUNNING, status.SUCCEEDED]
    queues, _, cursor, _, final = patches(h)
    assert queues == {"queues": h.attempt(parse_job(job_doc)).topology.base}
    assert cursor == {"enqueued": 2, "enqueuedThrough": "b.jpg"}
    assert (final["succeeded"], final["failed"], final["total"]) == (2, 0, 2)
    assert [t.input.rsplit("/", 1)[1] for t in h.broker.published] == ["a.jpg", "b.jpg"]
    assert [m["metadata"]["name"] for m in h.kube.called("apply_deployment")] == ["thumbs-workers"]
    assert [reason for _, reason, _ in h.events.posted] == ["Enqueued", "Succeeded"]
    assert h.broker.calls == ["declare"]
    assert h.broker.closed
