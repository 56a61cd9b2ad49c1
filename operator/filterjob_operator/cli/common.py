"""What the commands share: the ``--broker`` option, and broker and job errors as one line and an exit code.

_LAZY: the management client (aiohttp), local mode's broker runner, kopf and the Kubernetes client are
imported only by the commands that use them, inside those commands. Local mode's pool
processes re-import the main module (multiprocessing imports it in each child, and the
forkserver preloads it): 0.3 s per worker process otherwise, and ``filterjob --help``
would pay it too.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from filterjob_operator.core import exits
from filterjob_operator.core.spec import JobSpecError

T = TypeVar("T")
BROKER_ENV = "FILTERJOB_BROKER_URL"


def _broker_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--broker``, checked before anything starts (the workers' own check: one function)."""
    if value is None:
        return None
    from filterjob_operator.adapters.broker_errors import connect_timeout  # noqa: PLC0415 (see _LAZY)
    from filterjob_worker.core.urls import broker_url_problem  # noqa: PLC0415

    try:
        connect_timeout()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if (problem := broker_url_problem(value)) is not None:
        raise click.BadParameter(f"the URL{broker_origin(ctx)} {problem}")
    return value


def broker_origin(ctx: click.Context) -> str:
    """Where the broker URL came from, when it was not the command line."""
    if ctx.get_parameter_source("broker") == click.core.ParameterSource.ENVIRONMENT:
        return f" (from {BROKER_ENV})"
    return ""


def broker_option(*, required: bool, text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--broker",
        metavar="AMQP_URL",
        envvar=BROKER_ENV,
        required=required,
        callback=_broker_url,
        help=f"{text} [env: {BROKER_ENV}]",
    )


def on_broker_errors(url: str, call: Callable[[], T]) -> T:
    """``call()``, which talks to the broker at ``url``: a broker failure is one line and exit BROKER."""
    from filterjob_operator.adapters.broker_errors import BrokerUnavailable, translated  # noqa: PLC0415 (see _LAZY)

    try:
        with translated(url):
            return call()
    except BrokerUnavailable as e:
        Console(stderr=True).print(Text.assemble(("broker error: ", "red"), str(e)), soft_wrap=True)
        sys.exit(exits.BROKER)


def on_broker(url: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(connection)`` on a fresh broker connection, closed afterwards; broker errors exit BROKER."""
    from filterjob_operator.adapters import broker_errors  # noqa: PLC0415 (see _LAZY)

    async def run() -> T:
        connection = await broker_errors.connect(url, name="filterjob cli")
        async with connection:
            return await action(connection)

    return on_broker_errors(url, lambda: asyncio.run(run()))


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def invalid(console: Console, error: JobSpecError) -> NoReturn:
    console.print("[red]invalid FilterJob:[/]", highlight=False, soft_wrap=True)
    for problem in error.problems:
        console.print(f"  - {escape(problem)}", highlight=False, soft_wrap=True)
    sys.exit(exits.INVALID)
