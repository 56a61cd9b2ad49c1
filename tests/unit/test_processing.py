"""One task end to end on real files: read, decode, filter, encode, write."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from filterjob_operator.core.samples import make_image, write_broken
from filterjob_worker import processing
from filterjob_worker.adapters import storage
from filterjob_worker.core.codec import Limits, OutputFormat
from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import (
    ImageTooLarge,
    InputNotFound,
    InvalidImage,
    PermanentTaskError,
    TransientTaskError,
)
from filterjob_worker.core.outcome import Outcome


def make_task(
    src: Path,
    dst: Path,
    filters: tuple[Mapping[str, Any], ...] = ({"name": "grayscale"},),
    output: OutputFormat | None = None,
) -> Task:
    return Task(
        job="photos/thumbs",
        job_uid="uid-1",
        task=f"task-{src.name}",
        input=storage.to_uri(src),
        output=storage.to_uri(dst),
        filters=filters,
        format=output or OutputFormat(),
    )


def open_image(path: Path) -> Image.Image:
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    return image


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "a photo.jpg"
    path.parent.mkdir()
    make_image((64, 48), 1).save(path, format="JPEG")
    return path


def fake_clock(monkeypatch: pytest.MonkeyPatch, *ticks: float) -> list[float]:
    """Make processing read the given clock values, in order; returns the ones not read yet."""
    left = list(ticks)
    monkeypatch.setattr(processing.time, "perf_counter", lambda: left.pop(0))
    return left


def test_process_writes_the_filtered_output(tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out" / "sub" / "a photo.jpg"
    unread = fake_clock(monkeypatch, 100.0, 102.5)
    outcome = processing.process(make_task(photo, out))
    assert outcome.ok, outcome.reason
    assert outcome.reason is None
    written = out.read_bytes()
    assert outcome.bytes_written == len(written) == out.stat().st_size
    # The duration is the difference of the two clock reads around the work, nothing else.
    assert (outcome.seconds, unread) == (2.5, [])
    assert (outcome.task, outcome.input, outcome.output) == ("task-a photo.jpg", photo.as_uri(), out.as_uri())
    image = Image.open(io.BytesIO(written))
    image.load()
    assert (image.format, image.mode, image.size) == ("JPEG", "L", (64, 48))


@pytest.mark.parametrize(
    ("filters", "output", "expected"),
    [
        (({"name": "resize", "width": 32},), OutputFormat(format="png"), ("PNG", "RGB", (32, 24))),
        (({"name": "rotate", "angle": 90},), OutputFormat(format="webp", quality=50), ("WEBP", "RGB", (48, 64))),
        (({"name": "thumbnail", "width": 16, "height": 16},), OutputFormat(format="same"), ("JPEG", "RGB", (16, 12))),
        ((), OutputFormat(format="png"), ("PNG", "RGB", (64, 48))),
    ],
)
def test_process_output_format_and_geometry(
    tmp_path: Path,
    photo: Path,
    filters: tuple[Mapping[str, Any], ...],
    output: OutputFormat,
    expected: tuple[str, str, tuple[int, int]],
) -> None:
    out = tmp_path / "out" / f"a{output.extension(photo.suffix)}"
    assert processing.process(make_task(photo, out, filters, output)).ok
    image = open_image(out)
    assert (image.format, image.mode, image.size) == expected


def test_process_keeps_transparency_of_png(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    image = Image.new("RGBA", (10, 10), (200, 50, 50, 255))
    image.paste((0, 0, 0, 0), (0, 0, 5, 10))
    image.save(src)
    out = tmp_path / "out.png"
    assert processing.process(make_task(src, out, output=OutputFormat(format="png"))).ok
    result = open_image(out)
    assert result.mode == "LA"
    assert result.getpixel((1, 1))[1] == 0
    assert result.getpixel((8, 1))[1] == 255


def test_process_replaces_an_existing_output(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out.jpg"
    out.write_bytes(b"stale")
    assert processing.process(make_task(photo, out)).ok
    assert open_image(out).size == (64, 48)


def test_an_outcome_names_the_process_that_ran_it_and_a_recorded_one_none(tmp_path: Path, photo: Path) -> None:
    ran = processing.process(make_task(photo, tmp_path / "out.jpg"))
    failed = processing.process(make_task(tmp_path / "missing.jpg", tmp_path / "out2.jpg"))
    assert (ran.pid, failed.pid) == (os.getpid(), os.getpid())
    assert Outcome.of(make_task(photo, tmp_path / "x.jpg")).pid is None


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty", "not-an-image"])
def test_broken_input_fails_permanently_and_writes_nothing(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_broken(tmp_path / "in" / f"bad-{kind}.jpg", kind, seed=3)
    out = tmp_path / "out" / "bad.jpg"
    unread = fake_clock(monkeypatch, 7.0, 7.25)
    outcome = processing.process(make_task(src, out))
    assert (outcome.seconds, unread) == (0.25, [])  # a failure is timed like a success
    assert not outcome.ok
    assert outcome.permanent
    assert outcome.reason is not None
    assert outcome.reason.startswith("not a usable image: ")
    assert outcome.bytes_written == 0
    assert not (tmp_path / "out").exists()


def test_unknown_filter_fails_permanently_before_reading(tmp_path: Path) -> None:
    # The input does not even exist: the filters are checked first.
    out = tmp_path / "out.jpg"
    outcome = processing.process(make_task(tmp_path / "missing.jpg", out, ({"name": "sparkle"},)))
    assert not outcome.ok
    assert outcome.permanent
    assert outcome.reason is not None
    assert outcome.reason.startswith("filters[0]: name is unknown filter 'sparkle'")
    assert "known filters:" in outcome.reason
    assert not out.exists()


def test_missing_input_is_input_not_found(tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    outcome = processing.process(make_task(tmp_path / "missing.jpg", out))
    assert not outcome.ok
    assert outcome.permanent
    assert outcome.reason is not None
    assert outcome.reason.startswith("input missing: cannot read ")
    assert not out.exists()


def test_transient_write_failure_is_reported_as_retryable(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(uri: str, data: bytes) -> None:
        raise TransientTaskError(f"cannot write {uri}: No space left on device")

    monkeypatch.setattr(storage, "write_atomic", full_disk)
    outcome = processing.process(make_task(photo, tmp_path / "out.jpg"))
    assert not outcome.ok
    assert not outcome.permanent
    assert outcome.reason is not None
    assert outcome.reason.startswith("cannot write ")  # what went wrong, not the error's class


def test_output_that_cannot_be_written_fails_without_raising(tmp_path: Path, photo: Path) -> None:
    (tmp_path / "out").write_bytes(b"a file where a directory should be")
    outcome = processing.process(make_task(photo, tmp_path / "out" / "a.jpg"))
    assert not outcome.ok
    assert outcome.permanent


# --- execute raises the typed errors ---------------------------------------------------


def test_execute_returns_bytes_written(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "out.jpg"
    assert processing.execute(make_task(photo, out)) == out.stat().st_size


def test_execute_raises_invalid_image(tmp_path: Path) -> None:
    src = write_broken(tmp_path / "bad.jpg", "truncated")
    with pytest.raises(InvalidImage, match="image file is truncated"):
        processing.execute(make_task(src, tmp_path / "out.jpg"))


def test_execute_raises_input_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        processing.execute(make_task(tmp_path / "missing.jpg", tmp_path / "out.jpg"))


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        (({"name": "sparkle"},), "unknown filter 'sparkle'"),
        (({"name": "blur", "radius": -1},), r"filters\[0\] \(blur\)"),
        (({"name": "blur", "sigma": 2},), "unknown parameter 'sigma'"),
    ],
)
def test_execute_raises_permanent_error_for_bad_filters(
    tmp_path: Path, photo: Path, filters: tuple[Mapping[str, Any], ...], reason: str
) -> None:
    with pytest.raises(PermanentTaskError, match=reason):
        processing.execute(make_task(photo, tmp_path / "out.jpg", filters))


def test_execute_raises_image_too_large(tmp_path: Path, photo: Path) -> None:
    with pytest.raises(ImageTooLarge, match=r"above the limit of 0\.0 MP"):
        processing.execute(make_task(photo, tmp_path / "out.jpg"), limits=Limits(max_pixels=1000))


def test_execute_refuses_inputs_above_max_bytes_before_reading(tmp_path: Path, photo: Path) -> None:
    with pytest.raises(PermanentTaskError, match="above the limit of 10"):
        processing.execute(make_task(photo, tmp_path / "out.jpg"), limits=Limits(max_bytes=10))


def test_execute_raises_for_an_unwritable_same_format(tmp_path: Path) -> None:
    src = tmp_path / "in.ppm"
    make_image((8, 8), 1).save(src, format="PPM")
    out = tmp_path / "out.ppm"
    with pytest.raises(InvalidImage, match="cannot write PPM images"):
        processing.execute(make_task(src, out, output=OutputFormat(format="same")))
    assert not out.exists()


def test_a_task_aimed_at_its_own_input_fails_and_leaves_the_input_untouched(tmp_path: Path, photo: Path) -> None:
    before = photo.read_bytes()
    outcome = processing.process(make_task(photo, photo, output=OutputFormat(format="same")))
    assert not outcome.ok
    assert outcome.reason is not None
    assert "it is the input itself" in outcome.reason
    assert photo.read_bytes() == before


def test_a_task_writing_below_its_source_fails_and_writes_nothing(tmp_path: Path, photo: Path) -> None:
    inside = photo.parent / "sub" / "out.jpg"
    task = dataclasses.replace(make_task(photo, inside), source=storage.to_uri(photo.parent))
    outcome = processing.process(task)
    assert not outcome.ok
    assert outcome.reason is not None
    assert "inside the source" in outcome.reason
    assert not inside.exists()
