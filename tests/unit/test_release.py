"""The release workflow pushes the image the chart and the manifests install by default."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from filterjob_operator.control.settings import DEFAULT_IMAGE
from tests.dockerfile import ROOT, Dockerfile

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    found: list[dict[str, Any]] = job["steps"]
    return found


def action(workflow: dict[Any, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in steps(workflow) if s.get("uses", "").split("@")[0] == name]
    return step


def test_a_version_tag_builds_both_platforms_and_pushes(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the bare key `on` as True.
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    for name in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action"):
        action(workflow, name)
    assert action(workflow, "docker/login-action")["with"]["registry"] == "ghcr.io"
    build = action(workflow, "docker/build-push-action")["with"]
    assert build["push"] is True
    assert set(workflow["env"]["PLATFORMS"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["platforms"] == "${{ env.PLATFORMS }}"
    assert build["file"] == "Dockerfile"
    (job,) = workflow["jobs"].values()
    assert job["permissions"]["packages"] == "write"


def test_it_pushes_where_the_chart_and_the_manifests_pull_from(workflow: dict[Any, Any]) -> None:
    build = action(workflow, "docker/build-push-action")["with"]
    image = workflow["env"]["IMAGE"]
    assert build["tags"] == "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    values = yaml.safe_load((ROOT / "charts" / "filterjob" / "values.yaml").read_text())["image"]
    chart = yaml.safe_load((ROOT / "charts" / "filterjob" / "Chart.yaml").read_text())
    # The chart's default: image.repository with the appVersion (tag and digest empty).
    assert (values["repository"], values["tag"], values["digest"], chart["appVersion"]) == (image, "", "", version)
    assert f"{image}:{version}" == DEFAULT_IMAGE  # the operator's default worker image
    manifest_images = set(re.findall(r"image: \"?([^\s\"]+)", (ROOT / "manifests" / "filterjob.yaml").read_text()))
    assert manifest_images == {DEFAULT_IMAGE}


def test_the_pushed_tag_is_the_project_version(workflow: dict[Any, Any]) -> None:
    (check,) = [s for s in steps(workflow) if s.get("id") == "version"]
    assert 'version="${GITHUB_REF_NAME#v}"' in check["run"]
    assert "pyproject.toml" in check["run"]
    assert "exit 1" in check["run"]
    args = action(workflow, "docker/build-push-action")["with"]["build-args"].splitlines()
    assert "VERSION=${{ steps.version.outputs.version }}" in args
    assert "REVISION=${{ github.sha }}" in args
    assert set(Dockerfile.read().final.args()) == {"VERSION", "REVISION", "SOURCE"}


def test_the_build_installs_from_a_wheelhouse_of_both_platforms_made_first(workflow: dict[Any, Any]) -> None:
    names = [s.get("uses", s.get("run", "")) for s in steps(workflow)]
    (wheels,) = [i for i, n in enumerate(names) if n.startswith("scripts/make-wheelhouse.sh")]
    assert names[wheels].split()[1:] == ["wheelhouse", "linux/amd64", "linux/arm64"]
    build = next(i for i, n in enumerate(names) if n.startswith("docker/build-push-action"))
    assert wheels < build
    # Not the local base of scripts/build-image.sh: the Dockerfile's public default.
    assert "PYTHON_IMAGE" not in action(workflow, "docker/build-push-action")["with"]["build-args"]
