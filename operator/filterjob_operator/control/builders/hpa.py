"""The HorizontalPodAutoscaler of a FilterJob in ``autoscaling.mode: hpa``.

It scales the worker Deployment on an External metric, the job's queue depth,
which the operator exports on /metrics as ``filterjob_queue_messages`` (labels
``namespace``, ``job``) for a metrics adapter such as prometheus-adapter.
"""

from __future__ import annotations

from filterjob_operator.control.builders.common import Manifest, metadata, workers_name
from filterjob_operator.core.spec import FilterJob

METRIC = "filterjob_queue_messages"


def build(job: FilterJob) -> Manifest:
    scaling = job.spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(job, workers_name(job), "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workers_name(job)},
            # Without the HPAScaleToZero feature gate an HPA cannot go below one replica.
            "minReplicas": max(1, scaling.min_replicas),
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": METRIC,
                            "selector": {
                                "matchLabels": {"namespace": job.metadata.namespace, "job": job.metadata.name}
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
