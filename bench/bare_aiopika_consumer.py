"""The least a consumer can do under (a)'s rules with aio-pika: receive, ack. Nothing else.

For bench/broker_bench.py: the transport's ceiling on this machine. Same connection
library, queue and prefetch as the FilterJob worker, manual ack of every delivery, but
no decoding, no executor, no event, no metrics, no logging. A worker that does
anything per task cannot go faster than this row.

    FJBENCH_BROKER_URL=amqp://... FJBENCH_QUEUE=name FJBENCH_PREFETCH=10 python bench/bare_aiopika_consumer.py
"""

from __future__ import annotations

import asyncio
import os
import signal

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


async def on_message(message: AbstractIncomingMessage) -> None:
    await message.ack()


async def main() -> None:
    connection = await aio_pika.connect_robust(os.environ["FJBENCH_BROKER_URL"])
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=int(os.environ["FJBENCH_PREFETCH"]))
    queue = await channel.get_queue(os.environ["FJBENCH_QUEUE"], ensure=True)
    await queue.consume(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
