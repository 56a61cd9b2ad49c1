"""How a FilterJob runs: its worker pods, their scaling, retries of failed tasks, and the broker.

Sections of ``spec`` (``workers``, ``autoscaling``, ``retry``, ``broker``) that say nothing about
which images are filtered or how, only about the machinery that does it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from filterjob_operator.core import podpolicy
from filterjob_operator.core.apimodel import ApiModel, ranged
from filterjob_worker.core.limits import ATTEMPTS, BACKOFF_SECONDS, CONCURRENCY, MAX_BACKOFF_SECONDS


class Workers(ApiModel):
    """The worker pods."""

    image: str | None = Field(default=None, description="Worker image; default: the operator's own.")
    concurrency: int = ranged(CONCURRENCY, "Images processed at once per pod.")
    resources: dict[str, Any] = Field(default_factory=dict, description="ResourceRequirements of the worker container.")
    volumes: list[dict[str, Any]] = Field(
        default_factory=list, description="Pod volumes, e.g. the PVC holding file:// inputs and outputs."
    )
    volume_mounts: list[dict[str, Any]] = Field(
        default_factory=list, description="Where the volumes are mounted in the worker container."
    )
    # Overrides for real clusters, on worker and lister pods alike; their shapes are the
    # Kubernetes types' (checked by the CRD), what they may not do is in ``podpolicy``; their bounds
    # (which keep the CRD's CEL rules within the API server's cost budget) are said here, once.
    pod_security_context: dict[str, Any] = Field(default_factory=dict)
    security_context: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=podpolicy.MAX_LABELS)
    tolerations: list[dict[str, Any]] = Field(default_factory=list, max_length=podpolicy.MAX_TOLERATIONS)
    affinity: dict[str, Any] = Field(default_factory=dict)
    priority_class_name: str | None = Field(
        default=None, max_length=podpolicy.MAX_OBJECT_NAME, description="PriorityClass of the pods."
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=podpolicy.MAX_OBJECT_NAME,
        description="ServiceAccount of the pods, e.g. for a cloud identity; its API token is not mounted.",
    )
    env: list[dict[str, Any]] = Field(default_factory=list, max_length=podpolicy.MAX_ENV)
    env_from: list[dict[str, Any]] = Field(default_factory=list, max_length=podpolicy.MAX_ENV_FROM)
    pod_labels: dict[str, str] = Field(default_factory=dict, max_length=podpolicy.MAX_LABELS)
    pod_annotations: dict[str, str] = Field(default_factory=dict, max_length=podpolicy.MAX_LABELS)

    @field_validator("pod_security_context", "security_context", "env", "pod_labels", "pod_annotations")
    @classmethod
    def _policy(cls, value: Any, info: ValidationInfo) -> Any:
        if problems := podpolicy.problems(to_camel(str(info.field_name)), value):
            raise ValueError("; ".join(problems))
        return value


class Autoscaling(ApiModel):
    """How the number of worker pods follows the queue."""

    mode: Literal["queue", "hpa", "keda", "none"] = Field(
        default="queue",
        description="queue: the operator scales by queue depth; hpa: a HorizontalPodAutoscaler "
        "on the exported queue-depth metric; keda: a KEDA ScaledObject on the queues (KEDA must be "
        "installed, and the chart's keda.enabled set); none: minReplicas pods.",
    )
    min_replicas: int = Field(default=0, ge=0, description="Fewest worker pods while work remains.")
    max_replicas: int = Field(default=10, ge=1, description="Most worker pods.")
    messages_per_replica: int = Field(default=20, ge=1, description="Target backlog (ready + unacked) per pod.")
    scale_down_delay_seconds: int = Field(default=30, ge=0, description="Wait before scaling down.")

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self


#: The most attempts a task may have (``spec.retry.maxAttempts``); it bounds a job's retry queues.
MAX_ATTEMPTS = ATTEMPTS.maximum


class Retry(ApiModel):
    """Retries of transient failures, with exponential backoff."""

    max_attempts: int = ranged(ATTEMPTS, "Attempts before a task is parked.")
    backoff_seconds: float = ranged(BACKOFF_SECONDS, "First retry delay; doubled for each further retry.")
    max_backoff_seconds: float = ranged(MAX_BACKOFF_SECONDS, "Longest retry delay.")


class SecretRef(ApiModel):
    """Secret with key url (amqp URL) and optionally managementUrl."""

    name: str = Field(description="Secret name, in the job's namespace.")


class BrokerRef(ApiModel):
    """The RabbitMQ to use; default: the operator's."""

    secret_ref: SecretRef
