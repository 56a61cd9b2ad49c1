"""The CRD: generated from the catalog, valid, and rejecting bad jobs with clear messages.

The real API server enforces the CRD too (tests/integration/k8s/test_crd_server.py: kubectl
apply refused with these messages); here, fast and without a cluster, the schema is checked
with a JSON Schema validator (OpenAPI v3 structural schemas are draft-4 compatible) and every
CEL rule is evaluated with a CEL implementation (cel-python), values typed as the API server
types them (``number`` fields are doubles), case by case.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from filterjob_operator.core import podpolicy
from filterjob_operator.core.spec import JobSpecError, parse_job
from filterjob_worker.core.catalog import CATALOG
from tests.helpers.crd import CEL, CRD, SCHEMA, problems, worker_accepts

ROOT = Path(__file__).resolve().parents[2]


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
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Phase", "Progress", "Failed", "Workers", "Age", "Queues"]
    # The queue base name only with -o wide; the status schema has it.
    assert columns[-1] == {"name": "Queues", "type": "string", "jsonPath": ".status.queues", "priority": 1}
    assert SCHEMA["properties"]["status"]["properties"]["queues"]["type"] == "string"
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
    assert (problems(job) == []) is worker_accepts(step), problems(job)


def _vendor_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "vendor_kubernetes_types", ROOT / "scripts" / "vendor-kubernetes-types.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_vendored_kubernetes_types_are_current() -> None:
    script = _vendor_script()
    assert script.OUT.read_text() == script.text(), (
        "operator/filterjob_operator/core/kubernetes-types.json is stale: run scripts/vendor-kubernetes-types.py"
    )


def structural_problems(node: Any, path: str = "") -> list[str]:
    """What the API server's structural-schema check would refuse (the rules that apply to this CRD)."""
    found: list[str] = []
    if not isinstance(node, dict):
        return [f"{path}: not a schema"]
    for key in ("$ref", "oneOf", "anyOf", "allOf", "not", "additionalItems", "patternProperties", "definitions"):
        if key in node:
            found.append(f"{path}: {key} is not allowed")
    if "type" not in node and node.get("x-kubernetes-int-or-string") is not True:
        found.append(f"{path}: has no type")
    if "properties" in node and "additionalProperties" in node:
        found.append(f"{path}: properties and additionalProperties together")
    if node.get("additionalProperties") is False:
        found.append(f"{path}: additionalProperties false")
    if node.get("type") == "array" and "items" not in node:
        found.append(f"{path}: array without items")
    for name, child in node.get("properties", {}).items():
        found += structural_problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += structural_problems(node[key], f"{path}.{key}")
    return found


def test_the_schema_is_structural() -> None:
    assert structural_problems(SCHEMA["properties"]["spec"], "spec") == []
    # The vendored types keep Kubernetes' shapes: int-or-string where Kubernetes has one.
    env = SCHEMA["properties"]["spec"]["properties"]["workers"]["properties"]["env"]["items"]
    divisor = env["properties"]["valueFrom"]["properties"]["resourceFieldRef"]["properties"]["divisor"]
    assert divisor == {"x-kubernetes-int-or-string": True, "description": divisor["description"]}


def test_every_cel_rule_compiles() -> None:
    def rules(node: Any) -> list[str]:
        if not isinstance(node, dict):
            return []
        out = [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for child in [*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")]:
            out += rules(child)
        return out

    for rule in rules(SCHEMA):
        CEL.compile(rule)


GOOD_OVERRIDES: list[dict[str, Any]] = [
    {"podSecurityContext": {"runAsUser": 1000, "runAsGroup": 0, "fsGroup": 1000, "fsGroupChangePolicy": "Always"}},
    {"securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_BIND_SERVICE"]}}},
    {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}},
    {"podSecurityContext": {"seLinuxOptions": {"level": "s0:c123,c456", "type": "container_t"}}},
    {
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoExecute", "tolerationSeconds": 60}
        ]
    },
    {"nodeSelector": {"kubernetes.io/arch": "arm64"}, "priorityClassName": "low", "serviceAccountName": "sa"},
    {
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"team": "x"}},
                        },
                    }
                ]
            }
        }
    },
    {
        "env": [
            {"name": "FILTERJOB_LOG_LEVEL", "value": "DEBUG"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    },
    {"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "X_"}, {"secretRef": {"name": "s3"}}]},
    {"podLabels": {"team": "imaging", "example.com/tier": "", "a.b/c_d-e.f": "v1.2_3-x"}},
    {"podAnnotations": {"example.com/owner": "ops", "note": "anything at all, even spaces"}},
]

#: (override, field at fault, what the schema says, or None if a CEL rule's message says it)
BAD_OVERRIDES: list[tuple[dict[str, Any], str, str | None]] = [
    ({"podSecurityContext": {"runAsUser": 0}}, "podSecurityContext", None),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "podSecurityContext", None),
    ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}, "podSecurityContext", None),
    ({"podSecurityContext": {"windowsOptions": {"hostProcess": True}}}, "podSecurityContext", None),
    ({"securityContext": {"privileged": True}}, "securityContext", None),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "securityContext", None),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "securityContext", None),
    ({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}}}, "securityContext", None),
    ({"securityContext": {"runAsUser": 0}}, "securityContext", None),
    ({"securityContext": {"procMount": "Unmasked"}}, "securityContext", None),
    ({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}, "securityContext", None),
    ({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}, "securityContext", None),
    ({"podSecurityContext": {"seLinuxOptions": {"user": "system_u"}}}, "podSecurityContext", None),
    ({"env": [{"name": "OK", "value": "1"}, {"name": "FILTERJOB_QUEUE", "value": "elsewhere"}]}, "env", None),
    ({"env": [{"name": "FILTERJOB_BROKER_URL", "value": "amqp://evil/"}]}, "env", None),
    ({"podLabels": {"filterjob.dev/job": "other"}}, "podLabels", None),
    ({"podLabels": {"app.kubernetes.io/component": "lister"}}, "podLabels", None),
    ({"podAnnotations": {"prometheus.io/port": "1"}}, "podAnnotations", None),
    ({"podLabels": {"team": "no spaces allowed"}}, "podLabels", "does not match"),
    ({"podLabels": {"team": "x" * 64}}, "podLabels", "is too long"),
    ({"tolerations": [{"key": "a", "tolerationSeconds": "soon"}]}, "tolerations", "is not of type 'integer'"),
    ({"env": [{"value": "nameless"}]}, "env", "'name' is a required property"),
    ({"nodeSelector": {"zone": 3}}, "nodeSelector", "is not of type 'string'"),
    (
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "affinity",
        "'nodeSelectorTerms' is a required property",
    ),
]


@pytest.mark.parametrize("override", GOOD_OVERRIDES, ids=",".join)
def test_pod_overrides_that_keep_the_pods_restricted_are_taken(job: dict[str, Any], override: dict[str, Any]) -> None:
    job["spec"]["workers"].update(override)
    assert problems(job) == []
    parse_job(job)  # and the operator takes it too


@pytest.mark.parametrize(("override", "field", "schema_says"), BAD_OVERRIDES, ids=lambda o: str(o)[:60])
def test_pod_overrides_are_refused_alike_by_the_crd_and_the_operator(
    job: dict[str, Any], override: dict[str, Any], field: str, schema_says: str | None
) -> None:
    job["spec"]["workers"].update(override)
    found = problems(job)
    if schema_says is None:
        messages = podpolicy.problems(field, override[field])
        assert messages, "the operator's check must refuse it as well"
        assert found == messages
        with pytest.raises(JobSpecError) as refused:
            parse_job(job)
        assert refused.value.problems == [f"spec.workers.{field}: {m}" for m in messages]
    else:
        assert any(p.startswith(f"spec.workers.{field}") and schema_says in p for p in found), found


@pytest.mark.parametrize(
    ("labels", "ok"),
    [
        ({"a": "b"}, True),
        ({"example.com/a": "b"}, True),
        ({"bad key": "v"}, False),
        ({"-a": "v"}, False),
        ({"Example.com/a": "v"}, False),
        ({"x" * 64: "v"}, False),
    ],
)
def test_label_and_annotation_keys_the_operator_refuses(job: dict[str, Any], labels: dict[str, str], ok: bool) -> None:
    for field in ("podLabels", "podAnnotations"):
        job["spec"]["workers"] = {field: labels}
        if ok:
            parse_job(job)
        else:
            with pytest.raises(JobSpecError, match=f"spec.workers.{field}: keys must be"):
                parse_job(job)


def test_every_field_a_pod_guard_names_is_in_the_schema() -> None:
    """The API server type-checks CEL rules against the schema: a misspelt field would fail the CRD."""
    workers = SCHEMA["properties"]["spec"]["properties"]["workers"]["properties"]
    for guard in podpolicy.GUARDS:
        for path in set(re.findall(r"self((?:\.[A-Za-z]+)+)", guard.cel or "")):
            node = workers[guard.field]
            for part in path.strip(".").split("."):
                if part in ("all", "startsWith"):
                    break
                assert part in node.get("properties", {}), (guard.field, path)
                node = node["properties"][part]


def test_the_crd_takes_every_output_format_the_model_takes() -> None:
    from filterjob_operator.core.locations import Destination  # noqa: PLC0415
    from filterjob_worker.core.codec import FORMAT_ALIASES, FORMATS  # noqa: PLC0415

    enum = SCHEMA["properties"]["spec"]["properties"]["destination"]["properties"]["format"]["enum"]
    assert set(enum) == {*FORMATS, *FORMAT_ALIASES}
    assert {"jpg", "JPEG", "PNG"} <= set(enum)
    for value in enum:
        assert Destination(uri="file:///out/", format=value).format in FORMATS


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
