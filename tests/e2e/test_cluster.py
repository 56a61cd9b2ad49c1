"""Apply -> Succeeded on a real cluster (kind, k3d, ...). Opt-in, skipped otherwise.

Prerequisites: the operator running against the cluster (``filterjob operator`` with the
CRD applied from ``filterjob crd``), a RabbitMQ reachable from the cluster, the broker Secret ``filterjob-broker``
in the test namespace, and a ReadWriteMany PVC ``FILTERJOB_E2E_PVC`` mounted by the
operator and the workers at ``/data`` with images under ``/data/in``. Then:

    FILTERJOB_E2E=1 KUBECONFIG=~/.kube/config FILTERJOB_E2E_NAMESPACE=photos \\
        FILTERJOB_E2E_PVC=photos .venv/bin/pytest tests/e2e -m e2e
"""

from __future__ import annotations

import os
import time
import uuid

import kubernetes
import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("FILTERJOB_E2E") and os.environ.get("KUBECONFIG")),
        reason="needs a real cluster: set FILTERJOB_E2E=1 and KUBECONFIG",
    ),
]


def test_apply_runs_to_succeeded_on_a_real_cluster() -> None:
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    api = kubernetes.client.CustomObjectsApi()
    namespace = os.environ.get("FILTERJOB_E2E_NAMESPACE", "default")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    pvc = os.environ.get("FILTERJOB_E2E_PVC", "photos")
    body = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": "file:///data/in/"},
            "destination": {"uri": f"file:///data/out/{name}/", "format": "jpeg"},
            "filters": [{"name": "thumbnail", "width": 256, "height": 256}, {"name": "sepia"}],
            "workers": {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            "ttlSecondsAfterFinished": 600,
        },
    }
    api.create_namespaced_custom_object("filterjob.dev", "v1alpha1", namespace, "filterjobs", body)
    deadline = time.monotonic() + 600
    status: dict[str, object] = {}
    while time.monotonic() < deadline:  # a real cluster: poll the API as kubectl wait does
        job = api.get_namespaced_custom_object("filterjob.dev", "v1alpha1", namespace, "filterjobs", name)
        status = job.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(2)
    assert status.get("phase") == "Succeeded", status
    assert status["succeeded"] + status["failed"] == status["total"]  # type: ignore[operator]
