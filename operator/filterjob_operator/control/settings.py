"""Operator settings, from environment variables set by the chart.

| variable | meaning | default |
|---|---|---|
| ``FILTERJOB_WORKER_IMAGE`` | worker image when a job names none | ``ghcr.io/filterjob/filterjob:<version>`` |
| ``FILTERJOB_BROKER_SECRET`` | broker Secret (``url``, ``managementUrl``) if a job names none | filterjob-broker |
| ``FILTERJOB_STATUS_INTERVAL`` | seconds between status/scaling passes | 5 |
| ``FILTERJOB_METRICS_PORT`` | port of the operator's /metrics | 9090 |
| ``FILTERJOB_WORKER_GRACE_SECONDS`` | time a worker gets to finish in-flight images | 50 |
| ``FILTERJOB_ENQUEUE_BATCH`` | tasks published between two saves of the enqueue cursor | 500 |
| ``FILTERJOB_IMAGE_PULL_SECRETS`` | comma-separated Secret names for pulling the worker image | none |
| ``FILTERJOB_WORKER_RESOURCES`` | worker resources (JSON) if a job names none | ``DEFAULT_WORKER_RESOURCES`` |
| ``FILTERJOB_LIST_INPUTS`` | who lists ``file://`` sources: ``auto``, ``operator`` or ``job`` | auto |
| ``FILTERJOB_FINALIZER_TIMEOUT`` | seconds a deleted job retries removing its queues before it goes without | 300 |
| ``FILTERJOB_LISTER_DEADLINE`` | seconds a lister Job may run (``activeDeadlineSeconds``) before it fails | 600 |
| ``FILTERJOB_KEDA`` | ``true``: jobs may use ``autoscaling.mode: keda`` (the chart's ``keda.enabled``) | false |
| ``FILTERJOB_EXTERNAL_METRICS_PORT`` | HTTPS port of the ``external.metrics.k8s.io`` API; 0: not served | 0 |
| ``FILTERJOB_EXTERNAL_METRICS_ADDRESS`` | address that API listens on | 0.0.0.0 |
| ``FILTERJOB_EXTERNAL_METRICS_CERT`` | its serving certificate (PEM file), needed with a port | none |
| ``FILTERJOB_EXTERNAL_METRICS_KEY`` | the certificate's private key (PEM file), needed with a port | none |

``FILTERJOB_LIST_INPUTS``: ``operator`` lists every source in the operator's own filesystem,
``job`` always runs a lister Job in the job's namespace (with the job's volumes), ``auto``
lists in the operator when the source's path exists there and runs a lister Job otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from filterjob_worker import __version__
from filterjob_worker.core.errors import shown

DEFAULT_IMAGE = f"ghcr.io/filterjob/filterjob:{__version__}"
#: The worker container's resources unless the job or ``FILTERJOB_WORKER_RESOURCES`` (``{}``: none) say otherwise.
DEFAULT_WORKER_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}
_RESOURCE_KEYS = {"requests", "limits", "claims"}
ListInputs = Literal["auto", "operator", "job"]
LIST_INPUTS_MODES: tuple[ListInputs, ...] = ("auto", "operator", "job")


def _list_inputs(text: str | None) -> ListInputs:
    """``FILTERJOB_LIST_INPUTS``: where sources are listed (see the module's docstring)."""
    value = (text or "auto").strip().lower() or "auto"
    for mode in LIST_INPUTS_MODES:
        if value == mode:
            return mode
    raise ValueError(f"FILTERJOB_LIST_INPUTS must be one of {', '.join(LIST_INPUTS_MODES)}, got {shown(text)}")


def _resources(text: str | None) -> Mapping[str, Any]:
    """``FILTERJOB_WORKER_RESOURCES``: a JSON ResourceRequirements object (``{}``: none at all)."""
    if text is None or not text.strip():
        return DEFAULT_WORKER_RESOURCES
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"FILTERJOB_WORKER_RESOURCES is not JSON: {str(e).split(';')[0]}") from None
    if not isinstance(value, dict) or not set(value) <= _RESOURCE_KEYS:
        raise ValueError(
            f"FILTERJOB_WORKER_RESOURCES must be an object with keys {sorted(_RESOURCE_KEYS)}, got {shown(text)}"
        )
    return value


def _seconds(name: str, text: str | None, default: float) -> float:
    """A non-negative number of seconds."""
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {shown(text)}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {shown(text)}")
    return value


def _batch(name: str, text: str | None, default: int) -> int:
    """A whole number of tasks >= 1 (a batch of none would enqueue nothing, for ever)."""
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of tasks, got {shown(text)}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1 task, got {shown(text)}")
    return value


def _flag(name: str, text: str | None) -> bool:
    """``true`` or ``false`` (empty: false); anything else is a typo, never read as either."""
    value = (text or "").strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise ValueError(f"{name} must be true or false, got {text!r}")


def _deadline(name: str, text: str | None, default: int) -> int:
    """A whole number of seconds >= 1 (Kubernetes' ``activeDeadlineSeconds`` takes nothing else)."""
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds, got {shown(text)}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1 second, got {shown(text)}")
    return value


def _whole(name: str, text: str | None, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``."""
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {shown(text)}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {shown(text)}")
    return value


def _port(name: str, text: str | None) -> int:
    """A TCP port, or 0 for none."""
    if text is None or not text.strip():
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a port number (0: off), got {text!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"{name} must be a port number from 0 (off) to 65535, got {text!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class ExternalMetrics:
    """The External metrics API server: off (port 0), or where it listens and its serving certificate."""

    port: int = 0
    address: str = "0.0.0.0"  # noqa: S104 -- in a pod, the APIService's Service reaches it on the pod's IP
    cert: str = ""
    key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExternalMetrics:
        found = cls(
            port=_port("FILTERJOB_EXTERNAL_METRICS_PORT", env.get("FILTERJOB_EXTERNAL_METRICS_PORT")),
            address=env.get("FILTERJOB_EXTERNAL_METRICS_ADDRESS", "").strip() or cls.address,
            cert=env.get("FILTERJOB_EXTERNAL_METRICS_CERT", "").strip(),
            key=env.get("FILTERJOB_EXTERNAL_METRICS_KEY", "").strip(),
        )
        if found.port and not (found.cert and found.key):
            raise ValueError(
                "FILTERJOB_EXTERNAL_METRICS_PORT is set: FILTERJOB_EXTERNAL_METRICS_CERT and "
                "FILTERJOB_EXTERNAL_METRICS_KEY must name the serving certificate and key files "
                "(or set the port to 0 to serve no External metrics)"
            )
        return found


@dataclass(frozen=True, kw_only=True)
class Settings:
    worker_image: str = DEFAULT_IMAGE
    broker_secret: str = "filterjob-broker"  # noqa: S105 -- a Secret's name, not a password
    status_interval: float = 5.0
    metrics_port: int = 9090
    worker_grace_seconds: int = 50
    enqueue_batch: int = 500
    worker_resources: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_WORKER_RESOURCES)
    list_inputs: ListInputs = "auto"
    #: Secrets for pulling the worker image, set on every worker and lister pod.
    image_pull_secrets: tuple[str, ...] = ()
    #: How long a deleted job retries removing its queues (broker or Secret gone) before its
    #: finalizer is removed anyway, with a Warning naming the queues left behind.
    finalizer_timeout: float = 300.0
    #: How long a lister Job may run, its pods' start included: a pod that never starts (an
    #: image that cannot be pulled, a missing Secret, no node that fits) fails it then, and the
    #: job with it, instead of leaving it ``Pending`` for ever.
    lister_deadline: int = 600
    #: The operator may use KEDA's API (the chart grants it with ``keda.enabled``): it creates the
    #: ScaledObjects of ``mode: keda`` jobs and removes those of jobs that left that mode. Off, it
    #: never calls KEDA's API, so a cluster without KEDA (or the grant) sees no request for it.
    keda: bool = False
    #: The operator's ``external.metrics.k8s.io`` server (for ``autoscaling.mode: hpa``).
    external_metrics: ExternalMetrics = field(default_factory=ExternalMetrics)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            worker_image=env.get("FILTERJOB_WORKER_IMAGE", DEFAULT_IMAGE),
            broker_secret=env.get("FILTERJOB_BROKER_SECRET", "filterjob-broker"),
            status_interval=_seconds("FILTERJOB_STATUS_INTERVAL", env.get("FILTERJOB_STATUS_INTERVAL"), 5.0),
            metrics_port=_whole("FILTERJOB_METRICS_PORT", env.get("FILTERJOB_METRICS_PORT"), 9090, 0, 65535),
            worker_grace_seconds=_whole(
                "FILTERJOB_WORKER_GRACE_SECONDS", env.get("FILTERJOB_WORKER_GRACE_SECONDS"), 50, 0, 86_400
            ),
            enqueue_batch=_batch("FILTERJOB_ENQUEUE_BATCH", env.get("FILTERJOB_ENQUEUE_BATCH"), 500),
            worker_resources=_resources(env.get("FILTERJOB_WORKER_RESOURCES")),
            list_inputs=_list_inputs(env.get("FILTERJOB_LIST_INPUTS")),
            image_pull_secrets=tuple(
                name.strip() for name in env.get("FILTERJOB_IMAGE_PULL_SECRETS", "").split(",") if name.strip()
            ),
            finalizer_timeout=_seconds("FILTERJOB_FINALIZER_TIMEOUT", env.get("FILTERJOB_FINALIZER_TIMEOUT"), 300.0),
            lister_deadline=_deadline("FILTERJOB_LISTER_DEADLINE", env.get("FILTERJOB_LISTER_DEADLINE"), 600),
            keda=_flag("FILTERJOB_KEDA", env.get("FILTERJOB_KEDA")),
            external_metrics=ExternalMetrics.from_env(env),
        )
