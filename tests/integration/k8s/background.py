"""A harness that runs in the background between ``start()`` and ``stop()``, also as a context manager."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Background:
    """Subclasses implement :meth:`start` and :meth:`stop`; ``with`` calls them."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
