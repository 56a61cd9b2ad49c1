"""Structural schemas from pydantic models: each kind of field, constraint and marker."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from filterjob_operator.core.schemagen import model_schema, plain


class Inner(BaseModel):
    """An inner object."""

    name: str = Field(description="Its name.")


class Outer(BaseModel):
    """An outer object."""

    inner: Inner
    maybe: Inner | None = None
    mode: Literal["a", "b"] = Field(default="a", description="A mode.")
    tags: list[str] = Field(default_factory=list, min_length=1, max_length=3, description="Tags.")
    anything: dict[str, Any] = Field(default_factory=dict, description="Free-form.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    count: int = Field(default=2, ge=1, le=9, description="A count.")
    delay: float = Field(default=2.0, gt=0, le=60, description="A delay.")
    ratio: float = Field(default=0.5, description="A ratio.")
    flag: bool = Field(default=False, description="A flag.")
    text: str | None = Field(default=None, min_length=1, max_length=5, description="Some text.")
    uri: str = Field(description="A URI.", json_schema_extra={"pattern": "^x"})
    undocumented: int = 0


SCHEMA = model_schema(Outer)
PROPS = SCHEMA["properties"]


def test_an_object_is_described_by_its_docstring_and_requires_what_has_no_default() -> None:
    assert SCHEMA["type"] == "object"
    assert SCHEMA["description"] == "An outer object."
    assert SCHEMA["required"] == ["inner", "uri"]
    assert PROPS["inner"] == {
        "type": "object",
        "description": "An inner object.",
        "properties": {"name": {"type": "string", "description": "Its name."}},
        "required": ["name"],
    }
    assert PROPS["maybe"] == PROPS["inner"]  # optional: the same object, not required


def test_scalars_with_defaults_and_ranges() -> None:
    assert PROPS["count"] == {"type": "integer", "description": "A count.", "minimum": 1, "maximum": 9, "default": 2}
    assert PROPS["delay"] == {
        "type": "number",
        "description": "A delay.",
        "exclusiveMinimum": True,
        "minimum": 0,
        "maximum": 60,
        "default": 2,
    }
    assert type(PROPS["delay"]["default"]) is int  # 2.0 printed as 2
    assert PROPS["ratio"]["default"] == 0.5
    assert PROPS["flag"] == {"type": "boolean", "description": "A flag.", "default": False}
    assert PROPS["undocumented"] == {"type": "integer", "default": 0}


def test_enums_lists_maps_and_lengths() -> None:
    assert PROPS["mode"] == {"type": "string", "description": "A mode.", "enum": ["a", "b"], "default": "a"}
    assert PROPS["tags"] == {
        "type": "array",
        "description": "Tags.",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": 3,
    }
    assert PROPS["anything"] == {
        "type": "object",
        "description": "Free-form.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert PROPS["labels"] == {"type": "object", "description": "Labels.", "additionalProperties": {"type": "string"}}
    assert PROPS["text"] == {"type": "string", "description": "Some text.", "minLength": 1, "maxLength": 5}


def test_json_schema_extra_adds_markers() -> None:
    assert PROPS["uri"] == {"type": "string", "description": "A URI.", "pattern": "^x"}


def test_shaped_fields_keep_the_models_description_and_bounds() -> None:
    shaped = model_schema(
        Outer,
        shaped={"tags": {"type": "array", "items": {"type": "integer"}}, "inner.name": {"type": "string", "x": 1}},
        validations={"": [{"rule": "true"}], "inner": [{"rule": "false"}]},
    )
    assert shaped["properties"]["tags"] == {
        "type": "array",
        "description": "Tags.",
        "items": {"type": "integer"},
        "minItems": 1,
        "maxItems": 3,
    }
    inner = shaped["properties"]["inner"]
    assert inner["properties"]["name"] == {"type": "string", "description": "Its name.", "x": 1}
    assert inner["x-kubernetes-validations"] == [{"rule": "false"}]
    assert shaped["x-kubernetes-validations"] == [{"rule": "true"}]
    own = model_schema(Outer, shaped={"uri": {"type": "string", "description": "Given."}})
    assert own["properties"]["uri"]["description"] == "Given."


class Ambiguous(BaseModel):
    value: int | str


class Unknown(BaseModel):
    value: set[int]


class Odd(BaseModel):
    value: str = Field(pattern="^x")


class Callable_(BaseModel):
    value: str = Field(json_schema_extra=lambda schema: None)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (Ambiguous, "no structural schema"),
        (Unknown, "no schema for"),
        (Odd, "no schema for the constraint"),
        (Callable_, "json_schema_extra must be a mapping"),
    ],
)
def test_what_has_no_structural_schema_is_refused_not_dropped(model: type[BaseModel], says: str) -> None:
    with pytest.raises(TypeError, match=says):
        model_schema(model)


@pytest.mark.parametrize(("value", "shown"), [(2.0, 2), (2.5, 2.5), (3, 3), (True, True), ("x", "x")])
def test_plain(value: Any, shown: Any) -> None:
    assert plain(value) == shown
    assert type(plain(value)) is type(shown)


class Bounded(BaseModel):
    """Bounded mappings."""

    labels: dict[str, str] = Field(default_factory=dict, max_length=4, min_length=1, description="Labels.")


def test_a_mappings_bounds_count_its_properties() -> None:
    assert model_schema(Bounded)["properties"]["labels"] == {
        "type": "object",
        "description": "Labels.",
        "additionalProperties": {"type": "string"},
        "maxProperties": 4,
        "minProperties": 1,
    }
