"""The project's image for container-mode tests: ``image_reference() -> str``.

``scripts/build-image.sh`` builds the release image and prints its reference last; where that
script is not there (yet), a stand-in is built the same way a release build without a registry
would be: the project's wheel and its dependencies made into a wheelhouse on the host, installed
with ``--no-index`` onto the local Debian base ``localhost/filterjob-base:bookworm`` (Debian's
Python 3.11, the host's too), running as UID 10001 with ``HOME=/tmp`` as the Dockerfile's image.
Built once per source tree (the tag carries a hash of the sources), kept in podman's storage.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/filterjob-base:bookworm"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]

CONTAINERFILE = f"""\
FROM {BASE} AS builder
COPY wheels /wheels
RUN python3 -m venv /opt/filterjob && /opt/filterjob/bin/pip install --no-index --find-links /wheels filterjob

FROM {BASE}
RUN groupadd --system --gid 10001 filterjob && useradd --system --uid 10001 --gid 10001 --no-create-home \\
    --home-dir /nonexistent --shell /usr/sbin/nologin filterjob
COPY --from=builder /opt/filterjob /opt/filterjob
ENV PATH=/opt/filterjob/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
USER 10001:10001
EXPOSE 8080 9090
CMD ["filterjob-worker"]
"""


class ImageError(Exception):
    """No image could be built (no podman, no base image, a failed build)."""


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("runc") is not None


def _sources_hash() -> str:
    digest = hashlib.sha256(CONTAINERFILE.encode())
    for folder in ("operator", "worker"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:12]


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise ImageError(
            f"{' '.join(argv[:6])} ... failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return done  # type: ignore[no-any-return]


def image_reference() -> str:
    """The image's reference in podman's local storage, built if it is not there."""
    script = ROOT / "scripts" / "build-image.sh"
    if script.exists():
        return _run([str(script)], cwd=ROOT).stdout.strip().splitlines()[-1]
    if not podman_available():
        raise ImageError("podman and runc are needed to build the image (apt-get install podman runc)")
    tag = f"localhost/filterjob:dev-{_sources_hash()}"
    if subprocess.run([*PODMAN, "image", "exists", tag], check=False).returncode == 0:
        return tag
    if subprocess.run([*PODMAN, "image", "exists", BASE], check=False).returncode != 0:
        raise ImageError(f"the base image {BASE} is not in podman's storage (a debootstrap of bookworm, imported)")
    with tempfile.TemporaryDirectory(prefix="filterjob-image-") as context:
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", f"{context}/wheels", str(ROOT)])
        Path(context, "Containerfile").write_text(CONTAINERFILE)
        _run([*PODMAN, "build", *ULIMITS, "--network", "none", "-t", tag, context])
    return tag


if __name__ == "__main__":
    print(image_reference())
