"""The filter catalog: the single source of truth for filter names and parameters.

Every filter is a :class:`~filterjob_worker.core.filterdef.FilterDef` in :data:`CATALOG`. The pipeline validates
steps against it, ``filterjob filters`` prints it, and :func:`json_schema`
describes it for the CRD; a filter added here appears everywhere at once. A
filter's rules across its parameters are :class:`~filterjob_worker.core.params.Rule`
objects: the pipeline runs their Python check, the CRD gets their CEL twin.

Filters receive an image in mode ``L`` or ``RGB`` (the pipeline strips and later
restores an alpha band) unless they are ``geometric``, in which case they receive
``L``, ``LA``, ``RGB`` or ``RGBA`` and move the alpha band with the pixels.
"""

from __future__ import annotations

from collections.abc import Mapping

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from filterjob_worker.core.errors import PermanentTaskError
from filterjob_worker.core.filterdef import FilterDef, Params, not_with, one_given
from filterjob_worker.core.params import (
    BoolParam,
    BoxParam,
    ChoiceParam,
    JSONSchema,
    NumberParam,
)

MAX_SIDE = 50_000
RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# The classic sepia matrix (Microsoft's), as an RGB -> RGB colour transform.
SEPIA_MATRIX = (
    0.393, 0.769, 0.189, 0.0,
    0.349, 0.686, 0.168, 0.0,
    0.272, 0.534, 0.131, 0.0,
)  # fmt: skip


def _factor(description: str) -> NumberParam:
    return NumberParam(name="factor", description=description, minimum=0, maximum=10, required=True)


def _side(name: str, description: str) -> NumberParam:
    return NumberParam(name=name, description=description, minimum=1, maximum=MAX_SIDE, integer=True)


def _resize(image: Image.Image, p: Params) -> Image.Image:
    w, h = image.size
    if "scale" in p:
        size = (round(w * p["scale"]), round(h * p["scale"]))
    elif "width" in p and "height" in p:
        size = (p["width"], p["height"])
    elif "width" in p:
        size = (p["width"], round(h * p["width"] / w))
    else:
        size = (round(w * p["height"] / h), p["height"])
    size = (max(1, size[0]), max(1, size[1]))
    return image.resize(size, RESAMPLING[p["resample"]])


def _thumbnail(image: Image.Image, p: Params) -> Image.Image:
    out = image.copy()
    out.thumbnail((p.get("width", MAX_SIDE), p.get("height", MAX_SIDE)))
    return out


def _crop(image: Image.Image, p: Params) -> Image.Image:
    left, top, right, bottom = p["box"]
    w, h = image.size
    if right > w or bottom > h:
        raise PermanentTaskError(f"box {[left, top, right, bottom]} exceeds the {w}x{h} image")
    return image.crop((left, top, right, bottom))


def _rotate(image: Image.Image, p: Params) -> Image.Image:
    return image.rotate(p["angle"], resample=Image.Resampling.BICUBIC, expand=p["expand"])


def _flip(image: Image.Image, p: Params) -> Image.Image:
    return ImageOps.mirror(image) if p["direction"] == "horizontal" else ImageOps.flip(image)


def _sepia(image: Image.Image, p: Params) -> Image.Image:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.convert("RGB", SEPIA_MATRIX)


def _sharpen(image: Image.Image, p: Params) -> Image.Image:
    return image.filter(ImageFilter.UnsharpMask(radius=p["radius"], percent=p["percent"], threshold=p["threshold"]))


_FILTERS = (
    FilterDef(
        name="grayscale",
        description="Convert to shades of gray (luminance).",
        apply=lambda im, p: ImageOps.grayscale(im),
    ),
    FilterDef(
        name="blur",
        description="Gaussian blur.",
        params=(NumberParam(name="radius", description="Blur radius in pixels.", minimum=0, maximum=100, default=2.0),),
        apply=lambda im, p: im.filter(ImageFilter.GaussianBlur(p["radius"])),
    ),
    FilterDef(
        name="brightness",
        description="Scale brightness: 0 is black, 1 unchanged, 2 twice as bright.",
        params=(_factor("Brightness factor (1 = unchanged)."),),
        apply=lambda im, p: ImageEnhance.Brightness(im).enhance(p["factor"]),
    ),
    FilterDef(
        name="contrast",
        description="Scale contrast: 0 is solid gray, 1 unchanged.",
        params=(_factor("Contrast factor (1 = unchanged)."),),
        apply=lambda im, p: ImageEnhance.Contrast(im).enhance(p["factor"]),
    ),
    FilterDef(
        name="saturation",
        description="Scale colour saturation: 0 is grayscale, 1 unchanged.",
        params=(_factor("Saturation factor (1 = unchanged)."),),
        apply=lambda im, p: ImageEnhance.Color(im).enhance(p["factor"]),
    ),
    FilterDef(
        name="sharpen",
        description="Unsharp-mask sharpening.",
        params=(
            NumberParam(name="radius", description="Blur radius of the mask.", minimum=0, maximum=50, default=2.0),
            NumberParam(
                name="percent", description="Strength in percent.", minimum=0, maximum=500, integer=True, default=150
            ),
            NumberParam(
                name="threshold",
                description="Minimum brightness change to sharpen.",
                minimum=0,
                maximum=255,
                integer=True,
                default=3,
            ),
        ),
        apply=_sharpen,
    ),
    FilterDef(
        name="edges",
        description="Find edges.",
        apply=lambda im, p: im.filter(ImageFilter.FIND_EDGES),
    ),
    FilterDef(
        name="emboss",
        description="Emboss.",
        apply=lambda im, p: im.filter(ImageFilter.EMBOSS),
    ),
    FilterDef(
        name="invert",
        description="Negative image.",
        apply=lambda im, p: ImageOps.invert(im),
    ),
    FilterDef(
        name="sepia",
        description="Warm brown antique tone.",
        apply=_sepia,
    ),
    FilterDef(
        name="posterize",
        description="Reduce each channel to a number of bits.",
        params=(
            NumberParam(
                name="bits", description="Bits kept per channel.", minimum=1, maximum=8, integer=True, default=4
            ),
        ),
        apply=lambda im, p: ImageOps.posterize(im, p["bits"]),
    ),
    FilterDef(
        name="autocontrast",
        description="Stretch the histogram to the full range.",
        params=(
            NumberParam(
                name="cutoff",
                description="Percent of lightest and darkest pixels to ignore.",
                minimum=0,
                maximum=49,
                default=0.0,
            ),
        ),
        apply=lambda im, p: ImageOps.autocontrast(im, cutoff=p["cutoff"]),
    ),
    FilterDef(
        name="equalize",
        description="Equalize the histogram.",
        apply=lambda im, p: ImageOps.equalize(im),
    ),
    FilterDef(
        name="resize",
        description="Resize to width and/or height (keeping the aspect ratio unless both are given) or by scale.",
        params=(
            _side("width", "Target width in pixels."),
            _side("height", "Target height in pixels."),
            NumberParam(name="scale", description="Scale factor for both sides.", minimum=0.01, maximum=10),
            ChoiceParam(
                name="resample", description="Resampling filter.", choices=tuple(RESAMPLING), default="lanczos"
            ),
        ),
        geometric=True,
        rules=(one_given("width", "height", "scale"), not_with("scale", "width", "height")),
        apply=_resize,
    ),
    FilterDef(
        name="thumbnail",
        description="Shrink to fit within width x height, keeping the aspect ratio; never enlarges.",
        params=(_side("width", "Maximum width in pixels."), _side("height", "Maximum height in pixels.")),
        geometric=True,
        rules=(one_given("width", "height"),),
        apply=_thumbnail,
    ),
    FilterDef(
        name="rotate",
        description="Rotate counter-clockwise by an angle in degrees.",
        params=(
            NumberParam(
                name="angle", description="Degrees counter-clockwise.", minimum=-360, maximum=360, required=True
            ),
            BoolParam(name="expand", description="Grow the canvas to hold the whole rotated image.", default=True),
        ),
        geometric=True,
        apply=_rotate,
    ),
    FilterDef(
        name="flip",
        description="Mirror horizontally (left-right) or vertically (top-bottom).",
        params=(
            ChoiceParam(
                name="direction",
                description="Axis to flip.",
                choices=("horizontal", "vertical"),
                default="horizontal",
            ),
        ),
        geometric=True,
        apply=_flip,
    ),
    FilterDef(
        name="crop",
        description="Keep the box [left, top, right, bottom] (pixels).",
        params=(BoxParam(name="box", description="Pixel box [left, top, right, bottom].", required=True),),
        geometric=True,
        apply=_crop,
    ),
)

CATALOG: Mapping[str, FilterDef] = {f.name: f for f in _FILTERS}


def json_schema() -> JSONSchema:
    """JSON Schema (draft 2020-12) of a whole ``filters`` list."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "FilterJob filter pipeline",
        "type": "array",
        "items": {"oneOf": [f.schema() for f in CATALOG.values()]},
    }
