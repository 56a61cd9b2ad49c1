"""The enqueue cursor: it passes a task only once every task before it is confirmed, and
publishing resumes from it (the tasks confirmed past a gap are published again)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from filterjob_operator.adapters.broker.enqueue import Cursor, publish_tasks
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology
from tests.helpers.publishing import Channel, Exchange

TOPOLOGY = Topology.for_job(namespace="ns", name="j", uid="u")


def test_a_cursor_starts_where_it_is_told() -> None:
    assert Cursor().position == 0
    assert Cursor(7).position == 7


def test_a_cursor_is_never_negative() -> None:
    with pytest.raises(ValueError, match="task count, got -1"):
        Cursor(-1)


def test_confirms_in_order_move_the_cursor_one_by_one() -> None:
    cursor = Cursor()
    assert [cursor.confirm(i) for i in range(3)] == [True, True, True]
    assert cursor.position == 3


def test_a_confirm_past_a_gap_is_held_until_the_gap_closes() -> None:
    cursor = Cursor()
    assert not cursor.confirm(1)
    assert not cursor.confirm(2)
    assert cursor.position == 0
    assert cursor.confirm(0)
    assert cursor.position == 3  # the held confirms behind it count now


def test_a_confirm_before_the_cursor_or_twice_changes_nothing() -> None:
    cursor = Cursor(5)
    assert not cursor.confirm(4)
    assert cursor.confirm(5)
    assert not cursor.confirm(5)
    assert cursor.position == 6


def test_resuming_forgets_the_confirms_held_past_the_gap() -> None:
    cursor = Cursor()
    cursor.confirm(1)
    assert cursor.resume() == 0
    cursor.confirm(0)
    assert cursor.position == 1  # task 1 is published again, its old confirm no longer counts


def test_ahead_counts_from_the_cursor() -> None:
    cursor = Cursor(3)
    assert (cursor.ahead(3), cursor.ahead(10)) == (0, 7)


def tasks(ids: range) -> Iterator[Task]:
    for i in ids:
        yield Task(job="ns/j", job_uid="u", task=f"t{i}", input=f"in/{i}", output=f"out/{i}", filters=())


async def test_publishing_moves_the_cursor_given_and_reports_from_its_start() -> None:
    cursor, reported = Cursor(10), list[int]()
    exchange = Exchange()
    count = await publish_tasks(
        Channel(exchange),  # type: ignore[arg-type]
        TOPOLOGY,
        tasks(range(10, 15)),
        cursor=cursor,
        on_confirmed=reported.append,
    )
    assert (count, cursor.position) == (5, 15)
    assert reported[-1] == 5  # the tasks of this call, as without a cursor
    assert exchange.published == [f"t{i}" for i in range(10, 15)]


async def test_a_failed_publish_leaves_the_cursor_at_the_first_task_not_confirmed() -> None:
    cursor = Cursor()
    with pytest.raises(ConnectionError):
        await publish_tasks(Channel(Exchange(fail={"t3"})), TOPOLOGY, tasks(range(6)), cursor=cursor)  # type: ignore[arg-type]
    assert cursor.position == 3
    # Resumed from there, the run ends with every task confirmed.
    exchange = Exchange()
    await publish_tasks(Channel(exchange), TOPOLOGY, tasks(range(cursor.position, 6)), cursor=cursor)  # type: ignore[arg-type]
    assert (cursor.position, exchange.published) == (6, ["t3", "t4", "t5"])
