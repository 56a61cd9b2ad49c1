"""The filterjob image for the container tests, and podman's arguments to run it as a pod would.

``built_image()`` runs ``scripts/build-image.sh`` once per session and returns the image
reference it prints last. ``security_args`` turns a pod's and a container's
securityContext (as the chart renders them, or as the operator builds them) into podman
flags, so a change of the chart changes what the tests run; a setting it cannot translate
is an error, never silently dropped. Podman runs as this machine needs it: runc, cgroupfs,
rlimits below the host's, the host's network (tests only reach loopback).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import kubelet_podman
from tests.helpers.kubelet_config import ConfigError, expand

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-image.sh"
#: A cold build makes the base with debootstrap and downloads the wheels: a few minutes at most.
BUILD_TIMEOUT = 1800

PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
#: The host denies raising rlimits, so every container gets explicit lower ones.
LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")

Manifest = Mapping[str, Any]


class ImageError(Exception):
    """The image cannot be built, or a pod setting has no podman equivalent here."""


@functools.cache
def built_image() -> str:
    """Build the image once (scripts/build-image.sh) and return its reference."""
    if shutil.which("podman") is None and shutil.which("apt-get") is None:
        raise ImageError("no podman, and no apt-get to install it: the container tests need podman (with runc)")
    try:
        result = subprocess.run(
            [str(BUILD_SCRIPT)],
            cwd=ROOT,
            # Into podman's store: the tests run it with podman, whatever else the machine has.
            env=os.environ | {"FILTERJOB_ENGINE": "podman"},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ImageError(f"scripts/build-image.sh took more than {BUILD_TIMEOUT} s") from e
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-30:])
        raise ImageError(f"scripts/build-image.sh failed (exit {result.returncode}):\n{tail}")
    return lines[-1]


#: The image's user (the Dockerfile's USER), for a pod that sets no runAsUser.
IMAGE_USER = "10001:10001"


def security_args(pod: Manifest, container: Manifest) -> list[str]:
    """Podman flags for a pod's and a container's securityContext (each may be empty): the
    kubelet harness's own translation, so the container tests and container-mode pods agree."""
    try:
        return kubelet_podman.security_args(
            {"securityContext": pod}, {"securityContext": container}, image_user=IMAGE_USER
        )
    except ConfigError as e:
        raise ImageError(str(e)) from None


def empty_dir_args(volumes: Sequence[Manifest], mounts: Sequence[Manifest]) -> list[str]:
    """A tmpfs for each emptyDir the container mounts (writable by anyone, as an emptyDir is)."""
    empty = {volume["name"] for volume in volumes if "emptyDir" in volume}
    return [
        arg
        for mount in mounts
        if mount["name"] in empty
        for arg in ("--tmpfs", f"{mount['mountPath']}:rw,nosuid,nodev,mode=1777")
    ]


def plain_env(container: Manifest) -> dict[str, str]:
    """The container's env entries that have a plain value (valueFrom ones are the caller's)."""
    return {item["name"]: expand(str(item["value"]), {}) for item in container.get("env", []) if "value" in item}


def run_args(
    image: str,
    *,
    pod: Manifest,
    container: Manifest,
    name: str,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> list[str]:
    """``podman run`` of one container of a pod spec: its security settings, emptyDirs, env and command.

    ``env`` is the container's whole environment (e.g. ``plain_env(container) | {...}``);
    ``$(VAR)`` in its command and args is expanded from it, as the kubelet does. ``command``
    replaces the container's command and args; volumes other than emptyDirs come in
    through ``extra`` (e.g. ``-v HOST:PATH``).
    """
    env = dict(env or {})
    args = [*PODMAN, "run", "--rm", "--name", name, "--network", "host", *LIMITS]
    args += security_args(pod.get("securityContext", {}), container.get("securityContext", {}))
    args += empty_dir_args(pod.get("volumes", []), container.get("volumeMounts", []))
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    if command is None:
        # The pod's command replaces the image's entrypoint and its args the image's CMD.
        command = [expand(word, env) for word in [*container.get("command", []), *container.get("args", [])]]
        if "command" in container:
            args += ["--entrypoint", json.dumps(command[:1])]
            command = command[1:]
    return [*args, *extra, image, *command]
