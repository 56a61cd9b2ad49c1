"""The task contract: versioned JSON, strict decoding, a reason for every malformed body."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from filterjob_worker.core.codec import OutputFormat
from filterjob_worker.core.contract import JOB_FINISHED_KEY, VERSION, Event, JobFinished, Task
from filterjob_worker.core.errors import MalformedMessage, PermanentTaskError

BODY: dict[str, Any] = {
    "v": 1,
    "job": "photos/thumbs",
    "jobUid": "0f5c7a1e-5b1b-4c57-9a43-1b2f5d0c9e11",
    "task": "3b9e2d7c41a05f68",
    "input": "file:///data/in/sub/a%20b.jpg",
    "output": "file:///data/out/sub/a%20b.jpg",
    "filters": [{"name": "grayscale"}, {"name": "blur", "radius": 2}],
    "format": {"format": "webp", "quality": 80},
}
STRING_FIELDS = ("job", "jobUid", "task", "input", "output")


def make_task(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "job": "photos/thumbs",
        "job_uid": "0f5c7a1e-5b1b-4c57-9a43-1b2f5d0c9e11",
        "task": "3b9e2d7c41a05f68",
        "input": "file:///data/in/sub/a%20b.jpg",
        "output": "file:///data/out/sub/a%20b.jpg",
        "filters": ({"name": "grayscale"}, {"name": "blur", "radius": 2}),
        "format": OutputFormat(format="webp", quality=80),
    }
    return Task(**{**fields, **changes})


def body(**changes: Any) -> bytes:
    """The documented body with top-level keys replaced (or removed when set to ``...``)."""
    data = copy.deepcopy(BODY)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_task_round_trips_through_json() -> None:
    task = make_task()
    assert Task.from_json(task.to_json()) == task


@pytest.mark.parametrize(
    "task",
    [
        make_task(filters=()),
        make_task(format=OutputFormat()),
        make_task(format=OutputFormat(format="same", quality=1)),
        make_task(job="ns/ünïcode", input="file:///in/caf%C3%A9.jpg"),
        make_task(filters=({"name": "crop", "box": [0, 0, 10, 10]}, {"name": "rotate", "angle": -90.5})),
    ],
)
def test_task_variants_round_trip(task: Task) -> None:
    assert Task.from_json(task.to_json()) == task


def test_body_keys_match_the_documented_contract() -> None:
    data = json.loads(make_task().to_json())
    assert list(data) == ["v", "job", "jobUid", "task", "input", "output", "filters", "format"]
    assert data == BODY
    assert data["v"] == VERSION == 1


def test_body_is_compact_utf8_json() -> None:
    raw = make_task(job="ns/ünï").to_json()
    assert isinstance(raw, bytes)
    assert b" " not in raw.replace(b"a%20b", b"")
    assert json.loads(raw.decode("utf-8"))["job"] == "ns/ünï"


def test_documented_body_decodes() -> None:
    assert Task.from_json(json.dumps(BODY).encode()) == make_task()


def test_format_defaults_when_absent() -> None:
    assert Task.from_json(body(format=...)).format == OutputFormat()


def test_format_fields_default_individually() -> None:
    assert Task.from_json(body(format={"format": "png"})).format == OutputFormat(format="png", quality=90)
    assert Task.from_json(body(format={})).format == OutputFormat()


def test_malformed_task_is_permanent() -> None:
    assert issubclass(MalformedMessage, PermanentTaskError)
    assert MalformedMessage("x").permanent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "body is not JSON"),
        (b"not json", "body is not JSON"),
        (b"{'v': 1}", "body is not JSON"),
        (b'{"v": 1,', "body is not JSON"),
        (b'{"v":1,"job":"\xff\xfe"}', "body is not JSON"),  # invalid UTF-8
        (b"\x80abc", "body is not JSON"),
        (b"[]", "body must be a JSON object, got list"),
        (json.dumps([BODY]).encode(), "body must be a JSON object, got list"),
        (b'"task"', "body must be a JSON object, got str"),
        (b"42", "body must be a JSON object, got int"),
        (b"null", "body must be a JSON object, got NoneType"),
    ],
)
def test_bodies_that_are_not_json_objects(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        Task.from_json(raw)


@pytest.mark.parametrize(
    ("version", "shown"),
    [(..., "None"), (None, "None"), (0, "0"), (2, "2"), ("1", "'1'"), (True, "True"), ([1], r"\[1\]")],
)
def test_wrong_or_missing_version(version: Any, shown: str) -> None:
    with pytest.raises(MalformedMessage, match=rf"unsupported task version {shown}, expected 1"):
        Task.from_json(body(v=version))


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize(("value", "shown"), [(..., "None"), (None, "None"), ("", "''"), (7, "7"), (["a"], "['a']")])
def test_string_fields_must_be_non_empty_strings(field: str, value: Any, shown: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        Task.from_json(body(**{field: value}))
    assert str(info.value) == f"field {field!r} must be a non-empty string, got {shown}"


@pytest.mark.parametrize(
    "filters",
    [..., None, "grayscale", {"name": "grayscale"}, ["grayscale"], [{"name": "blur"}, 3], [[]], [None]],
)
def test_filters_must_be_a_list_of_objects(filters: Any) -> None:
    with pytest.raises(MalformedMessage, match="field 'filters' must be a list of objects"):
        Task.from_json(body(filters=filters))


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        (None, "field 'format' must be an object, got None"),
        ("jpeg", "field 'format' must be an object, got 'jpeg'"),
        (["jpeg", 90], "field 'format' must be an object"),
        ({"format": "gif"}, "field 'format': format must be one of jpeg, png, webp, same, got 'gif'"),
        ({"quality": 0}, "field 'format': quality must be an integer between 1 and 100, got 0"),
        ({"quality": 101}, "field 'format': quality must be an integer between 1 and 100, got 101"),
        ({"quality": True}, "field 'format': quality must be an integer between 1 and 100, got True"),
        ({"quality": "90"}, "field 'format': quality must be an integer between 1 and 100, got '90'"),
        ({"format": "jpeg", "level": 3}, "field 'format': unknown key 'level'; its keys are format and quality"),
    ],
)
def test_bad_format_object(fmt: Any, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        Task.from_json(body(format=fmt))


def test_unknown_top_level_keys_are_ignored() -> None:
    # Forward compatibility within a version: newer producers may add fields.
    assert Task.from_json(body(trace="abc")) == make_task()


def test_job_finished_round_trips_and_is_not_a_task_event() -> None:
    end = JobFinished(job="local/thumbs", phase="Failed", total=5, succeeded=3, failed=1, skipped=1)
    assert end.routing_key == JOB_FINISHED_KEY == "job.finished"
    assert JobFinished.from_json(end.to_json()) == end
    assert json.loads(end.to_json())["event"] == "finished"
    with pytest.raises(MalformedMessage):
        Event.from_json(end.to_json())
    with pytest.raises(MalformedMessage):
        JobFinished.from_json(b'{"event": "succeeded", "job": "a/b"}')
    with pytest.raises(MalformedMessage):
        JobFinished.from_json(b"\xff")


def test_the_source_prefix_travels_with_a_task_and_is_optional() -> None:
    task = make_task(source="file:///data/in/")
    assert json.loads(task.to_json())["source"] == "file:///data/in/"
    assert Task.from_json(task.to_json()) == task
    assert Task.from_json(body()).source is None  # tasks enqueued before the field existed


@pytest.mark.parametrize("bad", ["", 3, ["file:///data/in/"]])
def test_a_malformed_source_prefix_is_refused(bad: Any) -> None:
    with pytest.raises(MalformedMessage, match="field 'source'"):
        Task.from_json(body(source=bad))
