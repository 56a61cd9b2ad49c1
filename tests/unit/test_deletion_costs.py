"""Scale-in that spares busy workers: each worker pod's deletion cost from its unacked deliveries
(``control.reconcile.costs``), when the follow step keeps them (``decision.spare_busy``), and the
worker's connection name that joins a pod to its deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from filterjob_operator.adapters.broker.consumers import unacked_by_worker
from filterjob_operator.adapters.kube import WorkerPod, Workers
from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.control.reconcile import costs, follow
from filterjob_operator.control.reconcile.costs import ANNOTATION
from filterjob_operator.control.reconcile.decision import Memory, Observation, decide
from filterjob_operator.core.spec import parse_job
from filterjob_operator.core.status import Depths
from filterjob_operator.core.workload import Autoscaling
from filterjob_worker.core.environment import connection_name, worker_of
from tests.helpers.reconcilefakes import FakeBroker, harness


def pod(name: str, cost: str | None = None, *, terminating: bool = False) -> WorkerPod:
    return WorkerPod(name=name, annotations={} if cost is None else {ANNOTATION: cost}, terminating=terminating)


# The cost of one pod.


def test_a_pods_cost_is_its_unacked_deliveries() -> None:
    assert [costs.cost(n) for n in (0, 1, 7)] == [0, 1, 7]


def test_a_pod_that_consumes_nothing_costs_less_than_an_idle_consumer() -> None:
    assert costs.cost(None) == costs.NOT_CONSUMING < costs.cost(0)


def test_a_cost_stays_within_int32() -> None:
    assert costs.cost(2**40) == 2**31 - 1
    assert costs.cost(-3) == 0  # never below an idle consumer's: a count the API got wrong


# Which pods to patch.


def test_every_pod_without_its_cost_gets_it() -> None:
    pods = [pod("busy"), pod("idle"), pod("starting")]
    assert costs.patches(pods, {"busy": 2, "idle": 0}) == {"busy": "2", "idle": "0", "starting": "-1"}


def test_a_pod_whose_cost_did_not_change_is_not_patched() -> None:
    pods = [pod("busy", "2"), pod("idle", "0")]
    assert costs.patches(pods, {"busy": 2, "idle": 0}) == {}


def test_a_pod_whose_deliveries_changed_is_patched_alone() -> None:
    pods = [pod("busy", "2"), pod("idle", "0")]
    assert costs.patches(pods, {"busy": 0, "idle": 0}) == {"busy": "0"}


def test_a_pod_that_stopped_consuming_drops_to_the_lowest_cost() -> None:
    assert costs.patches([pod("draining", "3")], {}) == {"draining": "-1"}


def test_a_pod_being_deleted_is_left_alone() -> None:
    assert costs.patches([pod("going", "0", terminating=True)], {"going": 5}) == {}


def test_a_cost_someone_else_wrote_is_put_right() -> None:
    assert costs.patches([pod("busy", "not-a-number")], {"busy": 1}) == {"busy": "1"}


# Keeping them: the broker's counts, the pods, the patches.


async def test_keep_patches_only_the_pods_whose_cost_changed(job_doc: dict[str, Any]) -> None:
    h = harness(job_doc, broker=FakeBroker(unacked={"thumbs-workers-a": 1, "thumbs-workers-b": 0}))
    h.kube.pods = [pod("thumbs-workers-a"), pod("thumbs-workers-b", "0")]

    assert await costs.keep(h.ctx, h.attempt(parse_job(job_doc))) == 1

    assert h.kube.called("annotate_pod") == [("thumbs-workers-a", {ANNOTATION: "1"})]
    assert h.kube.called("worker_pods") == [{"filterjob.dev/job": "thumbs", "app.kubernetes.io/component": "worker"}]
    assert await costs.keep(h.ctx, h.attempt(parse_job(job_doc))) == 0  # the same counts again: no patch


async def test_without_the_management_api_the_costs_stay_as_they_are(job_doc: dict[str, Any]) -> None:
    h = harness(job_doc, broker=FakeBroker(unacked=None))
    h.kube.pods = [pod("thumbs-workers-a", "4")]

    assert await costs.keep(h.ctx, h.attempt(parse_job(job_doc))) == 0

    assert h.kube.calls == []  # not even listed: nothing to set them from


async def test_pods_the_api_server_will_not_patch_leave_scaling_as_it_was_with_one_warning(
    job_doc: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(job_doc, broker=FakeBroker(unacked={"thumbs-workers-a": 1}))
    h.kube.pods = [pod("thumbs-workers-a")]

    async def refused(namespace: str, name: str, annotations: dict[str, str]) -> None:
        raise KubeError(403, "Forbidden")

    h.kube.annotate_pod = refused  # type: ignore[method-assign]
    job = parse_job(job_doc)
    assert [await costs.keep(h.ctx, h.attempt(job)) for _ in range(3)] == [0, 0, 0]
    warnings = [r.getMessage() for r in caplog.records if "deletion costs cannot be set" in r.getMessage()]
    assert warnings == [
        "job photos/thumbs: the worker pods' deletion costs cannot be set, scale-in may remove busy workers "
        "(the operator needs list and patch on pods): 403: Forbidden"
    ]


# The join of the management API's listings.


@dataclass
class FakeManagement:
    consumed: list[dict[str, Any]]
    channel_list: list[dict[str, Any]]
    connection_list: list[dict[str, Any]]

    async def consumers(self, queue: str) -> list[dict[str, Any]]:
        return self.consumed

    async def channels(self) -> list[dict[str, Any]]:
        return self.channel_list

    async def connections(self) -> list[dict[str, Any]]:
        return self.connection_list


def consumer(channel: Any, connection: Any) -> dict[str, Any]:
    return {"channel_details": {"name": channel, "connection_name": connection}}


async def test_each_workers_unacked_deliveries_are_its_consuming_channels() -> None:
    management = FakeManagement(
        consumed=[
            consumer("c1 (1)", "c1"),
            consumer("c1 (1)", "c1"),  # a second consumer on the same channel: counted once
            consumer("c2 (1)", "c2"),
            consumer("c3 (1)", "c3"),  # its channel not sampled yet: none held
            consumer("c4 (1)", "c4"),  # a person's consumer
            consumer("c5 (1)", "gone"),  # a connection closed meanwhile
            {"channel_details": []},  # a channel being opened
            consumer(["odd"], {"odd": 1}),
        ],
        channel_list=[
            {"name": "c1 (1)", "messages_unacknowledged": 2},
            {"name": "c2 (1)", "messages_unacknowledged": 0},
            {"name": "c3 (1)"},
            {"name": "c4 (1)", "messages_unacknowledged": 9},
            {"name": ["odd"], "messages_unacknowledged": 1},
        ],
        connection_list=[
            {"name": "c1", "user_provided_name": connection_name("pod-a")},
            {"name": "c2", "user_provided_name": connection_name("pod-b")},
            {"name": "c3", "user_provided_name": connection_name("pod-c")},
            {"name": "c4", "user_provided_name": "someone"},
            {"name": {"odd": 1}, "user_provided_name": connection_name("pod-d")},
        ],
    )
    assert await unacked_by_worker(management, "q") == {"pod-a": 2, "pod-b": 0, "pod-c": 0}  # type: ignore[arg-type]


async def test_a_count_that_is_no_count_holds_nothing() -> None:
    management = FakeManagement(
        consumed=[consumer("c1 (1)", "c1")],
        channel_list=[{"name": "c1 (1)", "messages_unacknowledged": "many"}],
        connection_list=[{"name": "c1", "user_provided_name": connection_name("pod-a")}],
    )
    assert await unacked_by_worker(management, "q") == {"pod-a": 0}  # type: ignore[arg-type]


# When the follow step keeps them.


def seen(depths: Depths, *, replicas: int, suspended: bool = False) -> Observation:
    return Observation(total=100, depths=depths, replicas=replicas, ready=replicas, suspended=suspended, now=100.0)


def scaling(**fields: Any) -> Autoscaling:
    return Autoscaling.model_validate(fields)


FEW = Depths(ready=5)  # one replica would do at 20 a replica
MANY = Depths(ready=60)  # three


def test_queue_mode_keeps_costs_while_fewer_workers_would_do_during_the_delay_and_when_scaling_down() -> None:
    policy = scaling(scaleDownDelaySeconds=30)
    waiting = decide(seen(FEW, replicas=3), Memory(), scaling=policy)
    assert (waiting.spare_busy, waiting.scale) == (True, False)
    down = decide(seen(FEW, replicas=3), Memory(below_since=50.0), scaling=policy)
    assert (down.spare_busy, down.scale, down.replicas) == (True, True, 1)


def test_queue_mode_keeps_no_costs_while_every_worker_is_wanted() -> None:
    assert not decide(seen(MANY, replicas=3), Memory(), scaling=scaling()).spare_busy
    assert not decide(seen(MANY, replicas=1), Memory(), scaling=scaling()).spare_busy  # scaling up


def test_no_costs_when_every_worker_goes() -> None:
    assert not decide(seen(Depths(), replicas=3), Memory(), scaling=scaling()).spare_busy  # minReplicas 0
    assert not decide(seen(FEW, replicas=3, suspended=True), Memory(), scaling=scaling()).spare_busy
    drained = decide(seen(Depths(), replicas=3), Memory(empty_since=0.0), scaling=scaling(minReplicas=1))
    assert drained.done
    assert not drained.spare_busy


def test_one_worker_has_none_to_be_chosen_against() -> None:
    assert not decide(seen(Depths(), replicas=1), Memory(), scaling=scaling(minReplicas=1)).spare_busy
    assert not decide(seen(MANY, replicas=1), Memory(), scaling=scaling(mode="hpa")).spare_busy


@pytest.mark.parametrize("mode", ["hpa", "keda"])
def test_an_autoscaled_mode_keeps_costs_whenever_there_are_workers_to_choose_from(mode: str) -> None:
    for depths in (MANY, FEW, Depths()):
        decision = decide(seen(depths, replicas=2), Memory(), scaling=scaling(mode=mode))
        assert (decision.spare_busy, decision.scale) == (True, False)


def test_mode_none_never_lowers_replicas_and_keeps_no_costs() -> None:
    assert not decide(seen(FEW, replicas=3), Memory(), scaling=scaling(mode="none")).spare_busy


async def test_follow_sets_the_costs_before_it_scales_down(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["autoscaling"] = {"scaleDownDelaySeconds": 0}
    h = harness(job_doc, broker=FakeBroker(depths_seen=[Depths(unacked=1)], unacked={"thumbs-workers-a": 1}))
    h.kube.deployment = Workers(desired=3, ready=3)
    h.kube.pods = [pod("thumbs-workers-a"), pod("thumbs-workers-b"), pod("thumbs-workers-c")]
    h.kube.on_patch = lambda fields: h.stop() if "phase" in fields else None

    await follow.follow(h.ctx, h.attempt(parse_job(job_doc)), total=3, keys=[], sure=None)

    acts = [(name, args) for name, args in h.kube.calls if name in ("annotate_pod", "scale")]
    assert acts == [
        ("annotate_pod", ("thumbs-workers-a", {ANNOTATION: "1"})),
        ("annotate_pod", ("thumbs-workers-b", {ANNOTATION: "-1"})),
        ("annotate_pod", ("thumbs-workers-c", {ANNOTATION: "-1"})),
        ("scale", ("thumbs-workers", 1)),
    ]


# The connection name that joins a pod to its deliveries.


@pytest.mark.parametrize("worker", ["thumbs-workers-7d9f-abcde", "host-123", "a b"])
def test_a_workers_connection_name_gives_its_worker_id_back(worker: str) -> None:
    assert worker_of(connection_name(worker)) == worker


@pytest.mark.parametrize("name", ["filterjob photos/thumbs", "filterjob-worker ", "someone else", ""])
def test_a_connection_that_is_no_workers_names_none(name: str) -> None:
    assert worker_of(name) is None
