"""The worker's configuration at startup, from its process's environment.

The variables and how they are read are the contract the operator writes to
(:mod:`filterjob_worker.core.environment`); what only a running worker adds is here.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping

from filterjob_worker.core.environment import WorkerConfig


def load(env: Mapping[str, str] | None = None) -> WorkerConfig:
    """The configuration in ``env`` (the process's environment by default); raises
    :class:`~filterjob_worker.core.errors.SpecError` naming every bad variable.

    A worker given no ``FILTERJOB_WORKER_ID`` is named ``hostname-pid``, unique per process.
    """
    config = WorkerConfig.from_env(os.environ if env is None else env)
    if config.worker_id:
        return config
    return dataclasses.replace(config, worker_id=f"{socket.gethostname()}-{os.getpid()}")
