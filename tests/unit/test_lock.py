"""requirements.lock: what the image installs, in step with pyproject.toml's dependencies.

Offline: the lock names every dependency at a version its specifier allows, each with the
hashes pip checks (--require-hashes), and nothing that would send pip to another index.
After changing the dependencies, regenerate it with the command in its header.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.dockerfile import ROOT

LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def entries(text: str) -> dict[str, tuple[Version, list[str]]]:
    """Each pinned requirement of the lock with its version and hashes (continuation lines joined)."""
    logical = re.sub(r"\\\n\s*", " ", text)
    pinned: dict[str, tuple[Version, list[str]]] = {}
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock: not a pinned requirement: {line[:80]}"
        pinned[canonicalize_name(match["name"])] = (Version(match["version"]), HASH.findall(line))
    return pinned


@pytest.fixture(scope="module")
def locked() -> dict[str, tuple[Version, list[str]]]:
    return entries(LOCK.read_text())


def test_every_dependency_is_pinned_at_an_allowed_version(locked: dict[str, tuple[Version, list[str]]]) -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in map(Requirement, dependencies):
        name = canonicalize_name(dependency.name)
        assert name in locked, f"{dependency} is not in requirements.lock: regenerate it (its header says how)"
        version, _ = locked[name]
        assert dependency.specifier.contains(version, prereleases=True), f"{name}=={version} does not meet {dependency}"


def test_every_pin_has_hashes(locked: dict[str, tuple[Version, list[str]]]) -> None:
    assert len(locked) > 10  # the dependencies and theirs
    for name, (_, hashes) in locked.items():
        assert hashes, f"{name} has no --hash in requirements.lock"


def test_the_lock_sends_pip_nowhere_else() -> None:
    text = LOCK.read_text()
    for option in ("--index-url", "--extra-index-url", "--find-links", "-e ", "file:", "git+"):
        assert option not in text.replace("--no-emit-index-url", "").replace("--no-emit-find-links", "")
    assert "pip-compile --generate-hashes" in text
    assert "pyproject.toml" in text


def test_the_parser_rejects_a_lock_it_cannot_read() -> None:
    assert entries("click==8.1.7 \\\n    --hash=sha256:" + "a" * 64 + "\n")["click"][1]
    assert entries("click==8.1.7\n")["click"][1] == []
    with pytest.raises(AssertionError, match="not a pinned requirement"):
        entries("click>=8.1\n")
