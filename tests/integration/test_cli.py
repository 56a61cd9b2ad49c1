"""The ``filterjob`` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from filterjob_operator.core import exits
from filterjob_operator.core.samples import make_samples
from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.limits import MAX_FILTERS
from tests.helpers import runs
from tests.helpers.childenv import child_env

ROOT = Path(__file__).resolve().parents[2]
FILTERJOB = shutil.which("filterjob", path=str(Path(sys.executable).parent)) or "filterjob"
#: Root without the capabilities that override file permissions: a mode-000 directory it owns
#: is then refused as any user's would be, while the checkout and its venv stay readable.
WITHOUT_DAC = [shutil.which("setpriv") or "/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def filterjob(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FILTERJOB, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_sample_job_runs_from_a_fresh_copy_of_examples(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("samples"))
    made = filterjob("samples", str(examples / "samples" / "in"), "--count", "6", "--size", "120x90")
    assert made.returncode == 0, made.stderr
    assert "wrote 6 images and 0 broken files" in made.stdout

    result = filterjob("run", str(examples / "local-job.yaml"), "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert "images/s" in result.stdout
    assert len(list((examples / "samples" / "out").rglob("*.jpg"))) == 6


def test_failed_images_make_the_exit_code_one(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    assert filterjob("samples", str(tmp_path / "in"), "-n", "3", "--size", "50x40", "--broken", "2").returncode == 0
    job_doc["spec"]["source"]["uri"] = "in"
    job_doc["spec"]["destination"]["uri"] = "out"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    result = filterjob("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert result.returncode == 1
    assert "failed broken/bad-000-corrupt.jpg: not a usable image: " in result.stdout
    assert "failed broken/bad-001-truncated.jpg: not a usable image: " in result.stdout


def test_invalid_job_exits_two_naming_the_problem(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    job_doc["spec"]["filters"] = [{"name": "blur", "radius": -1}]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    for command in ("run", "validate"):
        result = filterjob(command, str(tmp_path / "job.yaml"))
        assert result.returncode == 2
        assert "spec.filters[0] (blur): radius must be between 0 and 100, got -1" in result.stderr


def test_a_pipeline_longer_than_the_apis_limit_exits_two_naming_it(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    assert filterjob("samples", str(tmp_path / "in"), "-n", "2", "--size", "40x30").returncode == 0
    job_doc["spec"]["source"]["uri"] = "in"
    job_doc["spec"]["destination"]["uri"] = "out"
    job_doc["spec"]["filters"] = [{"name": "grayscale"}] * (MAX_FILTERS + 1)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    result = filterjob("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert result.returncode == exits.INVALID, result.stdout + result.stderr
    assert f"spec.filters: at most {MAX_FILTERS} items are allowed, got {MAX_FILTERS + 1}; remove 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    job_doc["spec"]["filters"] = [{"name": "grayscale"}] * MAX_FILTERS
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    accepted = filterjob("run", "job.yaml", "--no-progress", cwd=tmp_path)
    assert accepted.returncode == exits.OK, accepted.stdout + accepted.stderr


def test_validate_accepts_the_cluster_example() -> None:
    result = filterjob("validate", str(ROOT / "examples" / "cluster-job.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid FilterJob photos/thumbnails" in result.stdout


def test_filters_lists_the_whole_catalog() -> None:
    listing = filterjob("filters")
    assert listing.returncode == 0
    names = {line.split()[0] for line in listing.stdout.splitlines() if line and not line.startswith(" ")}
    assert names == set(CATALOG)
    assert "radius: float 0..100, default 2.0" in listing.stdout
    schema = json.loads(filterjob("filters", "--json").stdout)
    assert {s["title"] for s in schema["items"]["oneOf"]} == set(CATALOG)


def test_filters_and_problems_show_brackets_as_written(tmp_path: Path, job_doc: dict[str, Any]) -> None:
    listing = filterjob("filters")
    assert "crop  Keep the box [left, top, right, bottom] (pixels)." in listing.stdout
    assert "box: [left, top, right, bottom], required — Pixel box [left, top, right, bottom]." in listing.stdout
    job_doc["spec"]["filters"] = [{"name": "crop", "box": [1, 2]}]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_doc))
    result = filterjob("validate", str(tmp_path / "job.yaml"))
    assert result.returncode == 2
    assert "a list of 4 integers [left, top, right, bottom]" in result.stderr


def test_validate_of_a_local_job_hints_at_local() -> None:
    result = filterjob("validate", str(ROOT / "examples" / "local-job.yaml"))
    assert result.returncode == 2
    assert "filterjob validate --local" in result.stderr
    assert filterjob("validate", "--local", str(ROOT / "examples" / "local-job.yaml")).returncode == 0


def test_a_binary_job_file_is_one_line_and_exit_two(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_bytes(bytes(range(256)))
    for command in ("run", "validate"):
        result = filterjob(command, str(tmp_path / "job.yaml"))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "not a text file" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"), [(["--size", "0x5"], "must be positive"), (["--size", "big"], "WIDTHxHEIGHT")]
)
def test_samples_rejects_bad_sizes(tmp_path: Path, args: list[str], message: str) -> None:
    result = filterjob("samples", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr


# --- data safety: sources that cannot be listed, outputs among the inputs, interrupts ----


def write_local_job(root: Path, **source: Any) -> Path:
    doc = {
        "apiVersion": "filterjob.dev/v1alpha1",
        "kind": "FilterJob",
        "metadata": {"name": "safety"},
        "spec": {
            "source": {"uri": "in", **source},
            "destination": {"uri": "out", "format": "jpeg"},
            "filters": [{"name": "grayscale"}],
        },
    }
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def locked_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, whose mode-000 directories are opened again at teardown."""
    yield tmp_path
    for child in [tmp_path, *tmp_path.rglob("*")]:
        if child.is_dir() and not child.is_symlink():
            child.chmod(0o755)


def without_dac(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``filterjob ARGS`` in ROOT, as root but subject to file permissions (tests run as root)."""
    env = child_env({"PATH": os.environ.get("PATH", ""), "HOME": str(root)})
    return subprocess.run(
        [*WITHOUT_DAC, FILTERJOB, *args], capture_output=True, text=True, cwd=root, env=env, timeout=120, check=False
    )


def test_an_unreadable_source_exits_two_naming_it(locked_dir: Path) -> None:
    make_samples(locked_dir / "in", count=2, size=(20, 15))
    job = write_local_job(locked_dir)
    (locked_dir / "in").chmod(0)
    result = without_dac(locked_dir, "run", str(job), "--no-progress")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{locked_dir / 'in'}: cannot be listed: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (locked_dir / "out").exists()


def test_an_unreadable_subdirectory_fails_the_run_naming_it(locked_dir: Path) -> None:
    make_samples(locked_dir / "in", count=4, size=(20, 15))
    locked = locked_dir / "in" / "locked"
    make_samples(locked, count=2, size=(20, 15), seed=1)
    locked.chmod(0)
    result = without_dac(locked_dir, "run", str(write_local_job(locked_dir)), "--no-progress")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{locked}: cannot be listed: Permission denied" in result.stderr
    assert "spec.source.skipUnreadable: true" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (locked_dir / "out").exists()


def test_with_skip_unreadable_each_skipped_path_is_in_the_summary(tmp_path: Path) -> None:
    # Root reads any directory, so what cannot be listed here is a dangling link and a FIFO.
    made = make_samples(tmp_path / "in", count=3, size=(20, 15))
    (tmp_path / "in" / "2019").symlink_to(tmp_path / "unmounted")
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    result = filterjob("run", str(write_local_job(tmp_path, skipUnreadable=True)), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"skipped \(cannot be listed\)\s*│\s*2\b", result.stdout), result.stdout
    assert f"skipped {tmp_path / 'in' / '2019'}: broken symbolic link" in result.stdout
    assert f"skipped {tmp_path / 'in' / 'pipe.jpg'}: not a regular file (a FIFO)" in result.stdout
    assert re.search(rf"succeeded\s*│\s*{len(made.good)}\b", result.stdout), result.stdout
    assert written(tmp_path / "out") == len(made.good)


def test_broken_links_and_special_files_among_the_inputs_exit_two(tmp_path: Path) -> None:
    make_samples(tmp_path / "in", count=2, size=(20, 15))
    (tmp_path / "in" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")
    os.mkfifo(tmp_path / "in" / "pipe.jpg")
    result = filterjob("run", str(write_local_job(tmp_path)), "--no-progress")
    assert result.returncode == 2, result.stdout + result.stderr
    for path, reason in [("gone.jpg", "broken symbolic link"), ("loop", "symbolic link loop"), ("pipe.jpg", "FIFO")]:
        assert re.search(rf"{re.escape(str(tmp_path / 'in' / path))}: [^\n]*{reason}", result.stderr), result.stderr


def test_an_empty_source_is_a_warning_with_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    result = filterjob("run", str(write_local_job(tmp_path)), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: no inputs: nothing in" in result.stdout
    assert "check spec.source.uri and spec.source.include" in result.stdout


@pytest.mark.parametrize("destination", ["in", "in/", "./in", "in/out", "link-to-in", "link-to-in/sub"])
def test_a_destination_among_the_inputs_is_refused_and_the_inputs_stay_as_they_were(
    tmp_path: Path, destination: str
) -> None:
    made = make_samples(tmp_path / "in", count=3, size=(20, 15))
    (tmp_path / "link-to-in").symlink_to(tmp_path / "in")
    before = {p: p.read_bytes() for p in made.good}
    job = write_local_job(tmp_path)
    doc = yaml.safe_load(job.read_text())
    doc["spec"]["destination"] = {"uri": destination, "format": "same"}
    job.write_text(yaml.safe_dump(doc))
    result = filterjob("run", str(job), "--no-progress")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "outputs would be written among the inputs and could overwrite them" in result.stderr
    assert {p: p.read_bytes() for p in made.good} == before
    assert sorted(p.name for p in (tmp_path / "in").rglob("*") if p.is_file()) == sorted(p.name for p in made.good)


def written(out: Path) -> int:
    return sum(1 for p in out.rglob("*.jpg") if p.is_file())


def interrupted_run(tmp_path: Path, sig: signal.Signals, *, group: bool, args: Sequence[str] = ()) -> tuple[str, int]:
    """Start a run, signal it once some outputs exist; its output and the outputs on disk."""
    made = make_samples(tmp_path / "in", count=150, size=(480, 360))
    job = write_local_job(tmp_path)
    doc = yaml.safe_load(job.read_text())
    doc["spec"]["filters"] = [{"name": "blur", "radius": 6}, {"name": "sharpen"}]
    job.write_text(yaml.safe_dump(doc))
    argv = [FILTERJOB, "run", str(job), "--no-progress", "--workers", "2", *args]
    output = runs.interrupted_run(argv, lambda: written(tmp_path / "out"), sig, group=group, timeout=60)
    assert runs.no_temporary_files(tmp_path / "out")
    assert runs.succeeded(output) < len(made.good), "the run ended before the interrupt"
    return output, written(tmp_path / "out")


@pytest.mark.parametrize(
    ("sig", "group"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGTERM, True)]
)
def test_an_interrupted_run_counts_every_output_it_wrote(tmp_path: Path, sig: signal.Signals, group: bool) -> None:
    output, on_disk = interrupted_run(tmp_path, sig, group=group)
    assert runs.succeeded(output) == on_disk, output


def test_skip_unreadable_reports_a_directory_it_may_not_read(locked_dir: Path) -> None:
    made = make_samples(locked_dir / "in", count=2, size=(20, 15))
    locked = locked_dir / "in" / "locked"
    make_samples(locked, count=2, size=(20, 15), seed=1)
    job = write_local_job(locked_dir, skipUnreadable=True)
    locked.chmod(0)
    result = without_dac(locked_dir, "run", str(job), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"skipped {locked}: cannot be listed: Permission denied" in result.stdout
    assert re.search(r"skipped \(cannot be listed\)\s*│\s*1\b", result.stdout), result.stdout
    assert runs.succeeded(result.stdout) == len(made.good) == written(locked_dir / "out")


def test_validate_local_refuses_a_destination_linked_into_the_source(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "in")
    job = write_local_job(tmp_path)
    doc = yaml.safe_load(job.read_text())
    doc["spec"]["destination"]["uri"] = "link/out"
    job.write_text(yaml.safe_dump(doc))
    result = filterjob("validate", "--local", str(job))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "outputs would be written among the inputs" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FILTERJOB_LISTER_DEADLINE", "0"),
        ("FILTERJOB_FINALIZER_TIMEOUT", "soon"),
        ("FILTERJOB_EXTERNAL_METRICS_PORT", "https"),
    ],
)
def test_a_bad_operator_setting_exits_two_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    """Before, kopf retried its startup handler every minute for ever, with a traceback each time."""
    env = {**os.environ, variable: value, "KUBECONFIG": str(tmp_path / "none")}
    done = subprocess.run(
        [FILTERJOB, "operator", "--liveness", "http://127.0.0.1:0/healthz"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"invalid operator setting: {variable} must be" in done.stderr
    assert repr(value) in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


#: What only some commands need, imported inside them (see ``_LAZY`` in filterjob_operator.cli.common):
#: local mode's pool processes re-import the command's module, and ``--help`` should not wait for these.
LAZY = (
    "kopf",
    "kubernetes",
    "urllib3",
    "aiohttp",
    "filterjob_operator.local.brokered",
    "filterjob_operator.control.handlers",
)


def test_the_command_line_starts_without_the_cluster_and_broker_clients() -> None:
    script = (
        "import sys\n"
        "from filterjob_operator.cli import main\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LAZY!r} or m in {LAZY!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
