"""``filterjob watch``'s pure decisions: when a cluster job has ended, with which counts."""

from __future__ import annotations

from typing import Any

import pytest

from filterjob_operator.watch import final_phase
from filterjob_worker.contract import JobFinished

META = {"namespace": "photos", "name": "thumbs"}


@pytest.mark.parametrize("status", [None, {}, {"phase": "Running", "total": 3}, {"phase": "Enqueuing"}])
def test_a_running_job_has_not_ended(status: dict[str, Any] | None) -> None:
    assert final_phase({"metadata": META, "status": status}) is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_final_phase_ends_the_watch_with_its_counts(phase: str) -> None:
    job = {"metadata": META, "status": {"phase": phase, "total": 4, "succeeded": 3, "failed": 1}}
    assert final_phase(job) == JobFinished(job="photos/thumbs", phase=phase, total=4, succeeded=3, failed=1)


def test_missing_counts_read_as_zero() -> None:
    end = final_phase({"metadata": META, "status": {"phase": "Failed", "total": "x"}})
    assert end is not None
    assert (end.total, end.succeeded, end.failed) == (0, 0, 0)
