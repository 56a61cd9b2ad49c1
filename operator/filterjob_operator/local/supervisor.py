"""Keeps N local worker processes running, the way a Deployment keeps its replicas.

Each worker is ``python -m filterjob_worker`` — the very entrypoint of the pods —
configured by the same environment variables as the pod template. A worker that
exits while it should be running is restarted (with a short backoff if it keeps
crashing); ``stop`` sends SIGTERM and waits for a graceful exit.

Unlike a kubelet, it gives up: a worker that rejects its configuration (exit
:data:`INVALID_CONFIG_EXIT`) is not restarted, and one that exits more than
``restart_budget`` times within ``restart_window`` seconds is not either. Either
way :attr:`Supervisor.gave_up` is set with the reason and the worker's last words
(its stderr goes through the supervisor, to the log file or to this terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from filterjob_worker.core.environment import INVALID_CONFIG_EXIT, Var

log = logging.getLogger("filterjob.supervisor")

#: A worker that lived shorter than this is "crashing"; restarts back off.
CRASH_WINDOW = 5.0
MAX_BACKOFF = 10.0
#: Restarts of one worker allowed within RESTART_WINDOW seconds before the run stops.
RESTART_BUDGET = 5
RESTART_WINDOW = 60.0
#: Lines of a worker's stderr kept to say why it exited.
LAST_WORDS = 20
#: Longest wait for the rest of a worker's stderr once it has exited (a child may hold the pipe).
STDERR_DRAIN = 5.0
WORKER_COMMAND = (sys.executable, "-m", "filterjob_worker")


@dataclass(frozen=True)
class GaveUp:
    """Why the supervisor stopped restarting a worker."""

    reason: str
    #: The worker rejected its configuration: nothing can run until it is fixed.
    invalid_config: bool


def last_words(lines: Sequence[str]) -> str:
    """A worker's last stderr lines as one line: JSON log lines by their message, others as printed."""
    words: list[str] = []
    for line in lines:
        text = line.strip()
        with contextlib.suppress(ValueError, AttributeError):
            text = str(json.loads(text).get("msg", text))
        text = text.removeprefix("- ").strip()
        if text:
            words.append(text)
    return " ".join(w if w.endswith(":") else w + ";" for w in words).rstrip(";")


class Supervisor:
    def __init__(
        self,
        replicas: int,
        env: Mapping[str, str],
        *,
        log_dir: str | None = None,
        command: Sequence[str] = WORKER_COMMAND,
        restart_budget: int = RESTART_BUDGET,
        restart_window: float = RESTART_WINDOW,
    ) -> None:
        self.replicas = replicas
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.command = list(command)
        self.restart_budget = restart_budget
        self.restart_window = restart_window
        self.restarts = 0
        #: Set once a worker is given up on; :attr:`failure` says why.
        self.gave_up = asyncio.Event()
        self.failure: GaveUp | None = None
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._relays: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """Pids of the running workers (for tests that kill them)."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    async def start(self) -> None:
        self._keepers = [asyncio.create_task(self._keep(slot)) for slot in range(self.replicas)]

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        # FILTERJOB_PARENT_PID: a worker drains and exits if this process dies without stopping it.
        env = {**self.env, Var.WORKER_ID: f"local-{slot}", Var.PARENT_PID: str(os.getpid())}
        return await asyncio.create_subprocess_exec(
            *self.command, env=env, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )

    async def _relay(self, slot: int, stream: asyncio.StreamReader, tail: deque[str]) -> None:
        """Copy a worker's stderr to its log file (or this process's stderr), keeping its last lines."""
        sink: IO[bytes] | None = None
        if self.log_dir is not None:
            sink = open(os.path.join(self.log_dir, f"worker-{slot}.log"), "ab")  # noqa: SIM115, ASYNC230
        try:
            while line := await stream.readline():
                tail.append(line.decode(errors="replace"))
                if sink is not None:
                    sink.write(line)
                    sink.flush()
                else:
                    sys.stderr.write(line.decode(errors="replace"))
        finally:
            if sink is not None:
                sink.close()

    async def _keep(self, slot: int) -> None:
        backoff = 0.5
        exits: deque[float] = deque()
        while not self._stopping:
            started = time.monotonic()
            proc = await self._spawn(slot)
            self._procs[slot] = proc
            tail: deque[str] = deque(maxlen=LAST_WORDS)
            assert proc.stderr is not None
            relay = asyncio.create_task(self._relay(slot, proc.stderr, tail))
            self._relays.add(relay)
            relay.add_done_callback(self._relays.discard)
            code = await proc.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STDERR_DRAIN):
                    await asyncio.shield(relay)
            if self._stopping:
                return
            now = time.monotonic()
            exits.append(now)
            while exits and exits[0] < now - self.restart_window:
                exits.popleft()
            said = last_words(list(tail))
            if code == INVALID_CONFIG_EXIT:
                self._give_up(GaveUp(reason=said or "a worker rejected its configuration", invalid_config=True))
                return
            if len(exits) > self.restart_budget:
                reason = (
                    f"worker {slot} exited {len(exits)} times within {self.restart_window:g} s "
                    f"(last exit code {code})" + (f": {said}" if said else "")
                )
                self._give_up(GaveUp(reason=reason, invalid_config=False))
                return
            self.restarts += 1
            lived = now - started
            log.warning("worker %d exited with %s after %.1f s; restarting", slot, code, lived)
            if lived < CRASH_WINDOW:
                await asyncio.sleep(backoff)  # crash-loop backoff, as a kubelet does
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = 0.5

    def _give_up(self, failure: GaveUp) -> None:
        if self.failure is None:
            self.failure = failure
            log.info("giving up on the workers: %s", failure.reason)  # the run reports it
        self.gave_up.set()

    async def stop(self, grace: float = 30.0) -> dict[int, int | None]:
        """SIGTERM every worker, wait for them (SIGKILL after ``grace`` seconds); returns exit codes."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for slot, proc in self._procs.items():
            try:
                async with asyncio.timeout(grace):
                    codes[slot] = await proc.wait()
            except TimeoutError:
                proc.kill()
                codes[slot] = await proc.wait()
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        if self._relays:
            # Exited workers' pipes are at their end (or held by an orphan: then stop relaying).
            _, pending = await asyncio.wait(self._relays, timeout=STDERR_DRAIN)
            for relay in pending:
                relay.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return codes
