"""FilterJob documents and job files as a user writes them: ``JOB`` (a valid cluster job, the
``job_doc`` fixture copies it) and :func:`write_job` (a file for ``filterjob run``, relative folders)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

#: A valid FilterJob document (the ``job_doc`` fixture hands out a fresh copy).
JOB: dict[str, Any] = {
    "apiVersion": "filterjob.dev/v1alpha1",
    "kind": "FilterJob",
    "metadata": {"name": "thumbs", "namespace": "photos"},
    "spec": {
        "source": {"uri": "file:///data/in/"},
        "destination": {"uri": "file:///data/out/", "format": "jpeg", "quality": 85},
        "filters": [{"name": "grayscale"}, {"name": "blur", "radius": 2}],
    },
}


def write_job(tmp_path: Path, name: str, **spec: Any) -> Path:
    """``tmp_path/job.yaml``, a job named ``name`` plus a random part: a local job's queues are named
    after it alone (``fj.local-test.<name>.local``), and other runs share the broker at the same time."""
    doc = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": f"{name}-{uuid.uuid4().hex[:6]}", "namespace": "local-test"},
        "spec": {
            "source": {"uri": "in"},
            "destination": {"uri": "out", "format": "png"},
            "filters": [{"name": "thumbnail", "width": 64, "height": 64}, {"name": "grayscale"}],
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.1},
            **spec,
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
