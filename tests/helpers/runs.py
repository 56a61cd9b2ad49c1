"""``filterjob run`` as a real process: interrupted by a real signal, its summary read back."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from filterjob_worker.storage import TEMP_SUFFIX

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
    How much the run finishes after the signal must not depend on how fast it reacts (a
    loaded machine once let it finish everything): the whole run is frozen (SIGSTOP) when
    the signal is sent, and resumed run first. A run through the broker (``--broker``)
    resumes its workers only once it has told each of them to stop (SIGTERM pending in
    each); a local run's pool processes cannot go far without the run handing them tasks.
    Checks what every interrupted run must do: exit 1, the resume hint, no traceback.
    """
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for(lambda: written() >= 4 or process.poll() is not None, timeout=60, message="some outputs")
        assert process.poll() is None, process.communicate()[0]
        os.killpg(process.pid, signal.SIGSTOP)
        workers = children(process.pid) if "--broker" in argv else []
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        os.kill(process.pid, signal.SIGCONT)
        wait_for(
            lambda: all(pending(worker, signal.SIGTERM) for worker in workers),
            timeout=60,
            message=f"the run to tell its workers {workers} to stop",
        )
        os.killpg(process.pid, signal.SIGCONT)
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 1, output
    assert "rerun with --skip-existing" in output
    assert "Traceback" not in output
    return output


def children(pid: int) -> list[int]:
    """The direct children of process ``pid`` (of any of its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def pending(pid: int, sig: signal.Signals) -> bool:
    """Whether ``sig`` waits, pending, at process ``pid`` (True once it is gone: nothing waits)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    mask = 0
    for line in status.splitlines():
        if line.startswith(("ShdPnd:", "SigPnd:")):
            mask |= int(line.split()[1], 16)
    return bool(mask & (1 << (sig - 1)))


def no_temporary_files(root: Path) -> bool:
    return not list(root.rglob(f"*{TEMP_SUFFIX}"))
