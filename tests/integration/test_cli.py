"""The ``filterjob`` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from filterjob_worker.catalog import CATALOG

ROOT = Path(__file__).resolve().parents[2]
FILTERJOB = shutil.which("filterjob", path=str(Path(sys.executable).parent)) or "filterjob"


def filterjob(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FILTERJOB, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_sample_job_runs_from_a_fresh_copy_of_examples(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("samples"))
    made = filterjob("samples", str(examples / "samples" / "in"), "--count", "6", "--size", "120x90")
    assert made.returncode == 0, made.stderr
    assert "wrote 6 images and 0 broken files" in made.stdout

    result = filterjob("run", str(examples / "local-job.yaml"), "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert "images/s" in result.stdout
    assert len(list((examples / "samples" / "out").rglob("*.jpg"))) == 6


def test_failed_images_make_the_exit_code_one(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    assert filterjob("samples", str(tmp_path / "in"), "-n", "3", "--size", "50x40", "--broken", "2").returncode == 0
    job_doc["spec"]["source"]["uri"] = "in"
    job_doc["spec"]["destination"]["uri"] = "out"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    result = filterjob("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert result.returncode == 1
    assert "failed broken/bad-000-corrupt.jpg: not a usable image: " in result.stdout
    assert "failed broken/bad-001-truncated.jpg: not a usable image: " in result.stdout


def test_invalid_job_exits_two_naming_the_problem(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "blur", "radius": -1}]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    for command in ("run", "validate"):
        result = filterjob(command, str(tmp_path / "job.yaml"))
        assert result.returncode == 2
        assert "spec.filters[0] (blur): radius must be between 0 and 100, got -1" in result.stderr


def test_validate_accepts_the_cluster_example() -> None:
    result = filterjob("validate", str(ROOT / "examples" / "cluster-job.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid FilterJob photos/thumbnails" in result.stdout


def test_filters_lists_the_whole_catalog() -> None:
    listing = filterjob("filters")
    assert listing.returncode == 0
    names = {line.split()[0] for line in listing.stdout.splitlines() if line and not line.startswith(" ")}
    assert names == set(CATALOG)
    assert "radius: float 0..100, default 2.0" in listing.stdout
    schema = json.loads(filterjob("filters", "--json").stdout)
    assert {s["title"] for s in schema["items"]["oneOf"]} == set(CATALOG)


def test_filters_and_problems_show_brackets_as_written(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    listing = filterjob("filters")
    assert "crop  Keep the box [left, top, right, bottom] (pixels)." in listing.stdout
    assert "box: [left, top, right, bottom], required — Pixel box [left, top, right, bottom]." in listing.stdout
    job_doc["spec"]["filters"] = [{"name": "crop", "box": [1, 2]}]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    result = filterjob("validate", str(tmp_path / "job.yaml"))
    assert result.returncode == 2
    assert "a list of 4 integers [left, top, right, bottom]" in result.stderr


def test_validate_of_a_local_job_hints_at_local() -> None:
    result = filterjob("validate", str(ROOT / "examples" / "local-job.yaml"))
    assert result.returncode == 2
    assert "filterjob validate --local" in result.stderr
    assert filterjob("validate", "--local", str(ROOT / "examples" / "local-job.yaml")).returncode == 0


def test_a_binary_job_file_is_one_line_and_exit_two(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_bytes(bytes(range(256)))
    for command in ("run", "validate"):
        result = filterjob(command, str(tmp_path / "job.yaml"))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "not a text file" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"), [(["--size", "0x5"], "must be positive"), (["--size", "big"], "WIDTHxHEIGHT")]
)
def test_samples_rejects_bad_sizes(tmp_path: Path, args: list[str], message: str) -> None:
    result = filterjob("samples", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr
