"""The progress bar of a local run: images done / total, rate, ETA; in broker mode the queue depth."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as ProgressTask
from rich.table import Column
from rich.text import Text

from filterjob_operator.local.start import Listener
from filterjob_worker.core.outcome import Outcome


class Bar(Listener):
    """Images done / total, rate, ETA; in broker mode also the queue depth."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bar = progress.add_task("filtering", total=None, processed=0)
        self.failed = 0
        self.processed = 0
        self.depth = ""

    def started(self, total: int) -> None:
        self.progress.update(self.bar, total=total)

    def advanced(self, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.processed += 1
            if not outcome.ok:
                self.failed += 1
                self._describe()
        self.progress.update(self.bar, advance=1, processed=self.processed)

    def queued(self, ready: int, unacked: int) -> None:
        self.depth = f"{ready} queued, {unacked} running"
        self._describe()

    def _describe(self) -> None:
        parts = [f"[red]{self.failed} failed[/]"] if self.failed else []
        if self.depth:
            parts.append(self.depth)
        self.progress.update(self.bar, description=", ".join(parts) or "filtering")


class Rate(ProgressColumn):
    """While running: the recent rate (Rich's 30 s window). At the end: images processed
    (skipped ones excluded) over the whole run, the measure of the summary's throughput."""

    def render(self, task: ProgressTask) -> Text:
        speed = task.speed
        if task.finished and task.elapsed:
            speed = task.fields.get("processed", task.completed) / task.elapsed
        return Text("    - img/s" if speed is None else f"{speed:5.1f} img/s", style="progress.data.speed")


#: Below this width the bar drops its percentage and elapsed time to stay on one line.
_WIDE = 110


def make_progress(console: Console) -> Progress:
    wide = console.width >= _WIDE

    # The description (queue depth, failures) is cut rather than wrapped to a second line.
    def fixed() -> Column:
        return Column(no_wrap=True)

    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=40 if wide else None, table_column=Column(ratio=1)),
        MofNCompleteColumn(table_column=fixed()),
    ]
    if wide:
        columns.append(TaskProgressColumn(table_column=fixed()))
    columns.append(Rate(table_column=fixed()))
    if wide:
        columns.append(TimeElapsedColumn(table_column=fixed()))
    columns += [TextColumn("ETA", table_column=fixed()), TimeRemainingColumn(table_column=fixed())]
    return Progress(*columns, console=console, disable=not console.is_terminal, expand=not wide)
