"""Source planning: selection, order, ids and where outputs go."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.adapters import sources
from filterjob_operator.core.spec import FilterJob, JobSpecError, parse_job
from filterjob_worker.adapters import storage


def touch(root: Path, *keys: str) -> None:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def make_job(job_doc: dict[str, Any], src: Path, dst: Path, **destination: Any) -> FilterJob:
    job_doc["spec"]["source"]["uri"] = src.as_uri() + "/"
    job_doc["spec"]["destination"] = {"uri": dst.as_uri() + "/", **destination}
    return parse_job(job_doc)


@pytest.mark.parametrize(
    ("key", "include", "selected"),
    [
        ("a.jpg", [], True),
        ("deep/down/a.JPEG", [], True),
        ("notes.txt", [], False),
        ("a.jpg", ["*.png"], False),
        ("sub/a.png", ["*.png"], True),
        ("sub/a.png", ["sub/*"], True),
        ("other/a.png", ["sub/*"], False),
        ("IMG_1.PNG", ["img_*.png"], True),
    ],
)
def test_include_globs(key: str, include: list[str], selected: bool) -> None:
    assert sources.matches(key, include) is selected


def test_listing_is_recursive_sorted_and_filtered(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    touch(src, "b.jpg", "a.png", "z/y.jpg", "z/.hidden.jpg", ".cache/c.jpg", "readme.txt")
    job = make_job(job_doc, src, dst)
    assert sources.list_inputs(job) == ["a.png", "b.jpg", "z/y.jpg"]


@pytest.mark.parametrize(("source", "destination"), [("in", "in/out"), ("in/", "in"), ("in", "in/./")])
def test_a_destination_overlapping_the_source_is_refused(
    job_doc: dict[str, Any], tmp_path: Path, source: str, destination: str
) -> None:
    touch(tmp_path, "in/a.jpg", "in/out/a.jpg")
    job_doc["spec"]["source"] = {"uri": tmp_path.as_uri() + "/" + source}
    job_doc["spec"]["destination"] = {"uri": tmp_path.as_uri() + "/" + destination, "format": "same"}
    with pytest.raises(JobSpecError, match="outputs would be written among the inputs"):
        parse_job(job_doc)


def test_tasks_are_deterministic_and_distinct(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    touch(src, "a.jpg", "b/c.png")
    job = make_job(job_doc, src, dst)
    first = list(sources.plan(job, sources.list_inputs(job)))
    second = list(sources.plan(job, sources.list_inputs(job)))
    assert first == second
    assert len({t.task for t in first}) == 2
    other = parse_job({**job_doc, "metadata": {"name": "other", "namespace": "photos"}})
    assert sources.make_task(other, "a.jpg").task != first[0].task
    assert first[1].job == "photos/thumbs"
    assert first[1].filters == tuple(job.spec.filters)


@pytest.mark.parametrize(
    ("fmt", "key", "out"),
    [
        ("jpeg", "a.png", "a.jpg"),
        ("jpeg", "d/a.jpeg", "d/a.jpg"),
        ("jpeg", "a.JPG", "a.JPG"),
        ("jpeg", "a.jpg", "a.jpg"),
        ("png", "a.jpg", "a.png"),
        ("webp", "x/y z.jpg", "x/y z.webp"),
        ("same", "a.PNG", "a.PNG"),
    ],
)
def test_output_keeps_the_relative_key_with_the_format_extension(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path], fmt: str, key: str, out: str
) -> None:
    src, dst = job_dirs
    task = sources.make_task(make_job(job_doc, src, dst, format=fmt), key)
    assert storage.to_path(task.input) == src / key
    assert storage.to_path(task.output) == dst / out


def test_colliding_outputs_are_refused(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> None:
    src, dst = job_dirs
    touch(src, "a.jpg", "a.png", "b.png")
    with pytest.raises(JobSpecError, match=r"a\.jpg and a\.png would both write a\.jpg; use format: same"):
        sources.list_inputs(make_job(job_doc, src, dst, format="jpeg"))
    assert sources.list_inputs(make_job(job_doc, src, dst, format="same")) == ["a.jpg", "a.png", "b.png"]


@pytest.mark.parametrize("key", ["../escape.jpg", "a/../../escape.jpg", "/etc/passwd", "a/./b.jpg", ""])
def test_keys_cannot_escape_the_destination(job_doc: dict[str, Any], job_dirs: tuple[Path, Path], key: str) -> None:
    src, dst = job_dirs
    with pytest.raises(JobSpecError, match="would escape"):
        sources.make_task(make_job(job_doc, src, dst), key)


def test_symlinked_destination_folder_cannot_lead_outside(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    src, dst = job_dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "sub").symlink_to(outside)
    with pytest.raises(JobSpecError, match="resolves outside"):
        sources.make_task(make_job(job_doc, src, dst), "sub/a.jpg")


def test_missing_source_is_a_spec_error(job_doc: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="is not an existing directory"):
        sources.list_inputs(make_job(job_doc, tmp_path / "nope", tmp_path / "out"))


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        ("file:///data/in/trip/a%20b.jpg", "trip/a b.jpg"),
        ("file:///data/in/a.jpg", "a.jpg"),
        ("file:///elsewhere/a.jpg", "file:///elsewhere/a.jpg"),  # not below the source: shown as it is
        ("s3://bucket/a.jpg", "s3://bucket/a.jpg"),
    ],
)
def test_input_key_is_the_path_below_the_source(uri: str, key: str) -> None:
    assert sources.input_key("file:///data/in/", uri) == key


def test_a_source_that_cannot_be_listed_completely_is_refused_naming_each_path(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    touch(src, "a.jpg")
    (src / "b.jpg").symlink_to(src / "gone.jpg")
    os.mkfifo(src / "c.jpg")
    with pytest.raises(JobSpecError) as caught:
        sources.list_inputs(make_job(job_doc, src, dst))
    text = "\n".join(caught.value.problems)
    assert f"{src / 'b.jpg'}: broken symbolic link" in text
    assert f"{src / 'c.jpg'}: not a regular file (a FIFO)" in text
    assert "spec.source.skipUnreadable: true" in text


def test_skip_unreadable_runs_without_those_paths_and_reports_each(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    touch(src, "a.jpg")
    (src / "b.jpg").symlink_to(src / "gone.jpg")
    job_doc["spec"]["source"]["skipUnreadable"] = True
    inputs = sources.scan_inputs(make_job(job_doc, src, dst))
    assert inputs.keys == ["a.jpg"]
    assert [(u.path, u.reason.split(" (")[0]) for u in inputs.skipped] == [(str(src / "b.jpg"), "broken symbolic link")]


def test_a_destination_that_is_a_symlink_into_the_source_is_refused(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    src, _ = job_dirs
    touch(src, "a.jpg")
    (tmp_path / "link").symlink_to(src / "sub", target_is_directory=True)
    with pytest.raises(JobSpecError, match=r"resolves to .*inside spec\.source\.uri"):
        sources.list_inputs(make_job(job_doc, src, tmp_path / "link", format="same"))


def test_colliding_outputs_onto_the_source_are_refused_as_an_overlap_not_with_format_same_advice(
    job_doc: dict[str, Any], tmp_path: Path
) -> None:
    touch(tmp_path, "a.jpg", "a.png")
    (tmp_path / "alias").symlink_to(tmp_path)
    with pytest.raises(JobSpecError) as caught:
        sources.list_inputs(make_job(job_doc, tmp_path, tmp_path / "alias", format="jpeg"))
    assert "could overwrite them" in str(caught.value)
    assert "format: same" not in str(caught.value)


def test_an_empty_source_has_a_message_naming_the_source_and_globs(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    job_doc["spec"]["source"]["include"] = ["*.tiff"]
    job = make_job(job_doc, src, dst)
    assert sources.list_inputs(job) == []
    assert sources.empty_message(job) == f"no inputs: nothing in {src.as_uri()}/ matches *.tiff; " + (
        "check spec.source.uri and spec.source.include"
    )


def test_tasks_carry_the_source_prefix_for_the_workers_check(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    touch(src, "a.jpg")
    job = make_job(job_doc, src, dst)
    assert sources.make_task(job, "a.jpg").source == job.spec.source.uri
