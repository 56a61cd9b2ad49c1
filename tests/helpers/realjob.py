"""A FilterJob run to Succeeded on a real cluster (kind, k3d, the dev cluster, ...), configured by
the environment as tests/e2e/test_cluster.py describes."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path
from typing import Any

import kubernetes

from tests.helpers.watching import named, wait_for_list

DONE = ("Succeeded", "Failed")


def images_volume(name: str) -> tuple[str, dict[str, Any]]:
    """Where the images are inside the pods, and the workers' volume and mount that put them there."""
    host_path = os.environ.get("FILTERJOB_E2E_HOST_PATH")
    if host_path:
        volume: dict[str, Any] = {"name": "data", "hostPath": {"path": host_path, "type": "Directory"}}
        mount = host_path.rstrip("/")
    else:
        pvc = os.environ.get("FILTERJOB_E2E_PVC", "photos")
        volume, mount = {"name": "data", "persistentVolumeClaim": {"claimName": pvc}}, "/data"
    return mount, {"volumes": [volume], "volumeMounts": [{"name": "data", "mountPath": mount}]}


def run_a_job_to_succeeded() -> None:
    """A FilterJob applied to the cluster of ``$KUBECONFIG`` runs to Succeeded (see tests/e2e/test_cluster.py)."""
    kubernetes.config.load_kube_config(os.environ["KUBECONFIG"])  # type: ignore[no-untyped-call]
    api = kubernetes.client.CustomObjectsApi()
    namespace = os.environ.get("FILTERJOB_E2E_NAMESPACE", "default")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    mount, workers = images_volume(name)
    body = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": f"file://{mount}/in/"},
            "destination": {"uri": f"file://{mount}/out/{name}/", "format": "jpeg"},
            "filters": [{"name": "thumbnail", "width": 256, "height": 256}, {"name": "sepia"}],
            "workers": workers,
            "ttlSecondsAfterFinished": 600,
        },
    }
    api.create_namespaced_custom_object("filterjob.dev", "v1alpha1", namespace, "filterjobs", body)
    listing = functools.partial(api.list_namespaced_custom_object, "filterjob.dev", "v1alpha1", namespace, "filterjobs")
    (job,) = wait_for_list(
        listing,
        lambda jobs: any((j.get("status") or {}).get("phase") in DONE for j in jobs),
        timeout=600,
        what=f"FilterJob {namespace}/{name} to finish",
        **named(name),
    )
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["succeeded"] + status["failed"] == status["total"]
    assert status["total"] > 0, "no images in the source: put some there first (filterjob samples)"
    if os.environ.get("FILTERJOB_E2E_HOST_PATH"):  # this machine's folder: the outputs are on disk
        written = [p for p in (Path(mount) / "out" / name).rglob("*") if p.is_file()]
        assert len(written) == status["succeeded"], written
