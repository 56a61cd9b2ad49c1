"""actionlint (scripts/ensure-actionlint.sh, built from the Go module proxy) finds nothing in the workflows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> str:
    result = subprocess.run(
        [ROOT / "scripts" / "ensure-actionlint.sh"], capture_output=True, text=True, timeout=280, check=False
    )
    assert result.returncode == 0, f"scripts/ensure-actionlint.sh failed:\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def lint(actionlint: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint, "-no-color", "-oneline", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_actionlint_finds_nothing_in_the_workflows(actionlint: str) -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert WORKFLOWS / "release.yml" in files
    result = lint(actionlint, *files)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_catches_a_broken_release_workflow(actionlint: str, tmp_path: Path) -> None:
    """The check can fail: an input build-push-action does not have, and an unknown context."""
    text = (WORKFLOWS / "release.yml").read_text()
    broken = text.replace("platforms: ${{ env.PLATFORMS }}", "platform: ${{ env.PLATFORMS }}")
    broken = broken.replace("${{ github.sha }}", "${{ github.shaa }}")
    assert broken != text
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "release.yml").write_text(broken)
    result = lint(actionlint, folder / "release.yml")
    assert result.returncode == 1
    assert '"platform" is not defined' in result.stdout
    assert "shaa" in result.stdout
