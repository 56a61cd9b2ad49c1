"""The listing of a job's inputs as broker messages, and what the lister publishes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from filterjob_operator.adapters import sources
from filterjob_operator.control import lister
from filterjob_operator.control.builders.lister import JOB_ENV, job_document
from filterjob_operator.core import listing
from filterjob_operator.core.samples import make_samples
from filterjob_operator.core.spec import FilterJob, JobSpecError, parse_job


def test_chunks_carry_the_keys_in_order_and_mark_the_last() -> None:
    keys = [f"k{n:05d}.png" for n in range(12)]
    messages = listing.encode("run-1", keys, chunk=5)
    decoded = [json.loads(m) for m in messages]
    assert [(d["v"], d["run"], d["seq"], d["last"]) for d in decoded] == [
        (1, "run-1", 0, False),
        (1, "run-1", 1, False),
        (1, "run-1", 2, True),
    ]
    assert [k for d in decoded for k in d["keys"]] == keys
    assert listing.decode(messages) == listing.Listing(run="run-1", keys=keys)


def test_an_empty_listing_is_one_last_chunk() -> None:
    (message,) = listing.encode("r", [])
    assert json.loads(message) == {"v": 1, "run": "r", "seq": 0, "keys": [], "last": True}
    assert listing.decode([message]) == listing.Listing(run="r", keys=[])


def test_a_default_chunk_holds_thousands_of_keys() -> None:
    keys = [f"{n}.jpg" for n in range(listing.CHUNK_KEYS + 1)]
    assert len(listing.encode("r", keys)) == 2


def test_chunks_decode_in_any_order_and_despite_duplicates() -> None:
    keys = [f"{n:03d}" for n in range(10)]
    messages = listing.encode("r", keys, chunk=3)
    shuffled = [*messages, messages[1], messages[0]]
    random.Random(4).shuffle(shuffled)
    assert listing.decode(shuffled) == listing.Listing(run="r", keys=keys)


def test_an_incomplete_listing_is_none() -> None:
    messages = listing.encode("r", ["a", "b", "c"], chunk=1)
    assert listing.decode(messages[:2]) is None  # no last chunk yet
    assert listing.decode([messages[0], messages[2]]) is None  # a gap
    assert listing.decode([]) is None


def test_an_error_is_a_complete_listing() -> None:
    message = listing.encode_error("r", "spec.source.uri: missing")
    assert json.loads(message) == {"v": 1, "run": "r", "error": "spec.source.uri: missing"}
    assert listing.decode([message]) == listing.Listing(run="r", error="spec.source.uri: missing")


def test_a_partial_earlier_run_gives_way_to_a_complete_one() -> None:
    partial = listing.encode("b-run", ["x", "y"], chunk=1)[:1]
    complete = listing.encode("c-run", ["x"], chunk=1)
    assert listing.decode([*partial, *complete]) == listing.Listing(run="c-run", keys=["x"])


def test_of_two_complete_runs_every_reader_takes_the_same() -> None:
    first, second = listing.encode("a-run", ["one"]), listing.encode("b-run", ["two"])
    assert listing.decode([*second, *first]) == listing.decode([*first, *second]) == listing.Listing("a-run", ["one"])


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"v": 2, "run": "r", "seq": 0, "keys": [], "last": true}', b'{"v": 1, "run": "r"}'],
)
def test_other_messages_are_refused(body: bytes) -> None:
    with pytest.raises(listing.ListingError):
        listing.decode([body])


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        listing.encode("r", ["a"], chunk=0)


@pytest.fixture
def cluster_job(job_doc: dict[str, Any], job_dirs: tuple[Path, Path]) -> FilterJob:
    src, dst = job_dirs
    job_doc["metadata"]["uid"] = "7d1c0a8e-1111-4222-8333-944455556666"
    job_doc["spec"]["source"] = {"uri": src.as_uri() + "/"}
    job_doc["spec"]["destination"] = {"uri": dst.as_uri() + "/", "format": "png"}
    return parse_job(job_doc)


def test_the_lister_reads_the_job_from_its_environment(cluster_job: FilterJob) -> None:
    env = {JOB_ENV: json.dumps(job_document(cluster_job))}
    assert lister.job_from_env(env) == parse_job(job_document(cluster_job))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "FILTERJOB_JOB is not set"),
        ({JOB_ENV: "{"}, "FILTERJOB_JOB is not JSON"),
        ({JOB_ENV: json.dumps({"kind": "FilterJob"})}, "spec: is required"),
    ],
)
def test_the_lister_refuses_a_bad_job(env: dict[str, str], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        lister.job_from_env(env)


def test_the_lister_needs_the_uid_that_names_the_queues(cluster_job: FilterJob) -> None:
    document = job_document(cluster_job)
    del document["metadata"]["uid"]
    with pytest.raises(JobSpecError, match=r"metadata\.uid is required"):
        lister.job_from_env({JOB_ENV: json.dumps(document)})


def test_the_lister_publishes_what_the_operator_would_list(cluster_job: FilterJob, job_dirs: tuple[Path, Path]) -> None:
    make_samples(job_dirs[0], count=7, size=(8, 6))
    messages, count, error = lister.messages_of(cluster_job, run="r")
    assert (count, error) == (7, None)
    assert listing.decode(messages) == listing.Listing(run="r", keys=sources.list_inputs(cluster_job))


def test_a_source_that_cannot_be_listed_is_reported_as_an_error(
    cluster_job: FilterJob, job_dirs: tuple[Path, Path]
) -> None:
    job_dirs[0].rmdir()
    messages, count, error = lister.messages_of(cluster_job, run="r")
    assert count == 0
    assert error is not None
    assert "spec.source.uri" in error
    assert str(job_dirs[0]) in error
    assert listing.decode(messages) == listing.Listing(run="r", error=error)


def test_the_operator_sees_a_source_only_where_its_directory_exists(
    cluster_job: FilterJob, job_dirs: tuple[Path, Path]
) -> None:
    assert sources.visible(cluster_job)
    job_dirs[0].rmdir()
    assert not sources.visible(cluster_job)


def test_skipped_paths_travel_with_the_last_chunk() -> None:
    skipped = [("/data/in/b.jpg", "broken symbolic link"), ("/data/in/c", "cannot be listed: Permission denied")]
    messages = listing.encode("r", ["a.jpg", "d.jpg"], chunk=1, skipped=skipped)
    assert "skipped" not in json.loads(messages[0])
    assert json.loads(messages[-1])["skipped"]
    assert listing.decode(reversed(messages)) == listing.Listing(run="r", keys=["a.jpg", "d.jpg"], skipped=skipped)


def test_a_malformed_skipped_list_is_not_a_listing() -> None:
    body = json.dumps({"v": 1, "run": "r", "seq": 0, "keys": [], "last": True, "skipped": ["x"]}).encode()
    with pytest.raises(listing.ListingError, match="skipped must be a list"):
        listing.decode([body])


def test_the_lister_names_each_path_it_cannot_list(cluster_job: FilterJob, job_dirs: tuple[Path, Path]) -> None:
    make_samples(job_dirs[0], count=2, size=(8, 6))
    (job_dirs[0] / "gone.jpg").symlink_to(job_dirs[0] / "nowhere.jpg")
    messages, count, error = lister.messages_of(cluster_job, run="r")
    assert count == 0
    assert error is not None
    assert f"{job_dirs[0] / 'gone.jpg'}: broken symbolic link" in error
    found = listing.decode(messages)
    assert found is not None
    assert found.error == error


def test_the_lister_reports_what_skip_unreadable_left_out(cluster_job: FilterJob, job_dirs: tuple[Path, Path]) -> None:
    make_samples(job_dirs[0], count=2, size=(8, 6))
    (job_dirs[0] / "gone.jpg").symlink_to(job_dirs[0] / "nowhere.jpg")
    document = job_document(cluster_job)
    document["spec"]["source"]["skipUnreadable"] = True
    messages, count, error = lister.messages_of(parse_job(document), run="r")
    assert (count, error) == (2, None)
    found = listing.decode(messages)
    assert found is not None
    assert [path for path, _ in found.skipped] == [str(job_dirs[0] / "gone.jpg")]
