"""Keeps N local worker processes running, the way a Deployment keeps its replicas.

Each worker is ``python -m filterjob_worker`` — the very entrypoint of the pods —
configured by the same environment variables as the pod template. A worker that
exits while it should be running is restarted (with a short backoff if it keeps
crashing); ``stop`` sends SIGTERM and waits for a graceful exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping

log = logging.getLogger("filterjob.supervisor")

#: A worker that lived shorter than this is "crashing"; restarts back off.
CRASH_WINDOW = 5.0
MAX_BACKOFF = 10.0


class Supervisor:
    def __init__(self, replicas: int, env: Mapping[str, str], *, log_dir: str | None = None) -> None:
        self.replicas = replicas
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.restarts = 0
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """Pids of the running workers (for tests that kill them)."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    async def start(self) -> None:
        self._keepers = [asyncio.create_task(self._keep(slot)) for slot in range(self.replicas)]

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        env = {**self.env, "FILTERJOB_WORKER_ID": f"local-{slot}"}
        stderr = None
        if self.log_dir is not None:
            # Closed right after the spawn: the child keeps its own descriptor.
            stderr = open(os.path.join(self.log_dir, f"worker-{slot}.log"), "ab")  # noqa: SIM115, ASYNC230
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "filterjob_worker", env=env, stdin=asyncio.subprocess.DEVNULL, stderr=stderr
            )
        finally:
            if stderr is not None:
                stderr.close()

    async def _keep(self, slot: int) -> None:
        backoff = 0.5
        while not self._stopping:
            started = time.monotonic()
            proc = await self._spawn(slot)
            self._procs[slot] = proc
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            lived = time.monotonic() - started
            log.warning("worker %d exited with %s after %.1f s; restarting", slot, code, lived)
            if lived < CRASH_WINDOW:
                await asyncio.sleep(backoff)  # crash-loop backoff, as a kubelet does
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = 0.5

    async def stop(self, grace: float = 30.0) -> dict[int, int | None]:
        """SIGTERM every worker, wait for them (SIGKILL after ``grace`` seconds); returns exit codes."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for slot, proc in self._procs.items():
            try:
                codes[slot] = await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                proc.kill()
                codes[slot] = await proc.wait()
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        return codes
