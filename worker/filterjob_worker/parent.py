"""Local mode: a worker never outlives the ``filterjob run`` that started it.

A supervisor killed with SIGKILL (a CI timeout, the OOM killer) cannot stop its
workers, and orphans would keep consuming the job's queue for ever. Linux's
parent-death signal turns the parent's death into a SIGTERM for the worker, which
then drains as on any stop: images in progress finish and are acked, deliveries not
started go back to the queue, so nothing is lost.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger("filterjob.worker")

_PR_SET_PDEATHSIG = 1


def stop_with_parent(parent_pid: int) -> None:
    """Ask for SIGTERM when the parent dies (call after the SIGTERM handler is installed)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot ask for a signal when the supervisor exits: %s", os.strerror(ctypes.get_errno()))
    # The parent may have died before the request: then nobody would ever send it.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
