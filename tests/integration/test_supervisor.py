"""The local supervisor gives up instead of restarting a worker forever (real processes)."""

from __future__ import annotations

import asyncio
import sys

from filterjob_operator.local.supervisor import Supervisor, last_words

REJECTS_CONFIG = (
    "import sys\n"
    "print('filterjob-worker: invalid configuration:', file=sys.stderr)\n"
    "print('  - FILTERJOB_EXECUTOR must be process or thread, got \\'bogus\\'', file=sys.stderr)\n"
    "sys.exit(2)\n"
)
CRASHES = 'import sys; print(\'{"msg": "out of luck"}\', file=sys.stderr); sys.exit(7)'


async def test_a_worker_that_rejects_its_configuration_is_not_restarted() -> None:
    supervisor = Supervisor(2, {}, command=[sys.executable, "-c", REJECTS_CONFIG])
    await supervisor.start()
    try:
        await asyncio.wait_for(supervisor.gave_up.wait(), 60)
    finally:
        await supervisor.stop()
    assert supervisor.failure is not None
    assert supervisor.failure.invalid_config
    assert supervisor.failure.reason == (
        "filterjob-worker: invalid configuration: FILTERJOB_EXECUTOR must be process or thread, got 'bogus'"
    )
    assert supervisor.restarts == 0


async def test_a_crash_loop_stops_after_its_restart_budget() -> None:
    supervisor = Supervisor(1, {}, command=[sys.executable, "-c", CRASHES], restart_budget=2, restart_window=600)
    await supervisor.start()
    try:
        await asyncio.wait_for(supervisor.gave_up.wait(), 60)
    finally:
        await supervisor.stop()
    assert supervisor.failure is not None
    assert not supervisor.failure.invalid_config
    assert supervisor.restarts == 2
    assert supervisor.failure.reason == "worker 0 exited 3 times within 600 s (last exit code 7): out of luck"


def test_last_words_read_json_log_lines_by_their_message() -> None:
    lines = ['{"level": "error", "msg": "cannot start"}\n', "plain text\n", "\n"]
    assert last_words(lines) == "cannot start; plain text"
