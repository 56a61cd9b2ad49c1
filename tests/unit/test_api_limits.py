"""Every cap on a list, mapping or string of the API is said once, in the model: the CRD's schema
is generated from it, and ``parse_job`` (local mode, ``filterjob validate``, the operator) refuses
what ``kubectl apply`` would, with one line naming the limit."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from filterjob_operator.core import podpolicy
from filterjob_operator.core.crd import build_crd
from filterjob_operator.core.spec import JobSpecError, parse_job
from filterjob_worker.core.limits import MAX_FILTERS

BOUNDS = ("maxItems", "maxProperties", "maxLength")


def spec_schema() -> dict[str, Any]:
    (version,) = build_crd()["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return found


def bounds(schema: dict[str, Any], at: str = "spec") -> Iterator[tuple[str, str, int]]:
    """``(path, bound, value)`` of every cap in a schema, nested ones too."""
    for bound in BOUNDS:
        if bound in schema:
            yield at, bound, schema[bound]
    for name, inner in (schema.get("properties") or {}).items():
        yield from bounds(inner, f"{at}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from bounds(schema["items"], f"{at}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from bounds(schema["additionalProperties"], f"{at}{{}}")


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(JobSpecError) as info:
        parse_job(doc)
    return info.value.problems


#: The caps of the CRD on what the model holds as a whole (not inside a Kubernetes type's schema),
#: each with a value just past it: the model must refuse each one as the API server would.
TOP_LEVEL = {
    "spec.filters": lambda n: [{"name": "grayscale"}] * n,
    "spec.source.uri": lambda n: "file:///" + "a" * (n - len("file:///")),
    "spec.destination.uri": lambda n: "file:///" + "b" * (n - len("file:///")),
    "spec.workers.nodeSelector": lambda n: {f"k{i}": "v" for i in range(n)},
    "spec.workers.tolerations": lambda n: [{"key": "k", "operator": "Exists"}] * n,
    "spec.workers.priorityClassName": lambda n: "p" * n,
    "spec.workers.serviceAccountName": lambda n: "s" * n,
    "spec.workers.env": lambda n: [{"name": f"V{i}", "value": "x"} for i in range(n)],
    "spec.workers.envFrom": lambda n: [{"configMapRef": {"name": "c"}}] * n,
    "spec.workers.podLabels": lambda n: {f"k{i}": "v" for i in range(n)},
    "spec.workers.podAnnotations": lambda n: {f"k{i}": "v" for i in range(n)},
}


def at(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")[1:]
    here = out["spec"]
    for part in parents:
        here = here.setdefault(part, {})
    here[last] = value
    return out


#: Caps inside a Kubernetes-typed field (the model holds it as a mapping): ``podpolicy`` checks them.
NESTED = {
    "spec.workers.securityContext.capabilities.add": "spec.workers.securityContext",
    "spec.workers.securityContext.capabilities.drop": "spec.workers.securityContext",
}


def test_every_cap_of_the_crd_on_a_field_is_checked_by_the_model() -> None:
    # Those on the items of lists and the values of mappings (a box's four numbers, a label value's
    # length) are the items' own schema's, which the model checks by its own rules.
    found = {path for path, _, _ in bounds(spec_schema()) if "[]" not in path and "{}" not in path}
    assert found == set(TOP_LEVEL) | set(NESTED)


@pytest.mark.parametrize("key", ["add", "drop"])
def test_the_model_refuses_more_capabilities_than_the_crd_allows(job_doc: dict[str, Any], key: str) -> None:
    (limit,) = [
        v for where, _, v in bounds(spec_schema()) if where == f"spec.workers.securityContext.capabilities.{key}"
    ]
    assert limit == podpolicy.MAX_CAPABILITIES
    job_doc["spec"]["workers"] = {"securityContext": {"capabilities": {key: ["NET_BIND_SERVICE"] * limit}}}
    parse_job(job_doc)
    job_doc["spec"]["workers"] = {"securityContext": {"capabilities": {key: ["NET_BIND_SERVICE"] * (limit + 1)}}}
    (problem,) = problems_of(job_doc)
    assert problem.startswith("spec.workers.securityContext: ")
    assert f"at most {limit} capabilities" in problem


@pytest.mark.parametrize("path", sorted(TOP_LEVEL))
def test_the_model_refuses_one_past_each_cap_and_accepts_the_cap(job_doc: dict[str, Any], path: str) -> None:
    (limit,) = [value for where, _, value in bounds(spec_schema()) if where == path]
    job_doc["spec"]["source"]["uri"] = "file:///in/"
    job_doc["spec"]["destination"]["uri"] = "file:///out/"
    parse_job(at(job_doc, path, TOP_LEVEL[path](limit)))
    (problem,) = problems_of(at(job_doc, path, TOP_LEVEL[path](limit + 1)))
    assert problem.startswith(f"{path}: ")
    assert str(limit) in problem


def test_a_pipeline_longer_than_the_limit_is_one_short_line(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "blur", "radius": 1}] * (MAX_FILTERS + 2)
    assert problems_of(job_doc) == [
        f"spec.filters: at most {MAX_FILTERS} items are allowed, got {MAX_FILTERS + 2}; remove 2"
    ]


def test_a_mapping_past_its_cap_counts_entries(job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["workers"] = {"podLabels": {f"k{i}": "v" for i in range(podpolicy.MAX_LABELS + 1)}}
    assert problems_of(job_doc) == [
        f"spec.workers.podLabels: at most {podpolicy.MAX_LABELS} entries are allowed, "
        f"got {podpolicy.MAX_LABELS + 1}; remove 1"
    ]


def test_the_crds_caps_are_the_named_limits() -> None:
    caps = {(path, bound): value for path, bound, value in bounds(spec_schema())}
    assert caps["spec.filters", "maxItems"] == MAX_FILTERS
    assert caps["spec.workers.env", "maxItems"] == podpolicy.MAX_ENV
    assert caps["spec.workers.podLabels", "maxProperties"] == podpolicy.MAX_LABELS
    assert caps["spec.workers.priorityClassName", "maxLength"] == podpolicy.MAX_OBJECT_NAME
