"""Real worker processes (``python -m filterjob_worker``) with their JSON log lines collected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any


class WorkerProcess:
    """A real ``python -m filterjob_worker`` with its JSON log lines collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filterjob_worker"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # A session of its own: close() ends its pool processes too, which would otherwise
            # outlive a killed worker and hold its stderr open.
            start_new_session=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def health_port(self) -> int:
        """The port the worker bound (it is started with FILTERJOB_HEALTH_PORT=0), as it logged it."""
        line = self.wait_log(lambda line: "port" in line and str(line.get("msg", "")).startswith("serving /healthz"))
        return int(line["port"])

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.raw.append(line)
                with contextlib.suppress(ValueError):  # a non-JSON line is kept in raw only
                    self.lines.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Block until a log line matches (or the process ends); returns the line."""

        def found() -> dict[str, Any] | None:
            return next((line for line in self.lines if predicate(line)), None)

        with self._changed:
            ok = self._changed.wait_for(lambda: found() is not None or not self._reader.is_alive(), timeout)
            line = found()
        if not ok or line is None:
            raise AssertionError(f"log line not seen; worker said:\n{''.join(self.raw)[-3000:]}")
        return line

    async def consuming(self, within: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_log, lambda line: line.get("msg", "").startswith("consuming"), within)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def messages(self) -> list[str]:
        return [str(line.get("msg", "")) for line in self.lines]


WorkerFactory = Callable[..., WorkerProcess]
