"""A tiny kopf operator that proves the emulator harness end to end (not the real operator).

Loaded by ``kopf run`` (through ``KopfRunner``) from its file path, so it imports nothing from
the test package. It talks to the API through the ``kubernetes`` client and the kubeconfig in
``KUBECONFIG``, as an operator outside the cluster would.
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes.client
import kubernetes.config

GROUP, VERSION, PLURAL = "filterjob.dev", "v1alpha1", "filterjobs"
FINALIZER = "filterjob.dev/tiny-operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = 20  # INFO: kopf.info() events reach the API


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "filterjob-worker", "filterjob.dev/job": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-workers", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "worker", "image": "filterjob-worker:dev"}]},
            },
        },
    }


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(
    spec: kopf.Spec, name: str, namespace: str | None, body: kopf.Body, patch: kopf.Patch, **_: Any
) -> dict[str, str]:
    deployment = _deployment(name, int(spec.get("workers", 1)))
    kopf.adopt(deployment, owner=body)
    assert namespace is not None  # FilterJobs are namespaced
    with kubernetes.config.new_client_from_config() as client:  # type: ignore[no-untyped-call]
        kubernetes.client.AppsV1Api(client).create_namespaced_deployment(namespace, deployment)
    patch.status["phase"] = "Running"
    kopf.info(body, reason="Created", message=f"Deployment {name}-workers created")
    return {"deployment": f"{name}-workers"}


@kopf.timer(GROUP, VERSION, PLURAL, interval=0.2, idle=0)
def heartbeat(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    patch.status["ticks"] = int(status.get("ticks", 0)) + 1


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_fn(name: str, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    kopf.info(body, reason="Deleting", message=f"FilterJob {name} is being deleted")
    logger.info(f"tiny-operator: delete handler ran for {name}")
