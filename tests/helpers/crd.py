"""The CRD's checks without a cluster: its schema by a JSON Schema validator (OpenAPI v3 structural
schemas are draft-4 compatible) and its CEL rules by cel-python, values typed as the API server types
them (``number`` fields are doubles)."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import celpy
import jsonschema

from filterjob_operator.core.crd import build_crd
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.filterdef import FilterDef
from filterjob_worker.core.params import BoolParam, BoxParam, ChoiceParam, NumberParam, Param
from filterjob_worker.core.pipeline import Pipeline

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


@functools.cache
def program(rule: str) -> Any:
    """A CEL rule compiled once (the same rules are evaluated for thousands of cases)."""
    return CEL.program(CEL.compile(rule))


@functools.cache
def _validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(SCHEMA)


def cel_problems(schema: dict[str, Any], value: Any, old: Any = None) -> list[str]:
    """Messages of every CEL rule that fails, walking the schema like the API server."""
    problems: list[str] = []
    rules = schema.get("x-kubernetes-validations", [])
    context = {"self": celpy.json_to_cel(typed(schema, value))} if rules else {}
    if rules and old is not None:
        context["oldSelf"] = celpy.json_to_cel(typed(schema, old))
    for rule in rules:
        if "oldSelf" in rule["rule"] and old is None:
            continue  # transition rules only run on updates
        if not program(rule["rule"]).evaluate(context):
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
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(document)]
    return found or cel_problems(SCHEMA, document, old)


def sample_values(param: Param) -> list[Any]:
    """Values the parameter's own schema accepts: the edges of its range, boxes in and out of order."""
    if isinstance(param, NumberParam):
        return [param.minimum, param.maximum]
    if isinstance(param, ChoiceParam):
        return sorted({param.choices[0], param.choices[-1]})
    if isinstance(param, BoolParam):
        return [True, False]
    if isinstance(param, BoxParam):
        return [[0, 0, 1, 1], [1, 0, 0, 1], [0, 1, 1, 1], [0, 0, param.maximum, param.maximum]]
    raise AssertionError(f"no sample values for {type(param).__name__}")


def sample_steps(fdef: FilterDef) -> list[dict[str, Any]]:
    """Every combination of the filter's parameters given or not, each with every sample value."""
    steps = []
    for count in range(len(fdef.params) + 1):
        for chosen in itertools.combinations(fdef.params, count):
            for values in itertools.product(*(sample_values(p) for p in chosen)):
                steps.append({"name": fdef.name, **{p.name: v for p, v in zip(chosen, values, strict=True)}})
    return steps


def worker_accepts(step: dict[str, Any]) -> bool:
    """Whether the worker's pipeline takes ``step`` (what the CRD must agree with)."""
    try:
        Pipeline.parse([step])
    except SpecError:
        return False
    return True
