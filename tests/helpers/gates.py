"""Gates a test controls in a run: inputs that hold a worker, tasks taken from behind its back.

A gate is an input replaced by a FIFO after it was listed: the worker that takes its task
opens it and waits there, until the test writes the image and closes it. Opening the write
end succeeds once the worker holds the task, so the test knows where the worker is without
watching the clock.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import aio_pika

from filterjob_worker.core.contract import Task

#: Between looks for a reader at a gate, or a ready task in a queue.
POLL = 0.05


class Gates:
    def __init__(self, source: Path, names: list[str]) -> None:
        self.fifos = {name: source / name for name in names}
        self.data: dict[str, bytes] = {}

    def close(self) -> None:
        """Make every gate a FIFO (the listing has seen them as images)."""
        for name, path in self.fifos.items():
            self.data[name] = path.read_bytes()
            path.unlink()
            os.mkfifo(path)

    def reached(self, name: str, *, timeout: float = 60.0) -> int:
        """Wait until a worker opens the gate; its write end."""
        return self.first_reached([name], timeout=timeout)[1]

    def first_reached(self, names: list[str], *, timeout: float = 60.0) -> tuple[str, int]:
        """Wait until a worker opens one of the gates; its name and write end."""
        deadline = time.monotonic() + timeout
        while True:
            for name in names:
                try:
                    fd = os.open(self.fifos[name], os.O_WRONLY | os.O_NONBLOCK)
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
                    continue  # no reader yet; a FIFO tells of none other than by this error
                os.set_blocking(fd, True)
                return name, fd
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker opened any of the gates {names} within {timeout:g}s")
            time.sleep(POLL)

    def release(self, name: str, fd: int) -> None:
        """Let the worker read the image and go on."""
        os.write(fd, self.data[name])  # far below a pipe's buffer: never blocks
        os.close(fd)


def reader_waiting(fifo: Path) -> int | None:
    """The write end of ``fifo`` if a process waits to read it (so it now holds it open)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise
        return None
    os.set_blocking(fd, True)
    return fd


def openers(path: Path) -> list[int]:
    """Pids of the processes other than this one (which holds a gate's write end) that hold ``path`` open."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == str(path):
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


def holders(path: Path, *, timeout: float = 30.0) -> list[int]:
    """Pids of the processes that hold ``path`` open, once there is one: a reader's open()
    returns when the write end opens, but its fd appears a moment later."""
    deadline = time.monotonic() + timeout
    while not (found := openers(path)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no process opened {path} within {timeout:g}s")
        time.sleep(POLL)
    return found


async def take_one_task(broker_url: str, queue_name: str, *, within: float = 60.0) -> str:
    """Remove the first ready task from a task queue behind the workers' backs; its input key
    (the file name: gates and tests use top-level inputs)."""
    connection = await aio_pika.connect(broker_url)
    deadline = time.monotonic() + within
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue_name, passive=True)
        queue = await channel.get_queue(queue_name, ensure=False)
        while (message := await queue.get(no_ack=False, fail=False)) is None:
            assert time.monotonic() < deadline, f"no task became ready in {queue_name} within {within:g}s"
            await asyncio.sleep(POLL)  # the run is still publishing; the broker offers nothing to await
        await message.ack()
    return Task.from_json(message.body).input.rsplit("/", 1)[-1]
