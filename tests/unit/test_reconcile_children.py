"""The children step (``reconcile.children``) on fakes: which autoscaler objects each mode makes and
removes, and how ``mode: keda`` fails without KEDA."""

from __future__ import annotations

from typing import Any

import pytest

from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.control.reconcile import children, job
from filterjob_operator.control.reconcile.context import Outcome
from filterjob_operator.core import status
from filterjob_operator.core.listing import Listing
from filterjob_operator.core.spec import parse_job
from tests.helpers.reconcilefakes import FakeBroker, Harness, harness

KEDA_OBJECTS = [("scaledobjects", "thumbs-workers"), ("triggerauthentications", "thumbs-workers")]


def in_mode(job_doc: dict[str, Any], mode: str) -> dict[str, Any]:
    job_doc["metadata"]["uid"] = "u-1"
    job_doc["spec"]["autoscaling"] = {"mode": mode}
    return job_doc


def kinds(h: Harness) -> list[tuple[str, Any]]:
    """The calls, each with the kind (or name) of what it was about."""
    return [
        (call, args["kind"] if isinstance(args, dict) and "kind" in args else args)
        for call, args in h.kube.calls
        if call != "patch_status"
    ]


def failed(h: Harness) -> dict[str, Any]:
    (patch,) = h.kube.called("patch_status")
    assert patch["phase"] == status.FAILED
    return next(c for c in patch["conditions"] if c["type"] == "Failed")


async def test_keda_mode_makes_the_trigger_authentication_its_secret_and_the_scaled_object(
    job_doc: dict[str, Any],
) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True, status_interval=2.5)

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.CONTINUE

    assert kinds(h) == [
        ("apply_deployment", "Deployment"),
        ("delete_hpa", "thumbs-workers"),  # an HPA and KEDA never both scale the workers
        ("apply_custom", "TriggerAuthentication"),
        ("apply_secret", "Secret"),
        ("apply_custom", "ScaledObject"),
    ]
    (secret,) = h.kube.called("apply_secret")
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-of-TriggerAuthentication"
    assert secret["stringData"] == {"host": "http://guest:guest@broker:15672/"}  # the attempt's management URL
    scaled = h.kube.called("apply_custom")[1]
    assert scaled["spec"]["pollingInterval"] == 3  # the status interval, in whole seconds
    assert "vhostName" not in scaled["spec"]["triggers"][0]["metadata"]  # the URL's vhost is the default


@pytest.mark.parametrize(("interval", "polling"), [(0.001, 1), (5.0, 5)])
async def test_keda_polls_as_often_as_the_operator_in_whole_seconds_at_least_one(
    job_doc: dict[str, Any], interval: float, polling: int
) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True, status_interval=interval)
    await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0)
    assert h.kube.called("apply_custom")[1]["spec"]["pollingInterval"] == polling


async def test_keda_mode_in_an_operator_without_keda_fails_the_job_saying_what_to_do(job_doc: dict[str, Any]) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc)  # FILTERJOB_KEDA unset

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.FINISHED

    assert kinds(h) == []  # nothing made, and KEDA's API never asked
    condition = failed(h)
    assert (condition["reason"], condition["message"]) == ("KedaDisabled", children.KEDA_DISABLED)
    assert "keda.enabled=true" in condition["message"]
    assert "https://keda.sh/" in condition["message"]
    assert h.events.posted == [("Warning", "KedaDisabled", children.KEDA_DISABLED)]


@pytest.mark.parametrize("missing", [{"triggerauthentications", "scaledobjects"}, {"scaledobjects"}])
async def test_keda_mode_without_kedas_crds_fails_the_job_once_and_removes_what_was_made(
    job_doc: dict[str, Any], missing: set[str]
) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True)
    h.kube.missing = missing

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.FINISHED

    condition = failed(h)
    assert (condition["reason"], condition["message"]) == ("KedaNotInstalled", children.KEDA_NOT_INSTALLED)
    assert "scaledobjects.keda.sh" in condition["message"]
    assert "filterjob.dev/redrive" in condition["message"]
    assert h.kube.called("delete_custom") == KEDA_OBJECTS
    assert [reason for _, reason, _ in h.events.posted] == ["KedaNotInstalled"]


async def test_keda_objects_the_api_server_refuses_fail_the_job_with_its_reason(job_doc: dict[str, Any]) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True)
    said = 'ScaledObject.keda.sh "thumbs-workers" is invalid: spec.maxReplicaCount: Invalid value'
    h.kube.invalid = {"scaledobjects": said}

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.FINISHED

    condition = failed(h)
    assert condition["reason"] == "KedaRefused"
    assert condition["message"].startswith(f"the API server refused the job's KEDA objects: {said}; then re-drive")
    assert h.kube.called("delete_custom") == KEDA_OBJECTS


async def test_other_api_errors_go_to_kopf_to_retry(job_doc: dict[str, Any]) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True)
    h.kube.invalid = {}
    h.kube.missing = set()

    async def unavailable(plural: str, manifest: dict[str, Any]) -> str:
        raise KubeError(503, "Service Unavailable")

    h.kube.apply_custom = unavailable  # type: ignore[method-assign]
    with pytest.raises(KubeError):
        await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0)
    assert h.kube.called("patch_status") == []  # not failed: the API server may come back


async def test_a_secret_of_the_operators_name_that_is_not_its_own_is_left_alone_and_fails_the_job(
    job_doc: dict[str, Any],
) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, keda=True)
    h.kube.taken = {"thumbs-keda"}

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.FINISHED

    condition = failed(h)
    assert condition["reason"] == "KedaSecretTaken"
    assert "the Secret photos/thumbs-keda exists and is not this job's" in condition["message"]
    assert h.kube.called("apply_secret") == []
    assert h.kube.called("delete_custom") == KEDA_OBJECTS


@pytest.mark.parametrize(
    ("mode", "keda", "expected"),
    [
        (
            "hpa",
            True,
            [
                ("delete_custom", KEDA_OBJECTS[0]),
                ("delete_custom", KEDA_OBJECTS[1]),
                ("apply_hpa", "HorizontalPodAutoscaler"),
            ],
        ),
        ("hpa", False, [("apply_hpa", "HorizontalPodAutoscaler")]),  # KEDA's API is never asked without the grant
        (
            "queue",
            True,
            [("delete_hpa", "thumbs-workers"), ("delete_custom", KEDA_OBJECTS[0]), ("delete_custom", KEDA_OBJECTS[1])],
        ),
        ("none", False, [("delete_hpa", "thumbs-workers")]),
    ],
)
async def test_every_other_mode_removes_the_objects_of_keda_and_hpa_it_does_not_use(
    job_doc: dict[str, Any], mode: str, keda: bool, expected: list[tuple[str, Any]]
) -> None:
    doc = in_mode(job_doc, mode)
    h = harness(doc, keda=keda)

    assert await children.ensure_workers(h.ctx, h.attempt(parse_job(doc)), replicas=0) is Outcome.CONTINUE

    assert kinds(h) == [("apply_deployment", "Deployment"), *expected]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "keda",
            [("delete_custom", KEDA_OBJECTS[0]), ("delete_custom", KEDA_OBJECTS[1]), ("scale", ("thumbs-workers", 0))],
        ),
        ("hpa", [("delete_hpa", "thumbs-workers"), ("scale", ("thumbs-workers", 0))]),
        ("queue", []),  # the operator's own scaling has set zero already
    ],
)
async def test_a_job_with_nothing_left_takes_its_workers_back_from_its_autoscaler(
    job_doc: dict[str, Any], mode: str, expected: list[tuple[str, Any]]
) -> None:
    doc = in_mode(job_doc, mode)
    h = harness(doc, keda=True)

    await children.release_workers(h.ctx, h.attempt(parse_job(doc)))

    # The ScaledObject goes first: nothing scales the workers up again once they are at zero.
    assert kinds(h) == expected


async def test_a_job_that_fails_on_keda_enqueues_nothing(job_doc: dict[str, Any]) -> None:
    doc = in_mode(job_doc, "keda")
    h = harness(doc, broker=FakeBroker(listing=Listing(run="r", keys=["a.jpg"])))
    h.kube.secrets["filterjob-broker"] = {"url": "amqp://127.0.0.1:5672/"}

    assert await job.run_attempt(h.ctx) is Outcome.FINISHED

    assert h.broker.published == []
    assert [p.get("phase") for p in h.kube.called("patch_status")][-1] == status.FAILED
