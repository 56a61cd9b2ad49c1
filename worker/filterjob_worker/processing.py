"""Processing one task: read → decode → filter pipeline → encode → atomic write.

This is the unit of work shared by every way of running FilterJob: the local
process pool and the broker-fed worker service call the same function.
"""

from __future__ import annotations

import os
import time

from PIL import Image

from filterjob_worker.adapters import storage
from filterjob_worker.core import codec
from filterjob_worker.core.contract import Task
from filterjob_worker.core.errors import PermanentTaskError, SpecError, TaskError
from filterjob_worker.core.outcome import Outcome
from filterjob_worker.core.pipeline import Pipeline

#: Memory blocks Pillow keeps for reuse after an image is freed. Without a cache,
#: every image's buffers go back to the OS and the next image page-faults them in
#: again (measured: ~10x the page faults and 12-16% of the time of a bare loop
#: that happens to keep its images alive; bench/local_bench.py). The cache never
#: holds more than the peak an image needed.
PILLOW_BLOCKS_MAX = 32


def prepare_process() -> None:
    """Per-process set-up for image work: keep freed image memory, load codecs now."""
    Image.core.set_blocks_max(PILLOW_BLOCKS_MAX)  # type: ignore[attr-defined]  # untyped C module
    Image.init()  # register every format plugin before the first image, not during it


def execute(task: Task, *, limits: codec.Limits = codec.DEFAULT_LIMITS) -> int:
    """Process a task; returns the bytes written or raises :class:`TaskError`."""
    try:
        pipeline = Pipeline.parse(task.filters)
    except SpecError as e:
        raise PermanentTaskError(str(e)) from e
    data = storage.read_bytes(task.input, max_bytes=limits.max_bytes)
    decoded = codec.decode(data, limits=limits)
    image = pipeline.apply(decoded.image)
    try:
        encoded = codec.encode(decoded, image, task.format)
    except (OSError, ValueError) as e:
        raise PermanentTaskError(f"cannot encode output: {e}") from e
    storage.refuse_overwriting_inputs(task.output, input_uri=task.input, source_uri=task.source)
    storage.write_atomic(task.output, encoded)
    return len(encoded)


def process(task: Task, *, limits: codec.Limits = codec.DEFAULT_LIMITS) -> Outcome:
    """Process a task and report its outcome; task failures never raise."""
    start = time.perf_counter()
    try:
        written = execute(task, limits=limits)
    except TaskError as e:
        return Outcome.of(task, error=e, seconds=time.perf_counter() - start, pid=os.getpid())
    except SpecError as e:  # an input or output URI no storage serves: retrying cannot help
        error = PermanentTaskError(str(e))
        return Outcome.of(task, error=error, seconds=time.perf_counter() - start, pid=os.getpid())
    return Outcome.of(task, seconds=time.perf_counter() - start, bytes_written=written, pid=os.getpid())
