"""Every catalog filter, run through the pipeline, matches Pillow called directly, pixel for pixel."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from filterjob_worker.core.catalog import CATALOG, json_schema
from filterjob_worker.core.errors import PermanentTaskError, SpecError
from filterjob_worker.core.pipeline import Pipeline

W, H = 96, 64
BICUBIC = Image.Resampling.BICUBIC
LANCZOS = Image.Resampling.LANCZOS
# Written out here rather than imported, so a typo in the catalog's copy is caught.
SEPIA = (
    0.393, 0.769, 0.189, 0.0,
    0.349, 0.686, 0.168, 0.0,
    0.272, 0.534, 0.131, 0.0,
)  # fmt: skip


def _rgb_image() -> Image.Image:
    rng = random.Random(1234)
    noise = Image.frombytes("L", (W, H), rng.randbytes(W * H))
    across = Image.linear_gradient("L").rotate(90).resize((W, H))
    down = Image.linear_gradient("L").resize((W, H))
    # Squeeze every band into 20..220 so autocontrast (with and without cutoff) has real work to do.
    image = Image.merge("RGB", (across, down, noise)).point(lambda v: 20 + v * 200 // 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 8, 40, 30), fill=(210, 30, 40))
    draw.ellipse((50, 20, 90, 60), fill=(30, 190, 60), outline=(25, 25, 25), width=2)
    draw.line((0, H - 1, W - 1, 0), fill=(215, 215, 215), width=3)
    draw.rectangle((0, 40, 20, 63), fill=(60, 70, 80))
    return image


def _alpha_band() -> Image.Image:
    alpha = Image.linear_gradient("L").rotate(45).resize((W, H))
    draw = ImageDraw.Draw(alpha)
    draw.rectangle((60, 0, 95, 12), fill=0)  # fully transparent
    draw.rectangle((0, 0, 12, 12), fill=255)  # fully opaque
    return alpha


@pytest.fixture(scope="module")
def rgb() -> Image.Image:
    return _rgb_image()


@pytest.fixture(scope="module")
def alpha() -> Image.Image:
    return _alpha_band()


def run(steps: list[dict[str, Any]], image: Image.Image) -> Image.Image:
    return Pipeline.parse(steps).apply(image)


def assert_same(actual: Image.Image, expected: Image.Image) -> None:
    assert actual.mode == expected.mode
    assert actual.size == expected.size
    assert actual.tobytes() == expected.tobytes()


@dataclass(frozen=True)
class Case:
    id: str
    step: dict[str, Any]
    reference: Callable[[Image.Image], Image.Image]

    @property
    def filter(self) -> str:
        return str(self.step["name"])


def _thumbnail(size: tuple[int, int]) -> Callable[[Image.Image], Image.Image]:
    def thumb(im: Image.Image) -> Image.Image:
        out = im.copy()
        out.thumbnail(size)
        return out

    return thumb


# Sizes are written out (for the 96x64 fixture) instead of recomputed, so the aspect rules are checked too.
CASES = [
    Case("grayscale", {"name": "grayscale"}, ImageOps.grayscale),
    Case("blur-default", {"name": "blur"}, lambda im: im.filter(ImageFilter.GaussianBlur(2.0))),
    Case("blur-radius", {"name": "blur", "radius": 0.7}, lambda im: im.filter(ImageFilter.GaussianBlur(0.7))),
    Case("blur-zero", {"name": "blur", "radius": 0}, lambda im: im.filter(ImageFilter.GaussianBlur(0))),
    Case("brightness", {"name": "brightness", "factor": 1.6}, lambda im: ImageEnhance.Brightness(im).enhance(1.6)),
    Case("brightness-0", {"name": "brightness", "factor": 0}, lambda im: ImageEnhance.Brightness(im).enhance(0)),
    Case("contrast", {"name": "contrast", "factor": 0.4}, lambda im: ImageEnhance.Contrast(im).enhance(0.4)),
    Case("saturation", {"name": "saturation", "factor": 2.5}, lambda im: ImageEnhance.Color(im).enhance(2.5)),
    Case("saturation-0", {"name": "saturation", "factor": 0}, lambda im: ImageEnhance.Color(im).enhance(0)),
    Case("sharpen-default", {"name": "sharpen"}, lambda im: im.filter(ImageFilter.UnsharpMask(2.0, 150, 3))),
    Case(
        "sharpen-custom",
        {"name": "sharpen", "radius": 1.5, "percent": 300, "threshold": 0},
        lambda im: im.filter(ImageFilter.UnsharpMask(radius=1.5, percent=300, threshold=0)),
    ),
    Case("edges", {"name": "edges"}, lambda im: im.filter(ImageFilter.FIND_EDGES)),
    Case("emboss", {"name": "emboss"}, lambda im: im.filter(ImageFilter.EMBOSS)),
    Case("invert", {"name": "invert"}, ImageOps.invert),
    Case("sepia", {"name": "sepia"}, lambda im: im.convert("RGB").convert("RGB", SEPIA)),
    Case("posterize-default", {"name": "posterize"}, lambda im: ImageOps.posterize(im, 4)),
    Case("posterize-2", {"name": "posterize", "bits": 2}, lambda im: ImageOps.posterize(im, 2)),
    Case("autocontrast-default", {"name": "autocontrast"}, lambda im: ImageOps.autocontrast(im, cutoff=0)),
    Case(
        "autocontrast-cutoff",
        {"name": "autocontrast", "cutoff": 2.5},
        lambda im: ImageOps.autocontrast(im, cutoff=2.5),
    ),
    Case("equalize", {"name": "equalize"}, ImageOps.equalize),
    # resize: width only and height only keep the aspect ratio (rounded), both are exact, scale scales both.
    Case("resize-width", {"name": "resize", "width": 48}, lambda im: im.resize((48, 32), LANCZOS)),
    Case("resize-width-round", {"name": "resize", "width": 50}, lambda im: im.resize((50, 33), LANCZOS)),
    Case("resize-height", {"name": "resize", "height": 40}, lambda im: im.resize((60, 40), LANCZOS)),
    Case("resize-height-up", {"name": "resize", "height": 100}, lambda im: im.resize((150, 100), LANCZOS)),
    Case("resize-both", {"name": "resize", "width": 30, "height": 70}, lambda im: im.resize((30, 70), LANCZOS)),
    Case("resize-scale", {"name": "resize", "scale": 0.5}, lambda im: im.resize((48, 32), LANCZOS)),
    Case("resize-scale-round", {"name": "resize", "scale": 1.3}, lambda im: im.resize((125, 83), LANCZOS)),
    Case("resize-scale-min", {"name": "resize", "scale": 0.01}, lambda im: im.resize((1, 1), LANCZOS)),
    *(
        Case(
            f"resize-{name}", {"name": "resize", "width": 40, "resample": name}, lambda im, r=r: im.resize((40, 27), r)
        )
        for name, r in [
            ("nearest", Image.Resampling.NEAREST),
            ("bilinear", Image.Resampling.BILINEAR),
            ("bicubic", Image.Resampling.BICUBIC),
            ("lanczos", Image.Resampling.LANCZOS),
        ]
    ),
    Case("thumbnail-width", {"name": "thumbnail", "width": 48}, _thumbnail((48, 50_000))),
    Case("thumbnail-height", {"name": "thumbnail", "height": 20}, _thumbnail((50_000, 20))),
    Case("thumbnail-both", {"name": "thumbnail", "width": 40, "height": 40}, _thumbnail((40, 40))),
    Case("rotate", {"name": "rotate", "angle": 30}, lambda im: im.rotate(30, resample=BICUBIC, expand=True)),
    Case(
        "rotate-no-expand",
        {"name": "rotate", "angle": -12.5, "expand": False},
        lambda im: im.rotate(-12.5, resample=BICUBIC, expand=False),
    ),
    Case("rotate-90", {"name": "rotate", "angle": 90}, lambda im: im.rotate(90, resample=BICUBIC, expand=True)),
    Case("flip-default", {"name": "flip"}, ImageOps.mirror),
    Case("flip-horizontal", {"name": "flip", "direction": "horizontal"}, ImageOps.mirror),
    Case("flip-vertical", {"name": "flip", "direction": "vertical"}, ImageOps.flip),
    Case("crop", {"name": "crop", "box": [5, 7, 60, 50]}, lambda im: im.crop((5, 7, 60, 50))),
    Case("crop-whole", {"name": "crop", "box": [0, 0, W, H]}, lambda im: im.crop((0, 0, W, H))),
]
COLOUR = [c for c in CASES if not CATALOG[c.filter].geometric]
GEOMETRIC = [c for c in CASES if CATALOG[c.filter].geometric]


def cases(selected: list[Case]) -> Any:
    return pytest.mark.parametrize("case", selected, ids=[c.id for c in selected])


def test_every_filter_has_a_comparison_case() -> None:
    assert {c.filter for c in CASES} == set(CATALOG)
    assert len({c.id for c in CASES}) == len(CASES)


def test_fixture_is_deterministic(rgb: Image.Image) -> None:
    assert _rgb_image().tobytes() == rgb.tobytes()
    assert rgb.size == (W, H)
    assert len(rgb.getcolors(W * H) or []) > 1000  # noisy enough to tell filters apart


@cases(CASES)
def test_rgb_matches_pillow(case: Case, rgb: Image.Image) -> None:
    before = rgb.tobytes()
    assert_same(run([case.step], rgb), case.reference(rgb))
    assert rgb.tobytes() == before  # the input is never modified (thumbnail works in place in Pillow)


@cases(CASES)
def test_l_input_matches_pillow(case: Case, rgb: Image.Image) -> None:
    gray = rgb.convert("L")
    out = run([case.step], gray)
    assert_same(out, case.reference(gray))
    assert out.mode == ("RGB" if case.filter == "sepia" else "L")


@cases(COLOUR)
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_colour_filters_keep_alpha_and_process_colour_bands_like_pillow(
    case: Case, mode: str, rgb: Image.Image, alpha: Image.Image
) -> None:
    colour = rgb.convert(mode[:-1])
    image = colour.copy()
    image.putalpha(alpha)
    expected = case.reference(colour)

    out = run([case.step], image)

    assert out.mode == expected.mode + "A"
    assert out.size == expected.size
    assert out.getchannel("A").tobytes() == alpha.tobytes()
    bands = Image.merge(expected.mode, out.split()[:-1])
    assert bands.tobytes() == expected.tobytes()


def test_grayscale_on_rgba_gives_la(rgb: Image.Image, alpha: Image.Image) -> None:
    image = rgb.copy()
    image.putalpha(alpha)
    out = run([{"name": "grayscale"}], image)
    assert out.mode == "LA"
    assert out.getchannel("L").tobytes() == ImageOps.grayscale(rgb).tobytes()
    assert out.getchannel("A").tobytes() == alpha.tobytes()


def test_sepia_on_la_gives_rgba(rgb: Image.Image, alpha: Image.Image) -> None:
    image = rgb.convert("L")
    image.putalpha(alpha)
    out = run([{"name": "sepia"}], image)
    assert out.mode == "RGBA"
    assert out.convert("RGB").tobytes() == rgb.convert("L").convert("RGB").convert("RGB", SEPIA).tobytes()
    assert out.getchannel("A").tobytes() == alpha.tobytes()


@cases(GEOMETRIC)
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_geometric_filters_move_alpha_with_the_pixels(
    case: Case, mode: str, rgb: Image.Image, alpha: Image.Image
) -> None:
    image = rgb.convert(mode[:-1])
    image.putalpha(alpha)

    out = run([case.step], image)

    assert_same(out, case.reference(image))
    # The alpha band undergoes exactly the same geometric transform as a stand-alone band would.
    assert_same(out.getchannel("A"), case.reference(alpha))


@pytest.mark.parametrize(
    "step",
    [
        {"name": "thumbnail", "width": 500},
        {"name": "thumbnail", "height": 65},
        {"name": "thumbnail", "width": W, "height": H},
        {"name": "thumbnail", "width": 50_000, "height": 50_000},
    ],
)
def test_thumbnail_never_enlarges(step: dict[str, Any], rgb: Image.Image) -> None:
    assert_same(run([step], rgb), rgb)


def test_thumbnail_keeps_aspect_ratio_within_the_box(rgb: Image.Image) -> None:
    out = run([{"name": "thumbnail", "width": 40, "height": 40}], rgb)
    assert out.size == (40, 27)


def test_resize_scale_never_yields_an_empty_image() -> None:
    tall = Image.new("RGB", (10, 1000))
    assert run([{"name": "resize", "scale": 0.01}], tall).size == (1, 10)


def test_steps_apply_in_order(rgb: Image.Image) -> None:
    steps = [{"name": "crop", "box": [0, 0, 50, 40]}, {"name": "grayscale"}, {"name": "flip", "direction": "vertical"}]
    assert_same(run(steps, rgb), ImageOps.flip(ImageOps.grayscale(rgb.crop((0, 0, 50, 40)))))


@pytest.mark.parametrize(
    ("box", "index", "steps_before"),
    [
        ([0, 0, W + 1, H], 0, []),
        ([0, 0, 10, H + 1], 0, []),
        ([50, 50, 200, 300], 0, []),
        # After the first step the image is 48x32: the size in the message is the size at that step.
        ([0, 0, 49, 10], 1, [{"name": "resize", "width": 48}]),
    ],
)
def test_crop_outside_the_image_fails_the_task(
    box: list[int], index: int, steps_before: list[dict[str, Any]], rgb: Image.Image
) -> None:
    size = "48x32" if steps_before else f"{W}x{H}"
    with pytest.raises(PermanentTaskError) as info:
        run([*steps_before, {"name": "crop", "box": box}], rgb)
    assert str(info.value) == f"filters[{index}] (crop): box {box} exceeds the {size} image"


# --- JSON Schema ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_json_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    assert [s["title"] for s in schema["items"]["oneOf"]] == list(CATALOG)


def test_json_schema_describes_every_parameter() -> None:
    for item in json_schema()["items"]["oneOf"]:
        fdef = CATALOG[item["title"]]
        assert set(item["properties"]) == {"name", *fdef.param_names}
        assert item["required"] == ["name", *(p.name for p in fdef.params if p.required)]
        assert item["additionalProperties"] is False


GOOD: list[Any] = [
    [],
    [{"name": "grayscale"}, {"name": "blur"}],
    # number
    [{"name": "blur", "radius": 0}],
    [{"name": "blur", "radius": 100}],
    [{"name": "blur", "radius": 2.5}],
    [{"name": "brightness", "factor": 1}],
    [{"name": "resize", "scale": 0.01}],
    [{"name": "rotate", "angle": -360}],
    # integer
    [{"name": "posterize", "bits": 1}],
    [{"name": "posterize", "bits": 8}],
    [{"name": "posterize", "bits": 3.0}],
    [{"name": "sharpen", "percent": 500, "threshold": 0, "radius": 50}],
    [{"name": "resize", "width": 1}],
    [{"name": "resize", "width": 50_000, "height": 50_000, "resample": "nearest"}],
    [{"name": "thumbnail", "height": 10}],
    # bool
    [{"name": "rotate", "angle": 10, "expand": False}],
    # choice
    [{"name": "flip", "direction": "vertical"}],
    [{"name": "resize", "scale": 2, "resample": "bicubic"}],
    # box
    [{"name": "crop", "box": [0, 0, 1, 1]}],
    [{"name": "crop", "box": [0, 0, 1_000_000, 1_000_000]}],
    [{"name": "crop", "box": [0, 0, 10.0, 10]}],
]

BAD: list[Any] = [
    {"name": "blur"},
    "blur",
    None,
    ["blur"],
    [None],
    [{}],
    [{"name": "nope"}],
    [{"name": 5}],
    [{"name": None}],
    [{"name": "grayscale", "radius": 1}],
    [{"name": "blur", "sigma": 1}],
    [{"name": "blur"}, {"name": "blur", "radius": -1}],
    # number
    [{"name": "blur", "radius": -0.1}],
    [{"name": "blur", "radius": 100.5}],
    [{"name": "blur", "radius": "2"}],
    [{"name": "blur", "radius": True}],
    [{"name": "blur", "radius": None}],
    [{"name": "blur", "radius": math.inf}],
    [{"name": "blur", "radius": -math.inf}],
    [{"name": "resize", "scale": 0.001}],
    [{"name": "rotate", "angle": 361}],
    # integer
    [{"name": "posterize", "bits": 0}],
    [{"name": "posterize", "bits": 9}],
    [{"name": "posterize", "bits": 3.5}],
    [{"name": "posterize", "bits": "3"}],
    [{"name": "posterize", "bits": False}],
    [{"name": "resize", "width": 0}],
    [{"name": "resize", "height": 50_001}],
    # bool
    [{"name": "rotate", "angle": 10, "expand": "yes"}],
    [{"name": "rotate", "angle": 10, "expand": 1}],
    # choice
    [{"name": "flip", "direction": "diagonal"}],
    [{"name": "flip", "direction": 1}],
    [{"name": "resize", "width": 10, "resample": "cubic"}],
    # box
    [{"name": "crop", "box": [0, 0, 10]}],
    [{"name": "crop", "box": [0, 0, 10, 10, 10]}],
    [{"name": "crop", "box": [-1, 0, 10, 10]}],
    [{"name": "crop", "box": [0, 0, 1_000_001, 10]}],
    [{"name": "crop", "box": [0, 0, 10.5, 10]}],
    [{"name": "crop", "box": ["0", 0, 10, 10]}],
    [{"name": "crop", "box": [0, 0, 10, True]}],
    [{"name": "crop", "box": "0,0,10,10"}],
    [{"name": "crop", "box": {"left": 0}}],
    # required
    [{"name": "rotate"}],
    [{"name": "crop"}],
    [{"name": "brightness"}],
]

# Not expressible in the schema (cross-parameter or cross-item rules), so the schema accepts them and only
# Pipeline.parse rejects them; listed to document the gap, and checked to be exactly that gap.
SCHEMA_ONLY: list[Any] = [
    [{"name": "resize"}],
    [{"name": "resize", "resample": "nearest"}],
    [{"name": "resize", "scale": 2, "width": 10}],
    [{"name": "thumbnail"}],
    [{"name": "crop", "box": [10, 0, 10, 10]}],
    [{"name": "crop", "box": [0, 20, 10, 10]}],
    # NaN is not JSON, and every comparison with it is false, so minimum/maximum let it through.
    [{"name": "blur", "radius": math.nan}],
]


def parses(steps: Any) -> bool:
    try:
        Pipeline.parse(steps)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(
    ("steps", "valid"),
    [*((s, True) for s in GOOD), *((s, False) for s in BAD)],
    ids=[*(f"good{i}" for i in range(len(GOOD))), *(f"bad{i}" for i in range(len(BAD)))],
)
def test_json_schema_agrees_with_pipeline_parse(
    steps: Any, valid: bool, validator: jsonschema.Draft202012Validator
) -> None:
    assert validator.is_valid(steps) is valid
    assert parses(steps) is valid


@pytest.mark.parametrize("steps", SCHEMA_ONLY, ids=[f"gap{i}" for i in range(len(SCHEMA_ONLY))])
def test_rules_the_schema_cannot_express(steps: Any, validator: jsonschema.Draft202012Validator) -> None:
    assert validator.is_valid(steps)
    assert not parses(steps)
