"""A job daemon's pause between status checks: it ends on time or on a stop, and never leaves kopf
a finished task with an error (kopf re-raises those when the operator exits)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from kopf._cogs.aiokits.aioenums import AsyncFlagWaiter, FlagSetter

from filterjob_operator.control.reconcile.context import pause


@pytest_asyncio.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[object]]]:
    """Every task the event loop creates while the test runs."""
    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[object]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: object, **kwargs: object) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.Task(coro, loop=loop, **kwargs)  # type: ignore[arg-type]
        created.append(task)
        return task

    previous = loop.get_task_factory()
    loop.set_task_factory(factory)  # type: ignore[arg-type]
    yield created
    loop.set_task_factory(previous)


def failed(tasks: list[asyncio.Task[object]]) -> list[BaseException]:
    return [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]  # type: ignore[misc]


async def test_a_pause_that_runs_out_says_not_stopped_and_leaves_no_failed_task(
    tasks: list[asyncio.Task[object]],
) -> None:
    setter: FlagSetter[object] = FlagSetter()
    assert await pause(AsyncFlagWaiter(setter), 0.01) is False
    await asyncio.sleep(0)  # let a cancelled inner task finish
    assert tasks, "kopf's wait runs as a task of its own; the check below would see nothing"
    assert failed(tasks) == []


async def test_a_stop_ends_the_pause_at_once_and_says_stopped(tasks: list[asyncio.Task[object]]) -> None:
    setter: FlagSetter[object] = FlagSetter()
    paused = asyncio.ensure_future(pause(AsyncFlagWaiter(setter), 3600))
    await asyncio.sleep(0)
    assert not paused.done()
    setter.set()
    assert await paused is True
    assert failed(tasks) == []


async def test_a_daemon_cancelled_while_paused_stays_cancelled() -> None:
    """kopf cancels a daemon that did not stop in time; the pause must not turn that into a timeout."""
    setter: FlagSetter[object] = FlagSetter()
    paused = asyncio.ensure_future(pause(AsyncFlagWaiter(setter), 3600))
    await asyncio.sleep(0)
    paused.cancel()
    with pytest.raises(asyncio.CancelledError):
        await paused
