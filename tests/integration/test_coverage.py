"""The project's coverage configuration measures the processes the tests start, as `scripts/test.sh` relies on.

Each test runs a real process under ``[tool.coverage.run]`` of pyproject.toml (started by
coverage's ``.pth`` file from ``COVERAGE_PROCESS_START``) with a data file of its own, and reads
back what was recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import coverage
import yaml

from filterjob_operator.core.samples import make_samples
from filterjob_operator.local import pool
from filterjob_worker import processing
from filterjob_worker.core import catalog
from tests.helpers.childenv import COVERAGE_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
FILTERJOB = str(Path(sys.executable).with_name("filterjob"))


def measured_env(data: Path) -> dict[str, str]:
    """This session's environment without its own coverage, measuring into ``data`` with the project's config."""
    env = {key: value for key, value in os.environ.items() if key not in COVERAGE_VARIABLES}
    return env | {"COVERAGE_PROCESS_START": str(ROOT / "pyproject.toml"), "COVERAGE_FILE": str(data / ".coverage")}


def recorded(data: Path) -> coverage.CoverageData:
    """The data files under ``data`` combined."""
    cov = coverage.Coverage(data_file=str(data / ".coverage"), config_file=str(ROOT / "pyproject.toml"))
    cov.combine([str(data)])
    return cov.get_data()


def line_of(module: object, text: str) -> int:
    """The number of the (only) line of ``module``'s source that contains ``text``."""
    path = Path(str(getattr(module, "__file__", "")))
    found = [number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(found) == 1, (path, text, found)
    return found[0]


def test_the_pool_processes_of_a_local_run_are_measured(tmp_path: Path) -> None:
    """They are forked by a forkserver and end with os._exit: no atexit, so only the patches save them."""
    make_samples(tmp_path / "in", count=4, size=(20, 15))
    job = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": "measured"},
        "spec": {
            "source": {"uri": "in/"},
            "destination": {"uri": "out/", "format": "png"},
            "filters": [{"name": "grayscale"}],
        },
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    (tmp_path / "data").mkdir()

    done = subprocess.run(
        [FILTERJOB, "run", "job.yaml", "--workers", "2", "--no-progress"],
        cwd=tmp_path,
        env=measured_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    data = recorded(tmp_path / "data")
    pool_only = line_of(pool, "signal.signal(signal.SIGINT, signal.SIG_IGN)")  # the pool's initializer
    assert pool_only in (data.lines(str(Path(pool.__file__).resolve())) or [])
    executed = data.lines(str(Path(processing.__file__).resolve())) or []
    assert line_of(processing, "pipeline = Pipeline.parse(task.filters)") in executed  # each image, in a pool process
    assert all(Path(name).is_relative_to(ROOT) for name in data.measured_files()), "only the two packages"


def test_a_process_ended_by_sigterm_keeps_its_measurement(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    script = "import sys, filterjob_worker.core.catalog; print('ready', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", script],
        env=measured_env(tmp_path / "data"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM  # still ended by the signal

    data = recorded(tmp_path / "data")
    assert line_of(catalog, "CATALOG: Mapping") in (data.lines(str(Path(catalog.__file__).resolve())) or [])
