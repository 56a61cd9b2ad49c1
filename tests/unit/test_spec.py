"""The FilterJob model: what is accepted, and the message for each thing rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from filterjob_operator.core.spec import JobSpecError, load_job, parse_job


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(JobSpecError) as info:
        parse_job(doc)
    return info.value.problems


def test_valid_job_parses_with_defaults(job_doc: dict[str, Any]) -> None:
    job = parse_job(job_doc)
    assert job.key == "photos/thumbs"
    assert job.spec.destination.output_format.quality == 85
    assert job.spec.autoscaling.mode == "queue"
    assert job.spec.retry.max_attempts == 3
    assert len(job.spec.pipeline()) == 2


def test_camel_case_fields_map(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4, "scaleDownDelaySeconds": 5}
    job_doc["spec"]["ttlSecondsAfterFinished"] = 60
    job_doc["spec"]["broker"] = {"secretRef": {"name": "rabbitmq"}}
    job = parse_job(job_doc)
    assert job.spec.autoscaling.max_replicas == 4
    assert job.spec.ttl_seconds_after_finished == 60
    assert job.spec.broker is not None
    assert job.spec.broker.secret_ref.name == "rabbitmq"


def test_server_fields_are_tolerated(job_doc: dict[str, Any]) -> None:
    job_doc["metadata"].update(uid="abc", labels={"a": "b"}, resourceVersion="7")
    job_doc["status"] = {"phase": "Running"}
    assert parse_job(job_doc).metadata.uid == "abc"


def test_filter_problems_name_step_filter_and_parameter(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "grayscale"}, {"name": "edges"}, {"name": "blur", "radius": -1}]
    assert problems_of(job_doc) == ["spec.filters[2] (blur): radius must be between 0 and 100, got -1"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("apiVersion",), "v1", "apiVersion: Input should be 'filterjob.dev/v1alpha1', got 'v1'"),
        (("kind",), "Job", "kind: Input should be 'FilterJob', got 'Job'"),
        (("metadata", "name"), "Bad_Name", "metadata.name: must be a lowercase DNS name"),
        (
            ("metadata", "name"),
            "a" * 57,
            "metadata.name: must be at most 56 characters (its Jobs are named NAME-verify",
        ),
        (("spec", "source", "uri"), "http://x/", "spec.source.uri: must be a file:///absolute/path/"),
        (("spec", "source", "uri"), "s3://bucket/in/", "spec.source.uri: s3:// URIs are not supported yet"),
        (("spec", "destination", "uri"), "file://relative/", "spec.destination.uri: file URIs need an absolute path"),
        (
            ("spec", "destination", "format"),
            "gif",
            "spec.destination.format: 'gif' is not an output format: use one of",
        ),
        (
            ("spec", "destination", "format"),
            "pgn",
            "spec.destination.format: must be one of jpeg, png, webp, same, got 'pgn' (did you mean 'png'?)",
        ),
        (("spec", "destination", "quality"), 0, "spec.destination.quality: Input should be greater than or equal to 1"),
        (("spec", "filters"), [], "spec.filters: List should have at least 1 item"),
        (("spec", "filters"), "blur", "spec.filters: Input should be a valid list"),
        (("spec", "workers", "concurrency"), 0, "spec.workers.concurrency: Input should be greater than or equal to 1"),
        (
            ("spec", "autoscaling", "mode"),
            "magic",
            "spec.autoscaling.mode: Input should be 'queue', 'hpa', 'keda' or 'none'",
        ),
        (("spec", "retry", "maxAttempts"), 0, "spec.retry.maxAttempts: Input should be greater than or equal to 1"),
        (("spec", "ttlSecondsAfterFinished"), -1, "spec.ttlSecondsAfterFinished: Input should be greater than"),
        (("spec", "suspend"), "maybe", "spec.suspend: Input should be a valid boolean"),
    ],
)
def test_field_problems_name_the_field(
    job_doc: dict[str, Any], path: tuple[str, ...], value: Any, expected: str
) -> None:
    target = job_doc
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    found = problems_of(job_doc)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_min_replicas_above_max_is_rejected(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["autoscaling"] = {"minReplicas": 5, "maxReplicas": 2}
    assert problems_of(job_doc) == ["spec.autoscaling: minReplicas (5) must not exceed maxReplicas (2)"]


def test_missing_and_unknown_fields(job_doc: dict[str, Any]) -> None:
    del job_doc["spec"]["source"]
    job_doc["spec"]["destinaton"] = {}
    assert sorted(problems_of(job_doc)) == [
        "spec.destinaton: unknown field (did you mean 'destination'?)",
        "spec.source: is required",
    ]


def test_every_problem_is_reported_at_once(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["destination"]["quality"] = 500
    job_doc["spec"]["filters"] = [{"name": "blurr"}, {"name": "posterize", "bits": 9}]
    found = problems_of(job_doc)
    assert found[0].startswith("spec.destination.quality:")
    assert found[1].startswith(
        "spec.filters[0]: name is unknown filter 'blurr' (did you mean 'blur'?); known filters: grayscale, blur"
    )
    assert found[2] == "spec.filters[1] (posterize): bits must be between 1 and 8, got 9"


def test_not_a_mapping_is_rejected() -> None:
    assert problems_of(["a", "list"]) == ["a FilterJob must be a mapping (apiVersion, kind, metadata, spec), got list"]


def test_load_job_prefixes_file_name(write_job: Any, job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "nope"}]
    path = write_job(job_doc)
    with pytest.raises(JobSpecError) as info:
        load_job(path)
    assert info.value.problems[0].startswith(f"{path}: spec.filters[0]: name is unknown filter 'nope'")


def test_load_job_rejects_bad_yaml_and_many_documents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(JobSpecError, match="not valid YAML"):
        load_job(bad)
    many = tmp_path / "many.yaml"
    many.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(JobSpecError, match="expected exactly one FilterJob document, found 2"):
        load_job(many)
    with pytest.raises(JobSpecError, match="cannot read"):
        load_job(tmp_path / "missing.yaml")


def test_local_mode_resolves_plain_paths_against_the_job_file(write_job: Any, job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["source"]["uri"] = "in"
    job_doc["spec"]["destination"]["uri"] = "../elsewhere/out/"
    path = write_job(job_doc)
    job = load_job(path, local=True)
    assert job.spec.source.uri == (path.parent / "in").as_uri() + "/"
    assert job.spec.destination.uri == (path.parent.parent / "elsewhere" / "out").as_uri() + "/"
    # Outside local mode a plain path is not a URI a pod could use.
    with pytest.raises(JobSpecError, match=r"spec\.source\.uri: must be a file:///absolute/path/"):
        load_job(path)


@pytest.mark.parametrize(("given", "format_"), [("jpg", "jpeg"), ("JPG", "jpeg"), ("PNG", "png"), ("webp", "webp")])
def test_format_aliases_are_accepted(job_doc: dict[str, Any], given: str, format_: str) -> None:
    job_doc["spec"]["destination"]["format"] = given
    assert parse_job(job_doc).spec.destination.format == format_


def test_unknown_field_names_get_a_suggestion_at_any_depth(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["retry"] = {"maxAttempt": 2}
    job_doc["spec"]["source"]["inclde"] = ["*.png"]
    job_doc["spec"]["zzz"] = 1
    assert sorted(problems_of(job_doc)) == [
        "spec.retry.maxAttempt: unknown field (did you mean 'maxAttempts'?)",
        "spec.source.inclde: unknown field (did you mean 'include'?)",
        "spec.zzz: unknown field",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file (not UTF-8 at byte 0)"),
        (b"", "is empty"),
        (b"# nothing but a comment\n", "is empty"),
        (b"- a\n- b\n", "a FilterJob must be a mapping (apiVersion, kind, metadata, spec), got list"),
        (b"a: [\n b", "not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, column 3)"),
        (b"a: " + b"x" * (2 * 1024 * 1024), "larger than 1024 KiB"),
    ],
)
def test_files_that_are_no_job_are_one_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    with pytest.raises(JobSpecError) as err:
        load_job(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}: {problem}")
    assert "\n" not in err.value.problems[0]


def test_a_directory_is_not_a_job_file(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="cannot read: Is a directory"):
        load_job(tmp_path)


def test_plain_paths_in_a_cluster_job_hint_at_local_mode(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["source"]["uri"] = "samples/in/"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_doc))
    with pytest.raises(JobSpecError) as err:
        load_job(path)
    assert err.value.problems[0].endswith("use `filterjob run`, or `filterjob validate --local`)")
    assert load_job(path, local=True).spec.source.uri.endswith("/samples/in/")


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        ("file:///data/in/", "file:///data/in"),
        ("file:///data/in", "file:///data/in/"),
        ("file:///data/in/", "file:///data/./in//"),
        ("file:///data/in/", "file:///data/x/../in/"),
        ("file:///data/in/", "file:///data%2Fin/"),
        ("file:///data/in/", "file:///data/in/out/"),
        ("file:///data/in/", "file:///data/in%2Fout"),
        ("file:///data/in/sub/", "file:///data/in/"),
        ("file:///data/in/", "file:///"),
    ],
)
def test_a_destination_overlapping_the_source_is_refused(
    job_doc: dict[str, Any], source: str, destination: str
) -> None:
    job_doc["spec"]["source"]["uri"] = source
    job_doc["spec"]["destination"]["uri"] = destination
    with pytest.raises(JobSpecError, match="outputs would be written among the inputs") as caught:
        parse_job(job_doc)
    assert caught.value.problems[0].startswith("spec: destination.uri")


@pytest.mark.parametrize("destination", ["file:///data/in2/", "file:///data/out/", "file:///data/i/"])
def test_a_destination_beside_the_source_is_fine(job_doc: dict[str, Any], destination: str) -> None:
    job_doc["spec"]["source"]["uri"] = "file:///data/in/"
    job_doc["spec"]["destination"]["uri"] = destination
    assert parse_job(job_doc).spec.destination.uri == destination
