"""Health of a worker: healthy / degraded / unhealthy, always with a reason.

The state is computed when asked, from facts the consumer records as they
happen (connection lost at, outcomes of recent tasks, draining), so nothing polls
the consumer or the broker; only a timer (:class:`LoopLagProbe`) measures how late
the event loop runs. Liveness fails only when a restart could help:
the broker unreachable past its budget, or the event loop stalled (in which case
the probe itself is not answered in time).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class Report:
    state: State
    reason: str
    ready: bool
    ready_reason: str


@dataclass
class Health:
    """Facts about the worker, and the verdict derived from them."""

    #: Seconds the broker may stay unreachable before liveness fails.
    broker_budget: float = 60.0
    #: Recent outcomes considered for the failure ratio.
    window: int = 50
    #: Failure ratio above which the worker reports degraded.
    failure_ratio: float = 0.5
    connected: bool = False
    consuming: bool = False
    draining: bool = False
    disconnected_since: float | None = None
    outcomes: deque[bool] = field(default_factory=deque)
    #: Event-loop lag above which the worker reports degraded.
    lag_budget: float = 2.0
    #: Latest lag measured by :class:`LoopLagProbe` (seconds late).
    loop_lag: float = 0.0

    def connection_lost(self) -> None:
        self.connected = False
        self.consuming = False
        if self.disconnected_since is None:
            self.disconnected_since = time.monotonic()

    def connection_restored(self) -> None:
        self.connected = True
        self.disconnected_since = None

    def record(self, ok: bool) -> None:
        self.outcomes.append(ok)
        while len(self.outcomes) > self.window:
            self.outcomes.popleft()

    def report(self) -> Report:
        ready, ready_reason = True, "consuming"
        if self.draining:
            ready, ready_reason = False, "draining: finishing in-flight tasks before exit"
        elif not self.connected:
            ready, ready_reason = False, "not connected to the broker"
        elif not self.consuming:
            ready, ready_reason = False, "connected but not consuming"

        if self.disconnected_since is not None:
            down = time.monotonic() - self.disconnected_since
            if down > self.broker_budget:
                return Report(State.UNHEALTHY, f"broker unreachable for {down:.0f} s", ready, ready_reason)
            return Report(State.DEGRADED, f"broker unreachable for {down:.0f} s, reconnecting", ready, ready_reason)
        if self.loop_lag > self.lag_budget:
            reason = f"event loop stalled for {self.loop_lag:.1f} s (blocking work on the loop?)"
            return Report(State.DEGRADED, reason, ready, ready_reason)
        failed = self.outcomes.count(False)
        if len(self.outcomes) >= 10 and failed / len(self.outcomes) > self.failure_ratio:
            reason = f"{failed} of the last {len(self.outcomes)} tasks failed"
            return Report(State.DEGRADED, reason, ready, ready_reason)
        return Report(State.HEALTHY, "ok", ready, ready_reason)


class LoopLagProbe:
    """Measures how late the event loop runs a timer, into :attr:`Health.loop_lag`.

    A stalled loop cannot answer probes at all (the kubelet's timeout then fails
    liveness); this catches the milder case of a loop that answers, but late.
    """

    def __init__(self, health: Health, *, interval: float = 1.0) -> None:
        self.health = health
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.health.loop_lag = max(0.0, loop.time() - self._due)
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
