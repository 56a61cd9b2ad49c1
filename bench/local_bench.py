"""Local-runner throughput against a bare Pillow loop doing the same work.

Run: ``.venv/bin/python bench/local_bench.py [--quick]`` (see bench/README.md).

For each image size it measures images/s of

  (a) a bare Pillow loop in this process: read the file, ``Image.open``/``load``,
      the pipeline below called on Pillow directly, JPEG encode into a temporary
      file, ``fsync``, rename (the same durability ``storage.write_atomic`` gives);
  (b) ``run_local`` with ``workers=1`` on a FilterJob with the same pipeline;
  (c) ``run_local`` with ``workers=os.cpu_count()``.

(b) and (c) are timed around the whole ``run_local`` call, so they include listing,
planning, starting and stopping the process pool. Rounds are interleaved
(a, b, c, a, b, c, ...) and the median of each is reported. All files live in a
temporary directory; nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

# Project imports happen inside functions (hence the PLC0415 waivers): the pool's worker
# processes re-import this script as ``__mp_main__``, and that must not inflate (b) and (c).

QUALITY = 90
RESIZE_WIDTH = 1024
BLUR_RADIUS = 2.0
BRIGHTNESS = 1.2
#: The pipeline as a FilterJob spec; ``bare_pipeline`` is the same thing in plain Pillow.
FILTERS: list[dict[str, object]] = [
    {"name": "resize", "width": RESIZE_WIDTH},  # resample defaults to lanczos
    {"name": "grayscale"},
    {"name": "blur", "radius": BLUR_RADIUS},
    {"name": "brightness", "factor": BRIGHTNESS},
    {"name": "edges"},
]
SIZES: dict[str, tuple[int, int]] = {"1MP": (1155, 866), "12MP": (4000, 3000)}


def bare_pipeline(image: Image.Image) -> Image.Image:
    w, h = image.size
    image = image.resize((RESIZE_WIDTH, round(h * RESIZE_WIDTH / w)), Image.Resampling.LANCZOS)
    image = ImageOps.grayscale(image)
    image = image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    image = ImageEnhance.Brightness(image).enhance(BRIGHTNESS)
    return image.filter(ImageFilter.FIND_EDGES)


def bare_loop(inputs: list[Path], out_dir: Path) -> tuple[float, float]:
    """(a): returns (wall seconds, seconds spent in flush+fsync)."""
    out_dir.mkdir(parents=True)
    fsync_seconds = 0.0
    start = time.perf_counter()
    for path in inputs:
        data = path.read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        result = bare_pipeline(image)
        target = out_dir / path.name
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("wb") as f:
            result.save(f, format="JPEG", quality=QUALITY)
            t = time.perf_counter()
            f.flush()
            os.fsync(f.fileno())
            fsync_seconds += time.perf_counter() - t
        os.replace(tmp, target)
    return time.perf_counter() - start, fsync_seconds


def make_job(source: Path, destination: Path, name: str):  # -> FilterJob
    from filterjob_operator.core.spec import parse_job  # noqa: PLC0415 (see top)

    return parse_job(
        {
            "apiVersion": "filterjob.dev/v1alpha1",
            "kind": "FilterJob",
            "metadata": {"name": name},
            "spec": {
                "source": {"uri": source.as_uri() + "/", "include": ["*.jpg"]},
                "destination": {"uri": destination.as_uri() + "/", "format": "jpeg", "quality": QUALITY},
                "filters": FILTERS,
            },
        }
    )


def runner(source: Path, out_dir: Path, workers: int, expected: int) -> float:
    """(b)/(c): wall seconds of one whole ``run_local`` call."""
    from filterjob_operator.local.options import LocalOptions  # noqa: PLC0415 (see top)
    from filterjob_operator.local.pool import run_local  # noqa: PLC0415

    job = make_job(source, out_dir, "bench")
    start = time.perf_counter()
    summary = run_local(job, options=LocalOptions(workers=workers))
    seconds = time.perf_counter() - start
    if summary.succeeded != expected or summary.failures:
        sys.exit(f"run_local did not process every image: {summary}")
    return seconds


def generate(directory: Path, size: tuple[int, int], count: int, seed: int) -> list[Path]:
    from filterjob_operator.core.samples import make_image  # noqa: PLC0415 (see top)

    directory.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = directory / f"img-{i:04d}.jpg"
        make_image(size, seed + i).save(path, format="JPEG", quality=QUALITY)
        paths.append(path)
    return paths


def fixed_cost(root: Path, workers: int, rounds: int) -> float:
    """Median seconds ``run_local`` takes beyond the bare loop for one tiny image.

    That is the per-call overhead: listing, planning, pool start and stop, the first
    task in a fresh process. (The pipeline upscales the tiny image to 1024 wide, so
    the raw ``run_local`` time would mostly be image work.)
    """
    source = root / "tiny"
    if not source.exists():
        generate(source, (64, 48), 1, seed=7)
    inputs = sorted(source.iterdir())
    extra = []
    for r in range(rounds):
        out = root / f"tiny-out-{workers}-{r}"
        seconds = runner(source, out / "b", workers, 1)
        extra.append(seconds - bare_loop(inputs, out / "a")[0])
        shutil.rmtree(out)
    return statistics.median(extra)


def measure_size(root: Path, label: str, n: int, rounds: int, cpus: int) -> dict[str, float]:
    """Images/s of (a), (b) and (c) for one image size (median of interleaved rounds)."""
    size = SIZES[label]
    t = time.perf_counter()
    source = root / f"in-{size[0]}x{size[1]}"
    inputs = generate(source, size, n, seed=1000)
    print(f"generated {n} x {size[0]}x{size[1]} JPEGs in {time.perf_counter() - t:.1f} s")

    # Warm-up (untimed): page cache, Pillow's lazy imports; also checks that (a) and (b) do equal work.
    bare_loop(inputs[:2], root / "warm-a")
    runner(source, root / "warm-b", 1, n)
    same = all((root / "warm-a" / p.name).read_bytes() == (root / "warm-b" / p.name).read_bytes() for p in inputs[:2])
    print(f"  (a) and (b) outputs byte-identical: {'yes' if same else 'NO'}")
    shutil.rmtree(root / "warm-a")
    shutil.rmtree(root / "warm-b")

    times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    fsyncs: list[float] = []
    for r in range(rounds):
        for key, samples in times.items():
            out = root / f"out-{key}-{r}"
            if key == "a":
                seconds, fs = bare_loop(inputs, out)
                fsyncs.append(fs)
            else:
                seconds = runner(source, out, 1 if key == "b" else cpus, n)
            samples.append(seconds)
            shutil.rmtree(out)
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = ", ".join(f"{k}: {min(v):.2f}-{max(v):.2f} s" for k, v in times.items())
    print(f"  wall per round ({spread}); fsync in (a): {statistics.median(fsyncs) / med['a']:.1%} of its time")
    shutil.rmtree(source)
    return {k: n / s for k, s in med.items()}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few images and rounds: a smoke run")
    parser.add_argument("--rounds", type=int, help="interleaved repetitions per measurement (default 5, quick 2)")
    parser.add_argument("--n-1mp", type=int, help="number of 1 MP images (default 48, quick 6)")
    parser.add_argument("--n-12mp", type=int, help="number of 12 MP images (default 16, quick 3)")
    parser.add_argument(
        "--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), metavar="SIZE", help="subset of: 1MP 12MP"
    )
    parser.add_argument("--tmp", type=Path, help="parent of the temporary directory (default: system temp dir)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    counts = {
        "1MP": args.n_1mp or (6 if args.quick else 48),
        "12MP": args.n_12mp or (3 if args.quick else 16),
    }
    cpus = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="filterjob-bench-", dir=args.tmp) as tmp:
        root = Path(tmp)
        print(f"python {sys.version.split()[0]}, Pillow {Image.__version__}, {cpus} CPUs, temp dir {root}")
        print("pipeline: " + " -> ".join(f["name"] for f in FILTERS) + f"; output JPEG quality {QUALITY}")
        print("(a) writes temp file + fsync + rename like storage.write_atomic; its fsync share is shown below")
        print(f"rounds: {rounds}, interleaved a,b,c; median reported; load average at start {_load()}\n")

        # The first run_local in a process also starts the forkserver; report that separately.
        cold = fixed_cost(root, 1, 1)
        fixed = {w: fixed_cost(root, w, rounds) for w in sorted({1, cpus})}

        results = {label: measure_size(root, label, counts[label], rounds, cpus) for label in args.sizes}

        print()
        for label, rate in results.items():
            print(f"{label} ({SIZES[label][0]}x{SIZES[label][1]}), {counts[label]} images")
            print(f"  {'measure':<36} {'images/s':>9} {'vs (a)':>7}")
            rows = [
                ("(a) bare Pillow loop, 1 process", rate["a"]),
                ("(b) run_local workers=1", rate["b"]),
                (f"(c) run_local workers={cpus}", rate["c"]),
            ]
            for name, value in rows:
                print(f"  {name:<36} {value:>9.2f} {value / rate['a']:>7.2f}")
            print(f"  b/a = {rate['b'] / rate['a']:.2f}, c/a = {rate['c'] / rate['a']:.2f}\n")
        print(
            "run_local fixed cost per call (1 tiny image, run_local minus bare loop, median): "
            + ", ".join(f"workers={w}: {s * 1000:.0f} ms" for w, s in fixed.items())
            + f"; first call in the process (starts the forkserver): {cold * 1000:.0f} ms"
        )
        print(f"load average at end {_load()} (other load on the machine makes these numbers unreliable)")


if __name__ == "__main__":
    main()
