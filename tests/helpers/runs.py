"""``filterjob run`` as a real process: interrupted by a real signal, its summary read back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from filterjob_worker.adapters.storage import TEMP_SUFFIX

#: The summary's "succeeded" row.
_SUCCEEDED = re.compile(r"succeeded\s*│\s*(\d+)")


def wait_for(condition: Callable[[], bool], *, timeout: float, message: str) -> None:
    """Poll ``condition`` (files on disk announce nothing) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.02)


def succeeded(output: str) -> int:
    """The succeeded count of a printed summary."""
    found = _SUCCEEDED.search(output)
    assert found is not None, output
    return int(found.group(1))


def interrupted_run(
    argv: Sequence[str], written: Callable[[], int], sig: signal.Signals, *, group: bool, timeout: float = 90
) -> str:
    """Start ``argv`` (a ``filterjob run``), signal it once some outputs exist; its output.

    ``group``: signal the whole process group, as a terminal's Ctrl-C or ``timeout`` does.
    The whole run is frozen (SIGSTOP) while the signal is sent, and resumed run first: nothing
    is finished between the outputs counted and the signal. A local run's pool processes then
    cannot go far without the run handing them tasks; a run through the broker has its workers
    go on until it tells them to stop, a few milliseconds (a loaded machine once let it finish
    everything: the run's cancel was swallowed, see ``filterjob_operator.local.follow._until_drained``).
    Checks what every interrupted run must do: exit 1, the resume hint, no traceback.
    """
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for(lambda: written() >= 4 or process.poll() is not None, timeout=60, message="some outputs")
        assert process.poll() is None, process.communicate()[0]
        os.killpg(process.pid, signal.SIGSTOP)
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        os.kill(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGCONT)
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()  # a failed wait never read it: not left to a later test's collector
    assert process.returncode == 1, output
    assert "rerun with --skip-existing" in output
    assert "Traceback" not in output, output
    return output


def no_temporary_files(root: Path) -> bool:
    return not list(root.rglob(f"*{TEMP_SUFFIX}"))
