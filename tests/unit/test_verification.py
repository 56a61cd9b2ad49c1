"""Verified completion: final counts from the planned tasks, the outputs found and the failure records."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from filterjob_operator.adapters import sources, verification, verifier
from filterjob_operator.adapters.verification import LOST, Planned, verify
from filterjob_operator.core.spec import FilterJob, parse_job


def tasks(*names: str) -> list[Planned]:
    return [Planned(task=f"id-{n}", input=f"{n}.jpg", output=f"{n}.png") for n in names]


def test_every_output_present_and_no_failure_is_all_succeeded() -> None:
    verified = verify(tasks("a", "b", "c"), present={"a.png", "b.png", "c.png"}, failed=set())
    assert (verified.total, verified.succeeded, verified.recorded, verified.failed) == (3, 3, 0, 0)
    assert verified.lost == []


def test_a_missing_output_without_a_failure_record_is_lost_and_named() -> None:
    verified = verify(tasks("a", "b", "c", "d"), present={"a.png", "c.png"}, failed={"id-d"})
    assert (verified.succeeded, verified.recorded, verified.failed) == (2, 1, 2)
    assert verified.lost == [Planned(task="id-b", input="b.jpg", output="b.png")]
    assert LOST == "lost: no output and no failure record"


def test_a_failure_record_wins_over_an_output_left_by_an_earlier_run() -> None:
    verified = verify(tasks("a"), present={"a.png"}, failed={"id-a"})
    assert (verified.succeeded, verified.recorded, verified.lost) == (0, 1, [])


def test_outputs_that_were_not_planned_count_for_nothing() -> None:
    verified = verify(tasks("a"), present={"a.png", "stray.png", "b.png"}, failed={"id-other"})
    assert (verified.total, verified.succeeded, verified.failed) == (1, 1, 0)


def test_an_empty_destination_loses_every_task() -> None:
    verified = verify(tasks("a", "b"), present=set(), failed=set())
    assert (verified.succeeded, verified.failed) == (0, 2)
    assert [t.input for t in verified.lost] == ["a.jpg", "b.jpg"]


@pytest.fixture
def job(job_doc: dict[str, Any], tmp_path: Path) -> FilterJob:
    job_doc["spec"]["source"]["uri"] = (tmp_path / "in").as_uri() + "/"
    job_doc["spec"]["destination"] = {"uri": (tmp_path / "out").as_uri() + "/", "format": "png"}
    return parse_job(job_doc)


def test_planned_outputs_are_the_tasks_outputs(job: FilterJob, tmp_path: Path) -> None:
    keys = ["a.jpg", "sub/b.PNG", "c.png"]
    planned = verification.planned(job, keys)
    assert [p.output for p in planned] == ["a.png", "sub/b.PNG", "c.png"]
    for p, key in zip(planned, keys, strict=True):
        task = sources.make_task(job, key)
        assert p.task == task.task
        assert (tmp_path / "out" / p.output).as_uri() == task.output


@pytest.mark.parametrize("fmt", ["png", "jpeg", "same", "webp"])
def test_output_keys_are_exactly_the_planners(job_doc: dict[str, Any], fmt: str) -> None:
    job_doc["spec"]["destination"] = {"uri": "file:///data/out/", "format": fmt}
    job = parse_job(job_doc)
    keys = [
        "a.jpg", "b.JPEG", "c.png", "d.PNG", "sub/e.tar.gz", "sub.dir/f", "g.", ".h.jpg", "sub/.i",
        "j..png", "k.webp", "deep/er/l.Tif", "m.jpg.png", "n.gif",
    ]  # fmt: skip
    fmt_ = job.spec.destination.output_format
    expected = [sources.output_key(k, fmt_.extension(PurePosixPath(k).suffix)) for k in keys]
    assert list(verification.output_keys(job, keys)) == expected
    assert [verification.output_key(job, k) for k in keys] == expected


def test_observing_a_destination_finds_its_outputs_and_nothing_when_it_does_not_exist(
    job: FilterJob, tmp_path: Path
) -> None:
    assert verifier.observe(job) == verifier.Observed()  # nothing written yet
    assert not verifier.visible(job)
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.png").write_bytes(b"x")
    (tmp_path / "out" / "sub" / "b.PNG").write_bytes(b"x")
    assert verifier.visible(job)
    assert verifier.observe(job) == verifier.Observed(present=frozenset({"a.png", "sub/b.PNG"}))


def test_a_destination_that_cannot_be_listed_completely_is_a_problem_naming_the_path(
    job: FilterJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    (out / "locked").mkdir(parents=True)
    (out / "a.png").write_bytes(b"x")
    real = verifier.filelisting.os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == out / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(verifier.filelisting.os, "scandir", scandir)
    observed = verifier.observe(job)
    assert observed.present == frozenset({"a.png"})
    assert observed.problem is not None
    assert observed.problem.startswith(f"the destination {job.spec.destination.uri} cannot be listed completely")
    assert f"{out / 'locked'}: cannot be listed: Permission denied" in observed.problem


def test_final_counts_of_a_job_planned_from_its_own_listing_name_every_lost_task() -> None:
    verified = verify(tasks("a", "b", "c", "d"), present={"a.png"}, failed={"id-d"})
    counted = verification.final(verified, total=4, parked=1, sure=None)
    assert (counted.succeeded, counted.failed, counted.lost) == (1, 3, 2)
    assert [t.input for t in counted.named] == ["b.jpg", "c.jpg"]


def test_final_counts_after_a_changed_source_name_only_the_tasks_known_to_be_enqueued() -> None:
    """Enqueued before a restart: a, b, c (cursor c); then x appeared before the cursor, c went
    (enqueued, it failed as a missing input: parked, no longer planned). After it: d, e."""
    planned = tasks("a", "b", "x", "d", "e")
    sure = {"d.jpg", "e.jpg"}  # enqueued by this run
    all_done = verify(planned, present={"a.png", "b.png", "d.png", "e.png"}, failed={"id-c"})
    counted = verification.final(all_done, total=5, parked=1, sure=sure)
    assert (counted.succeeded, counted.failed, counted.lost, counted.named) == (4, 1, 0, [])
    # b purged and e's output deleted: e is named, b only counted (it cannot be told from x).
    some_lost = verify(planned, present={"a.png", "d.png"}, failed={"id-c"})
    counted = verification.final(some_lost, total=5, parked=1, sure=sure)
    assert (counted.succeeded, counted.failed, counted.lost) == (2, 3, 2)
    assert [t.input for t in counted.named] == ["e.jpg"]
