"""Dramatiq broker and a no-op actor, for bench/broker_bench.py (settings from the environment).

    FJBENCH_BROKER_URL=amqp://... FJBENCH_QUEUE=name dramatiq_queue_prefetch=10 \
        dramatiq noop_dramatiq_app -p 1 -t 1 -Q name

Dramatiq's own choices, matched to the FilterJob worker's where it has a setting:
durable classic queue (it declares ``name``, ``name.DQ`` and ``name.XQ``), persistent
messages (always), ack after the actor has run (always), default middleware,
prefetch from ``dramatiq_queue_prefetch`` (else 2 x threads).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = os.environ.get("FJBENCH_QUEUE", "fjbench_dramatiq")

broker = RabbitmqBroker(url=os.environ.get("FJBENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    return None
