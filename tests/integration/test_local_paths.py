"""The local runner's rarer paths with real pool processes: an input that kills every
process that reads it.

The inputs at stake are FIFO gates (tests/helpers/gates.py), made after the listing: a
pool process that reads one waits there, so the test knows which process holds which
input and decides when it dies or goes on, without depending on timing.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from filterjob_operator.core.samples import make_image
from filterjob_operator.local.options import LocalOptions
from filterjob_operator.local.pool import run_local
from filterjob_operator.local.start import Listener
from filterjob_worker.adapters.storage import TEMP_SUFFIX
from tests.helpers.gates import POLL, Gates, holders, reader_waiting
from tests.helpers.jobfiles import local_job, output_files

#: What the summary says of an input whose process died each time it was read.
DIED = "a worker process died while processing this image (out of memory?)"


class PoisonAndHeld(Listener):
    """Once the inputs are listed, turns ``poison`` and ``held`` into gates. Every process
    that reads ``poison`` is killed; ``held`` is let through only after ``poison`` has
    killed ``deaths`` processes, so it is in flight at each of those deaths."""

    def __init__(self, source: Path, *, poison: str, held: str, deaths: int) -> None:
        self.gates = Gates(source, [poison, held])
        self.poison, self.held, self.deaths = poison, held, deaths
        self.killed: list[int] = []
        self.released = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._control, daemon=True)

    def started(self, total: int) -> None:
        self.gates.close()
        self._thread.start()

    def _control(self) -> None:
        while not self._stop.wait(POLL):
            fd = reader_waiting(self.gates.fifos[self.poison])
            if fd is not None:
                for pid in holders(self.gates.fifos[self.poison]):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                os.close(fd)
            if len(self.killed) >= self.deaths and (fd := reader_waiting(self.gates.fifos[self.held])) is not None:
                try:
                    self.gates.release(self.held, fd)
                    self.released += 1
                except BrokenPipeError:  # its reader died with a pool the run replaced; it reads again
                    os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_an_input_that_kills_every_pool_process_fails_alone_and_the_rest_succeed(
    job_doc: dict[str, Any], job_dirs: tuple[Path, Path]
) -> None:
    src, dst = job_dirs
    # Names in listing order: the poison first, then the held input, then the others.
    names = ["a-poison.jpg", "b-held.jpg", *(f"c-{i}.jpg" for i in range(6))]
    for i, name in enumerate(names):
        make_image((48, 32), seed=i).save(src / name)
    gates = PoisonAndHeld(src, poison=names[0], held=names[1], deaths=2)
    try:
        summary = run_local(local_job(job_doc, src, dst), options=LocalOptions(workers=2), listener=gates)
    finally:
        gates.stop()

    assert len(gates.killed) == 2  # bounded: the first death and one retry of its own
    assert (summary.total, summary.succeeded, summary.failed) == (8, 7, 1)
    assert [(f.input, f.reason) for f in summary.failures] == [(names[0], DIED)]
    assert not summary.ok  # `filterjob run` exits 1 (exits.FAILED)
    assert gates.released == 1
    assert output_files(dst) == sorted(Path(n).with_suffix(".png").as_posix() for n in names[1:])
    assert not list(dst.rglob(f"*{TEMP_SUFFIX}"))
    assert (src / names[0]).exists()  # inputs are left as they were
