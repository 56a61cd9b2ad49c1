"""The messages of a job on the wire: tasks and events as AMQP messages, built and read here only.

:mod:`contract` says what a body holds; this module says what travels around it: the
headers a task gathers on its way (its attempt, why it failed, which worker parked it)
and their names. Publishing them so that a broker that drops one is an error is
:mod:`filterjob_worker.adapters.amqp`'s.
The worker and the operator both use it (the worker never imports the operator).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode
from aio_pika.exceptions import PublishError
from pamqp import encode

from filterjob_worker.core.contract import CONTENT_TYPE, Event, JobFinished, Task
from filterjob_worker.core.errors import MalformedMessage, shown
from filterjob_worker.core.outcome import Outcome
from filterjob_worker.core.topology import Topology

#: Which try of its task a message is, from 1 (set by whoever publishes it).
ATTEMPT_HEADER = "x-attempt"
#: Why a parked task failed (set by the worker that parked it).
REASON_HEADER = "x-failure-reason"
#: The worker that parked a task.
WORKER_HEADER = "x-worker"
#: When a worker parked a task (Unix seconds).
FAILED_AT_HEADER = "x-failed-at"
#: The broker's record of a message's dead-letterings, most recent first.
DEATH_HEADER = "x-death"
#: How long a parked reason may be (a header, not a log).
REASON_LIMIT = 1000
#: The highest attempt a header may name (a signed 32-bit integer): beyond it, none is named.
MAX_ATTEMPT = 2**31 - 1
#: Headers a parked message carries about its failure; a re-driven task starts without them.
FAILURE_HEADERS = (
    REASON_HEADER,
    WORKER_HEADER,
    FAILED_AT_HEADER,
    DEATH_HEADER,
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)

Headers = Mapping[str, Any]


def task_message(task: Task) -> aio_pika.Message:
    """The message of a task: persistent JSON, the task id as message id, attempt 1."""
    return _persistent(task.to_json(), headers={ATTEMPT_HEADER: 1}, message_id=task.task)


def retry_message(message: AbstractIncomingMessage, *, attempt: int, message_id: str | None) -> aio_pika.Message:
    """A delivery sent on to try ``attempt`` (its headers kept, the attempt replaced)."""
    return _persistent(message.body, headers={**_carried(message), ATTEMPT_HEADER: attempt}, message_id=message_id)


def parked_message(
    message: AbstractIncomingMessage, *, reason: str, attempt: int, worker: str, message_id: str | None
) -> aio_pika.Message:
    """A delivery parked for good: its headers say why, after which attempt, by which worker, when."""
    headers = {
        **_carried(message),
        ATTEMPT_HEADER: attempt,
        REASON_HEADER: reason[:REASON_LIMIT],
        WORKER_HEADER: worker,
        FAILED_AT_HEADER: int(time.time()),
    }
    return _persistent(message.body, headers=headers, message_id=message_id)


def redriven_message(message: AbstractIncomingMessage) -> aio_pika.Message:
    """A parked task back to its first attempt: the same body and id, its failure headers dropped."""
    headers = {k: v for k, v in _carried(message).items() if k not in FAILURE_HEADERS}
    return _persistent(
        message.body,
        headers={**headers, ATTEMPT_HEADER: 1},
        message_id=message.message_id,
        content_type=message.content_type or CONTENT_TYPE,
    )


def event_message(event: Event | JobFinished) -> aio_pika.Message:
    """An event for the job's events exchange (routing key ``event.routing_key``).

    Persistent: an observer's durable queue must not lose it to a broker restart.
    """
    return _persistent(event.to_json())


def _carried(message: AbstractIncomingMessage) -> dict[str, Any]:
    """A delivery's headers as a copy of it can carry them on.

    pamqp reads from the wire values it cannot write back (a string that is not UTF-8 comes as
    bytes; a double is written as a single float), and a publish that cannot encode its headers
    would leave the delivery unsettled for ever: such a value travels on as the text it shows.
    """
    headers = dict(message.headers or {})
    try:
        encode.field_table(headers)
    except (TypeError, ValueError, OverflowError, struct.error, RecursionError):
        return {str(key): _writable(value) for key, value in headers.items()}
    return headers


def _writable(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytearray(value)  # AMQP's byte array: the same bytes
    if isinstance(value, dict):
        return {str(key): _writable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_writable(item) for item in value]
    try:
        encode.encode_table_value(value)
    except (TypeError, ValueError, OverflowError, struct.error, RecursionError):
        return shown(value)
    return value


def _persistent(
    body: bytes, *, headers: Headers | None = None, message_id: str | None = None, content_type: str = CONTENT_TYPE
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=dict(headers) if headers is not None else None,
        message_id=message_id,
        content_type=content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
    )


def returned_why(error: PublishError) -> str:
    """What the broker said when it returned a message (``NO_ROUTE`` …)."""
    return str(getattr(error.frame, "reply_text", None) or "unroutable")


def attempt_of(headers: Headers | None) -> int | None:
    """The attempt a message's headers name, or None if they name none that is a number from 1."""
    raw = (headers or {}).get(ATTEMPT_HEADER)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    try:
        attempt = int(raw)
    except ValueError:
        return None
    return attempt if 1 <= attempt <= MAX_ATTEMPT else None


def reason_of(headers: Headers | None) -> str | None:
    """Why a parked message failed, if the worker that parked it said."""
    return _said((headers or {}).get(REASON_HEADER))


def _said(value: Any) -> str | None:
    """A header's text (a string that is not UTF-8 arrives as bytes), or None if it holds none."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else None if value is None else shown(value)
    if text is None or not text.strip():
        return None
    # Lone surrogates cannot go back into a header, nor be printed.
    return text.encode("utf-8", "replace").decode("utf-8")[:REASON_LIMIT]


def death_reason(headers: Headers | None) -> str | None:
    """Why the broker last dead-lettered a message (``delivery_limit`` …), if its headers say."""
    deaths = (headers or {}).get(DEATH_HEADER) or []
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], dict):
        return None
    return _said(deaths[0].get("reason")) or "dead-lettered"


def finished_outcome(message: AbstractIncomingMessage, topology: Topology) -> Outcome | None:
    """The outcome a message that says a task finished reports (a final event, or the task
    itself dead-lettered by the broker to ``topology.dead_letters``), or None if it is not one."""
    if message.exchange == topology.dead_letters:
        why = death_reason(message.headers) or "delivery limit exceeded"
        return Outcome(
            task=message.message_id or "",
            input="",
            output="",
            ok=False,
            seconds=0.0,
            reason=f"the task kept failing its workers ({why.replace('_', ' ')})",
        )
    try:
        event = Event.from_json(message.body)
    except MalformedMessage:
        return None
    if event.kind == "retrying":  # the task goes on: nothing finished
        return None
    return Outcome(
        task=event.task,
        input=event.input,
        output=event.output,
        ok=event.kind == "succeeded",
        seconds=event.seconds,
        reason=event.reason,
    )
