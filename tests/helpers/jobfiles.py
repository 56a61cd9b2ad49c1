"""FilterJob documents and job files as a user writes them: ``JOB`` (a valid cluster job, the
``job_doc`` fixture copies it) and :func:`write_job` (a file for ``filterjob run``, relative folders)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from filterjob_operator.core.spec import FilterJob, parse_job

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


def unique(name: str) -> str:
    """A job name no other test run on the same broker uses at the same time."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def local_job(job_doc: dict[str, Any], src: Path, dst: Path) -> FilterJob:
    """``job_doc`` reading ``src`` and writing PNG thumbnails in sepia to ``dst``."""
    job_doc["spec"]["source"] = {"uri": src.as_uri() + "/"}
    job_doc["spec"]["destination"] = {"uri": dst.as_uri() + "/", "format": "png"}
    job_doc["spec"]["filters"] = [{"name": "thumbnail", "width": 40, "height": 40}, {"name": "sepia"}]
    return parse_job(job_doc)


def output_files(dst: Path) -> list[str]:
    """Every file under ``dst``, relative, sorted."""
    return sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
