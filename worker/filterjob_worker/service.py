"""The worker service: configuration → health server → consumer → drain on signal."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from filterjob_worker import http, parent, processing
from filterjob_worker.consumer import Consumer
from filterjob_worker.core.environment import WorkerConfig
from filterjob_worker.core.urls import redact, scrub
from filterjob_worker.health import Health, LoopLagProbe
from filterjob_worker.metrics import WorkerMetrics

log = logging.getLogger("filterjob.worker")

#: First and longest wait between attempts to reach the broker at start-up.
CONNECT_BACKOFF = (0.5, 15.0)


def executor_factory(config: WorkerConfig) -> Executor:
    if config.executor == "thread":
        processing.prepare_process()
        return ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="filter")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["filterjob_worker.processing"])
    return ProcessPoolExecutor(
        max_workers=config.concurrency, mp_context=context, initializer=processing.prepare_process
    )


async def serve(config: WorkerConfig) -> int:
    """Run until SIGTERM/SIGINT, then drain; returns the exit code."""
    health = Health()
    metrics = WorkerMetrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.parent_pid is not None:
        parent.stop_with_parent(config.parent_pid)
    runner, port = await http.start(health, metrics, config.health_port)
    # The port bound, for whoever asked for any (FILTERJOB_HEALTH_PORT=0) and must find it.
    log.info("serving /healthz, /readyz and /metrics on port %d", port, extra={"port": port})
    probe = LoopLagProbe(health)
    probe.start()
    consumer = Consumer(config, health=health, metrics=metrics, executor_factory=lambda: executor_factory(config))
    log.info(
        "worker starting: broker %s, queue %s, concurrency %d, prefetch %d, executor %s",
        redact(config.broker_url),
        config.queue,
        config.concurrency,
        config.prefetch,
        config.executor,
    )
    abandoned = 0
    try:
        if await _connect(consumer, stop):
            await stop.wait()
        log.info("signal received, draining")
        abandoned = await consumer.drain(config.grace_seconds)
    finally:
        probe.stop()
        await runner.cleanup()
    log.info("worker stopped")
    if abandoned:
        # A thread still works on an image that went back to the queue, and Python joins
        # executor threads at exit: the worker would never end. Nothing is left to flush
        # but the logs.
        logging.shutdown()
        os._exit(0)
    return 0


async def _connect(consumer: Consumer, stop: asyncio.Event) -> bool:
    """Start the consumer, retrying with backoff until it works or a stop is asked."""
    delay, longest = CONNECT_BACKOFF
    while not stop.is_set():
        try:
            await consumer.start()
            return True
        except Exception as e:
            consumer.health.connection_lost()
            log.warning("cannot start consuming (%s); retrying in %.1f s", scrub(str(e)), delay)
        try:
            async with asyncio.timeout(delay):  # not wait_for: it can swallow a cancel (Python 3.11)
                await stop.wait()
        except TimeoutError:
            delay = min(delay * 2, longest)
    return False
