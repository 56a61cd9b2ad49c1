"""Hostile messages, fuzzed: every decoder a message passes through maps any input to a value or to
the project's own error with a reason a user can read; never to another exception.

The task contract (what a worker parks or processes), task events and ``job.finished`` (what the
runner, ``filterjob watch`` and the progress queue read), the headers a task gathers (attempt,
reason, the broker's dead-letter record, and what a retried or parked copy carries on) and the
listing messages of a job's inputs. Bounded by the hypothesis profile of tests/conftest.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from pamqp import encode

from filterjob_operator.core import listing
from filterjob_operator.watch import cluster_finished, dead_letter_event
from filterjob_worker.core import envelope
from filterjob_worker.core.contract import EVENT_KINDS, JOB_PHASES, Event, JobFinished, Task
from filterjob_worker.core.errors import MalformedMessage, SpecError, reason_of
from filterjob_worker.core.outcome import Outcome
from filterjob_worker.core.pipeline import Pipeline
from filterjob_worker.core.topology import Topology
from tests.helpers.deliveries import Delivery
from tests.helpers.hostile import (
    HEADERS,
    JSON_VALUES,
    LARGE_REPRS,
    RAW_BODIES,
    deep_body,
    dumps,
    mutated,
    near_valid_bodies,
    reason_problem,
    total,
)

pytestmark = LARGE_REPRS
TASK: dict[str, Any] = {
    "v": 1,
    "job": "ns/j",
    "jobUid": "u-1",
    "task": "a.png",
    "input": "file:///in/a.png",
    "output": "file:///out/a.jpg",
    "filters": [{"name": "blur", "radius": 2}, {"name": "crop", "box": [0, 0, 4, 4]}],
    "format": {"format": "jpeg", "quality": 85},
    "source": "file:///in/",
}
EVENT = json.loads(
    Event(kind="failed", job="ns/j", task="a.png", input="i", output="o", attempt=2, worker="w", reason="r").to_json()
)
FINISHED = json.loads(JobFinished(job="ns/j", phase="Succeeded", total=3, succeeded=2, failed=1).to_json())
CHUNK = json.loads(listing.encode("run-1", ["a.png", "b/c.png"], skipped=[("d.png", "unreadable")])[0])
TOPOLOGY = Topology.for_job(namespace="ns", name="j", uid="u-1")


def _utf8(*texts: str) -> bool:
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(near_valid_bodies(TASK))
@example(b"1" * 5000)  # before: ValueError (too many digits for int()) escaped, the delivery was never settled
@example(deep_body(100_000))  # before: RecursionError escaped
@example(dumps({**TASK, "task": "\ud800"}))  # before: accepted; its parked copy could not be published
@example(dumps({**TASK, "task": "t" * 300}))  # before: accepted; a message id is at most 255 bytes
@example(dumps({**TASK, "job": "x" * 100_000}))  # before: the reason quoted the whole field
@example(dumps({**TASK, "format": {"quality": 10**4000}}))  # before: the reason's repr raised ValueError
def test_a_task_body_decodes_to_a_task_that_can_be_sent_on_or_to_malformed_message(body: bytes) -> None:
    result = total(lambda: Task.from_json(body), (MalformedMessage,))
    if isinstance(result, MalformedMessage):
        assert reason_problem(reason_of(result)) is None
        assert reason_of(result).startswith("not a valid task message: ")
        return
    assert isinstance(result, Task)
    assert _utf8(result.job, result.job_uid, result.task, result.input, result.output, result.source or "")
    assert len(result.task.encode()) <= 255  # the AMQP message id of its retried and parked copies
    assert Task.from_json(result.to_json()) == result
    # What the worker does next with its filters: a pipeline or a SpecError (a permanent failure).
    total(lambda: Pipeline.parse(result.filters), (SpecError,))


def _event_ok(event: Event) -> None:
    assert event.kind in EVENT_KINDS
    assert all(isinstance(v, str) for v in (event.job, event.task, event.input, event.output, event.worker))
    assert type(event.attempt) is int
    assert event.attempt >= 0
    assert math.isfinite(event.seconds)
    assert event.seconds >= 0
    assert event.reason is None or isinstance(event.reason, str)
    assert isinstance(event.redelivered, bool)
    assert _utf8(event.job, event.task, event.input, event.output, event.worker, event.reason or "")
    again = Event.from_json(event.to_json())
    assert Event.from_json(again.to_json()) == again


@given(near_valid_bodies(EVENT))
@example(dumps({**EVENT, "attempt": math.inf}))  # before: OverflowError escaped
@example(dumps({**EVENT, "event": ["succeeded"]}))  # before: accepted, a list as the kind
@example(dumps({**EVENT, "seconds": math.nan}))  # before: accepted, NaN seconds
@example(dumps({**EVENT, "redelivered": "false"}))  # before: read as True
@example(deep_body(100_000))  # before: RecursionError escaped
def test_a_task_event_decodes_to_an_event_or_to_malformed_message(body: bytes) -> None:
    result = total(lambda: Event.from_json(body), (MalformedMessage,))
    if isinstance(result, Event):
        _event_ok(result)


@given(near_valid_bodies(FINISHED))
@example(dumps({**FINISHED, "total": -math.inf}))  # before: OverflowError escaped
@example(dumps({**FINISHED, "phase": {"a": 1}}))  # before: accepted, "{'a': 1}" as the phase
@example(dumps({**FINISHED, "failed": True}))  # before: accepted, a boolean as a count
def test_a_job_finished_body_decodes_to_its_counts_or_to_malformed_message(body: bytes) -> None:
    result = total(lambda: JobFinished.from_json(body), (MalformedMessage,))
    if isinstance(result, JobFinished):
        assert result.phase in JOB_PHASES
        assert _utf8(result.job)
        counts = (result.total, result.succeeded, result.failed, result.skipped)
        assert all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)
        assert JobFinished.from_json(result.to_json()) == result


def _encodable(headers: Any) -> None:
    """pamqp can write these headers (what publishing a copy of a delivery needs)."""
    encode.field_table(headers)


@given(HEADERS, RAW_BODIES | near_valid_bodies(TASK))
@example({"x-attempt": "9" * 30}, b"{}")  # before: attempt 10^30 named, its parked copy could not be written
@example({"x-custom": b"\xff"}, b"{}")  # before: bytes (a non-UTF-8 header) made every copy unpublishable
@example({"x-custom": 1e300}, b"{}")  # before: OverflowError writing the copy (pamqp writes single floats)
@example({"x-death": [{"reason": b"\xff"}]}, b"{}")  # before: UnicodeDecodeError escaped death_reason
@example({"x-failure-reason": ""}, b"{}")  # before: an empty reason
@example({"x-failure-reason": b"why"}, b"{}")  # before: "b'why'"
def test_any_headers_read_to_a_value_and_every_copy_of_the_delivery_can_be_published(
    headers: dict[str, Any], body: bytes
) -> None:
    attempt = envelope.attempt_of(headers)
    assert attempt is None or (isinstance(attempt, int) and 1 <= attempt <= envelope.MAX_ATTEMPT)
    for reason in (envelope.reason_of(headers), envelope.death_reason(headers)):
        assert reason is None or reason_problem(reason) is None
    delivery = Delivery(headers=headers, body=body, message_id=None)
    parked = envelope.parked_message(
        delivery,  # type: ignore[arg-type]
        reason="why",
        attempt=attempt or 1,
        worker="w",
        message_id=None,
    )
    retried = envelope.retry_message(delivery, attempt=(attempt or 1) + 1, message_id="t")  # type: ignore[arg-type]
    redriven = envelope.redriven_message(delivery)  # type: ignore[arg-type]
    for message in (parked, retried, redriven):
        _encodable(message.headers)
        assert message.body == body
    assert parked.headers[envelope.REASON_HEADER] == "why"
    assert retried.headers[envelope.ATTEMPT_HEADER] == (attempt or 1) + 1


@given(HEADERS, RAW_BODIES | near_valid_bodies(EVENT) | near_valid_bodies(TASK), st.booleans())
def test_a_finished_message_reads_to_an_outcome_or_none(headers: dict[str, Any], body: bytes, dead: bool) -> None:
    exchange = TOPOLOGY.dead_letters if dead else TOPOLOGY.events
    message = Delivery(headers=headers, body=body, exchange=exchange, message_id="t")
    outcome = envelope.finished_outcome(message, TOPOLOGY)  # type: ignore[arg-type]
    assert outcome is None or isinstance(outcome, Outcome)
    if outcome is not None:
        assert isinstance(outcome.task, str)
        hash(outcome.task)  # the runner's tally keys outcomes by task
        # An event's reason is the worker's own words, of any length; a dead letter's is said here.
        assert outcome.reason is None or isinstance(outcome.reason, str)
    if dead:
        failed = dead_letter_event(message, TOPOLOGY)  # type: ignore[arg-type]
        assert failed.kind == "failed"
        assert reason_problem(failed.reason) is None


@given(JSON_VALUES | mutated({"status": {"phase": "Succeeded", "total": 2}, "metadata": {"name": "j"}}))
@example({"status": [{"phase": "Succeeded"}]})  # before: AttributeError ('list' object has no attribute 'get')
@example({"status": {"phase": "Failed"}, "metadata": "j"})  # before: AttributeError
def test_a_cluster_job_of_any_shape_reads_to_its_end_or_none(job: Any) -> None:
    end = cluster_finished(job) if isinstance(job, dict) else None
    assert end is None or end.phase in JOB_PHASES


@given(st.lists(near_valid_bodies(CHUNK) | near_valid_bodies({"v": 1, "run": "r", "error": "gone"}), max_size=4))
@example([b"1" * 5000])
@example([deep_body(100_000)])  # before: RecursionError escaped
@example([dumps({**CHUNK, "keys": [1, None, {"a": 2}]})])  # before: accepted, keys "1", "None", "{'a': 2}"
@example([dumps({**CHUNK, "seq": True})])  # before: accepted, True as chunk 1
@example([dumps({**CHUNK, "skipped": [[1, 2]]})])  # before: accepted, paths that are not text
@example([dumps({"v": 1, "run": "r", "error": ""})])  # before: an empty error, "the lister failed: "
@example([dumps({**CHUNK, "run": "x" * 100_000})])  # before: the reason quoted 100 bytes of the body
def test_listing_messages_add_up_to_a_listing_or_are_refused_with_a_reason(bodies: list[bytes]) -> None:
    reader = listing.Reader()
    for body in bodies:
        total(lambda body=body: reader.add(body), (listing.ListingError,))
    found = reader.listing
    if found is not None:
        assert isinstance(found.run, str)
        # Keys may hold lone surrogates: a file name that is not UTF-8, as Python reads it.
        assert all(isinstance(k, str) for k in found.keys)
        assert all(isinstance(p, str) and isinstance(r, str) for p, r in found.skipped)
        assert found.error is None or (isinstance(found.error, str) and found.error.strip())
