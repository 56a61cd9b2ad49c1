"""What the image runs, without a container engine.

The module builds the image's virtualenv the way the image build does: the wheelhouse
(scripts/make-wheelhouse.sh, as scripts/build-image.sh makes it), the build context (the
files `.dockerignore` lets through), the builder's COPY instructions, then the same
script, into a clean virtualenv of the base interpreter.
The commands then run with the final stage's environment (ENV) and nothing of ours.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from filterjob_worker import __version__
from tests.dockerfile import ROOT, Dockerfile, DockerIgnore

pytestmark = pytest.mark.slow

IMAGE_VENV = "/opt/filterjob"  # where the builder installs; PATH in the final stage points into it
#: PATH of the python base image, which the final stage's ENV PATH extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    venv: Path
    home: Path  # stands in for the /tmp emptyDir that HOME points at

    def env(self, **extra: str) -> dict[str, str]:
        """The final stage's environment with the virtualenv where the image has it.

        Not measured by the session's coverage: the wheel's venv has no coverage and its own copy
        of the code, as the image has.
        """
        env = {"LANG": "C.UTF-8", "PATH": BASE_PATH}
        for key, value in Dockerfile.read().final.env().items():
            here = value.replace("$PATH", env["PATH"]).replace(IMAGE_VENV, str(self.venv))
            env[key] = str(self.home) if key == "HOME" else here
        return env | extra

    def run(self, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=self.env(**env), cwd=cwd or self.home, capture_output=True, text=True, timeout=60, check=False
        )


def build_context(dest: Path) -> None:
    """The files of the build context, with a wheelhouse made as scripts/build-image.sh makes it."""
    wheels = subprocess.run(
        [str(ROOT / "scripts" / "make-wheelhouse.sh"), str(dest / "wheelhouse")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert wheels.returncode == 0, wheels.stderr
    for rel in DockerIgnore.read().context():
        if rel.startswith("wheelhouse/"):  # this tree's own wheelhouse, if any, may be stale
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)


def copy_like_the_builder(context: Path, workdir: Path) -> None:
    """The builder stage's COPY instructions, from the build context into its WORKDIR."""
    for copy in Dockerfile.read().stage("builder").all("COPY"):
        *sources, target = copy.value.split()
        assert not any(s.startswith("--") for s in sources), f"unexpected COPY flags: {copy.value}"
        into_folder = target.endswith("/") or len(sources) > 1
        for source in sources:
            path = context / source
            assert path.exists(), f"COPY {source}: not in the build context"
            dest = workdir / target / path.name if into_folder and path.is_file() else workdir / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(path, dest)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    tmp = tmp_path_factory.mktemp("image")
    context, workdir, venv, home = tmp / "context", tmp / "src", tmp / "opt-filterjob", tmp / "home"
    build_context(context)
    copy_like_the_builder(context, workdir)
    home.mkdir()
    # The builder's RUN line (test_dockerfile.py checks it is exactly this).
    build = subprocess.run(
        [str(workdir / "scripts" / "build-wheel-venv.sh"), str(venv), "wheelhouse"],
        cwd=workdir,
        env=os.environ | {"PYTHON": sys.executable},  # venv makes a clean one from the base interpreter
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return Image(venv=venv, home=home)


def record(image: Image) -> list[str]:
    """The files the filterjob wheel installed (its dist-info RECORD)."""
    (dist_info,) = image.venv.glob("lib/python3.*/site-packages/filterjob-*.dist-info")
    return [line.split(",")[0] for line in (dist_info / "RECORD").read_text().splitlines()]


def test_the_wheel_installs_both_packages_typed_and_without_tests(image: Image) -> None:
    installed = record(image)
    tops = {path.split("/")[0] for path in installed if not path.startswith("../")}
    assert tops == {"filterjob_operator", "filterjob_worker", f"filterjob-{__version__}.dist-info"}
    assert {"filterjob_operator/py.typed", "filterjob_worker/py.typed"} <= set(installed)
    sources = {
        path.relative_to(ROOT / folder).as_posix()
        for folder in ("operator", "worker")
        for path in (ROOT / folder).glob("filterjob_*/**/*.py")
    }
    assert sources == {path for path in installed if path.endswith(".py")}
    scripts = {Path(path).name for path in installed if path.startswith("../")}
    assert scripts == {"filterjob", "filterjob-worker"}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["filterjob", "--help"], ["FilterJob: batch image filtering", "operator", "run", "crd"]),
        (["filterjob", "--version"], [__version__]),
        (["filterjob", "operator", "--help"], ["Run the FilterJob operator", "--namespace", "--liveness"]),
        (["filterjob-worker", "--help"], ["FILTERJOB_BROKER_URL", "FILTERJOB_QUEUE", "FILTERJOB_HEALTH_PORT"]),
        (["filterjob-worker", "--version"], [__version__]),
        (["python", "-m", "filterjob_worker", "--help"], ["usage: filterjob-worker", "FILTERJOB_CONCURRENCY"]),
        (["filterjob", "crd"], ["kind: CustomResourceDefinition", "name: filterjobs.filterjob.dev"]),
    ],
)
def test_the_entrypoints_answer(image: Image, command: list[str], expected: list[str]) -> None:
    result = image.run(*command)
    assert (result.returncode, result.stderr) == (0, "")
    for text in expected:
        assert text in result.stdout
    assert shutil.which(command[0], path=image.env()["PATH"]) == str(image.venv / "bin" / command[0])


def test_the_virtualenv_has_only_the_locked_packages_and_no_pip(image: Image) -> None:
    installed = image.run("python", "-c", "import importlib.metadata as m; print(*(d.name for d in m.distributions()))")
    assert installed.returncode == 0, installed.stderr
    names = {name.lower().replace("_", "-") for name in installed.stdout.split()}
    locked = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", (ROOT / "requirements.lock").read_text(), re.MULTILINE))
    assert names == {*locked, "filterjob"}
    assert "No module named pip" in image.run("python", "-m", "pip", "--version").stderr


def test_every_module_imports_with_the_declared_dependencies(image: Image) -> None:
    """--help keeps broker and Kubernetes imports lazy; this imports everything the pods will."""
    script = (
        "import importlib, pkgutil, filterjob_operator, filterjob_worker\n"
        "for pkg in (filterjob_operator, filterjob_worker):\n"
        "    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(mod.name)\n"
        "        print(mod.name)\n"
    )
    result = image.run("python", "-c", script)
    assert result.returncode == 0, result.stderr
    assert {"filterjob_operator.control.handlers", "filterjob_worker.service"} <= set(result.stdout.split())


def test_a_worker_without_its_queue_fails_clearly(image: Image) -> None:
    result = image.run("filterjob-worker", FILTERJOB_BROKER_URL="amqp://rabbit/", FILTERJOB_LOG_LEVEL="LOUD")
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "FILTERJOB_QUEUE is required" in result.stderr
    assert "FILTERJOB_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'" in result.stderr
    assert "Traceback" not in result.stderr


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and modification time."""
    files = {}
    for path in root.rglob("*"):
        stat = path.lstat()
        files[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return files


def test_a_job_runs_without_writing_to_the_image_or_home(image: Image, tmp_path: Path) -> None:
    """As under readOnlyRootFilesystem: the install tree and HOME stay as they were."""
    before = snapshot(image.venv)
    job = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": "image-check"},
        "spec": {
            "source": {"uri": "in/"},
            "destination": {"uri": "out/", "format": "webp"},
            "filters": [{"name": "thumbnail", "width": 32, "height": 32}, {"name": "sepia"}],
        },
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    made = image.run("filterjob", "samples", "in", "--count", "3", "--size", "64x48", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    result = image.run("filterjob", "run", "job.yaml", "--workers", "2", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((tmp_path / "out").rglob("*.webp"))) == 3
    assert image.run("filterjob-worker", "--help").returncode == 0
    after = snapshot(image.venv)
    assert sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path)) == []
    assert list(image.home.iterdir()) == []
