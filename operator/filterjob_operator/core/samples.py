"""Synthetic sample images for demos, tests and benchmarks (no binary blobs in git).

Images are deterministic for a seed, look photo-like enough for filters to do
visible work (gradients, noise, shapes), and can include broken files of every
kind a real bucket holds: corrupt, truncated, empty and not-an-image.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

BROKEN_KINDS = ("corrupt", "truncated", "empty", "not-an-image")


@dataclass(frozen=True)
class SampleSet:
    good: list[Path]
    broken: list[Path]


def make_image(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like RGB image: colour gradients, sensor-like noise and shapes."""
    rng = random.Random(seed)
    w, h = size
    red = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(size)
    green = Image.radial_gradient("L").resize(size)
    # Noise from the seeded generator: Image.effect_noise draws from C's rand(), so the same seed
    # made other images depending on what ran before (and a truncated sample broke elsewhere).
    spread = 40 + seed % 30
    blue = Image.frombytes("L", size, rng.randbytes(w * h)).point(lambda v: 128 + (v - 128) * spread // 128)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(1, max(2, w // 3)), y0 + rng.randrange(1, max(2, h // 3))
        draw.ellipse((x0, y0, x1, y1), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return image


def write_broken(path: Path, kind: str, seed: int = 0) -> Path:
    """Write one broken input of the given kind (see :data:`BROKEN_KINDS`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-an-image":
        path.write_text("this is a text file with an image's name\n")
    else:
        good = make_image((64, 48), seed)
        good.save(path, format="JPEG")
        data = path.read_bytes()
        if kind == "truncated":
            # Cut halfway through the image data (after the start-of-scan marker), never in the
            # header: a download that stopped partway, which opens but cannot be decoded.
            scan = data.index(b"\xff\xda")
            path.write_bytes(data[: scan + (len(data) - scan) // 2])
        elif kind == "corrupt":
            # A valid JPEG header followed by garbage where the scan data should be.
            path.write_bytes(data[:20] + bytes(random.Random(seed).randrange(256) for _ in range(len(data) - 20)))
        else:
            raise ValueError(f"unknown broken kind {kind!r}; known: {', '.join(BROKEN_KINDS)}")
    return path


def make_samples(
    directory: Path,
    *,
    count: int,
    size: tuple[int, int] = (640, 480),
    broken: int = 0,
    seed: int = 0,
    quality: int = 90,
) -> SampleSet:
    """Write ``count`` JPEG/PNG images (some in sub-folders) plus ``broken`` bad files."""
    good: list[Path] = []
    for i in range(count):
        sub = directory / f"set-{i % 3}" if i % 2 else directory
        sub.mkdir(parents=True, exist_ok=True)
        image = make_image(size, seed + i)
        if i % 5 == 4:
            path = sub / f"img-{i:05d}.png"
            image.save(path, format="PNG")
        else:
            path = sub / f"img-{i:05d}.jpg"
            image.save(path, format="JPEG", quality=quality)
        good.append(path)
    bad = [
        write_broken(
            directory / "broken" / f"bad-{i:03d}-{BROKEN_KINDS[i % len(BROKEN_KINDS)]}.jpg",
            BROKEN_KINDS[i % len(BROKEN_KINDS)],
            seed + i,
        )
        for i in range(broken)
    ]
    return SampleSet(good=good, broken=bad)
