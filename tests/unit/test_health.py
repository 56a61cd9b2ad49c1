"""Worker health: healthy / degraded / unhealthy with a reason, readiness apart."""

from __future__ import annotations

import asyncio
import time

import pytest

from filterjob_worker.health import Health, LoopLagProbe, Report, State


def consuming(**kwargs: float) -> Health:
    health = Health(**kwargs)  # type: ignore[arg-type]
    health.connection_restored()
    health.consuming = True
    return health


def test_consuming_worker_is_healthy_and_ready() -> None:
    assert consuming().report() == Report(State.HEALTHY, "ok", True, "consuming")


def test_starting_worker_is_alive_but_not_ready() -> None:
    report = Health().report()
    assert report.state is State.HEALTHY
    assert not report.ready
    assert report.ready_reason == "not connected to the broker"


def test_connected_but_not_consuming_is_not_ready() -> None:
    health = Health()
    health.connection_restored()
    report = health.report()
    assert report.state is State.HEALTHY
    assert (report.ready, report.ready_reason) == (False, "connected but not consuming")


def test_draining_is_not_ready_but_healthy() -> None:
    health = consuming()
    health.draining = True
    report = health.report()
    assert report.state is State.HEALTHY
    assert not report.ready
    assert report.ready_reason.startswith("draining")


def test_disconnected_is_degraded_and_not_ready() -> None:
    health = consuming()
    health.connection_lost()
    report = health.report()
    assert report.state is State.DEGRADED
    assert "broker unreachable" in report.reason
    assert "reconnecting" in report.reason
    assert (report.ready, report.ready_reason) == (False, "not connected to the broker")
    assert not health.consuming


def test_draining_wins_over_disconnected_for_readiness() -> None:
    health = consuming()
    health.connection_lost()
    health.draining = True
    assert health.report().ready_reason.startswith("draining")


def test_disconnected_past_budget_is_unhealthy() -> None:
    health = consuming(broker_budget=0)
    health.connection_lost()
    assert health.disconnected_since is not None
    health.disconnected_since -= 0.001  # strictly past a zero budget, without sleeping
    report = health.report()
    assert report.state is State.UNHEALTHY
    assert report.reason.startswith("broker unreachable for")
    assert not report.ready


def test_budget_is_measured_from_the_first_loss() -> None:
    health = consuming(broker_budget=60)
    health.connection_lost()
    assert health.disconnected_since is not None
    health.disconnected_since -= 61
    first = health.disconnected_since
    health.connection_lost()  # a second failed reconnect does not reset the clock
    assert health.disconnected_since == first
    report = health.report()
    assert report.state is State.UNHEALTHY
    assert report.reason == "broker unreachable for 61 s"


def test_within_budget_is_degraded() -> None:
    health = consuming(broker_budget=60)
    health.connection_lost()
    health.disconnected_since = time.monotonic() - 30
    assert health.report().state is State.DEGRADED


def test_reconnecting_restores_health() -> None:
    health = consuming(broker_budget=0)
    health.connection_lost()
    health.connection_restored()
    health.consuming = True
    assert health.disconnected_since is None
    assert health.report() == Report(State.HEALTHY, "ok", True, "consuming")


def test_failure_ratio_over_window_is_degraded() -> None:
    health = consuming()
    for ok in [False] * 6 + [True] * 4:
        health.record(ok)
    report = health.report()
    assert report.state is State.DEGRADED
    assert report.reason == "6 of the last 10 tasks failed"
    assert report.ready  # failing tasks do not stop a worker from taking more


@pytest.mark.parametrize(
    "outcomes",
    [
        [False] * 9,  # too few outcomes to judge
        [False] * 5 + [True] * 5,  # exactly the ratio is not above it
        [True] * 50,
    ],
)
def test_not_enough_failures_is_healthy(outcomes: list[bool]) -> None:
    health = consuming()
    for ok in outcomes:
        health.record(ok)
    assert health.report().state is State.HEALTHY


def test_window_is_bounded_and_old_failures_age_out() -> None:
    health = consuming(window=20)
    for _ in range(100):
        health.record(False)
    assert len(health.outcomes) == 20
    assert health.report().reason == "20 of the last 20 tasks failed"
    for _ in range(20):
        health.record(True)
    assert len(health.outcomes) == 20
    assert list(health.outcomes) == [True] * 20
    assert health.report().state is State.HEALTHY


def test_disconnection_outranks_failures() -> None:
    health = consuming()
    for _ in range(20):
        health.record(False)
    health.connection_lost()
    assert "broker unreachable" in health.report().reason


def test_a_late_event_loop_is_degraded() -> None:
    health = Health(lag_budget=2.0)
    health.connection_restored()
    health.consuming = True
    health.loop_lag = 3.5
    report = health.report()
    assert report.state is State.DEGRADED
    assert report.reason == "event loop stalled for 3.5 s (blocking work on the loop?)"
    assert report.ready


async def test_loop_lag_probe_measures_a_blocked_loop() -> None:
    health = Health()
    probe = LoopLagProbe(health, interval=0.01)
    probe.start()
    ticked = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, ticked.set)
    time.sleep(0.3)  # noqa: ASYNC251 -- blocking the loop on purpose is the point of this test
    await ticked.wait()
    probe.stop()
    assert health.loop_lag >= 0.2
