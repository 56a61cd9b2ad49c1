"""Pipeline.parse: what is accepted (with defaults), and the exact message for everything rejected."""

from __future__ import annotations

import math
from typing import Any

import pytest

from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.errors import FilterJobError, SpecError
from filterjob_worker.core.pipeline import Pipeline

KNOWN = ", ".join(CATALOG)
BOX = "a list of 4 integers [left, top, right, bottom]"


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        Pipeline.parse(raw)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def params_of(step: dict[str, Any]) -> dict[str, Any]:
    (parsed,) = Pipeline.parse([step]).steps
    return dict(parsed.params)


# --- accepted ---------------------------------------------------------------------------------------------------------


def test_known_filters_are_listed_in_catalog_order() -> None:
    assert KNOWN.startswith("grayscale, blur, brightness, ")
    assert KNOWN.endswith(", rotate, flip, crop")


def test_empty_pipeline() -> None:
    pipeline = Pipeline.parse([])
    assert pipeline.steps == ()
    assert len(pipeline) == 0


def test_steps_keep_order_index_and_label() -> None:
    pipeline = Pipeline.parse([{"name": "grayscale"}, {"name": "blur"}, {"name": "crop", "box": [0, 0, 5, 5]}])
    assert len(pipeline) == 3
    assert [(s.index, s.filter.name, s.label) for s in pipeline.steps] == [
        (0, "grayscale", "filters[0] (grayscale)"),
        (1, "blur", "filters[1] (blur)"),
        (2, "crop", "filters[2] (crop)"),
    ]
    assert pipeline.steps[1].filter is CATALOG["blur"]


def test_tuple_of_steps_is_a_list() -> None:
    assert len(Pipeline.parse(({"name": "invert"},))) == 1


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"name": "grayscale"}, {}),
        ({"name": "blur"}, {"radius": 2.0}),
        ({"name": "sharpen"}, {"radius": 2.0, "percent": 150, "threshold": 3}),
        ({"name": "posterize"}, {"bits": 4}),
        ({"name": "autocontrast"}, {"cutoff": 0.0}),
        ({"name": "flip"}, {"direction": "horizontal"}),
        ({"name": "rotate", "angle": 45}, {"angle": 45.0, "expand": True}),
        ({"name": "resize", "width": 10}, {"width": 10, "resample": "lanczos"}),
        ({"name": "thumbnail", "height": 10}, {"height": 10}),
        ({"name": "crop", "box": [1, 2, 3, 4]}, {"box": (1, 2, 3, 4)}),
    ],
)
def test_defaults_are_filled_in(step: dict[str, Any], expected: dict[str, Any]) -> None:
    assert params_of(step) == expected


@pytest.mark.parametrize(
    ("step", "key", "value", "kind"),
    [
        # Integer parameters accept integral floats (YAML `2.0`) and return an int.
        ({"name": "posterize", "bits": 2.0}, "bits", 2, int),
        ({"name": "sharpen", "percent": 200.0}, "percent", 200, int),
        ({"name": "resize", "width": 64.0}, "width", 64, int),
        ({"name": "thumbnail", "width": 1.0}, "width", 1, int),
        # Float parameters accept ints and return a float.
        ({"name": "blur", "radius": 3}, "radius", 3.0, float),
        ({"name": "brightness", "factor": 0}, "factor", 0.0, float),
        ({"name": "resize", "scale": 2}, "scale", 2.0, float),
        ({"name": "rotate", "angle": -360}, "angle", -360.0, float),
        # Boxes accept integral floats like integer parameters do (and like JSON Schema "integer").
        ({"name": "crop", "box": [0.0, 0, 10.0, 10]}, "box", (0, 0, 10, 10), tuple),
        ({"name": "crop", "box": (0, 0, 10, 10)}, "box", (0, 0, 10, 10), tuple),
    ],
)
def test_values_are_coerced(step: dict[str, Any], key: str, value: Any, kind: type) -> None:
    got = params_of(step)[key]
    assert got == value
    assert type(got) is kind
    if kind is tuple:
        assert all(type(v) is int for v in got)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"name": "blur", "radius": 0}, {"radius": 0.0}),
        ({"name": "blur", "radius": 100}, {"radius": 100.0}),
        ({"name": "posterize", "bits": 1}, {"bits": 1}),
        ({"name": "posterize", "bits": 8}, {"bits": 8}),
        ({"name": "autocontrast", "cutoff": 49}, {"cutoff": 49.0}),
        ({"name": "resize", "scale": 0.01}, {"scale": 0.01, "resample": "lanczos"}),
        ({"name": "resize", "scale": 10}, {"scale": 10.0, "resample": "lanczos"}),
        ({"name": "resize", "width": 50_000, "height": 1}, {"width": 50_000, "height": 1, "resample": "lanczos"}),
        ({"name": "rotate", "angle": 360}, {"angle": 360.0, "expand": True}),
        ({"name": "crop", "box": [0, 0, 1_000_000, 1_000_000]}, {"box": (0, 0, 1_000_000, 1_000_000)}),
        ({"name": "crop", "box": [0, 0, 1, 1]}, {"box": (0, 0, 1, 1)}),
    ],
)
def test_range_limits_are_inclusive(step: dict[str, Any], expected: dict[str, Any]) -> None:
    # The bound itself is accepted and kept as given, not clamped or replaced by a default.
    assert params_of(step) == expected


def test_resize_defaults_do_not_count_as_given() -> None:
    # `resample` has a default, but only parameters the user wrote take part in the cross-parameter rule.
    assert params_of({"name": "resize", "scale": 0.5}) == {"scale": 0.5, "resample": "lanczos"}


# --- rejected ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "blur"}, "filters must be a list of steps, got {'name': 'blur'}"),
        ("blur", "filters must be a list of steps, got 'blur'"),
        (b"blur", "filters must be a list of steps, got b'blur'"),
        (None, "filters must be a list of steps, got None"),
        (3, "filters must be a list of steps, got 3"),
    ],
)
def test_not_a_list(raw: Any, message: str) -> None:
    assert problems_of(raw) == [message]


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        # item not a mapping
        ("blur", "filters[0]: must be a mapping with a 'name', got 'blur'"),
        (None, "filters[0]: must be a mapping with a 'name', got None"),
        (["blur"], "filters[0]: must be a mapping with a 'name', got ['blur']"),
        # name missing or unknown
        ({}, f"filters[0]: name is missing; known filters: {KNOWN}"),
        ({"radius": 2}, f"filters[0]: name is missing; known filters: {KNOWN}"),
        ({"name": None}, f"filters[0]: name is missing; known filters: {KNOWN}"),
        (
            {"name": "blurr"},
            f"filters[0]: name is unknown filter 'blurr' (did you mean 'blur'?); known filters: {KNOWN}",
        ),
        (
            {"name": "Sepia"},
            f"filters[0]: name is unknown filter 'Sepia' (did you mean 'sepia'?); known filters: {KNOWN}",
        ),
        ({"name": "xyzzy"}, f"filters[0]: name is unknown filter 'xyzzy'; known filters: {KNOWN}"),
        (
            {"name": "blur", "raduis": 2},
            "filters[0] (blur): unknown parameter 'raduis' (did you mean 'radius'?); parameters: radius",
        ),
        ({"name": "Blur"}, f"filters[0]: name is unknown filter 'Blur' (did you mean 'blur'?); known filters: {KNOWN}"),
        ({"name": 5}, f"filters[0]: name is unknown filter 5; known filters: {KNOWN}"),
        # unknown parameter
        (
            {"name": "blur", "sigma": 1},
            "filters[0] (blur): unknown parameter 'sigma'; parameters: radius",
        ),
        (
            {"name": "grayscale", "radius": 1},
            "filters[0] (grayscale): unknown parameter 'radius'; parameters: none",
        ),
        (
            {"name": "sharpen", "amount": 1},
            "filters[0] (sharpen): unknown parameter 'amount'; parameters: percent, radius, threshold",
        ),
        # missing required parameter
        ({"name": "rotate"}, "filters[0] (rotate): angle is required"),
        ({"name": "crop"}, "filters[0] (crop): box is required"),
        ({"name": "brightness"}, "filters[0] (brightness): factor is required"),
        ({"name": "contrast"}, "filters[0] (contrast): factor is required"),
        ({"name": "saturation"}, "filters[0] (saturation): factor is required"),
        # number: wrong type
        ({"name": "blur", "radius": "2"}, "filters[0] (blur): radius must be a number, got '2'"),
        ({"name": "blur", "radius": True}, "filters[0] (blur): radius must be a number, got True"),
        ({"name": "blur", "radius": None}, "filters[0] (blur): radius must be a number, got None"),
        ({"name": "blur", "radius": [2]}, "filters[0] (blur): radius must be a number, got [2]"),
        ({"name": "blur", "radius": math.nan}, "filters[0] (blur): radius must be a finite number, got nan"),
        ({"name": "blur", "radius": math.inf}, "filters[0] (blur): radius must be a finite number, got inf"),
        ({"name": "rotate", "angle": -math.inf}, "filters[0] (rotate): angle must be a finite number, got -inf"),
        # integer: wrong type
        ({"name": "posterize", "bits": 2.5}, "filters[0] (posterize): bits must be an integer, got 2.5"),
        ({"name": "posterize", "bits": "2"}, "filters[0] (posterize): bits must be an integer, got '2'"),
        ({"name": "posterize", "bits": False}, "filters[0] (posterize): bits must be an integer, got False"),
        ({"name": "posterize", "bits": math.nan}, "filters[0] (posterize): bits must be a finite number, got nan"),
        ({"name": "resize", "width": 10.5}, "filters[0] (resize): width must be an integer, got 10.5"),
        # number: out of range
        ({"name": "blur", "radius": -1}, "filters[0] (blur): radius must be between 0 and 100, got -1"),
        ({"name": "blur", "radius": 100.5}, "filters[0] (blur): radius must be between 0 and 100, got 100.5"),
        ({"name": "brightness", "factor": 11}, "filters[0] (brightness): factor must be between 0 and 10, got 11"),
        ({"name": "resize", "scale": 0.001}, "filters[0] (resize): scale must be between 0.01 and 10, got 0.001"),
        ({"name": "rotate", "angle": 361}, "filters[0] (rotate): angle must be between -360 and 360, got 361"),
        ({"name": "autocontrast", "cutoff": 50}, "filters[0] (autocontrast): cutoff must be between 0 and 49, got 50"),
        # integer: out of range
        ({"name": "posterize", "bits": 0}, "filters[0] (posterize): bits must be between 1 and 8, got 0"),
        ({"name": "posterize", "bits": 9}, "filters[0] (posterize): bits must be between 1 and 8, got 9"),
        ({"name": "posterize", "bits": 9.0}, "filters[0] (posterize): bits must be between 1 and 8, got 9"),
        ({"name": "sharpen", "percent": 501}, "filters[0] (sharpen): percent must be between 0 and 500, got 501"),
        ({"name": "resize", "width": 0}, "filters[0] (resize): width must be between 1 and 50000, got 0"),
        (
            {"name": "thumbnail", "height": 50_001},
            "filters[0] (thumbnail): height must be between 1 and 50000, got 50001",
        ),
        # bool
        (
            {"name": "rotate", "angle": 1, "expand": "yes"},
            "filters[0] (rotate): expand must be true or false, got 'yes'",
        ),
        ({"name": "rotate", "angle": 1, "expand": 1}, "filters[0] (rotate): expand must be true or false, got 1"),
        # choice
        (
            {"name": "flip", "direction": "diagonal"},
            "filters[0] (flip): direction must be one of horizontal, vertical, got 'diagonal'",
        ),
        (
            {"name": "flip", "direction": 1},
            "filters[0] (flip): direction must be one of horizontal, vertical, got 1",
        ),
        (
            {"name": "resize", "width": 10, "resample": "cubic"},
            "filters[0] (resize): resample must be one of nearest, bilinear, bicubic, lanczos, got 'cubic'",
        ),
        # box: shape and types
        ({"name": "crop", "box": [0, 0, 10]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, 10]"),
        ({"name": "crop", "box": [0, 0, 10, 10, 10]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, 10, 10, 10]"),
        ({"name": "crop", "box": []}, f"filters[0] (crop): box must be {BOX}, got []"),
        ({"name": "crop", "box": "0000"}, f"filters[0] (crop): box must be {BOX}, got '0000'"),
        ({"name": "crop", "box": 10}, f"filters[0] (crop): box must be {BOX}, got 10"),
        ({"name": "crop", "box": {"left": 0}}, f"filters[0] (crop): box must be {BOX}, got {{'left': 0}}"),
        ({"name": "crop", "box": [0, 0, 10.5, 10]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, 10.5, 10]"),
        ({"name": "crop", "box": ["0", 0, 10, 10]}, f"filters[0] (crop): box must be {BOX}, got ['0', 0, 10, 10]"),
        ({"name": "crop", "box": [0, 0, 10, True]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, 10, True]"),
        ({"name": "crop", "box": [0, 0, 10, None]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, 10, None]"),
        ({"name": "crop", "box": [0, 0, math.inf, 1]}, f"filters[0] (crop): box must be {BOX}, got [0, 0, inf, 1]"),
        # box: values
        (
            {"name": "crop", "box": [-1, 0, 10, 10]},
            "filters[0] (crop): box must be within 0..1000000, got [-1, 0, 10, 10]",
        ),
        (
            {"name": "crop", "box": [0, -5, 10, 10]},
            "filters[0] (crop): box must be within 0..1000000, got [0, -5, 10, 10]",
        ),
        (
            {"name": "crop", "box": [0, 0, 1_000_001, 10]},
            "filters[0] (crop): box must be within 0..1000000, got [0, 0, 1000001, 10]",
        ),
        (
            {"name": "crop", "box": [10, 0, 10, 10]},
            "filters[0] (crop): box must be a box with left < right and top < bottom, got [10, 0, 10, 10]",
        ),
        (
            {"name": "crop", "box": [20, 0, 10, 10]},
            "filters[0] (crop): box must be a box with left < right and top < bottom, got [20, 0, 10, 10]",
        ),
        (
            {"name": "crop", "box": [0, 10, 10, 5]},
            "filters[0] (crop): box must be a box with left < right and top < bottom, got [0, 10, 10, 5]",
        ),
        # resize and thumbnail rules
        ({"name": "resize"}, "filters[0] (resize): width, height or scale is required"),
        ({"name": "resize", "resample": "nearest"}, "filters[0] (resize): width, height or scale is required"),
        (
            {"name": "resize", "scale": 2, "width": 10},
            "filters[0] (resize): give either scale or width/height, not both",
        ),
        (
            {"name": "resize", "scale": 2, "height": 10},
            "filters[0] (resize): give either scale or width/height, not both",
        ),
        ({"name": "thumbnail"}, "filters[0] (thumbnail): width or height is required"),
    ],
)
def test_single_problem(step: Any, problem: str) -> None:
    assert problems_of([step]) == [problem]


def test_problem_names_the_step_index_and_filter() -> None:
    raw = [{"name": "grayscale"}, {"name": "edges"}, {"name": "blur", "radius": -1}]
    assert problems_of(raw) == ["filters[2] (blur): radius must be between 0 and 100, got -1"]


def test_every_problem_is_reported_together() -> None:
    raw = [
        {"name": "blur", "radius": -1},
        "sepia",
        {"name": "nope"},
        {"name": "grayscale"},
        {"name": "sharpen", "radius": "big", "percent": 1.5, "strength": 3},
        {"name": "rotate", "expand": "no"},
    ]
    expected = [
        "filters[0] (blur): radius must be between 0 and 100, got -1",
        "filters[1]: must be a mapping with a 'name', got 'sepia'",
        f"filters[2]: name is unknown filter 'nope'; known filters: {KNOWN}",
        "filters[4] (sharpen): unknown parameter 'strength'; parameters: percent, radius, threshold",
        "filters[4] (sharpen): radius must be a number, got 'big'",
        "filters[4] (sharpen): percent must be an integer, got 1.5",
        "filters[5] (rotate): angle is required",
        "filters[5] (rotate): expand must be true or false, got 'no'",
    ]
    with pytest.raises(SpecError) as info:
        Pipeline.parse(raw)
    assert info.value.problems == expected
    assert str(info.value) == "; ".join(expected)


def test_cross_parameter_rule_waits_for_valid_parameters() -> None:
    # With a bad parameter the rule is not checked, so the user is not told to add width to a step that has one.
    assert problems_of([{"name": "resize", "width": 0}]) == [
        "filters[0] (resize): width must be between 1 and 50000, got 0"
    ]
    assert problems_of([{"name": "thumbnail", "width": "big", "extra": 1}]) == [
        "filters[0] (thumbnail): unknown parameter 'extra'; parameters: height, width",
        "filters[0] (thumbnail): width must be an integer, got 'big'",
    ]


def test_spec_error_is_a_value_error_and_a_filterjob_error() -> None:
    with pytest.raises(SpecError) as info:
        Pipeline.parse([{"name": "nope"}])
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FilterJobError)


def test_spec_error_from_a_single_string() -> None:
    error = SpecError("just one")
    assert error.problems == ["just one"]
    assert str(error) == "just one"
