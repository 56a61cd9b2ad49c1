"""Threads or processes for the worker's image work? Measured, same run, same tasks.

Runs ``filterjob_worker.processing.process`` over generated 1 MP JPEGs with a
ThreadPoolExecutor and a ProcessPoolExecutor (forkserver, as the worker would
use) at concurrency 1 and 2, in interleaved rounds, and prints images/s with the
thread/process ratio. The worker's default (threads) was chosen from this.

    .venv/bin/python bench/executor_bench.py [--rounds N] [--images N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from filterjob_operator.core.samples import make_image
from filterjob_worker import processing
from filterjob_worker.core.contract import Task

PIPELINE = (
    {"name": "resize", "width": 1024},
    {"name": "grayscale"},
    {"name": "blur", "radius": 2},
    {"name": "brightness", "factor": 1.2},
    {"name": "edges"},
)


def rate(executor: Executor, tasks: list[Task]) -> float:
    list(executor.map(processing.process, tasks[:2]))  # warm up (imports, first decode)
    start = time.perf_counter()
    list(executor.map(processing.process, tasks))
    return len(tasks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    context = multiprocessing.get_context("forkserver")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tasks = []
        for i in range(args.images):
            path = root / "in" / f"{i}.jpg"
            path.parent.mkdir(exist_ok=True)
            make_image((1155, 866), i).save(path, quality=90)
            tasks.append(
                Task(
                    job="bench/executor",
                    job_uid="bench",
                    task=str(i),
                    input=path.as_uri(),
                    output=(root / "out" / f"{i}.jpg").as_uri(),
                    filters=PIPELINE,
                )
            )
        print(f"{args.images} images of 1 MP, pipeline: {' -> '.join(str(f['name']) for f in PIPELINE)}")
        print(f"{'concurrency':>11} {'threads img/s':>14} {'processes img/s':>16} {'threads/processes':>18}")
        for concurrency in (1, 2):
            threads, procs = [], []
            for _ in range(args.rounds):
                with ThreadPoolExecutor(concurrency) as pool:
                    threads.append(rate(pool, tasks))
                with ProcessPoolExecutor(concurrency, mp_context=context) as pool:
                    procs.append(rate(pool, tasks))
            t, p = statistics.median(threads), statistics.median(procs)
            print(f"{concurrency:>11} {t:>14.1f} {p:>16.1f} {t / p:>18.2f}")


if __name__ == "__main__":
    main()
