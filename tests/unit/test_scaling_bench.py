"""bench/scaling_bench.py's figures from a round's timeline (pure): what each reaction time is measured
from and to, per mode, and a round that cannot be timed saying why instead of a wrong number."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scaling_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark as a module (bench/ is no package; it is run as a script)."""
    spec = importlib.util.spec_from_file_location("scaling_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_bench"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("scaling_bench", None)
    return module


def timeline(bench: ModuleType, states: list[tuple[float, int, int]], *, backlog: float, empty: float) -> object:
    return bench.Timeline(replicas=states, backlog=backlog, empty=empty)


def test_queue_mode_is_timed_from_the_backlog_and_from_the_empty_queue_down_to_zero(bench: ModuleType) -> None:
    states = [(10.0, 0, 0), (10.5, 4, 0), (12.0, 4, 2), (16.0, 4, 4), (30.0, 2, 2), (35.0, 0, 0)]
    result = bench.measure("queue", timeline(bench, states, backlog=10.2, empty=31.0))
    assert result.first == pytest.approx(0.3)
    assert result.ready == pytest.approx(5.8)  # 4 of 4 ready, not the 2 of 4 before
    assert (result.zero, result.end0, result.peak) == (pytest.approx(4.0), pytest.approx(4.0), 4)


def test_hpa_mode_starts_above_its_floor_of_one_and_ends_at_zero_after_it(bench: ModuleType) -> None:
    # The workers start at the HPA's minimum of one: that is no reaction to the backlog.
    states = [(1.0, 1, 0), (2.0, 1, 1), (9.0, 3, 1), (11.0, 4, 1), (15.0, 4, 4), (40.0, 1, 1), (55.0, 0, 0)]
    result = bench.measure("hpa", timeline(bench, states, backlog=1.5, empty=42.0))
    assert result.first == pytest.approx(7.5)
    assert result.ready == pytest.approx(13.5)
    assert result.zero == pytest.approx(-2.0)  # at its floor before the last image was done
    assert result.end0 == pytest.approx(13.0)


def test_a_scale_up_seen_before_the_backlogs_first_sample_counts_from_that_sample(bench: ModuleType) -> None:
    states = [(5.00, 0, 0), (5.02, 2, 0), (8.0, 2, 2), (20.0, 0, 0)]
    result = bench.measure("queue", timeline(bench, states, backlog=5.04, empty=19.0))
    assert result.first == pytest.approx(-0.02)  # within one sample of the backlog
    assert result.ready == pytest.approx(2.96)


def test_down_to_the_floor_counts_from_the_last_dip_that_stayed(bench: ModuleType) -> None:
    states = [(0.0, 0, 0), (1.0, 2, 0), (2.0, 2, 2), (10.0, 0, 0), (11.0, 1, 0), (12.0, 1, 1), (18.0, 0, 0)]
    result = bench.measure("queue", timeline(bench, states, backlog=0.5, empty=15.0))
    assert result.zero == result.end0 == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([(0.0, 0, 0), (9.0, 0, 0)], "never showed replicas above 0"),
        ([(0.0, 0, 0), (1.0, 2, 2)], "never showed replicas 0 at the end"),
        ([], "never showed replicas above 0"),
    ],
)
def test_a_deployment_that_never_got_there_is_named_in_the_error(
    bench: ModuleType, states: list[tuple[float, int, int]], expected: str
) -> None:
    with pytest.raises(RuntimeError, match=f"queue: the Deployment {expected}"):
        bench.measure("queue", timeline(bench, states, backlog=0.5, empty=5.0))


def test_hpa_mode_never_above_zero_at_the_end_is_named_in_the_error(bench: ModuleType) -> None:
    states = [(0.0, 1, 0), (1.0, 3, 3), (9.0, 1, 1)]
    with pytest.raises(RuntimeError, match="hpa: the Deployment never showed replicas 0 at the end"):
        bench.measure("hpa", timeline(bench, states, backlog=0.5, empty=5.0))


@pytest.mark.parametrize(("backlog", "empty"), [(None, 5.0), (1.0, None)])
def test_a_round_without_a_backlog_or_an_end_says_so(
    bench: ModuleType, backlog: float | None, empty: float | None
) -> None:
    seen = bench.Timeline(replicas=[(0.0, 0, 0), (1.0, 1, 1), (2.0, 0, 0)], backlog=backlog, empty=empty)
    with pytest.raises(RuntimeError, match="saw no backlog in the task queue, or never saw it empty"):
        bench.measure("queue", seen)


def test_a_failed_watch_or_sampler_is_the_rounds_error(bench: ModuleType) -> None:
    seen = bench.Timeline(replicas=[(0.0, 0, 0)], backlog=1.0, empty=2.0, error="the watch of the Deployment failed")
    with pytest.raises(RuntimeError, match="hpa: the watch of the Deployment failed"):
        bench.measure("hpa", seen)


def test_a_peak_never_all_ready_has_no_ready_time_and_the_median_skips_it(bench: ModuleType) -> None:
    # An HPA lowered the replicas before the fourth pod was ready (a loaded machine, a short backlog).
    states = [(0.0, 1, 0), (8.0, 4, 1), (12.0, 2, 2), (20.0, 1, 1), (30.0, 0, 0)]
    result = bench.measure("hpa", timeline(bench, states, backlog=0.5, empty=18.0))
    assert (result.first, result.ready, result.peak) == (pytest.approx(7.5), None, 4)
    timed = bench.Result("hpa", 1.0, 3.0, 1.0, 1.0, 4)
    assert bench.median([result, timed], "ready") == 3.0
    assert bench.median([result], "ready") is None
    assert bench.seconds(None, 6) == "   n/a"


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [(9.0, 3.0, "3.00"), (None, 3.0, "-"), (9.0, None, "-"), (9.0, 0.0, "-"), (1.0, -0.01, "-")],
)
def test_ratios_to_queue_mode_only_over_a_base_above_zero(
    bench: ModuleType, value: float | None, base: float | None, expected: str
) -> None:
    assert bench.ratio(value, base) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", True),
        ("amqp://u:p@127.8.0.1/", True),
        ("amqp://localhost/", True),
        ("amqp://[::1]:5672/", True),
        ("amqp://10.0.0.1:5672/", False),
        ("amqp://rabbit.example.com/", False),
        ("amqp:///", False),
    ],
)
def test_only_a_broker_on_loopback_is_used(bench: ModuleType, url: str, expected: bool) -> None:
    assert bench.loopback(url) is expected
