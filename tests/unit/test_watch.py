"""``filterjob watch``'s pure decisions: when a cluster job has ended, with which counts; and how its
check for a deleted exchange stops (never by cancelling a broker call in flight)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from filterjob_operator.watch import _exchange_gone, cluster_finished
from filterjob_worker.core.contract import JobFinished

META = {"namespace": "photos", "name": "thumbs"}


@pytest.mark.parametrize("status", [None, {}, {"phase": "Running", "total": 3}, {"phase": "Enqueuing"}])
def test_a_running_job_has_not_ended(status: dict[str, Any] | None) -> None:
    assert cluster_finished({"metadata": META, "status": status}) is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_final_phase_ends_the_watch_with_its_counts(phase: str) -> None:
    job = {"metadata": META, "status": {"phase": phase, "total": 4, "succeeded": 3, "failed": 1}}
    assert cluster_finished(job) == JobFinished(job="photos/thumbs", phase=phase, total=4, succeeded=3, failed=1)


def test_missing_counts_read_as_zero() -> None:
    end = cluster_finished({"metadata": META, "status": {"phase": "Failed", "total": "x"}})
    assert end is not None
    assert (end.total, end.succeeded, end.failed) == (0, 0, 0)


class HeldConnection:
    """Opens a channel only once the test lets it: an exchange check held in flight."""

    def __init__(self) -> None:
        self.opening = asyncio.Event()
        self.let_open = asyncio.Event()
        self.closed = 0

    async def channel(self) -> HeldConnection:
        self.opening.set()
        await self.let_open.wait()
        return self

    async def get_exchange(self, name: str, *, ensure: bool) -> str:
        return name

    async def close(self) -> None:
        self.closed += 1


async def test_a_watch_ending_during_an_exchange_check_lets_the_check_finish() -> None:
    """aiormq can swallow a cancel that lands while it opens a channel, so the poll is asked to stop."""
    connection = HeldConnection()
    enough = asyncio.Event()
    polling = asyncio.create_task(_exchange_gone(connection, "fj.x.events", enough))  # type: ignore[arg-type]
    await connection.opening.wait()
    enough.set()
    await asyncio.sleep(0)
    assert not polling.done(), "the check in flight was cut short"
    connection.let_open.set()
    assert await polling is False
    assert connection.closed == 1, "the check's channel was left open"


async def test_the_exchange_check_stops_while_it_waits_between_checks() -> None:
    connection = HeldConnection()
    connection.let_open.set()
    enough = asyncio.Event()
    polling = asyncio.create_task(_exchange_gone(connection, "fj.x.events", enough))  # type: ignore[arg-type]
    await connection.opening.wait()
    await asyncio.sleep(0)
    enough.set()
    assert await polling is False
