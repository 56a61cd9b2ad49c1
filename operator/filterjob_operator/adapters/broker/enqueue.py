"""Enqueueing a job's tasks: publisher confirms in a bounded window, from a resumable cursor.

The producer waits for the broker whenever ``window`` messages are outstanding, so a
million tasks take constant memory and a slow broker slows the producer instead of
being flooded. (RabbitMQ's own flow control and the quorum queues' ``reject-publish``
overflow push back the same way.) The :class:`Cursor` says how far the broker confirmed
every task: whoever enqueues resumes there after a failure or a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from aio_pika.abc import AbstractChannel

from filterjob_worker.adapters.amqp import publish_confirmed
from filterjob_worker.core.contract import Task
from filterjob_worker.core.envelope import task_message
from filterjob_worker.core.topology import Topology

DEFAULT_WINDOW = 256


class Cursor:
    """How far a sequence of tasks is enqueued: every task before :attr:`position` is confirmed.

    Confirms arrive out of order; one past the position is held until every task before it
    is confirmed too, so the position never passes a task that may not be in the queue.
    """

    def __init__(self, position: int = 0) -> None:
        if position < 0:
            raise ValueError(f"a cursor's position is a task count, got {position}")
        self.position = position
        self._ahead: set[int] = set()

    def confirm(self, index: int) -> bool:
        """Task ``index`` (0-based, over the whole sequence) is confirmed; True if the position moved."""
        if index < self.position:
            return False
        self._ahead.add(index)
        start = self.position
        while self.position in self._ahead:
            self._ahead.discard(self.position)
            self.position += 1
        return self.position != start

    def resume(self) -> int:
        """Where publishing starts again: the position, with the confirms held past it forgotten
        (their tasks are published again; a task enqueued twice is harmless, outputs are idempotent)."""
        self._ahead.clear()
        return self.position

    def ahead(self, index: int) -> int:
        """Tasks from the position up to ``index``: how many a producer at ``index`` has outstanding."""
        return index - self.position


async def _room_for(
    index: int, *, cursor: Cursor, window: int, moved: asyncio.Event, failure: list[BaseException]
) -> None:
    """Wait until task ``index`` fits in the window, or a publish failed.

    The window is counted from the cursor, not in flight: one slow confirm holds the
    producer, so the tasks past the cursor (and the confirms held) never exceed it.
    """
    while not failure and cursor.ahead(index) >= window:
        moved.clear()
        await moved.wait()


async def _settle(running: set[asyncio.Task[None]]) -> None:
    """Even if the task source fails, settle what is in flight before returning."""
    if running:
        await asyncio.gather(*running, return_exceptions=True)


async def publish_tasks(
    channel: AbstractChannel,
    topology: Topology,
    tasks: Iterable[Task],
    *,
    window: int = DEFAULT_WINDOW,
    cursor: Cursor | None = None,
    on_confirmed: Callable[[int], None] | None = None,
) -> int:
    """Publish every task, each confirmed by the broker; returns how many.

    ``tasks`` are those from ``cursor``'s position on (a fresh cursor if none), which moves
    as they are confirmed. ``on_confirmed(n)`` is called whenever the first ``n`` of ``tasks``
    are all confirmed (tasks before it never need publishing again).
    """
    at = Cursor() if cursor is None else cursor
    start = at.resume()
    exchange = channel.default_exchange
    failure: list[BaseException] = []
    running: set[asyncio.Task[None]] = set()
    # Set whenever the cursor moves or a publish fails: the producer waits on it, never polls.
    moved = asyncio.Event()

    async def publish(index: int, task: Task) -> None:
        try:
            await publish_confirmed(exchange, task_message(task), routing_key=topology.tasks)
        except BaseException as e:
            failure.append(e)
            moved.set()
            raise
        if at.confirm(index):
            moved.set()
            if on_confirmed is not None:
                on_confirmed(at.position - start)

    count = 0
    try:
        for index, task in enumerate(tasks, start):
            await _room_for(index, cursor=at, window=window, moved=moved, failure=failure)
            if failure:
                break
            job = asyncio.create_task(publish(index, task))
            running.add(job)
            job.add_done_callback(running.discard)
            count += 1
    finally:
        await _settle(running)
    if failure:
        raise failure[0]
    return count
