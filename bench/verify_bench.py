"""What verified completion costs: checking 100k outputs vs. a bare ``os.scandir`` walk of them.

Makes N empty output files (default 100,000, 1,000 per directory, in a temporary directory)
and times, in interleaved rounds, in one process:

- (a) baseline: a bare recursive ``os.scandir`` walk collecting the file names;
- (b) ``verifier.observe``: one listing of the destination (``filelisting.list_objects``);
- (c) ``verification.planned`` + ``verification.verify``: planning the N tasks' outputs and
  intersecting them with what (b) found, i.e. the rest of what the operator does at a job's end;
- (d) a ``stat`` per output, the way not taken, for comparison.

It prints the median seconds of each and their ratio to (a).

    .venv/bin/python bench/verify_bench.py [--outputs N] [--per-dir N] [--rounds N] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filterjob_operator.adapters import verification, verifier
from filterjob_operator.core.spec import FilterJob, parse_job


def scandir_walk(root: str) -> int:
    found = 0
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    pending.append(entry.path)
                elif entry.is_file():
                    found += 1
    return found


def job_for(source: Path, destination: Path) -> FilterJob:
    return parse_job(
        {
            "apiVersion": "filterjob.dev/v1alpha1",
            "kind": "FilterJob",
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": {
                "source": {"uri": source.as_uri() + "/"},
                "destination": {"uri": destination.as_uri() + "/", "format": "png"},
                "filters": [{"name": "grayscale"}],
            },
        }
    )


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=int, default=100_000)
    parser.add_argument("--per-dir", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tmp", default=None, help="where the temporary directory goes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        out = Path(tmp) / "out"
        keys = [f"d{i // args.per_dir:04d}/img-{i:07d}.png" for i in range(args.outputs)]
        for key in keys:
            path = out / key
            path.parent.mkdir(exist_ok=True, parents=True)
            path.touch()
        job = job_for(Path(tmp) / "in", out)
        observed = verifier.observe(job)
        assert len(observed.present) == args.outputs
        assert observed.problem is None

        def check() -> None:
            verification.verify(verification.planned(job, keys), present=observed.present, failed=set())

        def stat_each() -> None:
            for key in keys:
                (out / key).stat()

        measures: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": []}
        for _ in range(args.rounds):
            measures["a"].append(timed(lambda: scandir_walk(str(out))))
            measures["b"].append(timed(lambda: verifier.observe(job)))
            measures["c"].append(timed(check))
            measures["d"].append(timed(stat_each))
    median = {name: statistics.median(values) for name, values in measures.items()}
    rows = [
        ("a", "os.scandir walk (baseline)"),
        ("b", "verifier.observe: one listing of the destination"),
        ("c", "planned outputs + verify (after b)"),
        ("d", "a stat per output (not used)"),
    ]
    print(f"{args.outputs} outputs, {args.per_dir} per directory, median of {args.rounds} rounds")
    for name, what in rows:
        print(f"({name}) {what:52s} {median[name]:8.3f} s  {median[name] / median['a']:5.2f}x (a)")
    total = median["b"] + median["c"]
    print(f"verified completion in all (b + c): {total:.3f} s, {total / median['a']:.2f}x the bare walk")


if __name__ == "__main__":
    main()
