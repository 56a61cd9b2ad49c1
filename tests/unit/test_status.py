"""Progress arithmetic, completion, scaling decisions and conditions."""

from __future__ import annotations

from typing import Any

import pytest

from filterjob_operator.core import status
from filterjob_operator.core.status import Depths


def test_progress_is_derived_from_the_queues() -> None:
    result = status.counts(total=100, enqueued=100, depths=Depths(ready=30, unacked=4, retrying=2, parked=5))
    assert (result.succeeded, result.failed, result.queued, result.in_flight, result.retrying) == (59, 5, 30, 4, 2)
    assert result.as_status()["progress"] == "59/100"


def test_progress_never_goes_negative_while_enqueueing() -> None:
    result = status.counts(total=100, enqueued=10, depths=Depths(ready=10, parked=0))
    assert result.succeeded == 0


@pytest.mark.parametrize(
    ("enqueued_all", "depths", "empty"),
    [
        (True, Depths(), True),
        (False, Depths(), False),
        (True, Depths(unacked=1), False),  # a busy worker is not done
        (True, Depths(retrying=1), False),  # a retry comes back
        (True, Depths(parked=7), True),  # parked tasks are finished
    ],
)
def test_drained_since(enqueued_all: bool, depths: Depths, empty: bool) -> None:
    since = status.drained_since(enqueued_all=enqueued_all, depths=depths, now=50.0, since=None)
    assert (since == 50.0) is empty
    # An empty reading keeps the first time it was seen; any work resets it.
    assert status.drained_since(enqueued_all=True, depths=Depths(), now=60.0, since=50.0) == 50.0
    assert status.drained_since(enqueued_all=True, depths=Depths(ready=1), now=60.0, since=50.0) is None


@pytest.mark.parametrize(
    ("ready", "retrying", "sampled", "expected"),
    [
        (10, 0, (10, 4), 4),  # the sample is current
        (0, 0, (60, 0), 60),  # workers took every task since the sample: all in flight, none done
        (0, 0, (0, 15), 15),
        (30, 0, (10, 2), 2),  # tasks came back from a retry queue since the sample
        (50, 5, None, 40),  # no sample yet: whatever is not ready, retrying or parked may be in flight
        (0, 0, (90, 10), 95),  # never more than could be
    ],
)
def test_unacked_counts_what_left_the_ready_count_since_the_stats_sample(
    ready: int, retrying: int, sampled: tuple[int, int] | None, expected: int
) -> None:
    unacked = status.estimate_unacked(ready=ready, retrying=retrying, parked=5, enqueued=100, sampled=sampled)
    assert unacked == expected


def test_done_only_after_empty_for_longer_than_the_stats_lag() -> None:
    assert not status.is_done(since=None, now=100.0)
    assert not status.is_done(since=95.0, now=100.0, lag=10.0)
    assert status.is_done(since=90.0, now=100.0, lag=10.0)


@pytest.mark.parametrize(
    ("depths", "expected"),
    [
        (Depths(), 1),  # min replicas while work remains
        (Depths(ready=1), 1),
        (Depths(ready=20), 1),
        (Depths(ready=21), 2),
        (Depths(ready=10, unacked=15), 2),  # busy workers count
        (Depths(ready=1000), 5),  # capped at max
    ],
)
def test_desired_replicas(depths: Depths, expected: int) -> None:
    assert status.desired_replicas(depths=depths, per_replica=20, minimum=1, maximum=5, finished=False) == expected


def test_zero_replicas_when_finished() -> None:
    assert status.desired_replicas(depths=Depths(), per_replica=20, minimum=2, maximum=5, finished=True) == 0


def test_scale_up_is_immediate_and_down_waits_for_the_delay() -> None:
    assert status.next_replicas(current=1, desired=4, now=0, below_since=None, delay=30) == (4, None)
    replicas, since = status.next_replicas(current=4, desired=2, now=100, below_since=None, delay=30)
    assert (replicas, since) == (4, 100)
    assert status.next_replicas(current=4, desired=2, now=120, below_since=since, delay=30) == (4, 100)
    assert status.next_replicas(current=4, desired=2, now=130, below_since=since, delay=30) == (2, None)
    # Back up before the delay ran out: the countdown starts over.
    assert status.next_replicas(current=4, desired=4, now=125, below_since=since, delay=30) == (4, None)


def test_without_a_delay_scale_down_is_immediate() -> None:
    # A finished job goes to zero in the pass that finds it done, whatever minReplicas held before.
    assert status.next_replicas(current=2, desired=0, now=100, below_since=None, delay=0) == (0, None)


def test_final_phase_follows_the_failure_threshold() -> None:
    ok = status.Counts(total=100, enqueued=100, succeeded=95, failed=5, retrying=0, queued=0, in_flight=0)
    bad = status.Counts(total=100, enqueued=100, succeeded=80, failed=20, retrying=0, queued=0, in_flight=0)
    assert status.final_phase(ok, max_failed_ratio=0.1) == status.SUCCEEDED
    assert status.final_phase(bad, max_failed_ratio=0.1) == status.FAILED
    assert status.final_phase(bad, max_failed_ratio=0.5) == status.SUCCEEDED


def test_condition_transition_time_moves_only_on_change() -> None:
    first = status.condition("Ready", True, "Processing", "1 of 2", generation=3, previous=[])
    old = {**first, "lastTransitionTime": "2020-01-01T00:00:00Z"}
    same = status.condition("Ready", True, "Processing", "2 of 2", generation=3, previous=[old])
    assert same["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    flipped = status.condition("Ready", False, "Finished", "done", generation=3, previous=[old])
    assert flipped["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert flipped == {**flipped, "type": "Ready", "status": "False", "observedGeneration": 3}


class TestResume:
    KEYS = ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg")

    def test_a_fresh_job_enqueues_everything(self) -> None:
        assert status.resume(self.KEYS, enqueued=0, through=None) == (0, self.KEYS)

    def test_resumes_after_the_last_key_enqueued(self) -> None:
        assert status.resume(self.KEYS, enqueued=2, through="b.jpg") == (2, ("c.jpg", "d.jpg", "e.jpg"))

    def test_inputs_added_before_the_cursor_are_not_part_of_the_job(self) -> None:
        keys = ("a.jpg", "aa.jpg", "b.jpg", "c.jpg")
        already, remaining = status.resume(keys, enqueued=2, through="b.jpg")
        assert (already, remaining) == (2, ("c.jpg",))
        assert already + len(remaining) == 3  # the total: tasks really enqueued, not the new listing

    def test_inputs_removed_before_the_cursor_still_count_as_enqueued(self) -> None:
        keys = ("b.jpg", "c.jpg", "d.jpg")  # a.jpg removed after it was enqueued
        assert status.resume(keys, enqueued=2, through="b.jpg") == (2, ("c.jpg", "d.jpg"))

    def test_a_removed_cursor_key_resumes_after_its_place(self) -> None:
        keys = ("a.jpg", "c.jpg", "d.jpg")  # b.jpg, the cursor, removed
        assert status.resume(keys, enqueued=2, through="b.jpg") == (2, ("c.jpg", "d.jpg"))

    def test_a_status_without_a_key_resumes_by_count(self) -> None:
        assert status.resume(self.KEYS, enqueued=3, through=None) == (3, ("d.jpg", "e.jpg"))


BROKER_REASONS = ("BrokerSecretMissing", "BrokerRefused")


def _ready(reason: str) -> dict[str, Any]:
    return {"type": "Ready", "status": "False", "reason": reason, "message": "..."}


@pytest.mark.parametrize(
    ("observed", "never"),
    [
        ({"phase": "Pending", "conditions": [_ready("BrokerSecretMissing")]}, True),
        ({"phase": "Pending", "conditions": [_ready("BrokerRefused")]}, True),
        # Queues declared, then the broker went: they must be deleted.
        ({"phase": "Pending", "queues": "fj.a.b.c", "conditions": [_ready("BrokerRefused")]}, False),
        ({"phase": "Running", "total": 3, "enqueued": 3, "conditions": [_ready("BrokerRefused")]}, False),
        # No word from the operator yet, or a job from before status.queues: assume queues exist.
        ({}, False),
        ({"phase": "Running", "enqueued": 5, "conditions": [_ready("Processing")]}, False),
        ({"phase": "Pending", "conditions": [_ready("Listing")]}, False),
    ],
)
def test_a_job_that_never_reached_its_broker_has_no_queues(observed: dict[str, Any], never: bool) -> None:
    assert status.never_declared(observed, broker_reasons=BROKER_REASONS) is never


def test_source_conditions_say_what_was_skipped_and_that_a_source_is_empty() -> None:
    assert status.source_conditions(skipped=[], empty=None, generation=1, previous=[]) == []
    skipped = [f"/in/{n}.jpg: broken symbolic link" for n in range(7)]
    found = status.source_conditions(skipped=skipped, empty="no inputs: nothing", generation=1, previous=[])
    assert [(c["type"], c["status"], c["reason"]) for c in found] == [
        ("InputsSkipped", "True", "SkippedUnreadable"),
        ("SourceEmpty", "True", "NoInputs"),
    ]
    assert found[0]["message"].startswith("7 paths could not be listed and were skipped")
    assert "/in/4.jpg: broken symbolic link; and 2 more" in found[0]["message"]
    assert found[1]["message"] == "no inputs: nothing"
