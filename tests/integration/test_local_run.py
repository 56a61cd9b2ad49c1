"""The local runner end to end: real images, real worker processes, real failures."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from filterjob_operator.core.samples import BROKEN_KINDS, make_samples
from filterjob_operator.local.options import LocalOptions
from filterjob_operator.local.pool import run_local
from filterjob_operator.local.start import Listener
from filterjob_worker.adapters.storage import TEMP_SUFFIX
from filterjob_worker.core.outcome import Outcome
from tests.helpers.jobfiles import local_job, output_files


def test_run_writes_good_images_and_reports_broken_ones(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    made = make_samples(src, count=10, size=(96, 64), broken=len(BROKEN_KINDS))
    summary = run_local(local_job(job_doc, src, dst), options=LocalOptions(workers=2))

    assert (summary.total, summary.succeeded, summary.failed) == (14, 10, 4)
    assert summary.ok is False
    expected = sorted(p.relative_to(src).with_suffix(".png").as_posix() for p in made.good)
    assert output_files(dst) == expected
    for key in expected:
        with Image.open(dst / key) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert max(image.size) == 40
    reasons = {f.input: f.reason for f in summary.failures}
    assert set(reasons) == {p.relative_to(src).as_posix() for p in made.broken}
    assert reasons["broken/bad-002-empty.jpg"] == "not a usable image: file is empty"
    assert reasons["broken/bad-001-truncated.jpg"].startswith("not a usable image: cannot decode JPEG image")
    assert reasons["broken/bad-003-not-an-image.jpg"] == "not a usable image: not a recognized image format"
    assert not list(dst.rglob(f"*{TEMP_SUFFIX}"))


def test_skip_existing_resumes(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    make_samples(src, count=6, size=(64, 48))
    job = local_job(job_doc, src, dst)
    first = run_local(job, options=LocalOptions(workers=1))
    assert first.ok
    assert first.succeeded == 6
    (dst / "img-00000.png").unlink()
    again = run_local(job, options=LocalOptions(workers=1, skip_existing=True))
    assert (again.succeeded, again.skipped, again.failed) == (1, 5, 0)
    assert again.ok
    assert len(output_files(dst)) == 6


class KillOneWorker(Listener):
    """SIGKILLs the pool process that ran the first task (its pid is on the outcome), once."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def advanced(self, outcome: Outcome | None) -> None:
        if not self.killed and outcome is not None:
            assert outcome.pid is not None, "the outcome of a task a pool process ran names that process"
            assert outcome.pid != os.getpid()
            os.kill(outcome.pid, signal.SIGKILL)
            self.killed.append(outcome.pid)


@pytest.mark.slow
def test_a_killed_worker_process_loses_nothing(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    made = make_samples(src, count=24, size=(400, 300))
    killer = KillOneWorker()
    summary = run_local(local_job(job_doc, src, dst), options=LocalOptions(workers=2), listener=killer)
    assert killer.killed
    assert summary.ok, summary.failures
    assert summary.succeeded == 24
    assert len(output_files(dst)) == len(made.good)


class RemoveOnStart(Listener):
    """Deletes an input after the listing and before any image is read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def started(self, total: int) -> None:
        self.path.unlink()


def test_an_input_that_vanishes_after_the_listing_is_reported_as_failed(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    make_samples(src, count=3, size=(32, 24))
    gone = src / "img-00000.jpg"
    summary = run_local(local_job(job_doc, src, dst), options=LocalOptions(workers=1), listener=RemoveOnStart(gone))
    assert (summary.total, summary.succeeded, summary.failed) == (3, 2, 1)
    assert summary.failures[0].input == "img-00000.jpg"
    assert summary.failures[0].reason.startswith("input missing: cannot read")
    assert not summary.ok
