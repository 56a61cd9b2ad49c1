"""``python -m filterjob_worker`` / ``filterjob-worker``: the worker pod's entrypoint."""

from __future__ import annotations

import argparse
import asyncio
import sys

from filterjob_worker import __version__, logs
from filterjob_worker.config import load
from filterjob_worker.core.environment import INVALID_CONFIG_EXIT, WorkerConfig
from filterjob_worker.core.environment import __doc__ as CONFIG_DOC
from filterjob_worker.core.errors import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="filterjob-worker",
        description="Consume a FilterJob's task queue and apply its filters. Configured by environment variables.",
        epilog=CONFIG_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.parse_args(argv)
    try:
        config = load()
    except SpecError as e:
        print("filterjob-worker: invalid configuration:", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return INVALID_CONFIG_EXIT
    logs.configure(config.log_level, worker=config.worker_id)
    return asyncio.run(serve_main(config))


async def serve_main(config: WorkerConfig) -> int:
    from filterjob_worker.service import serve  # noqa: PLC0415  (keeps --help fast)

    return await serve(config)


if __name__ == "__main__":
    sys.exit(main())
