"""Fixtures shared by every test layer."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

from tests.helpers import logstate
from tests.helpers.controlplane import Binaries, ControlPlane, ControlPlaneError
from tests.helpers.image import ImageError, built_image
from tests.helpers.jobfiles import JOB

#: Property tests (the decoders' fuzzing): bounded and reproducible in CI (the same examples every run,
#: no database), longer and random with HYPOTHESIS_PROFILE=long.
_SLOW_INPUTS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=_SLOW_INPUTS
)
settings.register_profile("long", max_examples=2_000, deadline=None, suppress_health_check=_SLOW_INPUTS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Each test leaves logging as it found it (levels, handlers), whatever order they run in."""
    saved = logstate.save()
    yield
    logstate.restore(saved)


@pytest.fixture
def job_doc() -> dict[str, Any]:
    """A valid FilterJob document, fresh for each test to mutate."""
    return copy.deepcopy(JOB)


@pytest.fixture
def job_dirs(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    return src, dst


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(doc: dict[str, Any]) -> Path:
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return write


#: What building the control-plane binaries gave: their folders, or why there are none.
BINARIES = pytest.StashKey["Binaries | ControlPlaneError"]()
#: What building the image gave: its reference, or why there is none.
IMAGE = pytest.StashKey["str | ImageError"]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find the control-plane binaries and build the image before the first test, if a selected test needs them.

    The binaries are built by the install step (scripts/test.sh runs scripts/ensure-k8s-binaries.sh):
    a test run downloads nothing, and without them the control-plane tests fail saying what to run.
    """
    if any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        try:
            session.config.stash[BINARIES] = Binaries.ensure(build=False)
        except ControlPlaneError as error:
            session.config.stash[BINARIES] = error
    # The image too (scripts/build-image.sh): a cold build makes its base and downloads its
    # wheels, minutes on a fresh machine; a warm one reuses every layer in seconds.
    if any("filterjob_image" in getattr(item, "fixturenames", ()) for item in session.items):
        try:
            session.config.stash[IMAGE] = built_image()
        except ImageError as error:
            session.config.stash[IMAGE] = error


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real Kubernetes control plane on loopback, started once per session (tests/helpers/controlplane.py).

    Everything is stopped at the end of the session (and killed with the session if it is killed).
    """
    binaries = request.config.stash.get(BINARIES, None) or Binaries.ensure(build=False)
    try:
        if isinstance(binaries, ControlPlaneError):
            raise binaries
        plane = ControlPlane.start(tmp_path_factory.mktemp("control-plane"), binaries=binaries)
    except ControlPlaneError as error:
        pytest.fail(str(error), pytrace=False)
    with plane:
        yield plane


@pytest.fixture(scope="session")
def filterjob_image(request: pytest.FixtureRequest) -> str:
    """The filterjob image, built by scripts/build-image.sh once per session: its reference (e.g.
    localhost/filterjob:0.1.0). Run it with tests/helpers/image.py's ``run_args``."""
    image = request.config.stash.get(IMAGE, None)
    if image is None:
        try:
            image = built_image()
        except ImageError as error:
            image = error
    if isinstance(image, ImageError):
        pytest.fail(str(image), pytrace=False)
    return image
