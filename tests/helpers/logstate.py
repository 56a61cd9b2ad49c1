"""The logger levels of this process, saved and given back: kopf (run in-process by the operator
tests) and libraries set loggers' levels, and a level one test left at DEBUG would make a later
test (in random order) log, and pytest's capture keep, every message it sends. Handlers are left
alone: pytest adds and removes its own around each phase of a test."""

from __future__ import annotations

import logging

_Levels = dict[str, tuple[int, bool, bool]]


def _loggers() -> dict[str, logging.Logger]:
    found: dict[str, logging.Logger] = {"": logging.getLogger()}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            found[name] = logger
    return found


def save() -> _Levels:
    return {name: (lg.level, lg.propagate, lg.disabled) for name, lg in _loggers().items()}


def restore(saved: _Levels) -> None:
    """Every logger's level as saved; loggers made since back to the default (NOTSET)."""
    for name, logger in _loggers().items():
        level, logger.propagate, logger.disabled = saved.get(name, (logging.NOTSET, True, False))
        logger.setLevel(level)
