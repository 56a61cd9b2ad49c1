"""The environment a child process needs from the test session, whatever environment a test gives it.

``scripts/test.sh`` runs pytest under coverage with ``patch = ["subprocess"]``
(``[tool.coverage.run]`` in pyproject.toml): coverage puts its configuration into this process's
environment, and a Python child that inherits it is measured too (a ``.pth`` file in the venv
starts coverage). A child started with an environment of its own (a pod's, a scrubbed one) would
lose those variables and go unmeasured; :func:`child_env` adds them back. Nothing is added when
the tests do not run under coverage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: What coverage's subprocess support reads in a new process: its serialized configuration (or a
#: config file) and the data file's name.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START", "COVERAGE_FILE", "COVERAGE_RCFILE")


def coverage_env() -> dict[str, str]:
    """Coverage's variables of this process (empty when it is not measured)."""
    return {key: os.environ[key] for key in COVERAGE_VARIABLES if key in os.environ}


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus what the session's coverage measurement needs; ``env`` wins on a clash."""
    return coverage_env() | dict(env)
