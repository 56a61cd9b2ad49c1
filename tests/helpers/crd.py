"""The CRD's checks without a cluster: its schema by a JSON Schema validator (OpenAPI v3 structural
schemas are draft-4 compatible) and its CEL rules by cel-python, values typed as the API server types
them (``number`` fields are doubles)."""

from __future__ import annotations

import functools
from typing import Any

import celpy
import jsonschema

from filterjob_operator.crd import build_crd

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
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"] and old is None:
            continue  # transition rules only run on updates
        context = {"self": celpy.json_to_cel(typed(schema, value))}
        if old is not None:
            context["oldSelf"] = celpy.json_to_cel(typed(schema, old))
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
