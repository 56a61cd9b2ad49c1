"""Decoding refuses every bad input with a reason; encoding honours format, quality and profile."""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from filterjob_operator.core.samples import make_image, write_broken
from filterjob_worker.core import codec
from filterjob_worker.core.codec import Limits, OutputFormat
from filterjob_worker.core.errors import ImageTooLarge, InvalidImage, PermanentTaskError, SpecError

ORIENTATION = 0x0112
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def reopen(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def photo_jpeg() -> bytes:
    return save(make_image((64, 48), 1), "JPEG", quality=90)


def photo_png() -> bytes:
    return save(make_image((64, 48), 1), "PNG")


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, built row by row: a 20000x20000 one is ~50 kB."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits, all zero
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture
def no_pixel_loading(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records (and blocks) every attempt to load pixels, so huge images never allocate."""
    loads: list[tuple[int, int]] = []

    def refuse(self: ImageFile.ImageFile) -> None:
        loads.append(self.size)
        raise RuntimeError("pixels must not be loaded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    return loads


# --- decode: bad inputs -------------------------------------------------------------


BAD_INPUTS = {
    "empty": (lambda: b"", "file is empty"),
    "corrupt-jpeg-header-then-garbage": (
        lambda: photo_jpeg()[:20] + bytes(random.Random(1).randrange(256) for _ in range(2000)),
        "not a recognized image format",
    ),
    "truncated-jpeg": (
        lambda: photo_jpeg()[: len(photo_jpeg()) // 2],
        "cannot decode JPEG image: image file is truncated",
    ),
    "truncated-png": (lambda: photo_png()[: len(photo_png()) // 2], "cannot decode PNG image: image file is truncated"),
    "png-signature-only": (lambda: photo_png()[:12], "not a recognized image format"),
    "text-file": (lambda: b"this is a text file with an image's name\n", "not a recognized image format"),
    "random-bytes": (lambda: random.Random(3).randbytes(5000), "not a recognized image format"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_an_invalid_image_with_a_reason(kind: str) -> None:
    make, reason = BAD_INPUTS[kind]
    with pytest.raises(InvalidImage) as info:
        codec.decode(make())
    assert reason in str(info.value)
    assert info.value.permanent


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("corrupt", "not a recognized image format"),
        ("truncated", "cannot decode JPEG image: image file is truncated"),
        ("empty", "file is empty"),
        ("not-an-image", "not a recognized image format"),
    ],
)
def test_sample_broken_files_are_invalid_images(kind: str, reason: str, tmp_path: Path) -> None:
    path = write_broken(tmp_path / f"bad-{kind}.jpg", kind, seed=7)
    with pytest.raises(InvalidImage) as info:
        codec.decode(path.read_bytes())
    # Pillow appends how many bytes it could not process to a truncation: not ours to pin.
    assert str(info.value).startswith(reason), str(info.value)
    assert info.value.permanent


def test_a_sample_seed_makes_the_same_image_whatever_ran_before() -> None:
    first = make_image((64, 48), 7).tobytes()
    Image.effect_noise((64, 48), 30)  # draws from C's rand(), as other code in the process may
    assert make_image((64, 48), 7).tobytes() == first


def test_file_above_max_bytes_is_refused_before_decoding() -> None:
    data = photo_jpeg()
    with pytest.raises(ImageTooLarge, match=rf"file is {len(data)} bytes, above the limit of {len(data) - 1}"):
        codec.decode(data, limits=Limits(max_bytes=len(data) - 1))
    assert codec.decode(data, limits=Limits(max_bytes=len(data))).image.size == (64, 48)


def test_image_at_max_pixels_passes_and_one_more_pixel_is_refused() -> None:
    assert codec.decode(save(Image.new("RGB", (100, 100)), "PNG"), limits=Limits(max_pixels=10_000)).image.size == (
        100,
        100,
    )
    with pytest.raises(ImageTooLarge, match=r"image is 101x100 \(0\.0 MP\), above the limit of 0\.0 MP"):
        codec.decode(save(Image.new("RGB", (101, 100)), "PNG"), limits=Limits(max_pixels=10_000))


def test_small_file_with_huge_dimensions_is_refused_without_loading_pixels(
    monkeypatch: pytest.MonkeyPatch, no_pixel_loading: list[tuple[int, int]]
) -> None:
    data = blank_png(20_000, 20_000)
    assert len(data) < 100_000  # a few kB on disk, 400 MP (and 400 MB as L) in memory
    # Take Pillow's own guard out of the way to reach the configured limit.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLarge, match=r"image is 20000x20000 \(400\.0 MP\), above the limit of 89\.5 MP"):
        codec.decode(data)
    assert no_pixel_loading == []


def test_pillow_decompression_bomb_warning_is_image_too_large(no_pixel_loading: list[tuple[int, int]]) -> None:
    # 100 MP: above Pillow's MAX_IMAGE_PIXELS (~89 MP, a warning) but under twice it (an error).
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 <= 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge, match="refused as a decompression bomb"):
        codec.decode(blank_png(10_000, 10_000), limits=Limits(max_pixels=10**9))
    assert no_pixel_loading == []


def test_pillow_decompression_bomb_error_is_image_too_large(no_pixel_loading: list[tuple[int, int]]) -> None:
    assert Image.MAX_IMAGE_PIXELS is not None
    assert 2 * Image.MAX_IMAGE_PIXELS < 20_000 * 20_000
    with pytest.raises(ImageTooLarge, match="refused as a decompression bomb"):
        codec.decode(blank_png(20_000, 20_000), limits=Limits(max_pixels=10**9))
    assert no_pixel_loading == []


def test_pillow_bomb_paths_follow_a_lowered_max_image_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data_warning, data_error = save(Image.new("L", (40, 40)), "PNG"), save(Image.new("L", (100, 100)), "PNG")
    for data in (data_warning, data_error):
        with pytest.raises(ImageTooLarge, match="decompression bomb"):
            codec.decode(data, limits=Limits(max_pixels=10**9))


# --- decode: orientation, modes, profile ----------------------------------------------


def oriented_jpeg(orientation: int) -> bytes:
    """40x20 red with a blue 10x10 block at the top-left corner, tagged with an orientation."""
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return save(image, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("orientation", "size", "blue_at"),
    [
        (1, (40, 20), (2, 2)),  # as stored
        (3, (40, 20), (37, 17)),  # rotated 180: block goes bottom-right
        (6, (20, 40), (17, 2)),  # rotated 90 clockwise: block goes top-right
        (8, (20, 40), (2, 37)),  # rotated 90 counter-clockwise: block goes bottom-left
    ],
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int], blue_at: tuple[int, int]) -> None:
    data = oriented_jpeg(orientation)
    decoded = codec.decode(data)
    assert decoded.image.size == size
    assert close(decoded.image.getpixel(blue_at), BLUE)
    assert close(decoded.image.getpixel((2, 2) if blue_at != (2, 2) else (37, 17)), RED)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert decoded.image.tobytes() == reference.convert("RGB").tobytes()


def test_png_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    decoded = codec.decode(save(Image.new("RGB", (30, 10)), "PNG", exif=exif.tobytes()))
    assert decoded.image.size == (10, 30)


def _palette(transparent: bool) -> bytes:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([*RED, *BLUE])
    image.putpixel((1, 1), 1)
    return save(image, "PNG", **({"transparency": 0} if transparent else {}))


def _i16() -> bytes:
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((65535, 32768, 0)):
        image.putpixel((x, 0), value)
    return save(image, "PNG")


MODES = {
    "P": (_palette(transparent=False), "RGB"),
    "P-with-transparency": (_palette(transparent=True), "RGBA"),
    "P-gif-with-transparency": (save(Image.new("P", (4, 4)), "GIF", transparency=0), "RGBA"),
    "PA": (save(Image.new("PA", (4, 4)), "TIFF"), "RGBA"),
    "1": (save(Image.new("1", (4, 4), 1), "PNG"), "L"),
    "I;16": (_i16(), "L"),
    "CMYK-jpeg": (save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG"), "RGB"),
    "CMYK-tiff": (save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), "RGB"),
    "L": (save(Image.new("L", (4, 4), 7), "PNG"), "L"),
    "LA": (save(Image.new("LA", (4, 4), (7, 8)), "PNG"), "LA"),
    "RGB": (save(Image.new("RGB", (4, 4)), "PNG"), "RGB"),
    "RGBA": (save(Image.new("RGBA", (4, 4), (1, 2, 3, 4)), "PNG"), "RGBA"),
}


@pytest.mark.parametrize("source_mode", list(MODES))
def test_modes_are_normalized(source_mode: str) -> None:
    data, expected = MODES[source_mode]
    decoded = codec.decode(data)
    assert decoded.image.mode == expected
    assert decoded.image.size == ((3, 1) if source_mode == "I;16" else (4, 4))


def test_palette_transparency_and_colours_survive_normalization() -> None:
    image = codec.decode(_palette(transparent=True)).image
    assert image.getpixel((0, 0))[3] == 0
    assert image.getpixel((1, 1)) == (*BLUE, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    image = codec.decode(_i16()).image
    assert [image.getpixel((x, 0)) for x in range(3)] == [255, 128, 0]


def test_cmyk_is_converted_to_matching_rgb() -> None:
    image = codec.decode(MODES["CMYK-tiff"][0]).image
    assert image.getpixel((0, 0)) == RED


@pytest.mark.parametrize(("mode", "expected"), [("PA", "RGBA"), ("La", "LA"), ("RGBa", "RGBA"), ("P", "RGB")])
def test_normalize_modes_without_a_file_format(mode: str, expected: str) -> None:
    # PNG cannot store PA, and no format stores premultiplied modes; check the mapping itself.
    assert codec._normalize(Image.new(mode, (2, 2))).mode == expected


def test_decoded_keeps_the_input_format_and_icc_profile() -> None:
    icc = srgb_profile()
    decoded = codec.decode(save(Image.new("RGB", (8, 8)), "JPEG", icc_profile=icc))
    assert decoded.format == "JPEG"
    assert decoded.icc_profile == icc
    assert codec.decode(photo_png()).icc_profile is None


# --- encode ------------------------------------------------------------------------


@functools.cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(("fmt", "pillow_format"), [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_encode_writes_the_requested_format(fmt: Any, pillow_format: str) -> None:
    decoded = codec.decode(photo_jpeg())
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format=fmt)))
    assert out.format == pillow_format
    assert out.size == (64, 48)


@pytest.mark.parametrize(
    ("data", "pillow_format"),
    [
        (photo_jpeg(), "JPEG"),
        (photo_png(), "PNG"),
        (save(make_image((16, 16), 2), "WEBP"), "WEBP"),
        (save(make_image((16, 16), 2), "GIF"), "GIF"),
        (save(make_image((16, 16), 2), "BMP"), "BMP"),
        (save(make_image((16, 16), 2), "TIFF"), "TIFF"),
    ],
)
def test_same_keeps_the_input_format(data: bytes, pillow_format: str) -> None:
    decoded = codec.decode(data)
    assert reopen(codec.encode(decoded, decoded.image, OutputFormat(format="same"))).format == pillow_format


@pytest.mark.parametrize("pillow_format", ["PPM", "TGA", "PCX"])
def test_same_for_an_unwritable_input_format_is_a_clear_error(pillow_format: str) -> None:
    decoded = codec.decode(save(make_image((16, 16), 2), pillow_format))
    assert decoded.format == pillow_format
    with pytest.raises(InvalidImage, match=f"cannot write {pillow_format} images; choose format jpeg, png or webp"):
        codec.encode(decoded, decoded.image, OutputFormat(format="same"))


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lower_quality_gives_smaller_files(fmt: Any) -> None:
    decoded = codec.decode(save(make_image((128, 96), 3), "PNG"))
    low = codec.encode(decoded, decoded.image, OutputFormat(format=fmt, quality=10))
    high = codec.encode(decoded, decoded.image, OutputFormat(format=fmt, quality=95))
    assert len(low) < len(high)


def half_transparent(mode: str) -> Image.Image:
    """Left half fully transparent red, right half opaque blue (or grey for LA)."""
    image = Image.new("RGBA", (32, 32), (*BLUE, 255))
    image.paste((*RED, 0), (0, 0, 16, 32))
    return image if mode == "RGBA" else image.convert("LA")


def test_rgba_to_jpeg_flattens_onto_white() -> None:
    decoded = codec.decode(save(half_transparent("RGBA"), "PNG"))
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format="jpeg", quality=95)))
    assert out.mode == "RGB"
    assert close(out.getpixel((4, 16)), WHITE)
    assert close(out.getpixel((28, 16)), BLUE)


def test_la_to_jpeg_flattens_onto_white() -> None:
    decoded = codec.decode(save(half_transparent("LA"), "PNG"))
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format="jpeg", quality=95)))
    # JPEG stores RGB as well as L: the flattened image keeps the colour model of the flattening.
    assert out.mode == "RGB"
    assert close(out.getpixel((4, 16)), WHITE)
    assert close(out.getpixel((28, 16)), (29, 29, 29))  # opaque blue as grey (ITU-R 601-2 luma)


def test_la_to_webp_keeps_transparency() -> None:
    decoded = codec.decode(save(half_transparent("LA"), "PNG"))
    assert decoded.image.mode == "LA"
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format="webp")))
    assert out.format == "WEBP"
    assert out.mode == "RGBA"
    assert out.getpixel((4, 16))[3] == 0
    assert out.getpixel((28, 16))[3] == 255


def test_grey_to_webp_is_stored_as_rgb() -> None:
    decoded = codec.decode(save(Image.new("L", (8, 8), 100), "PNG"))
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format="webp")))
    assert out.mode == "RGB"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "same"])
def test_icc_profile_is_preserved(fmt: Any) -> None:
    icc = srgb_profile()
    decoded = codec.decode(save(make_image((16, 16), 4), "JPEG", icc_profile=icc))
    out = reopen(codec.encode(decoded, decoded.image, OutputFormat(format=fmt)))
    assert out.info.get("icc_profile") == icc


def test_invalid_image_from_encode_is_permanent() -> None:
    decoded = codec.decode(save(Image.new("RGB", (4, 4)), "PPM"))
    with pytest.raises(PermanentTaskError):
        codec.encode(decoded, decoded.image, OutputFormat(format="same"))


# --- OutputFormat --------------------------------------------------------------------


def test_output_format_defaults() -> None:
    assert OutputFormat() == OutputFormat(format="jpeg", quality=90)


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        ({"format": "gif"}, ["format must be one of jpeg, png, webp, same, got 'gif'"]),
        ({"format": "JPEG"}, ["format must be one of jpeg, png, webp, same, got 'JPEG'"]),
        ({"quality": 0}, ["quality must be an integer between 1 and 100, got 0"]),
        ({"quality": 101}, ["quality must be an integer between 1 and 100, got 101"]),
        ({"quality": True}, ["quality must be an integer between 1 and 100, got True"]),
        ({"quality": 90.5}, ["quality must be an integer between 1 and 100, got 90.5"]),
        ({"quality": "90"}, ["quality must be an integer between 1 and 100, got '90'"]),
        (
            {"format": "bmp", "quality": -1},
            [
                "format must be one of jpeg, png, webp, same, got 'bmp'",
                "quality must be an integer between 1 and 100, got -1",
            ],
        ),
    ],
)
def test_output_format_validation_lists_every_problem(options: dict[str, Any], problems: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        OutputFormat(**options)
    assert info.value.problems == problems
    assert str(info.value) == "; ".join(problems)


@pytest.mark.parametrize("quality", [1, 100])
def test_output_format_quality_bounds_are_inclusive(quality: int) -> None:
    assert OutputFormat(quality=quality).quality == quality


@pytest.mark.parametrize(
    ("fmt", "suffix", "extension"),
    [
        ("jpeg", ".png", ".jpg"),
        ("png", ".jpg", ".png"),
        ("webp", ".jpg", ".webp"),
        ("same", ".JPEG", ".JPEG"),
        ("same", ".tif", ".tif"),
    ],
)
def test_extension(fmt: Any, suffix: str, extension: str) -> None:
    assert OutputFormat(format=fmt).extension(suffix) == extension
