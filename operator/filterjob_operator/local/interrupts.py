"""Interrupts (Ctrl-C, SIGTERM) of a local run, raised only where nothing is half done.

Python raises ``KeyboardInterrupt`` between any two bytecodes of the main thread: between
taking a finished task off the in-flight table and counting it, or between handing a task
to the pool and noting it, which loses an output from the summary while it is on disk.
While :meth:`Interrupts.held` is active, a signal that would interrupt is noted instead and
raised at the next safe point: while the run waits for the pool (:meth:`Interrupts.waiting`,
where nothing is half done), or at :meth:`Interrupts.check`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: Signals a run treats as an interrupt when their handler is a Python function (SIGINT's
#: default handler raises KeyboardInterrupt; the CLI makes SIGTERM do the same).
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self.pending = False
        self._waiting = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._waiting:
            raise KeyboardInterrupt
        self.pending = True

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold interrupts for the block (outside the main thread there are none to hold)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # Only signals that raise today: SIG_DFL (the process ends) and SIG_IGN stay as they are.
        taken = {s: h for s in SIGNALS if callable(h := signal.getsignal(s))}
        for sig in taken:
            signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in taken.items():
                signal.signal(sig, handler)

    def check(self) -> None:
        """Raise the interrupt that arrived while held, if one did."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """A blocking wait during which an interrupt is raised at once."""
        self.check()
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False
