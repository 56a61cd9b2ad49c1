"""Consuming a job's task queue: fair dispatch, manual acks, retries and parking.

A delivery's life: decode (malformed → parked at once) → wait for a free slot
(``concurrency``) → process off the event loop → then exactly one of

- succeeded: publish ``task.succeeded``, ack;
- transient failure with attempts left: publish to the retry delay queue for this
  attempt (it expires back into the task queue), ack;
- permanent failure or attempts used up: publish to ``.parked`` with the reason,
  ack.

Acks come only after the output is written and any follow-up message is
confirmed by the broker, so a worker killed at any point loses nothing: its
unacked deliveries return to the queue. The quorum queue's delivery limit parks a
task that keeps killing its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError

from filterjob_worker import processing
from filterjob_worker.adapters.amqp import describe_refusal, publish_confirmed
from filterjob_worker.core import envelope
from filterjob_worker.core.contract import Event, Task
from filterjob_worker.core.environment import WorkerConfig, connection_name
from filterjob_worker.core.errors import MalformedMessage, WorkerDied, reason_of
from filterjob_worker.core.outcome import Outcome
from filterjob_worker.health import Health
from filterjob_worker.metrics import WorkerMetrics

log = logging.getLogger("filterjob.worker")

ExecutorFactory = Callable[[], Executor]
#: What a task does; the image pipeline, or a stand-in (benchmarks of pure messaging).
Work = Callable[[Task], Outcome]


class Consumer:
    """Consumes one job's task queue until drained."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        health: Health,
        metrics: WorkerMetrics,
        executor_factory: ExecutorFactory,
        work: Work = processing.process,
    ) -> None:
        self.config = config
        self.topology = config.topology
        self.health = health
        self.metrics = metrics
        self._executor_factory = executor_factory
        self._work = work
        self._executor = executor_factory()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._events: AbstractExchange | None = None
        self._consumer_tag: str | None = None

    # -- connection lifecycle ---------------------------------------------------

    async def start(self) -> None:
        """Connect, check the job's topology exists and start consuming."""
        connection = await aio_pika.connect_robust(
            self.config.broker_url,
            client_properties={"connection_name": connection_name(self.config.worker_id)},
        )
        connection.close_callbacks.add(self._on_close)
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection = connection
        try:
            channel = await connection.channel(publisher_confirms=True)
            assert isinstance(channel, AbstractRobustChannel)
            self._channel = channel
            await channel.set_qos(prefetch_count=self.config.prefetch)
            # Passive: the topology belongs to whoever runs the job, never to a worker. Every
            # queue is checked: a retry or parked queue missing (a worker configured with
            # more attempts than the job) would silently drop the tasks routed to it.
            for name in self.topology.queues:
                await channel.get_queue(name, ensure=True)
            self._queue = await channel.get_queue(self.topology.tasks, ensure=True)
            self._events = await channel.get_exchange(self.topology.events, ensure=True)
            self._consumer_tag = await self._queue.consume(self._on_message)
        except Exception:
            # start() is retried until it works: a failed attempt must not leave its connection open.
            connection.close_callbacks.discard(self._on_close)
            connection.reconnect_callbacks.discard(self._on_reconnect)
            self._connection = None
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        self.health.connection_restored()
        self.health.consuming = True
        log.info("consuming %s", self.topology.tasks, extra={"queue": self.topology.tasks})

    def _on_close(self, sender: Any, exc: BaseException | None = None) -> None:
        if not self.health.draining:
            log.warning("broker connection lost: %s", exc or "closed")
        self.health.connection_lost()

    def _on_reconnect(self, sender: Any) -> None:
        log.info("broker connection restored")
        self.health.connection_restored()
        self.health.consuming = not self.health.draining

    async def drain(self, grace: float) -> int:
        """Stop taking tasks, let in-flight ones finish within ``grace`` seconds, close;
        returns how many were still running and went back to the queue unfinished."""
        self.health.draining = True
        self.health.consuming = False
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:  # the connection may be down; unacked tasks return anyway
                log.warning("could not cancel the consumer", exc_info=True)
        pending = set(self._tasks)
        late: set[asyncio.Task[None]] = set()
        if pending:
            log.info("draining %d in-flight tasks (grace %.0f s)", len(pending), grace)
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d tasks did not finish within the grace period; they return to the queue", len(late))
                await asyncio.wait(late)
        if self._connection is not None:
            await self._connection.close()
        if late:
            # Their images are back in the queue, unacked; the work still running on them
            # is of no use, and a pool process busy with it would outlive the worker.
            _stop_processes(self._executor)
        self._executor.shutdown(wait=False, cancel_futures=True)
        return len(late)

    # -- one delivery -------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        attempt = envelope.attempt_of(message.headers) or 1  # a message naming none is a first try
        try:
            task = Task.from_json(message.body)
        except MalformedMessage as e:
            log.error("malformed task parked: %s", e, extra={"attempt": attempt})
            await self._settle(message, self._park(message, reason_of(e), attempt, cause="malformed"))
            return
        async with self._slots:
            if self.health.draining:
                # Delivered but not started: give it back for another worker now.
                await message.nack(requeue=True)
                return
            context = {"job": task.job, "task": task.task, "attempt": attempt}
            self.metrics.in_flight.inc()
            try:
                outcome = await self._process(task)
            finally:
                self.metrics.in_flight.dec()
            self.metrics.duration.observe(outcome.seconds)
            self.health.record(outcome.ok)
        # Outside the slot: waiting for the broker's confirms and the ack overlaps the
        # next task's image work instead of idling the executor (the ack still comes last).
        await self._settle(message, self._conclude(message, task, attempt, outcome, context))

    async def _process(self, task: Task) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(self._work, task))
        except BrokenProcessPool:
            # A pool process died (OOM kill?); the image may be the cause, so this is
            # one failed attempt, and the next task gets a fresh pool.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._executor_factory()
            return Outcome.of(task, error=WorkerDied("the process handling this image died"))

    async def _conclude(
        self,
        message: AbstractIncomingMessage,
        task: Task,
        attempt: int,
        outcome: Outcome,
        context: dict[str, Any],
    ) -> None:
        redelivered = bool(message.redelivered)
        if outcome.ok:
            self.metrics.tasks.labels("succeeded").inc()
            log.debug("task succeeded in %.3f s", outcome.seconds, extra=context)  # INFO would cost ~10%
            await self._emit(Event(kind="succeeded", **self._event_fields(task, attempt, outcome, redelivered)))
        elif not outcome.permanent and attempt < self.config.retry.max_attempts:
            delay = self.config.retry.delay(attempt - 1)
            queue = self.topology.retry_queue(attempt - 1)
            await self._publish(queue, envelope.retry_message(message, attempt=attempt + 1, message_id=task.task))
            self.metrics.tasks.labels("retried").inc()
            log.warning("task failed, retry in %.1f s: %s", delay, outcome.reason, extra=context)
            await self._emit(Event(kind="retrying", **self._event_fields(task, attempt, outcome, redelivered)))
        else:
            cause = "permanent" if outcome.permanent else "exhausted"
            await self._park(message, outcome.reason or "unknown", attempt, cause=cause, task_id=task.task)
            log.error("task parked (%s): %s", cause, outcome.reason, extra=context)
            await self._emit(Event(kind="failed", **self._event_fields(task, attempt, outcome, redelivered)))

    def _event_fields(self, task: Task, attempt: int, outcome: Outcome, redelivered: bool) -> dict[str, Any]:
        return {
            "job": task.job,
            "task": task.task,
            "input": task.input,
            "output": task.output,
            "attempt": attempt,
            "worker": self.config.worker_id,
            "seconds": outcome.seconds,
            "reason": outcome.reason,
            "redelivered": redelivered,
        }

    async def _park(
        self, message: AbstractIncomingMessage, reason: str, attempt: int, *, cause: str, task_id: str | None = None
    ) -> None:
        parked = envelope.parked_message(
            message,
            reason=reason,
            attempt=attempt,
            worker=self.config.worker_id,
            message_id=task_id or message.message_id,
        )
        await self._publish(self.topology.parked, parked)
        self.metrics.tasks.labels("parked").inc()
        self.metrics.parked.labels(cause).inc()

    async def _settle(self, message: AbstractIncomingMessage, conclude: Any) -> None:
        """Run the follow-ups, then ack: a delivery is acked only once what replaces it (a retry or a
        parked copy) is confirmed by the broker, so no failure path can lose a task."""
        try:
            await conclude
            await message.ack()
        except asyncio.CancelledError:
            raise
        except DeliveryError as e:
            # The broker refused or returned the follow-up (its queue was deleted?): the delivery goes
            # back to the queue for another try; its delivery limit ends in the dead letters, not a loop.
            log.error("could not settle a delivery, it goes back to its queue: %s", describe_refusal(e))
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        except Exception as e:
            # Mostly the connection gone (the broker redelivers then); on a channel still open
            # (a follow-up it could not encode), the nack returns the delivery instead of holding it.
            log.warning("could not settle a delivery, it will be redelivered: %s", e)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)

    async def _publish(self, queue: str, message: aio_pika.Message) -> None:
        assert self._channel is not None
        await publish_confirmed(self._channel.default_exchange, message, routing_key=queue)

    async def _emit(self, event: Event) -> None:
        assert self._events is not None
        await self._events.publish(envelope.event_message(event), routing_key=event.routing_key, mandatory=False)


def _stop_processes(executor: Executor) -> None:
    """Kill a process pool's processes (a thread pool's threads cannot be stopped).

    ``ProcessPoolExecutor`` has no public way to stop a busy process before Python 3.14's
    ``terminate_workers``; a killed process leaves at most a hidden temporary file, which
    listings ignore (writes are atomic).
    """
    processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.kill()
