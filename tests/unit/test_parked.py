"""What a parked message says about its task: the reason its worker gave (or the broker's
delivery limit), the input when the task decodes, the attempt when its headers name one."""

from __future__ import annotations

from filterjob_operator.adapters.broker.parked import DELIVERY_LIMIT_REASON, Parked, parked_of
from filterjob_worker.core.envelope import ATTEMPT_HEADER, REASON_HEADER
from tests.helpers.deliveries import TASK, Delivery


def test_a_task_parked_by_its_worker_has_its_reason_input_and_attempt() -> None:
    delivery = Delivery(headers={REASON_HEADER: "not an image", ATTEMPT_HEADER: 2})
    assert parked_of(delivery) == Parked(task="t1", reason="not an image", input=TASK.input, attempt=2)  # type: ignore[arg-type]


def test_a_task_the_broker_parked_kept_failing_its_workers() -> None:
    parked = parked_of(Delivery())  # type: ignore[arg-type]
    assert (parked.reason, parked.attempt) == (DELIVERY_LIMIT_REASON, 0)


def test_a_malformed_task_has_no_input_and_a_message_without_id_no_task() -> None:
    parked = parked_of(Delivery(body=b"not json", message_id=None))  # type: ignore[arg-type]
    assert (parked.task, parked.input) == ("", "")
