"""The backlog both enqueuers share (the operator's reconciler a batch at a time, a local run all at
once): what is pending starts at the first key the broker has not confirmed, so resuming skips none."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from filterjob_operator.adapters.broker.backlog import Backlog
from filterjob_operator.adapters.broker.enqueue import Cursor, publish_tasks
from filterjob_worker.core.contract import Task
from filterjob_worker.core.topology import Topology
from tests.helpers.publishing import Channel, Exchange

TOPOLOGY = Topology.for_job(namespace="ns", name="j", uid="u")
KEYS = [f"{n}.jpg" for n in "abcdef"]


def test_a_new_backlog_pends_every_key_or_its_first_batch() -> None:
    assert Backlog(KEYS).pending() == KEYS
    assert Backlog(KEYS, batch=4).pending() == KEYS[:4]
    assert Backlog(KEYS, batch=100).pending() == KEYS
    fresh = Backlog(KEYS)
    assert (fresh.position, fresh.through, fresh.done) == (0, None, False)


def test_confirmed_keys_are_no_longer_pending() -> None:
    backlog = Backlog(KEYS, batch=2)
    for index in range(3):
        backlog.cursor.confirm(index)
    assert backlog.position == 3
    assert backlog.through == "c.jpg"  # the last key confirmed, as the job's status saves it
    assert backlog.pending() == ["d.jpg", "e.jpg"]


def test_keys_confirmed_past_a_gap_stay_pending() -> None:
    backlog = Backlog(KEYS)
    backlog.cursor.confirm(0)
    backlog.cursor.confirm(2)  # b.jpg not confirmed: c.jpg may be published again, b.jpg never skipped
    assert (backlog.position, backlog.through) == (1, "a.jpg")
    assert backlog.pending() == KEYS[1:]


def test_a_backlog_is_done_once_every_key_is_confirmed() -> None:
    backlog = Backlog(KEYS, cursor=Cursor(len(KEYS)))
    assert backlog.done
    assert backlog.pending() == []
    assert backlog.through == "f.jpg"
    assert Backlog([]).done


@pytest.mark.parametrize("batch", [0, -1])
def test_an_empty_batch_is_refused(batch: int) -> None:
    # It would publish nothing and never be done: an endless loop.
    with pytest.raises(ValueError, match=f"at least one key, got {batch}"):
        Backlog(KEYS, batch=batch)


def tasks(keys: Sequence[str]) -> Iterator[Task]:
    for key in keys:
        yield Task(job="ns/j", job_uid="u", task=key, input=f"in/{key}", output=f"out/{key}", filters=())


async def publish(backlog: Backlog, exchange: Exchange) -> None:
    await publish_tasks(Channel(exchange), TOPOLOGY, tasks(backlog.pending()), cursor=backlog.cursor)  # type: ignore[arg-type]


async def test_published_a_batch_at_a_time_every_key_goes_once_in_order() -> None:
    backlog, exchange = Backlog(KEYS, batch=4), Exchange()
    rounds = 0
    while not backlog.done:
        await publish(backlog, exchange)
        rounds += 1
    assert (rounds, exchange.published) == (2, KEYS)


async def test_after_a_failed_publish_the_backlog_resumes_at_the_first_key_not_confirmed() -> None:
    backlog, exchange = Backlog(KEYS), Exchange(fail={"d.jpg"}, once=True)
    with pytest.raises(ConnectionError):
        await publish(backlog, exchange)
    assert backlog.through == "c.jpg"
    await publish(backlog, exchange)
    assert backlog.done
    # Every key reached the broker; the failed one, and any confirmed past it, went again.
    assert set(exchange.published) == set(KEYS)
    assert exchange.published[-3:] == ["d.jpg", "e.jpg", "f.jpg"]
