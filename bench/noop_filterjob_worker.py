"""FilterJob's worker entrypoint with a no-op ``work`` function (bench/broker_bench.py only).

Runs the real ``python -m filterjob_worker`` path — ``config.load``, JSON
logging, ``service.serve`` with its health server, loop-lag probe, thread executor,
signal handling and drain — except that the ``Consumer`` it builds is given
``work=noop``. Done by rebinding ``service.Consumer`` to a partial before ``serve``
runs, so nothing of ``serve`` is copied here and it cannot drift from the real one.
Every task still goes decode → executor → event published with confirms → ack.

    FILTERJOB_BROKER_URL=... FILTERJOB_QUEUE=....tasks python bench/noop_filterjob_worker.py
"""

from __future__ import annotations

import sys
from functools import partial

from filterjob_worker import __main__ as entrypoint
from filterjob_worker import service
from filterjob_worker.core.contract import Task
from filterjob_worker.core.outcome import Outcome


def noop(task: Task) -> Outcome:
    return Outcome.of(task)


service.Consumer = partial(service.Consumer, work=noop)  # type: ignore[misc]

if __name__ == "__main__":
    sys.exit(entrypoint.main())
