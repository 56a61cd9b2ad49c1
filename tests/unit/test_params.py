"""Parameter kinds: summary() and schema() (coercion is covered through Pipeline.parse in test_pipeline)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.params import BoolParam, BoxParam, ChoiceParam, NumberParam, Param, ParamError

ALL_PARAMS = [(f.name, p) for f in CATALOG.values() for p in f.params]
PARAM_IDS = [f"{name}.{p.name}" for name, p in ALL_PARAMS]


@pytest.mark.parametrize(
    ("param", "summary"),
    [
        (NumberParam(name="r", description="d", minimum=0, maximum=100, default=2.0), "float 0..100, default 2.0"),
        (NumberParam(name="r", description="d", minimum=0.5, maximum=1.5), "float 0.5..1.5, optional"),
        (NumberParam(name="r", description="d", minimum=-1.0, maximum=1.0, required=True), "float -1..1, required"),
        (NumberParam(name="n", description="d", minimum=1, maximum=8, integer=True, default=4), "int 1..8, default 4"),
        (NumberParam(name="n", description="d", minimum=0, maximum=5, integer=True, default=0), "int 0..5, default 0"),
        (BoolParam(name="b", description="d"), "bool, optional"),
        (BoolParam(name="b", description="d", default=True), "bool, default True"),
        (BoolParam(name="b", description="d", default=False), "bool, default False"),
        (ChoiceParam(name="c", description="d", choices=("a", "b"), default="a"), "a | b, default 'a'"),
        (ChoiceParam(name="c", description="d", choices=("x",), required=True), "x, required"),
        (BoxParam(name="box", description="d", required=True), "[left, top, right, bottom], required"),
        (BoxParam(name="box", description="d"), "[left, top, right, bottom], optional"),
    ],
)
def test_summary(param: Param, summary: str) -> None:
    assert param.summary() == summary


@pytest.mark.parametrize(
    ("param", "schema"),
    [
        (
            NumberParam(name="r", description="Radius.", minimum=0.0, maximum=100.0, default=2.0),
            {"type": "number", "minimum": 0, "maximum": 100, "description": "Radius.", "default": 2.0},
        ),
        (
            NumberParam(name="s", description="Scale.", minimum=0.01, maximum=10),
            {"type": "number", "minimum": 0.01, "maximum": 10, "description": "Scale."},
        ),
        (
            NumberParam(name="n", description="Bits.", minimum=1, maximum=8, integer=True, default=0),
            {"type": "integer", "minimum": 1, "maximum": 8, "description": "Bits.", "default": 0},
        ),
        (
            BoolParam(name="b", description="Expand.", default=False),
            {"type": "boolean", "description": "Expand.", "default": False},
        ),
        (
            ChoiceParam(name="c", description="Axis.", choices=("h", "v")),
            {"type": "string", "enum": ["h", "v"], "description": "Axis."},
        ),
        (
            BoxParam(name="box", description="Box.", maximum=500, required=True),
            {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 500},
                "minItems": 4,
                "maxItems": 4,
                "description": "Box.",
            },
        ),
    ],
)
def test_schema(param: Param, schema: dict[str, Any]) -> None:
    got = param.schema()
    assert got == schema
    # Whole-number bounds are written as ints so the schema reads "0..100", not "0.0..100.0".
    for key in ("minimum", "maximum"):
        if key in got:
            assert type(got[key]) is type(schema[key])


def test_box_maximum_is_enforced() -> None:
    box = BoxParam(name="box", description="Box.", maximum=500)
    assert box.coerce([0, 0, 500, 500]) == (0, 0, 500, 500)
    with pytest.raises(ParamError, match=r"^box must be within 0\.\.500, got \[0, 0, 501, 10\]$"):
        box.coerce([0, 0, 501, 10])


@pytest.mark.parametrize(("filter_name", "param"), ALL_PARAMS, ids=PARAM_IDS)
def test_every_default_is_valid_for_its_own_parameter(filter_name: str, param: Param) -> None:
    if param.default is None:
        assert "default" not in param.schema()
        return
    assert not param.required
    assert param.coerce(param.default) == param.default
    jsonschema.Draft202012Validator(param.schema()).validate(param.default)
    assert param.schema()["default"] == param.default


@pytest.mark.parametrize(("filter_name", "param"), ALL_PARAMS, ids=PARAM_IDS)
def test_every_catalog_parameter_is_documented(filter_name: str, param: Param) -> None:
    assert param.description
    assert param.schema()["description"] == param.description
    assert param.summary()


def test_param_error_is_a_value_error_starting_with_the_name() -> None:
    param = ChoiceParam(name="mode", description="d", choices=("a",))
    with pytest.raises(ParamError) as info:
        param.coerce("b")
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "mode must be one of a, got 'b'"


def test_base_param_is_abstract() -> None:
    param = Param(name="p", description="d")
    with pytest.raises(NotImplementedError):
        param.coerce(1)
    with pytest.raises(NotImplementedError):
        param.schema()
    with pytest.raises(NotImplementedError):
        param.summary()
