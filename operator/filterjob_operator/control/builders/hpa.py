"""The HorizontalPodAutoscaler of a FilterJob in ``autoscaling.mode: hpa``.

It scales the worker Deployment on an External metric, the job's queue depth
(ready + unacked + retrying), which the operator serves itself as
``external.metrics.k8s.io`` (:mod:`~filterjob_operator.core.extmetrics`) and also
exports on /metrics as ``filterjob_queue_messages`` with the same labels
(``namespace``, ``job``), so the same HPA works with prometheus-adapter instead.
"""

from __future__ import annotations

from filterjob_operator.control.builders.common import Manifest, metadata, workers_name
from filterjob_operator.core.extmetrics import JOB_LABEL, METRIC, NAMESPACE_LABEL
from filterjob_operator.core.spec import FilterJob


def start_replicas(job: FilterJob) -> int:
    """The replicas the workers get when the HPA takes them over: an HPA does nothing for a
    Deployment at zero replicas (it reads that as autoscaling turned off), and it cannot go
    below one without the HPAScaleToZero feature gate."""
    return max(1, job.spec.autoscaling.min_replicas)


def build(job: FilterJob) -> Manifest:
    scaling = job.spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(job, workers_name(job), "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workers_name(job)},
            "minReplicas": start_replicas(job),
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": METRIC,
                            "selector": {
                                "matchLabels": {NAMESPACE_LABEL: job.metadata.namespace, JOB_LABEL: job.metadata.name}
                            },
                        },
                        "target": {"type": "AverageValue", "averageValue": str(scaling.messages_per_replica)},
                    },
                }
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_delay_seconds},
            },
        },
    }
