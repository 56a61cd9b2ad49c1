"""The messages on the wire: a task's and an event's message, built and read back, headers included."""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import DeliveryMode
from aio_pika.exceptions import PublishError
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from filterjob_worker.adapters import amqp
from filterjob_worker.core import envelope
from filterjob_worker.core.contract import CONTENT_TYPE, Event, JobFinished, Task
from filterjob_worker.core.envelope import ATTEMPT_HEADER, DEATH_HEADER, FAILED_AT_HEADER, REASON_HEADER, WORKER_HEADER
from filterjob_worker.core.topology import Topology
from tests.helpers.deliveries import TASK, Delivery


def test_a_task_message_reads_back_as_its_task_at_attempt_one() -> None:
    message = envelope.task_message(TASK)
    assert Task.from_json(message.body) == TASK
    assert (message.message_id, message.content_type) == ("t1", CONTENT_TYPE)
    assert message.delivery_mode == DeliveryMode.PERSISTENT
    assert envelope.attempt_of(message.headers) == 1


def test_a_retry_keeps_the_headers_and_replaces_the_attempt() -> None:
    delivery = Delivery(headers={ATTEMPT_HEADER: 1, "x-custom": "kept"})
    message = envelope.retry_message(delivery, attempt=2, message_id="t1")  # type: ignore[arg-type]
    assert message.headers == {ATTEMPT_HEADER: 2, "x-custom": "kept"}
    assert (message.body, message.message_id, message.delivery_mode) == (TASK.to_json(), "t1", DeliveryMode.PERSISTENT)


def test_a_parked_message_says_why_when_and_by_whom_with_the_reason_cut_short() -> None:
    delivery = Delivery(headers={ATTEMPT_HEADER: 3, "x-custom": "kept"})
    message = envelope.parked_message(
        delivery,  # type: ignore[arg-type]
        reason="r" * (envelope.REASON_LIMIT + 5),
        attempt=3,
        worker="w1",
        message_id="t1",
    )
    headers = message.headers
    assert headers[REASON_HEADER] == "r" * envelope.REASON_LIMIT
    assert (headers[ATTEMPT_HEADER], headers[WORKER_HEADER], headers["x-custom"]) == (3, "w1", "kept")
    assert isinstance(headers[FAILED_AT_HEADER], int)
    assert envelope.reason_of(headers) == "r" * envelope.REASON_LIMIT


def test_a_redriven_message_drops_every_failure_header_and_starts_at_attempt_one() -> None:
    failure = dict.fromkeys(envelope.FAILURE_HEADERS, "x")
    delivery = Delivery(headers={**failure, ATTEMPT_HEADER: 3, "x-custom": "kept"}, content_type=None)
    message = envelope.redriven_message(delivery)  # type: ignore[arg-type]
    assert message.headers == {ATTEMPT_HEADER: 1, "x-custom": "kept"}
    assert (message.body, message.message_id) == (TASK.to_json(), "t1")
    assert message.content_type == CONTENT_TYPE  # a parked message without one gets the contract's


def test_a_redriven_message_keeps_its_own_content_type() -> None:
    message = envelope.redriven_message(Delivery(content_type="text/plain"))  # type: ignore[arg-type]
    assert message.content_type == "text/plain"


@pytest.mark.parametrize(
    "event",
    [
        Event(kind="failed", job="ns/j", task="t1", input="i", output="o", attempt=2, worker="w", reason="bad"),
        JobFinished(job="ns/j", phase="Succeeded", total=3, succeeded=3, failed=0),
    ],
)
def test_an_event_message_reads_back_as_its_event(event: Event | JobFinished) -> None:
    message = envelope.event_message(event)
    assert type(event).from_json(message.body) == event
    assert (message.content_type, message.delivery_mode) == (CONTENT_TYPE, DeliveryMode.PERSISTENT)


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [
        (None, None),
        ({}, None),
        ({ATTEMPT_HEADER: 4}, 4),
        ({ATTEMPT_HEADER: "4"}, 4),
        ({ATTEMPT_HEADER: "four"}, None),
        ({ATTEMPT_HEADER: 0}, None),
        ({ATTEMPT_HEADER: -2}, None),
        ({ATTEMPT_HEADER: 2.5}, None),
        ({ATTEMPT_HEADER: [1]}, None),
    ],
)
def test_the_attempt_is_a_number_from_one_or_none(headers: dict[str, Any] | None, attempt: int | None) -> None:
    assert envelope.attempt_of(headers) == attempt


def test_a_reason_is_read_as_text_when_there_is_one() -> None:
    assert envelope.reason_of(None) is None
    assert envelope.reason_of({}) is None
    assert envelope.reason_of({REASON_HEADER: 42}) == "42"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (None, None),
        ({DEATH_HEADER: []}, None),
        ({DEATH_HEADER: "garbage"}, None),
        ({DEATH_HEADER: ["garbage"]}, None),
        ({DEATH_HEADER: [{"reason": b"delivery_limit"}, {"reason": "expired"}]}, "delivery_limit"),
        ({DEATH_HEADER: [{"reason": "rejected"}]}, "rejected"),
        ({DEATH_HEADER: [{"queue": "q"}]}, "dead-lettered"),
    ],
)
def test_a_death_reason_is_the_latest_dead_lettering(headers: dict[str, Any] | None, why: str | None) -> None:
    assert envelope.death_reason(headers) == why


class Exchange:
    """Answers a publish as the broker would: taken (None) or returned."""

    def __init__(self, returned: DeliveredMessage | None) -> None:
        self.returned = returned
        self.published: list[tuple[bytes, str]] = []

    async def publish(self, message: Any, routing_key: str) -> DeliveredMessage | None:
        self.published.append((message.body, routing_key))
        return self.returned


def returned(reply_text: str) -> DeliveredMessage:
    frame = Basic.Return(reply_code=312, reply_text=reply_text, exchange="", routing_key="gone")
    return DeliveredMessage(delivery=frame, header=ContentHeader(), body=b"", channel=None)  # type: ignore[arg-type]


async def test_a_confirmed_publish_that_the_broker_takes_returns() -> None:
    exchange = Exchange(returned=None)
    await amqp.publish_confirmed(exchange, envelope.task_message(TASK), routing_key="q")  # type: ignore[arg-type]
    assert exchange.published == [(TASK.to_json(), "q")]


async def test_a_message_returned_as_unroutable_raises_naming_why() -> None:
    exchange = Exchange(returned=returned("NO_ROUTE"))
    with pytest.raises(PublishError, match="NO_ROUTE") as raised:
        await amqp.publish_confirmed(exchange, envelope.task_message(TASK), routing_key="q")  # type: ignore[arg-type]
    assert envelope.returned_why(raised.value) == "NO_ROUTE"


def test_a_return_without_a_reply_text_is_unroutable() -> None:
    assert envelope.returned_why(PublishError(returned(""), returned("").delivery)) == "unroutable"


TOPOLOGY = Topology(base="fj.ns.j.u")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({DEATH_HEADER: [{"reason": b"delivery_limit"}]}, "delivery limit"),
        ({DEATH_HEADER: [{"reason": "expired"}]}, "expired"),
        ({}, "delivery limit exceeded"),  # the broker's record is gone: the one reason it parks for
    ],
)
def test_a_dead_lettered_task_fails_saying_why_the_broker_parked_it(headers: dict[str, Any], why: str) -> None:
    delivery = Delivery(headers=headers, exchange=TOPOLOGY.dead_letters)
    outcome = envelope.finished_outcome(delivery, TOPOLOGY)  # type: ignore[arg-type]
    assert outcome is not None
    assert (outcome.task, outcome.ok) == ("t1", False)
    assert outcome.reason == f"the task kept failing its workers ({why})"


def test_a_dead_letter_without_a_message_id_still_finishes_failed() -> None:
    delivery = Delivery(message_id=None, exchange=TOPOLOGY.dead_letters)
    outcome = envelope.finished_outcome(delivery, TOPOLOGY)  # type: ignore[arg-type]
    assert outcome is not None
    assert (outcome.task, outcome.ok) == ("", False)


@pytest.mark.parametrize(("kind", "ok"), [("succeeded", True), ("failed", False)])
def test_a_final_event_finishes_its_task_as_it_says(kind: str, ok: bool) -> None:
    event = Event(
        kind=kind,
        job="ns/j",
        task="t9",
        input="file:///in/a.png",
        output="file:///out/a.png",
        attempt=2,
        worker="w",
        seconds=1.5,
        reason=None if ok else "bad",
    )
    delivery = Delivery(body=event.to_json(), exchange=TOPOLOGY.events)
    outcome = envelope.finished_outcome(delivery, TOPOLOGY)  # type: ignore[arg-type]
    assert outcome is not None
    assert (outcome.task, outcome.input, outcome.output, outcome.ok) == ("t9", event.input, event.output, ok)
    assert (outcome.seconds, outcome.reason) == (1.5, event.reason)


@pytest.mark.parametrize("body", [b"not json", b"[]", TASK.to_json()])
def test_a_message_that_is_no_event_finishes_nothing(body: bytes) -> None:
    delivery = Delivery(body=body, exchange=TOPOLOGY.events)
    assert envelope.finished_outcome(delivery, TOPOLOGY) is None  # type: ignore[arg-type]
