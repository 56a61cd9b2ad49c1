"""The CRD: generated from the catalog, valid, and rejecting bad jobs with clear messages.

The Kubernetes emulator used in integration tests does not enforce schemas, so the
schema is checked here with a JSON Schema validator (OpenAPI v3 structural schemas
are draft-4 compatible) and every CEL rule is evaluated with a CEL implementation,
values typed as the API server types them (``number`` fields are doubles).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

from filterjob_operator.crd import build_crd
from filterjob_worker.catalog import CATALOG
from filterjob_worker.errors import SpecError
from filterjob_worker.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
CRD = build_crd()
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
CEL = celpy.Environment()


def typed(schema: dict[str, Any], value: Any) -> Any:
    """The value as the API server hands it to CEL: defaults applied, ``number`` fields doubles."""
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        defaults = {k: p["default"] for k, p in props.items() if "default" in p and k not in value}
        return {k: typed(props.get(k, {}), v) for k, v in {**value, **defaults}.items()}
    if kind == "array" and isinstance(value, list):
        return [typed(schema.get("items", {}), v) for v in value]
    return value


def cel_problems(schema: dict[str, Any], value: Any, old: Any = None) -> list[str]:
    """Messages of every CEL rule that fails, walking the schema like the API server."""
    problems: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"] and old is None:
            continue  # transition rules only run on updates
        context = {"self": celpy.json_to_cel(typed(schema, value))}
        if old is not None:
            context["oldSelf"] = celpy.json_to_cel(typed(schema, old))
        if not CEL.program(CEL.compile(rule["rule"])).evaluate(context):
            problems.append(rule["message"])
    if isinstance(value, dict):
        for key, child in schema.get("properties", {}).items():
            if key in value:
                problems += cel_problems(child, value[key], old.get(key) if isinstance(old, dict) else None)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            problems += cel_problems(schema["items"], item)
    return problems


def problems(document: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    validator = jsonschema.Draft4Validator(SCHEMA)
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    return found or cel_problems(SCHEMA, document, old)


@pytest.fixture
def job() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "cluster-job.yaml").read_text())
    return document


def test_the_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(CRD, "1.33", strict=True)


def test_filter_section_is_generated_from_the_catalog() -> None:
    items = SCHEMA["properties"]["spec"]["properties"]["filters"]["items"]
    assert items["properties"]["name"]["enum"] == list(CATALOG)
    for fdef in CATALOG.values():
        for param in fdef.params:
            assert items["properties"][param.name]["type"] == param.schema()["type"], (fdef.name, param.name)


def test_every_field_has_a_description() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if "description" in schema or path.endswith(("metadata", "items")) else [path]
        for key, child in schema.get("properties", {}).items():
            missing += walk(child, f"{path}.{key}")
        if "items" in schema and schema["items"].get("properties"):
            missing += walk(schema["items"], f"{path}[]")
        return missing

    assert walk(SCHEMA["properties"]["spec"], "spec") == []


def test_printer_columns_and_names() -> None:
    version = CRD["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Progress", "Failed", "Workers", "Age"]
    assert version["subresources"] == {"status": {}}
    assert CRD["spec"]["names"]["shortNames"] == ["fj"]


def test_examples_are_valid(job: dict[str, Any]) -> None:
    assert problems(job) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("spec", "filters"), [{"name": "sparkle"}], "is not one of"),
        (("spec", "filters"), [{"name": "blur", "radius": -1}], "-1 is less than the minimum of 0"),
        (("spec", "filters"), [{"name": "blur", "factor": 2}], "filter blur takes radius"),
        (("spec", "filters"), [{"name": "grayscale", "radius": 2}], "filter grayscale takes no parameters"),
        (("spec", "filters"), [{"name": "sharpen", "radius": 60}], "sharpen: radius must be between 0 and 50"),
        (("spec", "filters"), [{"name": "brightness"}], "brightness: factor is required"),
        (("spec", "filters"), [{"name": "resize"}], "resize: width, height or scale is required"),
        (("spec", "filters"), [{"name": "resize", "scale": 2, "width": 5}], "resize: give either scale or"),
        (("spec", "filters"), [{"name": "thumbnail"}], "thumbnail: width or height is required"),
        (("spec", "filters"), [{"name": "crop", "box": [10, 0, 5, 5]}], "crop: box must be"),
        (("spec", "filters"), [], "[] should be non-empty"),
        (("spec", "destination", "format"), "gif", "'gif' is not one of"),
        (("spec", "source", "uri"), "http://x/", "does not match"),
        (("spec", "autoscaling"), {"minReplicas": 5, "maxReplicas": 2}, "minReplicas must not exceed maxReplicas"),
    ],
)
def test_bad_specs_are_rejected_with_a_message(
    job: dict[str, Any], path: tuple[str, ...], value: Any, message: str
) -> None:
    target = job
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = problems(job)
    assert any(message in p for p in found), found


def test_missing_source_is_rejected(job: dict[str, Any]) -> None:
    del job["spec"]["source"]
    assert problems(job) == ["spec: 'source' is a required property"]


def test_source_and_filters_are_immutable_once_running(job: dict[str, Any]) -> None:
    old = copy.deepcopy(job)
    job["spec"]["filters"] = [{"name": "invert"}]
    old["status"] = {"phase": "Pending"}
    assert problems(job, old) == []
    old["status"] = {"phase": "Running"}
    assert problems(job, old) == [
        "spec.source, spec.destination and spec.filters are immutable once the job has started; "
        "create a new FilterJob instead"
    ]
    job["spec"]["filters"] = old["spec"]["filters"]
    job["spec"]["suspend"] = True  # everything else may change
    assert problems(job, old) == []


STEPS: list[dict[str, Any]] = [
    {"name": "blur"},
    {"name": "blur", "radius": 100},
    {"name": "blur", "radius": 101},
    {"name": "sharpen", "radius": 50, "percent": 500, "threshold": 0},
    {"name": "sharpen", "radius": 51},
    {"name": "sharpen", "percent": 501},
    {"name": "posterize", "bits": 0},
    {"name": "posterize", "bits": 8},
    {"name": "autocontrast", "cutoff": 49},
    {"name": "autocontrast", "cutoff": 50},
    {"name": "rotate", "angle": 90, "expand": False},
    {"name": "rotate", "expand": True},
    {"name": "rotate", "angle": 400},
    {"name": "flip", "direction": "vertical"},
    {"name": "flip", "direction": "diagonal"},
    {"name": "resize", "width": 10, "resample": "nearest"},
    {"name": "resize", "height": 0},
    {"name": "resize", "scale": 0.001},
    {"name": "thumbnail", "width": 64, "height": 64},
    {"name": "crop", "box": [0, 0, 10, 10]},
    {"name": "crop", "box": [0, 0, 10]},
    {"name": "contrast", "factor": 10},
    {"name": "contrast", "factor": 11},
    {"name": "saturation", "factor": 0},
    {"name": "equalize", "bits": 2},
    {"name": "edges"},
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_the_crd_and_the_worker_agree(job: dict[str, Any], step: dict[str, Any]) -> None:
    job["spec"]["filters"] = [step]
    try:
        Pipeline.parse([step])
        worker_ok = True
    except SpecError:
        worker_ok = False
    assert (problems(job) == []) is worker_ok, problems(job)


OVERLAP = "destination.uri must not be source.uri, inside it, or contain it"


@pytest.mark.parametrize(
    ("source", "destination", "refused"),
    [
        ("file:///data/in/", "file:///data/in/", True),
        ("file:///data/in/", "file:///data/in", True),
        ("file:///data/in", "file:///data/in/", True),
        ("file:///data/in/", "file:///data/in/out/", True),
        ("file:///data/in/sub", "file:///data/in/", True),
        ("file:///data/in/", "file:///data/in2/", False),
        ("file:///data/in2", "file:///data/in", False),
        ("file:///data/in/", "file:///data/out/", False),
    ],
)
def test_a_destination_overlapping_the_source_is_rejected_by_the_api(
    job: dict[str, Any], source: str, destination: str, refused: bool
) -> None:
    job["spec"]["source"]["uri"] = source
    job["spec"]["destination"]["uri"] = destination
    assert (OVERLAP in " ".join(problems(job))) is refused


def test_skip_unreadable_is_part_of_the_api(job: dict[str, Any]) -> None:
    job["spec"]["source"]["skipUnreadable"] = True
    assert problems(job) == []
    job["spec"]["source"]["skipUnreadable"] = "yes"
    assert problems(job) == ["spec.source.skipUnreadable: 'yes' is not of type 'boolean'"]
