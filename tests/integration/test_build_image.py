"""scripts/build-image.sh and scripts/make-wheelhouse.sh refuse bad arguments with one clear message.

What they build is checked in tests/integration/image/ (the image) and test_wheel.py (the wheelhouse).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from filterjob_operator.core import exits

ROOT = Path(__file__).resolve().parents[2]


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROOT / "scripts" / name, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--tag"], "--tag needs a value"),
        (["--engine", ""], "--engine needs a value"),
        (["--engine", "rkt"], "the engine must be podman or docker, got 'rkt'"),
    ],
)
def test_build_image_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = script("build-image.sh", *args)
    assert result.returncode == exits.INVALID
    assert message in result.stderr
    assert result.stdout == ""  # no image reference: nothing was built


def test_build_image_help_names_every_option() -> None:
    result = script("build-image.sh", "--help")
    assert result.returncode == exits.OK
    for option in ("--engine", "--base", "--tag"):
        assert option in result.stdout


def test_make_wheelhouse_refuses_an_unknown_platform(tmp_path: Path) -> None:
    result = script("make-wheelhouse.sh", str(tmp_path / "wheels"), "linux/s390x")
    assert result.returncode == exits.INVALID
    assert "unknown platform 'linux/s390x'; use linux/amd64 or linux/arm64" in result.stderr
