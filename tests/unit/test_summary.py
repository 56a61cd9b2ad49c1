"""The end-of-run summary: what it says about throughput and where the outputs went."""

from __future__ import annotations

from rich.console import Console

from filterjob_operator.local.summary import RunSummary
from filterjob_worker.core.outcome import Outcome


def rendered(summary: RunSummary) -> str:
    console = Console(width=120, record=True)
    summary.render(console)
    return console.export_text()


def test_the_summary_names_the_destination_and_what_throughput_measures() -> None:
    summary = RunSummary(total=2, seconds=4.0, destination="file:///data/out%20put/")
    summary.add(Outcome(task="a", input="", output="", ok=True, seconds=1.0), "a.jpg")
    summary.add(Outcome(task="b", input="", output="", ok=False, seconds=1.0, reason="bad [x] file"), "b [1].jpg")
    text = rendered(summary)
    assert "outputs in │ /data/out put" in text
    assert "0.5 images/s (average over the wall time)" in text
    # Keys and reasons are shown as they are, brackets included.
    assert "failed b [1].jpg: bad [x] file" in text
