"""Hostile specs and settings, fuzzed: the FilterJob model (from mappings and from YAML files), the
filter pipeline and its parameters, output formats, queue names, broker URLs, the worker's environment
and the operator's settings each map any input to a value or to their own error with a reason.

A FilterJob's problems each name the field at fault. Bounded by the profile of tests/conftest.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, example, given
from hypothesis import strategies as st

from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import FilterJob, JobSpecError, load_job, parse_job
from filterjob_worker.adapters import storage
from filterjob_worker.core import codec
from filterjob_worker.core.environment import Var, WorkerConfig
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.pipeline import Pipeline
from filterjob_worker.core.topology import QueueName, Topology
from filterjob_worker.core.urls import broker_url_problem
from tests.helpers.hostile import JSON_VALUES, LARGE_REPRS, LONG_TEXT, TEXT, mutated, nested, reason_problem, total
from tests.helpers.jobfiles import JOB

pytestmark = LARGE_REPRS
#: Where a problem of a FilterJob document starts: the path of the field at fault, then a colon.
FIELD_PATH = re.compile(r"^(document|apiVersion|kind|metadata|spec)[.\[:]")
STEPS = [
    {"name": "resize", "width": 10, "resample": "nearest"},
    {"name": "crop", "box": [0, 0, 4, 4]},
    {"name": "rotate", "angle": 90, "expand": False},
    {"name": "sharpen", "radius": 1.5, "percent": 100},
]
#: YAML a user could write by mistake or on purpose: what PyYAML's constructors choke on.
HOSTILE_YAML = [
    "spec: {filters: [{name: blur, radius: " + "9" * 5000 + "}]}",  # past int()'s digit limit
    "metadata: {name: a, created: 2001-13-01}",  # a timestamp with month 13
    "spec: !!int abc",
    "spec: !!float [1]",
    "spec: !!binary '#'",
    "[" * 50_000 + "]" * 50_000,  # deeper than the recursion limit
    "a: &a [*a]",  # a list holding itself
    "? [a, b]\n: c",  # an unhashable key
    "spec: !!python/object:os.system ls",
    "spec: {filters: [{name: blur, radius: .nan}]}",
]


def _billion_laughs(levels: int = 9) -> str:
    """Aliases that expand to 10^levels strings: a document whose repr never ends."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]")
    return "\n".join([*lines, "apiVersion: filterjob.dev/v1alpha1", "kind: FilterJob", f"spec: *a{levels - 1}"])


def _job_problems(error: JobSpecError) -> None:
    for problem in error.problems:
        assert FIELD_PATH.match(problem), f"a problem that names no field: {problem[:300]!r}"


@given(mutated(JOB) | mutated({**JOB, "spec": {**JOB["spec"], "filters": STEPS}}))
@example({**JOB, "spec": {**JOB["spec"], "filters": [{"name": "blur", "radius": 10**5000}]}})  # before: ValueError
@example({**JOB, "spec": {**JOB["spec"], "workers": 10**5000}})  # before: ValueError from the message's repr
@example({**JOB, "spec": {**JOB["spec"], "suspend": "x" * 100_000}})  # before: the problem quoted it all
def test_a_filterjob_document_validates_or_each_problem_names_its_field(document: dict[str, Any]) -> None:
    result = total(lambda: parse_job(document), (JobSpecError,))
    if isinstance(result, JobSpecError):
        _job_problems(result)
    else:
        assert isinstance(result, FilterJob)
        result.spec.pipeline()


@pytest.mark.parametrize("where", ["filters", "workers", "metadata"])
def test_a_filterjob_nested_past_the_recursion_limit_is_refused_naming_the_field(where: str) -> None:
    """Before: the problem's repr of the value raised RecursionError (hypothesis cannot print such an input)."""
    spec = {**JOB["spec"], where: [nested(5000)] if where == "filters" else nested(5000)}
    document = {**JOB, "spec": spec} if where != "metadata" else {**JOB, "metadata": nested(5000)}
    with pytest.raises(JobSpecError) as raised:
        parse_job(document)
    _job_problems(raised.value)
    assert all(reason_problem(p) is None for p in raised.value.problems)


@given(JSON_VALUES)
def test_any_value_as_a_filterjob_is_refused_with_a_reason(document: Any) -> None:
    total(lambda: parse_job(document), (JobSpecError,))


@pytest.mark.parametrize("text", [*HOSTILE_YAML, _billion_laughs()], ids=range(len(HOSTILE_YAML) + 1))
def test_hostile_yaml_is_a_job_spec_error_naming_the_file(text: str, tmp_path: Path) -> None:
    """Before: ValueError (digits, dates, !!int), RecursionError (nesting) escaped load_job."""
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(JobSpecError) as raised:
        load_job(path)
    for problem in raised.value.problems:
        assert problem.startswith(f"{path}: ")
        assert reason_problem(problem) is None


@given(mutated(JOB), st.sampled_from(["dump", "cut", "insert"]), st.integers(0, 400), TEXT)
def test_a_job_file_near_a_valid_one_loads_or_is_refused_with_a_reason(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any], how: str, at: int, noise: str
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True) if _dumpable(document) else "{}"
    if how == "cut":
        text = text[:at]
    elif how == "insert":
        text = text[:at] + noise + text[at:]
    path = tmp_path_factory.mktemp("job") / "job.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    result = total(lambda: load_job(path), (JobSpecError,))
    if isinstance(result, JobSpecError):
        assert all(p.startswith(f"{path}: ") for p in result.problems)


def _dumpable(document: Any) -> bool:
    try:
        yaml.safe_dump(document, allow_unicode=True).encode("utf-8")
    except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
        return False
    return True


@given(st.lists(mutated({"s": STEPS[0]}) | mutated({"s": STEPS[1]}) | JSON_VALUES, max_size=4))
@example([{"name": "blur", "radius": 10**5000}])  # before: ValueError from the message
@example([{"name": "crop", "box": b"\x00\x00\x04\x04"}])  # before: accepted, bytes as a box
def test_a_pipeline_parses_or_every_problem_names_its_step(raw: list[Any]) -> None:
    steps = [item["s"] if isinstance(item, dict) and "s" in item else item for item in raw]
    result = total(lambda: Pipeline.parse(steps), (SpecError,))
    if isinstance(result, SpecError):
        assert all(p.startswith("filters") for p in result.problems)


@given(JSON_VALUES)
def test_an_output_format_is_a_format_or_a_spec_error(value: Any) -> None:
    name = total(lambda: codec.format_name(value), (SpecError,))
    assert isinstance(name, SpecError) or name in codec.FORMATS
    total(lambda: codec.OutputFormat(format=value, quality=value), (SpecError,))


@given(st.binary(max_size=256))
def test_image_bytes_decode_or_are_refused_as_an_image(data: bytes) -> None:
    total(lambda: codec.decode(data), (codec.InvalidImage, codec.ImageTooLarge))


@given(TEXT | LONG_TEXT | st.from_regex(r"fj\.[a-z0-9.-]{0,20}\.[a-z]{0,9}", fullmatch=True))
@example("fj.a." + "a." * 40_000 + "!")  # before: accepted for parsing at any length
def test_a_queue_name_parses_or_is_a_spec_error(name: str) -> None:
    parsed = total(lambda: QueueName.parse(name), (SpecError,))
    if isinstance(parsed, QueueName):
        assert len(name.encode()) <= 255
    total(lambda: Topology.from_task_queue(name), (SpecError,))


@given(TEXT | LONG_TEXT | st.from_regex(r"amqps?://[^@]{0,12}@?[^/]{0,12}(/[^#]{0,8})?#?", fullmatch=True), TEXT)
@example("[::1/", "")
@example("h:99999/v", "#")
def test_a_broker_url_is_fine_or_its_problem_hides_the_password(url: str, tail: str) -> None:
    assume("s3cr3tPW" not in url + tail)
    with_password = f"amqp://user:s3cr3tPW@{url}{tail}"
    for candidate in (url, with_password):
        problem = broker_url_problem(candidate)
        assert problem is None or reason_problem(problem) is None
    problem = broker_url_problem(with_password)
    assert problem is None or "s3cr3tPW" not in problem


def _env(values: dict[str, str]) -> dict[str, str]:
    """Environment text is never NUL nor a lone surrogate that the OS could not hold."""
    return {k: v.replace("\x00", "") for k, v in values.items()}


ENV_TEXT = TEXT | st.integers().map(str) | st.floats().map(str) | st.sampled_from(["", " 3 ", "1e999", "0x1f", "1_0"])


@given(st.dictionaries(st.sampled_from([v for k, v in vars(Var).items() if k.isupper()]), ENV_TEXT).map(_env))
@example({Var.QUEUE: ".tasks"})  # before: accepted, then the worker failed to find its topology
def test_a_worker_environment_is_a_config_or_names_every_bad_variable(env: dict[str, str]) -> None:
    base = {Var.BROKER_URL: "amqp://guest:guest@127.0.0.1:5672/", Var.QUEUE: "fj.ns.j.u.tasks"}
    result = total(lambda: WorkerConfig.from_env({**base, **env}), (SpecError,))
    if isinstance(result, SpecError):
        assert all(p.startswith("FILTERJOB_") for p in result.problems)
    else:
        assert result.topology.tasks == result.queue
        assert WorkerConfig.from_env(result.to_env()) == result


SETTINGS = [
    "FILTERJOB_STATUS_INTERVAL",
    "FILTERJOB_METRICS_PORT",
    "FILTERJOB_WORKER_GRACE_SECONDS",
    "FILTERJOB_ENQUEUE_BATCH",
    "FILTERJOB_WORKER_RESOURCES",
    "FILTERJOB_LIST_INPUTS",
    "FILTERJOB_FINALIZER_TIMEOUT",
    "FILTERJOB_LISTER_DEADLINE",
    "FILTERJOB_IMAGE_PULL_SECRETS",
]


@given(st.dictionaries(st.sampled_from(SETTINGS), ENV_TEXT | st.just('{"requests": ' * 5000)).map(_env))
@example({"FILTERJOB_STATUS_INTERVAL": "x"})  # before: "could not convert string to float: 'x'", no name
@example({"FILTERJOB_STATUS_INTERVAL": "nan"})  # before: accepted, a status loop that never sleeps right
@example({"FILTERJOB_METRICS_PORT": "99999"})  # before: accepted, then the operator failed to serve
@example({"FILTERJOB_WORKER_RESOURCES": "[" * 100_000})  # before: RecursionError escaped
def test_operator_settings_parse_or_name_the_bad_variable(env: dict[str, str]) -> None:
    result = total(lambda: Settings.from_env(env), (ValueError,))
    if isinstance(result, ValueError):
        assert str(result).startswith("FILTERJOB_")


@given(TEXT | LONG_TEXT | st.builds(lambda t: f"file:///in/{t}", TEXT))
@example("file:///in/a%00b")  # before: ValueError (embedded null byte) from opening it
@example("file:///in/\ud800")  # before: UnicodeEncodeError from opening it
@example("s3://bucket/a.png")  # before: a SpecError that processing did not turn into a failed task
def test_a_task_uri_is_a_path_or_a_spec_error(uri: str) -> None:
    path = total(lambda: storage.to_path(uri), (SpecError,))
    if isinstance(path, Path):
        assert "\x00" not in str(path)
        os.fsencode(path)  # what opening it needs
