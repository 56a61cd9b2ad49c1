"""The follow step's decision (pure): replicas, phase, the ``Ready`` condition and the job's end,
from one observation and what the previous ones left to remember."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from filterjob_operator.control.reconcile.decision import Memory, Observation, decide
from filterjob_operator.core import status
from filterjob_operator.core.status import Depths
from filterjob_operator.core.workload import Autoscaling

BUSY = Depths(ready=50, unacked=10, retrying=0, parked=0)  # 60 outstanding: 3 replicas at 20 each
EMPTY = Depths(parked=2)


def seen(
    depths: Depths = BUSY, *, replicas: int = 0, ready: int = 0, suspended: bool = False, now: float = 100.0
) -> Observation:
    return Observation(total=100, depths=depths, replicas=replicas, ready=ready, suspended=suspended, now=now)


def scaling(**fields: Any) -> Autoscaling:
    return Autoscaling.model_validate(fields)


def test_queue_mode_scales_up_at_once_to_the_backlog_and_reports_running() -> None:
    decision = decide(seen(replicas=1, ready=1), Memory(), scaling=scaling())
    assert (decision.replicas, decision.scale) == (3, True)
    assert decision.workers() == {"desired": 3, "ready": 1, "summary": "1/3"}
    assert decision.phase == status.RUNNING
    assert (decision.condition.status, decision.condition.reason) == (True, "Processing")
    assert decision.condition.message == "40 of 100 tasks done"  # 100 - 60 outstanding, none failed
    assert not decision.done
    assert decision.counts == status.counts(total=100, enqueued=100, depths=BUSY)


def test_queue_mode_scales_down_only_after_the_delay_and_remembers_since_when() -> None:
    policy = scaling(scaleDownDelaySeconds=30)
    few = Depths(ready=5)  # one replica would do
    first = decide(seen(few, replicas=3, ready=3, now=100.0), Memory(), scaling=policy)
    assert (first.replicas, first.scale, first.memory.below_since) == (3, False, 100.0)
    held = decide(seen(few, replicas=3, ready=3, now=129.0), first.memory, scaling=policy)
    assert (held.replicas, held.scale, held.memory.below_since) == (3, False, 100.0)
    later = decide(seen(few, replicas=3, ready=3, now=130.0), held.memory, scaling=policy)
    assert (later.replicas, later.scale, later.memory.below_since) == (1, True, None)


def test_an_equal_replica_count_is_not_scaled_again() -> None:
    decision = decide(seen(replicas=3, ready=2), Memory(), scaling=scaling())
    assert (decision.replicas, decision.scale) == (3, False)


def test_the_replicas_are_capped_at_max_replicas() -> None:
    decision = decide(seen(replicas=0), Memory(), scaling=scaling(maxReplicas=2))
    assert (decision.replicas, decision.scale, decision.ready) == (2, True, 0)


def test_the_queues_must_read_empty_for_the_statistics_lag_before_the_job_is_done() -> None:
    first = decide(seen(EMPTY, replicas=2, ready=2, now=100.0), Memory(), scaling=scaling())
    assert first.memory.empty_since == 100.0
    assert not first.done
    assert first.replicas == 2  # not done yet: the scale-down delay holds
    lag = status.STATS_LAG_SECONDS
    done = decide(seen(EMPTY, replicas=2, ready=2, now=100.0 + lag), first.memory, scaling=scaling())
    assert done.done
    assert (done.replicas, done.scale) == (0, True)  # done: no delay


def test_work_outstanding_forgets_that_the_queues_read_empty() -> None:
    decision = decide(seen(BUSY), Memory(empty_since=50.0), scaling=scaling())
    assert decision.memory.empty_since is None
    assert not decision.done


def test_a_suspended_job_has_no_workers_and_says_so() -> None:
    decision = decide(seen(replicas=3, ready=3, suspended=True), Memory(below_since=7.0), scaling=scaling())
    assert (decision.replicas, decision.scale, decision.memory.below_since) == (0, True, 7.0)
    assert decision.phase == status.SUSPENDED
    assert (decision.condition.status, decision.condition.reason) == (False, "Suspended")


@pytest.mark.parametrize("mode", ["hpa", "keda"])
@pytest.mark.parametrize("suspended", [False, True])
def test_hpa_and_keda_modes_leave_the_replicas_to_the_autoscaler(mode: str, suspended: bool) -> None:
    decision = decide(
        seen(replicas=4, ready=2, suspended=suspended),
        Memory(below_since=7.0),
        scaling=scaling(mode=mode),
    )
    assert (decision.replicas, decision.scale, decision.memory.below_since) == (4, False, 7.0)
    assert decision.workers() == {"desired": 4, "ready": 2, "summary": "2/4"}


@pytest.mark.parametrize(("minimum", "expected"), [(0, 1), (3, 3)])
def test_mode_none_runs_min_replicas_and_at_least_one_until_done(minimum: int, expected: int) -> None:
    policy = scaling(mode="none", minReplicas=minimum)
    running = decide(seen(replicas=0, ready=0), Memory(), scaling=policy)
    assert (running.replicas, running.scale) == (expected, True)
    done = decide(
        seen(EMPTY, replicas=expected, ready=expected, now=100.0),
        Memory(empty_since=0.0),
        scaling=policy,
    )
    assert done.done
    assert (done.replicas, done.scale) == (0, True)


def test_the_decision_needs_no_client_of_any_system() -> None:
    """Pure: importing it loads neither kopf nor the operator's clients of the Kubernetes API, the
    management API or the broker. (aio-pika itself comes with the spec model, through the worker's
    queue names.)"""
    code = "import sys, filterjob_operator.control.reconcile.decision; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    clients = {
        "kopf",
        "kubernetes",
        "aiohttp",
        "filterjob_operator.adapters.kube",
        "filterjob_operator.adapters.broker",
    }
    assert "filterjob_operator.control.reconcile.decision" in loaded
    assert loaded & clients == set()
