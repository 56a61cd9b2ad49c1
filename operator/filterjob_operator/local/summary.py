"""The end-of-run summary: counts, failures with reasons, wall time, throughput."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from filterjob_worker.adapters import storage
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.outcome import Outcome

#: Failures listed one by one in the summary; the rest are counted.
SHOWN_FAILURES = 20


def _shown(uri: str) -> str:
    """A destination as a user would type it: a local path for a file:// URI."""
    try:
        return str(storage.to_path(uri))
    except SpecError:
        return uri


@dataclass(frozen=True)
class Failure:
    input: str
    reason: str


@dataclass
class RunSummary:
    """Tallies of a run; ``succeeded + failed + skipped == total`` once it is complete."""

    total: int = 0
    succeeded: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    #: Where the outputs go (the job's destination URI).
    destination: str = ""
    #: Paths left out of the job (``skipUnreadable``), each with its reason.
    unlisted: list[Failure] = field(default_factory=list)
    #: Things to tell the user that are no failure (an empty source).
    warnings: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome | None, key: str) -> None:
        """Count one task: ``None`` means skipped because its output exists."""
        if outcome is None:
            self.skipped += 1
        elif outcome.ok:
            self.succeeded += 1
        else:
            self.failures.append(Failure(input=key, reason=outcome.reason or "unknown"))

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.skipped

    @property
    def rate(self) -> float:
        """Images processed per second of wall time (skipped ones excluded)."""
        processed = self.succeeded + self.failed
        return processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted and self.done == self.total

    def render(self, console: Console) -> None:
        table = Table(title="FilterJob summary", show_header=False, title_justify="left")
        table.add_row("total", str(self.total))
        table.add_row("succeeded", f"[green]{self.succeeded}[/]")
        if self.skipped:
            table.add_row("skipped (output exists)", str(self.skipped))
        table.add_row("failed", f"[red]{self.failed}[/]" if self.failed else "0")
        if self.unlisted:
            table.add_row("skipped (cannot be listed)", f"[yellow]{len(self.unlisted)}[/]")
        if self.interrupted:
            table.add_row("interrupted", f"{self.total - self.done} not processed; rerun with --skip-existing")
        table.add_row("wall time", f"{self.seconds:.2f} s")
        # The same measure as the progress bar's final rate: processed images over the whole run.
        table.add_row("throughput", f"{self.rate:.1f} images/s (average over the wall time)")
        if self.destination:
            table.add_row("outputs in", escape(_shown(self.destination)))
        console.print(table)
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        # Every one of them: the user chose to run without them and needs the whole list.
        for skipped in self.unlisted:
            console.print(
                f"[yellow]skipped[/] {escape(skipped.input)}: {escape(skipped.reason)}", highlight=False, soft_wrap=True
            )
        for failure in sorted(self.failures, key=lambda f: f.input)[:SHOWN_FAILURES]:
            console.print(f"[red]failed[/] {escape(failure.input)}: {escape(failure.reason)}", soft_wrap=True)
        if self.failed > SHOWN_FAILURES:
            console.print(f"… and {self.failed - SHOWN_FAILURES} more failures")
