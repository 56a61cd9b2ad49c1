"""OpenAPI v3 structural schemas generated from the API's pydantic models (pure).

As controller-gen makes a CRD's schema from Go types, the FilterJob CRD's ``spec``
section is made from ``spec.FilterJobSpec``: types, defaults, ranges, lengths, required
fields and descriptions (a model's docstring describes its object, a field's
``description`` the field) are said once, in the models. A field's
``json_schema_extra`` adds what the model checks in a validator of its own (a URI's
pattern, the format aliases). Fields whose CRD shape is not the model's (the filter
steps, the Kubernetes-typed pod fields) come ``shaped``: their whole schema, by path.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

Schema = dict[str, Any]
#: A field's path below the root model, as YAML spells it: ``workers.podLabels``; ``""`` is the root.
Path = str
_SCALARS: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_PRESERVED: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def plain(value: Any) -> Any:
    """A number as YAML should print it: 2.0 as 2 (JSON Schema numbers have no int/float split)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def object_schema(
    description: str, properties: Schema, *, required: list[str] | None = None, extra: Schema | None = None
) -> Schema:
    """A hand-written object schema (for what no model describes), its description first as the CRD prints it."""
    out: Schema = {"type": "object", "description": description, "properties": properties, **(extra or {})}
    if required:
        out["required"] = required
    return out


def model_schema(
    model: type[BaseModel],
    *,
    shaped: Mapping[Path, Schema] | None = None,
    validations: Mapping[Path, list[Schema]] | None = None,
    at: Path = "",
) -> Schema:
    """The object schema of a model; ``validations``: CEL rules (``x-kubernetes-validations``) by path."""
    shaped, validations = shaped or {}, validations or {}
    properties: Schema = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        where = f"{at}.{key}" if at else key
        properties[key] = field_schema(field, where, shaped=shaped, validations=validations)
        if field.is_required():
            required.append(key)
    out: Schema = {"type": "object"}
    if doc := model.__dict__.get("__doc__"):
        out["description"] = " ".join(doc.split())
    out["properties"] = properties
    if rules := validations.get(at):
        out["x-kubernetes-validations"] = list(rules)
    if required:
        out["required"] = required
    return out


def field_schema(
    field: FieldInfo, where: Path, *, shaped: Mapping[Path, Schema], validations: Mapping[Path, list[Schema]]
) -> Schema:
    if where in shaped:
        given = dict(shaped[where])
        out: Schema = {"type": given.pop("type")}
        if field.description and "description" not in given:
            out["description"] = field.description
        return {**out, **given, **_constraints(field, out["type"])}
    kind = _type_schema(field.annotation, where, shaped=shaped, validations=validations)
    if kind.get("properties") is not None:
        return kind  # a nested model: its docstring describes it
    out = {"type": kind.pop("type")}
    if field.description:
        out["description"] = field.description
    out.update(kind)
    out.update(_constraints(field, out["type"]))
    extra = field.json_schema_extra
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"{where}: json_schema_extra must be a mapping")
        out.update(extra)
    if not field.is_required() and field.default_factory is None and field.default is not None:
        out["default"] = plain(field.default)
    return out


def _type_schema(
    annotation: Any, where: Path, *, shaped: Mapping[Path, Schema], validations: Mapping[Path, list[Schema]]
) -> Schema:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"{where}: a union of {present} has no structural schema")
        return _type_schema(present[0], where, shaped=shaped, validations=validations)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_schema(annotation, shaped=shaped, validations=validations, at=where)
    if origin is Literal and all(isinstance(a, str) for a in args):
        return {"type": "string", "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], f"{where}[]", shaped=shaped, validations=validations)}
    if origin is dict and args[1] is Any:
        return dict(_PRESERVED)
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], where, shaped={}, validations={})}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    raise TypeError(f"{where}: no schema for {annotation!r}; give one in shaped")


def _constraints(field: FieldInfo, kind: str) -> Schema:
    """The field's bounds (pydantic keeps them as annotated_types metadata) in OpenAPI v3.0 terms."""
    out: Schema = {}
    sized = {"array": "Items", "object": "Properties"}.get(kind, "Length")
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Gt):
            out.update(exclusiveMinimum=True, minimum=plain(bound.gt))
        elif isinstance(bound, annotated_types.Ge):
            out["minimum"] = plain(bound.ge)
        elif isinstance(bound, annotated_types.Le):
            out["maximum"] = plain(bound.le)
        elif isinstance(bound, annotated_types.MinLen):
            out[f"min{sized}"] = bound.min_length
        elif isinstance(bound, annotated_types.MaxLen):
            out[f"max{sized}"] = bound.max_length
        else:
            raise TypeError(f"{field}: no schema for the constraint {bound!r}")
    return out
