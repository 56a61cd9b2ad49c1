"""Everything the control plane says to RabbitMQ: topology, enqueueing, queue stats.

Enqueueing uses publisher confirms with a bounded window of unconfirmed
messages: the producer waits for the broker whenever ``window`` messages are
outstanding, so a million tasks take constant memory and a slow broker slows the
producer instead of being flooded. (RabbitMQ's own flow control and the quorum
queues' ``reject-publish`` overflow push back the same way.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, DeliveryMode
from aio_pika.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError
from aiormq.abc import DeliveredMessage

from filterjob_operator import listing
from filterjob_operator.broker_errors import BrokerUnavailable
from filterjob_operator.status import Depths, estimate_unacked
from filterjob_worker.contract import ATTEMPT_HEADER, CONTENT_TYPE, REASON_HEADER, WORKER_HEADER, Task
from filterjob_worker.errors import MalformedTask
from filterjob_worker.topology import Topology, declare_inputs

DEFAULT_WINDOW = 256
log = logging.getLogger("filterjob.operator")


def task_message(task: Task) -> aio_pika.Message:
    """The message of a task: persistent JSON, the task id as message id, attempt 1."""
    return aio_pika.Message(
        task.to_json(),
        message_id=task.task,
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        headers={ATTEMPT_HEADER: 1},
    )


async def publish_tasks(
    channel: AbstractChannel,
    topology: Topology,
    tasks: Iterable[Task],
    *,
    window: int = DEFAULT_WINDOW,
    on_confirmed: Callable[[int], None] | None = None,
) -> int:
    """Publish every task, each confirmed by the broker; returns how many.

    ``on_confirmed(n)`` is called whenever the first ``n`` tasks are all
    confirmed (a resumable cursor: tasks before it never need publishing again).
    """
    exchange = channel.default_exchange
    confirmed: set[int] = set()
    cursor = 0
    failure: list[BaseException] = []
    running: set[asyncio.Task[None]] = set()
    # Set whenever the cursor moves or a publish fails: the producer waits on it, never polls.
    moved = asyncio.Event()

    async def publish(index: int, task: Task) -> None:
        nonlocal cursor
        try:
            result = await exchange.publish(task_message(task), routing_key=topology.tasks)
            if isinstance(result, DeliveredMessage):
                # Returned as unroutable (no tasks queue): aio-pika hands it back instead of raising
                # unless the channel has on_return_raises; either way the task was not enqueued.
                raise PublishError(result, result.delivery)
        except BaseException as e:
            failure.append(e)
            moved.set()
            raise
        confirmed.add(index)
        advanced = cursor
        while advanced in confirmed:
            confirmed.discard(advanced)
            advanced += 1
        if advanced != cursor:
            cursor = advanced
            moved.set()
            if on_confirmed is not None:
                on_confirmed(cursor)

    count = 0
    try:
        for index, task in enumerate(tasks):
            # The window is counted from the cursor, not in flight: one slow confirm holds the
            # producer, so the tasks past the cursor (and the confirmed set) never exceed it.
            while not failure and index - cursor >= window:
                moved.clear()
                await moved.wait()
            if failure:
                break
            job = asyncio.create_task(publish(index, task))
            running.add(job)
            job.add_done_callback(running.discard)
            count += 1
    finally:
        # Even if the task source fails, settle what is in flight before returning.
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    if failure:
        raise failure[0]
    return count


@dataclass(frozen=True)
class QueueStats:
    ready: int
    unacked: int
    consumers: int
    #: False until the broker sampled the queue's statistics once (the counts then read 0).
    sampled: bool = True

    @property
    def messages(self) -> int:
        return self.ready + self.unacked


async def ready_counts(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    """Ready messages per queue, from passive declares (exact now; unacked not included).

    Safe to cancel: the declares go on to their answer (one round trip each) in a task of their
    own, because aiormq closes a channel whose call in flight is cancelled, and the caller's
    next use of the channel (a run's final flush) would fail.
    """
    counting = asyncio.ensure_future(_ready_counts(channel, topology))
    # Retrieved here, so a failure after the caller was cancelled is not reported as unretrieved.
    counting.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(counting)


async def _ready_counts(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    out: dict[str, int] = {}
    # Not channel.declare_queue(passive=True): a robust channel answers that from its cache of
    # queues it declared before, with the stale counts of that first declaration.
    underlay = await channel.get_underlay_channel()
    for name in topology.queues:
        result = await underlay.queue_declare(name, passive=True)
        out[name] = int(result.message_count or 0)
    return out


def management_url_for(broker_url: str) -> str:
    """The usual management API URL of a broker: same host and credentials, port 15672."""
    parts = urlsplit(broker_url)
    # URL credentials are percent-encoded already: decode before encoding, never encode twice.
    user = quote(unquote(parts.username or "guest"), safe="")
    password = quote(unquote(parts.password or "guest"), safe="")
    return f"http://{user}:{password}@{parts.hostname or 'localhost'}:15672/"


def vhost_of(broker_url: str) -> str:
    """The virtual host an AMQP URL names, as aiormq reads it (``/`` when the path is empty)."""
    path = urlsplit(broker_url).path
    if path in ("", "/"):
        return "/"
    return unquote(path[1:])


class Management:
    """RabbitMQ's HTTP management API: ready and unacked counts per queue.

    ``vhost`` must be the one the AMQP connection uses (:func:`vhost_of`): queue names
    are per vhost, and the API answers 404 for the same name in another one.
    """

    def __init__(self, url: str, *, vhost: str = "/") -> None:
        parts = urlsplit(url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}/api"
        # A header rather than aiohttp.BasicAuth, which aiohttp 3.14 deprecates (and 4.0 removes).
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._vhost = quote(vhost, safe="")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Management:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def available(self) -> bool:
        try:
            await self._get("/overview")
        except (aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def queue(self, name: str) -> QueueStats:
        data = await self._get(f"/queues/{self._vhost}/{quote(name, safe='')}")
        return QueueStats(
            ready=int(data.get("messages_ready", 0)),
            unacked=int(data.get("messages_unacknowledged", 0)),
            consumers=int(data.get("consumers", 0)),
            sampled="messages_unacknowledged" in data,
        )

    async def _get(self, path: str) -> Any:
        """The JSON object at ``path``; an answer that is none raises ``aiohttp.ClientResponseError``,
        so callers treat a URL serving something else (a proxy's page, garbage) as an API that is down."""
        assert self._session is not None, "use Management as an async context manager"
        async with self._session.get(self._base + path) as response:
            response.raise_for_status()
            try:
                data = await response.json()
            except ValueError as e:  # not UTF-8, not JSON
                problem = f"not the RabbitMQ management API at {self._base}: its answer is no JSON ({e})"
            else:
                if isinstance(data, dict):
                    return data
                problem = f"not the RabbitMQ management API at {self._base}: its answer is no JSON object"
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status, message=problem
            )


async def depths(
    channel: AbstractChannel, topology: Topology, management: Management | None, *, enqueued: int
) -> Depths:
    """Messages in a job's queues: exact ready counts, unacked estimated from the management API.

    ``enqueued``: tasks published so far. See :func:`status.estimate_unacked` for how stale
    statistics are read.
    """
    ready = await ready_counts(channel, topology)
    retrying = sum(ready[q] for q in topology.retry_queues)
    sample: QueueStats | None = None
    if management is not None:
        try:
            sample = await management.queue(topology.tasks)
        except (aiohttp.ClientError, TimeoutError) as e:
            # Without statistics nothing tells a busy worker from a finished task: every task not
            # ready counts as in flight (as before a first sample), so the job neither ends nor
            # loses its workers on a guess; it goes on once the API answers again.
            log.warning("management API unavailable, every task not ready counts as in flight until it answers: %s", e)
    unacked = estimate_unacked(
        ready=ready[topology.tasks],
        retrying=retrying,
        parked=ready[topology.parked],
        enqueued=enqueued,
        sampled=(sample.ready, sample.unacked) if sample is not None and sample.sampled else None,
    )
    return Depths(ready=ready[topology.tasks], unacked=unacked, retrying=retrying, parked=ready[topology.parked])


@dataclass(frozen=True)
class Parked:
    task: str
    reason: str
    #: The input's URI, when the task decodes (a malformed task has none).
    input: str = ""
    attempt: int = 0


def _parked(message: AbstractIncomingMessage) -> Parked:
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if reason is None:
        reason = "the task kept failing its workers (delivery limit exceeded)"
    try:
        source = Task.from_json(message.body).input
    except MalformedTask:
        source = ""
    attempt = headers.get(ATTEMPT_HEADER, 0)
    return Parked(
        task=message.message_id or "",
        reason=str(reason),
        input=source,
        attempt=attempt if isinstance(attempt, int) else 0,
    )


async def parked_failures(connection: AbstractConnection, topology: Topology) -> list[Parked]:
    """Every distinct parked task with its reason, read without removing anything.

    Messages are fetched unacknowledged on a channel of their own and all return
    to the queue when it closes. Distinct by task id, so a task parked twice (a
    worker killed between parking and acking) counts once.
    """
    channel = await connection.channel()
    seen: dict[str, Parked] = {}
    try:
        queue = await channel.get_queue(topology.parked, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            parked = _parked(message)
            seen.setdefault(parked.task, parked)
    finally:
        await channel.close()
    return list(seen.values())


#: Headers a parked message carries about its failure; a re-driven task starts without them.
_FAILURE_HEADERS = (
    REASON_HEADER,
    WORKER_HEADER,
    "x-failed-at",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)


async def redrive(connection: AbstractConnection, topology: Topology) -> list[Parked]:
    """Move every parked task back to the task queue with a fresh attempt count.

    One at a time: a task is acked off the parked queue only after its copy in the
    task queue is confirmed, so a crash in between leaves it in both places (done
    twice, harmlessly: outputs are idempotent) and never in neither.
    """
    channel = await connection.channel(publisher_confirms=True)
    moved: list[Parked] = []
    try:
        queue = await channel.get_queue(topology.parked, ensure=True)
        await channel.get_queue(topology.tasks, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _FAILURE_HEADERS}
            try:
                result = await channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers={**headers, ATTEMPT_HEADER: 1},
                        message_id=message.message_id,
                        content_type=message.content_type or CONTENT_TYPE,
                        delivery_mode=DeliveryMode.PERSISTENT,
                    ),
                    routing_key=topology.tasks,
                    mandatory=True,
                )
            except DeliveryError as e:  # nacked: the queue is full (a max-length policy) or failing
                raise RedriveRefused(topology, moved, "refused") from e
            if isinstance(result, DeliveredMessage):  # returned: the task queue is gone
                why = getattr(result.delivery, "reply_text", None) or "unroutable"
                raise RedriveRefused(topology, moved, f"returned ({why})")
            await message.ack()
            moved.append(_parked(message))
    finally:
        # Closing returns an unacked parked task (the one refused) to the parked queue.
        with contextlib.suppress(Exception):
            await channel.close()
    return moved


class RedriveRefused(BrokerUnavailable):
    """The broker would not take a parked task back into the task queue; the tasks not
    moved are all still parked (each leaves the parked queue only once its copy is confirmed)."""

    def __init__(self, topology: Topology, moved: list[Parked], what: str) -> None:
        self.moved = moved
        super().__init__(
            f"the broker {what} a parked task moved back to {topology.tasks}: {len(moved)} moved,"
            f" the others are still parked in {topology.parked}; check that queue's limits"
            " (a max-length policy) and run redrive again"
        )


async def publish_listing(
    channel: AbstractChannel, topology: Topology, messages: Iterable[bytes], *, queue_name: str | None = None
) -> int:
    """Replace the job's listing with ``messages`` (see :mod:`listing`), each confirmed; how many.

    ``queue_name``: another listing queue than the inputs' (:attr:`Topology.outputs`).
    The queue is purged first: a lister that starts over leaves no part of an earlier run
    behind (except what a reader held at that moment, which :class:`listing.Reader` tells apart).
    """
    name = queue_name or topology.inputs
    queue = await declare_inputs(channel, topology, queue=name)
    await queue.purge()
    count = 0
    for body in messages:
        result = await channel.default_exchange.publish(
            aio_pika.Message(body, content_type=CONTENT_TYPE, delivery_mode=DeliveryMode.PERSISTENT),
            routing_key=name,
        )
        if isinstance(result, DeliveredMessage):
            raise PublishError(result, result.delivery)
        count += 1
    return count


def _add(reader: listing.Reader, message: AbstractIncomingMessage, queue: str) -> None:
    try:
        reader.add(message.body)
    except listing.ListingError as e:
        log.warning("ignoring a message of %s: %s", queue, e)


async def forget_listing(connection: AbstractConnection, topology: Topology, *, queue_name: str | None = None) -> None:
    """Drop the job's stored listing, so that its inputs are listed anew (or another listing queue's)."""
    channel = await connection.channel()
    try:
        await channel.queue_delete(queue_name or topology.inputs)
    finally:
        await channel.close()


async def stored_listing(connection: AbstractConnection, topology: Topology) -> listing.Listing | None:
    """The job's listing as stored in the broker now, if complete; read without removing anything."""
    channel = await connection.channel()
    reader = listing.Reader()
    try:
        try:
            queue = await channel.declare_queue(topology.inputs, passive=True)
        except ChannelNotFoundEntity:
            return None  # no lister ever ran for this job
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            _add(reader, message, topology.inputs)
    finally:
        if not channel.is_closed:
            await channel.close()
    return reader.listing


class ListingWatch:
    """Follows the job's inputs queue until a listing is complete, consuming nothing.

    A consumer that never acks, on a channel of its own: when the watch closes, every
    message returns to the queue, which keeps the listing for the next operator start.
    """

    def __init__(self, connection: AbstractConnection, topology: Topology, *, queue_name: str | None = None) -> None:
        self._connection = connection
        self._topology = topology
        self._queue = queue_name or topology.inputs
        self._reader = listing.Reader()
        self._arrived = asyncio.Event()
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> ListingWatch:
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=0)  # every message, however long the listing
        queue = await declare_inputs(self._channel, self._topology, queue=self._queue)
        await queue.consume(self._on_message, no_ack=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        _add(self._reader, message, self._queue)
        self._arrived.set()

    async def next(self, seconds: float) -> listing.Listing | None:
        """The listing once complete; None if it is not after ``seconds`` (or a message that did not complete it)."""
        if (found := self._reader.listing) is not None:
            return found
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._arrived.wait()
        return self._reader.listing


@dataclass(frozen=True)
class Existing:
    """A queue or exchange of a job that exists on the broker."""

    name: str
    kind: str  # "queue" or "exchange"
    messages: int = 0
    consumers: int = 0


#: Retry queues probed beyond a topology's own (left by an earlier, longer retry policy).
MAX_RETRY_QUEUES = 100


async def existing(connection: AbstractConnection, topology: Topology, *, extra: Iterable[str] = ()) -> list[Existing]:
    """Every queue and exchange of the job that exists now, with counts (passive declares only).

    Retry queues are probed past the topology's own, up to the first missing one: a job
    whose retry policy shrank keeps the higher-numbered queues of the earlier one.
    """
    found: list[Existing] = []
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()

    async def probe(name: str, kind: str) -> bool:
        nonlocal channel, underlay
        try:
            if kind == "queue":
                ok = await underlay.queue_declare(name, passive=True)
                found.append(Existing(name, kind, int(ok.message_count or 0), int(ok.consumer_count or 0)))
            else:
                await underlay.exchange_declare(name, passive=True)
                found.append(Existing(name, kind))
        except ChannelNotFoundEntity:
            # The broker closed the channel with the answer; the next probe needs a new one.
            channel = await connection.channel()
            underlay = await channel.get_underlay_channel()
            return False
        return True

    try:
        for name in (topology.tasks, topology.parked, topology.inputs, topology.outputs, *extra):
            await probe(name, "queue")
        for n in range(MAX_RETRY_QUEUES):
            if not await probe(topology.retry_queue(n), "queue") and n >= topology.retry.retries:
                break
        for name in (topology.events, topology.dead_letters):
            await probe(name, "exchange")
    finally:
        if not channel.is_closed:
            await channel.close()
    return found


async def remove(connection: AbstractConnection, found: Iterable[Existing]) -> None:
    """Delete what :func:`existing` found (messages included)."""
    channel = await connection.channel()
    try:
        for item in found:
            if item.kind == "queue":
                await channel.queue_delete(item.name)
            else:
                await channel.exchange_delete(item.name)
    finally:
        await channel.close()
