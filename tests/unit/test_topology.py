"""A job's queue topology: names, retry delays and declaration arguments (pure)."""

from __future__ import annotations

import pytest

from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.topology import EXTRA_DELIVERIES, KINDS, TASKS_SUFFIX, QueueName, RetryPolicy, Topology

UID = "0f5c7a1e-5b1b-4c57-9a43-1b2f5d0c9e11"
POLICY = RetryPolicy(max_attempts=4, backoff_seconds=1.5, max_backoff_seconds=5.0)


@pytest.fixture
def topology() -> Topology:
    return Topology.for_job(namespace="photos", name="thumbs", uid=UID, retry=POLICY)


def test_names_derive_from_namespace_name_and_short_uid(topology: Topology) -> None:
    assert topology.base == "fj.photos.thumbs.0f5c7a1e"
    assert topology.tasks == "fj.photos.thumbs.0f5c7a1e.tasks"
    assert topology.parked == "fj.photos.thumbs.0f5c7a1e.parked"
    assert topology.events == "fj.photos.thumbs.0f5c7a1e.events"
    assert topology.dead_letters == "fj.photos.thumbs.0f5c7a1e.dlx"
    assert topology.retry_queue(0) == "fj.photos.thumbs.0f5c7a1e.retry.0"
    assert topology.retry_queues == [f"fj.photos.thumbs.0f5c7a1e.retry.{n}" for n in range(3)]
    assert topology.queues == [topology.tasks, *topology.retry_queues, topology.parked]


@pytest.mark.parametrize(
    ("uid", "short"),
    [
        ("ab/c d:e*f#gh!ij", "abcdefgh"),  # unsafe characters dropped before shortening
        ("a.b_c-d", "a.b_c-d"),  # safe punctuation kept; shorter than 8 is kept whole
        ("", "local"),
        ("/:*! ", "local"),  # nothing safe left
    ],
)
def test_uid_is_shortened_and_unsafe_characters_dropped(uid: str, short: str) -> None:
    topology = Topology.for_job(namespace="ns", name="job", uid=uid)
    assert topology.base == f"fj.ns.job.{short}"


def test_names_are_distinct(topology: Topology) -> None:
    names = [*topology.queues, topology.events, topology.dead_letters]
    assert len(set(names)) == len(names)


def test_from_task_queue_round_trips(topology: Topology) -> None:
    again = Topology.from_task_queue(topology.tasks, POLICY)
    assert again == topology
    assert again.tasks == topology.tasks
    assert again.arguments() == topology.arguments()


def test_from_task_queue_uses_default_policy() -> None:
    assert Topology.from_task_queue("fj.a.b.c.tasks").retry == RetryPolicy()


@pytest.mark.parametrize("queue", ["fj.a.b.c", "fj.a.b.c.parked", "fj.a.b.c.tasks.x", "tasks", TASKS_SUFFIX, ""])
def test_from_task_queue_rejects_other_names(queue: str) -> None:
    with pytest.raises(SpecError, match=r"end in '\.tasks'") as info:
        Topology.from_task_queue(queue)
    assert repr(queue) in str(info.value)


@pytest.mark.parametrize(
    ("retry", "seconds"),
    [(0, 1.5), (1, 3.0), (2, 5.0), (3, 5.0), (30, 5.0)],
)
def test_delay_doubles_and_is_capped(retry: int, seconds: float) -> None:
    assert POLICY.delay(retry) == seconds
    assert isinstance(POLICY.delay(retry), float)


def test_default_delays() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in range(10)] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]


@pytest.mark.parametrize(("attempts", "retries"), [(1, 0), (2, 1), (3, 2), (10, 9)])
def test_retries_are_attempts_after_the_first(attempts: int, retries: int) -> None:
    policy = RetryPolicy(max_attempts=attempts)
    assert policy.retries == retries
    topology = Topology(base="fj.x", retry=policy)
    assert len(topology.retry_queues) == retries
    assert len(topology.arguments()) == retries + 2


def test_tasks_queue_is_quorum_with_delivery_limit_and_dead_letters(topology: Topology) -> None:
    args = topology.arguments()[topology.tasks]
    assert args == {
        "x-queue-type": "quorum",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": topology.dead_letters,
        "x-delivery-limit": POLICY.max_attempts + EXTRA_DELIVERIES,
    }
    assert topology.delivery_limit == 4 + EXTRA_DELIVERIES


def test_retry_queues_expire_into_the_tasks_queue(topology: Topology) -> None:
    arguments = topology.arguments()
    for n, queue in enumerate(topology.retry_queues):
        args = arguments[queue]
        assert args["x-queue-type"] == "quorum"
        assert args["x-message-ttl"] == int(POLICY.delay(n) * 1000)
        assert isinstance(args["x-message-ttl"], int)
        assert args["x-dead-letter-exchange"] == ""
        assert args["x-dead-letter-routing-key"] == topology.tasks
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"
        assert "x-delivery-limit" not in args
    assert [arguments[q]["x-message-ttl"] for q in topology.retry_queues] == [1500, 3000, 5000]


def test_fractional_delays_become_whole_milliseconds() -> None:
    topology = Topology(base="fj.x", retry=RetryPolicy(max_attempts=2, backoff_seconds=0.2))
    assert topology.arguments()[topology.retry_queue(0)]["x-message-ttl"] == 200


def test_parked_queue_is_plain_quorum(topology: Topology) -> None:
    assert topology.arguments()[topology.parked] == {"x-queue-type": "quorum"}


def test_arguments_are_fresh_each_call(topology: Topology) -> None:
    first = topology.arguments()
    first[topology.parked]["x-extra"] = 1
    assert "x-extra" not in topology.arguments()[topology.parked]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"max_attempts": -3}, "max_attempts must be at least 1, got -3"),
        ({"backoff_seconds": 0}, "must be positive"),
        ({"backoff_seconds": -1.0}, "must be positive"),
        ({"max_backoff_seconds": 0}, "must be positive"),
        ({"max_backoff_seconds": -0.5}, "must be positive"),
    ],
)
def test_retry_policy_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def every_name(topology: Topology) -> dict[str, str | None]:
    """Each queue and exchange name of ``topology`` with the kind it has."""
    names: dict[str, str | None] = {
        topology.base: None,
        topology.tasks: "tasks",
        topology.parked: "parked",
        topology.events: "events",
        topology.dead_letters: "dlx",
        topology.inputs: "inputs",
        topology.outputs: "outputs",
        topology.progress: "progress",
    }
    names.update({queue: f"retry.{n}" for n, queue in enumerate(topology.retry_queues)})
    return names


@pytest.mark.parametrize(
    ("namespace", "name", "uid"),
    [
        ("photos", "thumbs", UID),
        ("p-1", "a.b.c", UID),  # a name is a DNS subdomain: dots too
        ("default", "tasks", "local"),  # a name that is also a kind
        ("ns", "x.parked", "ab12"),  # a kind inside the name
        ("0", "9", "a_B-c"),
    ],
)
def test_every_name_of_a_job_reads_back_to_its_base_and_kind(namespace: str, name: str, uid: str) -> None:
    topology = Topology.for_job(namespace=namespace, name=name, uid=uid, retry=POLICY)
    for queue, kind in every_name(topology).items():
        parsed = QueueName.parse(queue)
        assert (parsed.base, parsed.namespace, parsed.name, parsed.kind) == (topology.base, namespace, name, kind)
        assert Topology.from_queue_name(queue).base == topology.base


def test_the_grammar_names_every_kind_a_topology_has(topology: Topology) -> None:
    kinds = {kind for kind in every_name(topology).values() if kind is not None}
    assert {kind.split(".")[0] for kind in kinds} == {kind.split(".")[0] for kind in KINDS}


def test_a_trailing_kind_is_read_as_a_kind_before_a_uid() -> None:
    parsed = QueueName.parse("fj.ns.a.b.parked")
    assert (parsed.base, parsed.name, parsed.kind) == ("fj.ns.a.b", "a", "parked")
    # Nothing before it makes a base: then it is the uid.
    parsed = QueueName.parse("fj.ns.a.parked")
    assert (parsed.base, parsed.name, parsed.kind) == ("fj.ns.a.parked", "a", None)


def test_from_queue_name_keeps_the_retry_policy_given() -> None:
    assert Topology.from_queue_name("fj.ns.job.abc.tasks", POLICY).retry == POLICY


@pytest.mark.parametrize(
    "queue",
    [
        "",
        "fj",
        "fj.ns.job",  # no uid
        "fj.ns..abc",
        "fj.ns.job.abc.",
        "xx.ns.job.abc",
        "fj.Ns.job.abc",  # namespaces and names are lowercase
        "fj.ns.Job.abc",
        "fj.n_s.job.abc",
        "fj.-ns.job.abc",
        "fj.ns.job-.abc",
        "fj.ns.job.abcdefghi",  # a short uid has at most 8 characters
        # (fj.ns.job.abc.tasks.extra is a name: the base of a job job.abc.tasks, uid "extra")
        "fj.ns.job.abc.tasks!",
        "fj.ns.job.abc.retry.1x!",
        "fj.ns.job.abc.retry.",
        " fj.ns.job.abc",
        "fj.ns.job.abc\n",
        "fj.ns.job.abc/tasks",
    ],
)
def test_a_name_outside_the_grammar_is_refused_naming_it(queue: str) -> None:
    with pytest.raises(SpecError, match="not a job's queue name") as info:
        QueueName.parse(queue)
    assert repr(queue) in str(info.value)
    with pytest.raises(SpecError):
        Topology.from_queue_name(queue)
