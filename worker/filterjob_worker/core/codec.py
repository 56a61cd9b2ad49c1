"""Decoding and encoding images safely.

Decoding refuses oversized inputs before allocating pixels, honours the EXIF
orientation and normalizes the mode to one of ``L``, ``LA``, ``RGB`` or ``RGBA``
so filters see a small, predictable set of modes. Every way an input can be bad
ends in :class:`InvalidImage` or :class:`ImageTooLarge` with a reason.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from filterjob_worker.core.errors import ImageTooLarge, InvalidImage, SpecError, did_you_mean, shown
from filterjob_worker.core.limits import QUALITY

FormatName = Literal["jpeg", "png", "webp", "same"]
FORMATS: tuple[FormatName, ...] = ("jpeg", "png", "webp", "same")
#: Other spellings a job may use for an output format (file extensions, capitals).
FORMAT_ALIASES: dict[str, FormatName] = {
    "jpg": "jpeg",
    "JPG": "jpeg",
    **{name.upper(): name for name in FORMATS if name != "same"},
}
#: Formats Pillow reads (and ``same`` writes back) that are not output formats of their own.
_INPUT_ONLY = ("tif", "tiff", "gif", "bmp")


def format_name(value: object) -> FormatName:
    """The output format a job names (an alias becomes its format); SpecError says what to write instead."""
    if value in FORMATS:
        return value
    if isinstance(value, str) and value in FORMAT_ALIASES:
        return FORMAT_ALIASES[value]
    choices = ", ".join(FORMATS)
    if isinstance(value, str) and value.lower() in _INPUT_ONLY:
        raise SpecError(
            f"{value!r} is not an output format: use one of {choices} (same keeps each input's format, {value} too)"
        )
    raise SpecError(f"must be one of {choices}, got {shown(value)}{did_you_mean(value, [*FORMATS, *FORMAT_ALIASES])}")


# Pillow format name -> (file extension, modes it can store).
_WRITABLE: dict[str, tuple[str, frozenset[str]]] = {
    "JPEG": (".jpg", frozenset({"L", "RGB"})),
    "PNG": (".png", frozenset({"L", "LA", "RGB", "RGBA"})),
    "WEBP": (".webp", frozenset({"RGB", "RGBA"})),
    "GIF": (".gif", frozenset({"L", "RGB", "RGBA"})),
    "BMP": (".bmp", frozenset({"L", "RGB", "RGBA"})),
    "TIFF": (".tiff", frozenset({"L", "LA", "RGB", "RGBA"})),
}
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Guards against decompression bombs and runaway inputs."""

    # Pillow's own decompression-bomb threshold; a higher value would not be honoured.
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class OutputFormat:
    """How outputs are encoded: a format (or ``same`` as the input) and a quality."""

    format: FormatName = "jpeg"
    quality: int = QUALITY.default

    def __post_init__(self) -> None:
        problems = []
        if self.format not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}, got {shown(self.format)}")
        low, high = QUALITY.minimum, QUALITY.maximum
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not low <= self.quality <= high:
            problems.append(f"quality must be an integer between {low} and {high}, got {shown(self.quality)}")
        if problems:
            raise SpecError(problems)

    def extension(self, source_suffix: str) -> str:
        """File extension of outputs; ``same`` keeps the input's own suffix."""
        if self.format == "same":
            return source_suffix
        return _WRITABLE[self.format.upper()][0]


@dataclass(frozen=True)
class Decoded:
    """A decoded, oriented, mode-normalized image plus what encoding wants back."""

    image: Image.Image
    format: str
    icc_profile: bytes | None


DEFAULT_LIMITS = Limits()


def decode(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Decode image bytes or raise :class:`InvalidImage` / :class:`ImageTooLarge`."""
    if not data:
        raise InvalidImage("file is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"file is {len(data)} bytes, above the limit of {limits.max_bytes}")
    try:
        # Pillow warns (and past twice its limit, raises) on decompression bombs; both
        # become a clean refusal here, before any pixel memory is allocated.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageTooLarge(f"refused as a decompression bomb: {e}") from e
    except UnidentifiedImageError as e:
        raise InvalidImage("not a recognized image format") from e
    except Exception as e:  # Pillow raises many kinds for garbage input
        raise InvalidImage(f"not a readable image: {_reason(e)}") from e
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} ({width * height / 1e6:.1f} MP), "
            f"above the limit of {limits.max_pixels / 1e6:.1f} MP"
        )
    fmt = image.format or "PNG"
    try:
        image.load()
        if image.getexif().get(_ORIENTATION_TAG, 1) != 1:
            ImageOps.exif_transpose(image, in_place=True)
        normalized = _normalize(image)
    except Exception as e:
        raise InvalidImage(f"cannot decode {fmt} image: {_reason(e)}") from e
    icc = image.info.get("icc_profile")
    return Decoded(image=normalized, format=fmt, icc_profile=icc if isinstance(icc, bytes) else None)


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.split("\n", 1)[0][:200]


def _normalize(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16"):
        # 16-bit grayscale: scale down to 8 bits instead of clipping to white.
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode == "RGBa":
        return image.convert("RGBA")
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def encode(decoded: Decoded, image: Image.Image, output: OutputFormat) -> bytes:
    """Encode the pipeline's result; converts modes the format cannot store."""
    fmt = decoded.format if output.format == "same" else output.format.upper()
    if fmt not in _WRITABLE:
        raise InvalidImage(f"cannot write {fmt} images; choose format jpeg, png or webp")
    image = _fit_mode(image, _WRITABLE[fmt][1])
    options: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = output.quality
    if decoded.icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["icc_profile"] = decoded.icc_profile
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _fit_mode(image: Image.Image, modes: frozenset[str]) -> Image.Image:
    if image.mode in modes:
        return image
    if image.mode in ("LA", "RGBA"):
        if "RGBA" in modes and image.mode == "LA":
            return image.convert("RGBA")
        # No alpha in the format: flatten onto white, as viewers show transparency.
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        return background if "RGB" in modes else background.convert("L")
    return image.convert("RGB")
