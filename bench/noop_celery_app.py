"""Celery app with a no-op task, for bench/broker_bench.py (settings from the environment).

    FJBENCH_BROKER_URL=amqp://... FJBENCH_QUEUE=name [FJBENCH_QUEUE_TYPE=quorum] \\
        celery -A noop_celery_app worker -P solo --prefetch-multiplier 10 -Q name ...

Settings matched to the FilterJob worker's: durable queue (Celery's default; classic,
or quorum with FJBENCH_QUEUE_TYPE=quorum), persistent messages (Celery's default
delivery mode), ack after the task has run (``acks_late``), no result backend,
prefetch = ``worker_prefetch_multiplier`` x concurrency (the worker's command line
sets both). Native delayed delivery (quorum queues only) is switched off, see below.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.worker.consumer.delayed_delivery import DelayedDelivery

# With a quorum queue, Celery's worker would set up native delayed delivery: 28 quorum
# queues and 29 exchanges (celery_delayed_*) shared by every Celery app on the vhost,
# for ETA/countdown tasks, which the benchmark never sends. Left out: nothing on the
# path of an ordinary task changes, and the benchmark leaves nothing behind.
DelayedDelivery.include_if = lambda self, c: False  # type: ignore[method-assign]

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def make_app(queue: str, *, queue_type: str = "classic", prefetch: int = 10, broker: str = DEFAULT_BROKER) -> Celery:
    app = Celery("fjbench", broker=broker)
    app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
        task_default_queue_type=queue_type,
        task_default_delivery_mode="persistent",
        task_acks_late=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=prefetch,
        worker_enable_remote_control=False,  # no pidbox queue per worker
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="fjbench.noop")
    def noop() -> None:
        return None

    return app


app = make_app(
    os.environ.get("FJBENCH_QUEUE", "fjbench-celery"),
    queue_type=os.environ.get("FJBENCH_QUEUE_TYPE", "classic"),
    prefetch=int(os.environ.get("FJBENCH_PREFETCH", "10")),
    broker=os.environ.get("FJBENCH_BROKER_URL", DEFAULT_BROKER),
)
