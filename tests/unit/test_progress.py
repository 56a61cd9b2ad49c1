"""The progress bar of ``filterjob run``: one line at 80 columns, a final rate the summary agrees with."""

from __future__ import annotations

import pytest
from rich.console import Console

from filterjob_operator.cli.bar import Bar, Rate, make_progress
from filterjob_operator.cli.run import shown
from filterjob_operator.local.summary import RunSummary
from filterjob_worker.core.outcome import Outcome


def outcome(ok: bool) -> Outcome:
    return Outcome(task="t", input="", output="", ok=ok, seconds=0.0, reason=None if ok else "bad")


def test_the_broker_mode_bar_fits_80_columns() -> None:
    console = Console(width=80, record=True, force_terminal=True)
    progress = make_progress(console)
    bar = Bar(progress)
    bar.started(250_000)
    bar.queued(123_456, 64)
    for i in range(1500):
        bar.advanced(outcome(ok=i % 3 != 0))
    console.print(progress.get_renderable())
    lines = console.export_text().splitlines()
    assert len(lines) == 1, lines
    assert len(lines[0]) <= 80
    assert lines[0].startswith("500 failed, 123456 queued")
    assert "1500/250000" in lines[0]
    assert "ETA" in lines[0]


def test_the_final_rate_is_the_summarys_throughput() -> None:
    clock = [100.0]
    progress = make_progress(Console(width=120, force_terminal=True))
    progress.get_time = lambda: clock[0]
    bar = Bar(progress)
    bar.started(10)
    summary = RunSummary(total=10, seconds=2.0)
    for i in range(10):
        ok = None if i < 6 else outcome(ok=True)  # six skipped: their outputs exist
        bar.advanced(ok)
        summary.add(ok, f"k{i}")
    clock[0] = 102.0
    task = progress.tasks[0]
    assert task.finished
    assert Rate().render(task).plain.strip() == "2.0 img/s"
    assert f"{summary.rate:.1f}" == "2.0"


def test_a_run_is_shown_with_the_bar_live_and_without_one_as_is() -> None:
    progress = make_progress(Console(width=80, force_terminal=True))
    live: list[bool] = []
    assert shown(progress, lambda: live.append(progress.live.is_started) or "summary") == "summary"
    assert live == [True]
    assert not progress.live.is_started  # stopped again, even for a run that returns
    assert shown(None, lambda: 42) == 42


def test_the_bar_stops_when_the_run_raises() -> None:
    progress = make_progress(Console(width=80, force_terminal=True))

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shown(progress, interrupted)
    assert not progress.live.is_started
