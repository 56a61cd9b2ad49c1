"""One source of truth for the API: each fact is said once, and what is derived from it agrees.

The filter rules are said once in the catalog (a Python check and a CEL expression); the
spec's types, defaults and ranges once in its models (the CRD's schema is generated from
them), the numbers shared with the worker once in ``filterjob_worker.core.limits``; the phases
once in ``status.Phase``. These tests fail if a derived copy drifts from its source: a
rule's two forms disagree on a step, the model and the CRD take different values or
defaults, or the worker's defaults are not the API's.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest

from filterjob_operator.core import crd
from filterjob_operator.core.spec import JobSpecError, parse_job
from filterjob_operator.core.status import Phase
from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.codec import OutputFormat
from filterjob_worker.core.environment import WorkerConfig
from filterjob_worker.core.filterdef import FilterDef, not_with, one_given
from filterjob_worker.core.params import BoxParam
from filterjob_worker.core.topology import RetryPolicy
from tests.helpers.crd import SCHEMA, problems, program, sample_steps, typed, worker_accepts

STEP_SCHEMA = SCHEMA["properties"]["spec"]["properties"]["filters"]["items"]


CASES = [(fdef, rule, step) for fdef in CATALOG.values() for rule in fdef.all_rules for step in sample_steps(fdef)]


def _cel(expression: str, step: dict[str, Any]) -> bool:
    context = {"self": celpy.json_to_cel(typed(STEP_SCHEMA, step))}
    return bool(program(expression).evaluate(context))


def test_some_filters_have_rules() -> None:
    assert {name for name, fdef in CATALOG.items() if fdef.all_rules} >= {"resize", "thumbnail", "crop"}


@pytest.mark.parametrize(("fdef", "rule", "step"), CASES, ids=lambda c: getattr(c, "name", None))
def test_a_rules_python_check_and_its_cel_twin_agree(fdef: FilterDef, rule: Any, step: dict[str, Any]) -> None:
    given = {k: v for k, v in step.items() if k != "name"}
    assert rule.holds(given) is _cel(rule.cel, step), (rule.message, step)


@pytest.mark.parametrize("fdef", [f for f in CATALOG.values() if f.all_rules], ids=lambda f: f.name)
def test_every_catalog_rule_is_in_the_crd(fdef: FilterDef) -> None:
    rules = STEP_SCHEMA["x-kubernetes-validations"]
    for rule in fdef.all_rules:
        twin = {"rule": f"self.name != '{fdef.name}' || {rule.cel}", "message": f"{fdef.name}: {rule.message}"}
        assert twin in rules


def test_every_cel_rule_of_the_filters_is_derived() -> None:
    """No rule in the filter section but those made from the catalog's parameters and rules."""
    union = crd._param_union()
    derived = [rule for fdef in CATALOG.values() for rule in crd._filter_rules(fdef, union)]
    assert STEP_SCHEMA["x-kubernetes-validations"] == derived
    said = {f"{f.name}: {r.message}" for f in CATALOG.values() for r in f.all_rules}
    kinds = ("takes", "is required", "must be between", "must be an integer")
    for rule in derived:
        assert rule["message"] in said or any(kind in rule["message"] for kind in kinds), rule


@pytest.mark.parametrize(
    ("given", "holds"),
    [({}, False), ({"width": 1}, True), ({"height": 1}, True), ({"width": 1, "height": 1}, True), ({"x": 1}, False)],
)
def test_one_given(given: dict[str, Any], holds: bool) -> None:
    rule = one_given("width", "height")
    assert rule.message == "width or height is required"
    assert rule.holds(given) is holds
    assert rule.cel == "has(self.width) || has(self.height)"
    assert one_given("box").message == "box is required"
    assert one_given("a", "b", "c").message == "a, b or c is required"


@pytest.mark.parametrize(
    ("given", "holds"),
    [({}, True), ({"scale": 2}, True), ({"width": 1, "height": 2}, True), ({"scale": 2, "height": 2}, False)],
)
def test_not_with(given: dict[str, Any], holds: bool) -> None:
    rule = not_with("scale", "width", "height")
    assert rule.message == "give either scale or width/height, not both"
    assert rule.holds(given) is holds
    assert rule.cel == "!has(self.scale) || !(has(self.width) || has(self.height))"


@pytest.mark.parametrize(
    ("given", "holds"),
    [({}, True), ({"box": [0, 0, 1, 1]}, True), ({"box": [1, 0, 1, 1]}, False), ({"box": [0, 1, 1, 1]}, False)],
)
def test_a_box_rule(given: dict[str, Any], holds: bool) -> None:
    (rule,) = BoxParam(name="box", description="").rules()
    assert rule.holds(given) is holds


def test_first_broken_rule_is_the_filters_problem() -> None:
    resize = CATALOG["resize"]
    assert resize.check({}) == "width, height or scale is required"
    assert resize.check({"scale": 2, "width": 3}) == "give either scale or width/height, not both"
    assert resize.check({"scale": 2}) is None
    assert CATALOG["blur"].check({}) is None


def test_the_crd_phases_are_the_phase_enum() -> None:
    phase = SCHEMA["properties"]["status"]["properties"]["phase"]
    assert phase["enum"] == [p.value for p in Phase]
    assert all(type(value) is str for value in phase["enum"])  # plain strings, for yaml.safe_dump
    assert f"oldSelf.status.phase == '{Phase.PENDING}'" in crd.IMMUTABLE_WHILE_RUNNING["rule"]


def _leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The scalar fields of the spec schema the model describes (not the filter steps nor Kubernetes' types)."""
    found = []
    for name, child in node.get("properties", {}).items():
        where = (*path, name)
        if where == ("filters",) or ".".join(("spec", *where)) in crd.KUBERNETES_TYPED:
            continue
        if "properties" in child:
            found += _leaves(child, where)
        elif child["type"] in ("integer", "number", "string", "boolean"):
            found.append((where, child))
    return found


SPEC = SCHEMA["properties"]["spec"]
LEAVES = _leaves(SPEC)
RANGED = [(path, node) for path, node in LEAVES if "minimum" in node or "maximum" in node]


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = document["spec"]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return document


def _accepted_by_both(document: dict[str, Any]) -> tuple[bool, bool]:
    try:
        parse_job(document)
        model = True
    except JobSpecError:
        model = False
    return model, problems(document) == []


def _edges(node: dict[str, Any]) -> list[tuple[float, bool]]:
    """Values at and just beyond the schema's bounds, each with whether the schema takes it."""
    step = 1 if node["type"] == "integer" else 0.001
    edges: list[tuple[float, bool]] = []
    if "minimum" in node:
        low = node["minimum"]
        if node.get("exclusiveMinimum"):
            edges += [(low, False), (low + step, True)]
        else:
            edges += [(low, True), (low - step, False)]
    if "maximum" in node:
        edges += [(node["maximum"], True), (node["maximum"] + step, False)]
    return edges


def test_the_spec_has_ranged_fields() -> None:
    assert {".".join(p) for p, _ in RANGED} >= {
        "destination.quality",
        "workers.concurrency",
        "retry.maxAttempts",
        "retry.backoffSeconds",
        "retry.maxBackoffSeconds",
        "autoscaling.minReplicas",
        "maxFailedRatio",
    }


NUMBERS = [(path, node) for path, node in LEAVES if node["type"] in ("integer", "number")]
FAR = [(10**9, None), (-(10**9), None)]


@pytest.mark.parametrize(("path", "node"), NUMBERS, ids=lambda p: ".".join(p) if isinstance(p, tuple) else "")
def test_the_model_and_the_crd_take_the_same_range(job_doc: dict[str, Any], path: tuple[str, ...], node: Any) -> None:
    """At the schema's bounds, just beyond them and far away: a bound only one side has fails this."""
    for value, taken in [*_edges(node), *FAR]:
        document = _set(copy.deepcopy(job_doc), path, value)
        if path == ("autoscaling", "minReplicas"):
            document["spec"]["autoscaling"]["maxReplicas"] = max(1, int(value))
        model, schema = _accepted_by_both(document)
        assert model is schema, (path, value, model, schema)
        assert taken is None or model is taken, (path, value)


def _dumped(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = parse_job(document).spec.model_dump(by_alias=True)
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize(("path", "node"), LEAVES, ids=lambda p: ".".join(p) if isinstance(p, tuple) else "")
def test_the_model_and_the_crd_have_the_same_default(job_doc: dict[str, Any], path: tuple[str, ...], node: Any) -> None:
    if path[0] == "broker":
        return  # no broker section, no defaults in it
    document = copy.deepcopy(job_doc)
    parent = document["spec"]
    for key in path[:-1]:
        parent = parent.setdefault(key, {})
    if path[-1] in parent and "default" not in node:
        return  # required or set by the example: nothing to default
    parent.pop(path[-1], None)
    assert _dumped(document, path) == node.get("default"), path


@pytest.mark.parametrize(
    ("path", "node"),
    [(p, n) for p, n in LEAVES if "enum" in n],
    ids=lambda p: ".".join(p) if isinstance(p, tuple) else "",
)
def test_the_model_and_the_crd_take_the_same_choices(job_doc: dict[str, Any], path: tuple[str, ...], node: Any) -> None:
    for value in node["enum"]:
        assert _accepted_by_both(_set(copy.deepcopy(job_doc), path, value)) == (True, True), (path, value)
    assert _accepted_by_both(_set(copy.deepcopy(job_doc), path, "bogus")) == (False, False)


def _default(*path: str) -> Any:
    node = SPEC
    for key in path:
        node = node["properties"][key]
    return node["default"]


def test_the_worker_defaults_are_the_apis() -> None:
    assert RetryPolicy() == RetryPolicy(
        max_attempts=_default("retry", "maxAttempts"),
        backoff_seconds=_default("retry", "backoffSeconds"),
        max_backoff_seconds=_default("retry", "maxBackoffSeconds"),
    )
    config = WorkerConfig.from_env({"FILTERJOB_BROKER_URL": "amqp://localhost/", "FILTERJOB_QUEUE": "fj.a.b.c.tasks"})
    assert config.retry == RetryPolicy()
    assert config.concurrency == WorkerConfig(broker_url="", queue="").concurrency == _default("workers", "concurrency")
    assert config.prefetch == WorkerConfig(broker_url="", queue="").prefetch == config.concurrency + 1
    assert OutputFormat().quality == _default("destination", "quality")
    assert OutputFormat().format == _default("destination", "format")


@pytest.mark.parametrize(
    ("variable", "path"),
    [
        ("FILTERJOB_CONCURRENCY", ("workers", "concurrency")),
        ("FILTERJOB_MAX_ATTEMPTS", ("retry", "maxAttempts")),
        ("FILTERJOB_BACKOFF_SECONDS", ("retry", "backoffSeconds")),
        ("FILTERJOB_MAX_BACKOFF_SECONDS", ("retry", "maxBackoffSeconds")),
    ],
)
def test_the_worker_takes_every_value_the_api_takes(variable: str, path: tuple[str, ...]) -> None:
    node = dict(RANGED)[path]
    env = {"FILTERJOB_BROKER_URL": "amqp://localhost/", "FILTERJOB_QUEUE": "fj.a.b.c.tasks"}
    for value, taken in _edges(node):
        if taken:
            WorkerConfig.from_env({**env, variable: str(value), "FILTERJOB_PREFETCH": "10000"})


WHOLE_STEPS = [step for fdef in CATALOG.values() for step in sample_steps(fdef)]


@pytest.mark.slow  # cel-python walks each of the filter section's rules for each of these steps
@pytest.mark.parametrize("step", WHOLE_STEPS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_the_worker_and_the_crd_take_the_same_steps(job_doc: dict[str, Any], step: dict[str, Any]) -> None:
    """Every combination of parameters, at the edges of their ranges: the pipeline and the CRD agree."""
    job_doc["spec"]["filters"] = [step]
    assert (problems(job_doc) == []) is worker_accepts(step), (step, problems(job_doc))
