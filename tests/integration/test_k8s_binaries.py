"""scripts/ensure-k8s-binaries.sh: builds the pinned control-plane binaries once, atomically.

A cold build of Kubernetes takes many minutes, so the script's own behaviour (what it builds, the
version stamp and check, interrupts, concurrent runs) is tested with a stand-in ``go`` whose
``build`` writes small executables that print what the flags it got would make a real build print;
every other ``go`` command is the real one. The binaries themselves are tested in
test_control_plane_binaries_serve, on the real build where one is there (it never starts one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import kubernetes.client
import pytest

from tests.helpers.controlplane import ControlPlane
from tests.helpers.k8s_tooling import COMPONENTS, ROOT, TOOLS, required
from tests.helpers.processes import session_alive

SCRIPT = ROOT / "scripts" / "ensure-k8s-binaries.sh"
K8S_VERSION = required(TOOLS / "go.mod", "k8s.io/kubernetes")
ETCD_VERSION = required(TOOLS / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")
LINKING = "fake go: linking"

FAKE_GO = r'''
"""A stand-in for `go build`; any other go command runs the real go."""
import os, re, sys, time

if sys.argv[1:2] != ["build"]:
    os.execv(os.environ["REAL_GO"], ["go", *sys.argv[1:]])
args = sys.argv[2:]
with open(os.environ["FAKE_GO_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
if os.environ.get("FAKE_GO_FAIL"):
    sys.exit("go: k8s.io/kubernetes@v1.37.2: reading https://proxy.invalid/: connection refused")
flags, packages, rest = {}, [], iter(args)
for arg in rest:
    if arg in ("-o", "-ldflags", "-p"):
        flags[arg] = next(rest)
    elif not arg.startswith("-"):
        packages.append(arg)
out, ldflags = flags["-o"], flags.get("-ldflags", "")
stamp = re.search(r"k8s\.io/component-base/version\.gitVersion=(\S+)", ldflags)
for package in packages:
    if package.startswith("go.etcd.io/etcd/server/"):
        line = "etcd Version: " + os.environ["FAKE_ETCD_VERSION"]
    else:
        line = "Kubernetes " + (stamp.group(1) if stamp and not os.environ.get("FAKE_GO_NO_STAMP") else "v0.0.0-master")
    target = os.path.join(out, package.rsplit("/", 1)[1]) if out.endswith("/") else out
    with open(target, "w") as binary:
        binary.write("#!/bin/sh\n")
        if os.environ.get("FAKE_GO_HANG"):
            # Half a binary, then a link that never ends: an interrupt lands mid-build.
            binary.flush()
            print("fake go: linking", file=sys.stderr, flush=True)
            os.execvp("sleep", ["sleep", "infinity"])
        binary.write(f"echo '{line}'\n")
    os.chmod(target, 0o755)
'''


class Builds:
    """Runs of the script against a cache of its own, with the stand-in go first on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        real_go = shutil.which("go")
        assert real_go, "Go is needed to run scripts/ensure-k8s-binaries.sh"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "go"
        fake.write_text(f"#!{sys.executable}\n{FAKE_GO}")
        fake.chmod(0o755)
        self.cache = tmp_path / "cache"
        self.log = tmp_path / "go-build.log"
        self.log.touch()
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "REAL_GO": real_go,
            "FAKE_GO_LOG": str(self.log),
            "FAKE_ETCD_VERSION": ETCD_VERSION.removeprefix("v"),
            "FILTERJOB_CACHE": str(self.cache),
        }
        self.started: list[subprocess.Popen[str]] = []

    @property
    def k8s_dir(self) -> Path:
        return self.cache / "k8s" / K8S_VERSION

    @property
    def etcd_dir(self) -> Path:
        return self.cache / "etcd" / ETCD_VERSION

    def start(self, *args: str, script: Path = SCRIPT, **env: str) -> subprocess.Popen[str]:
        # A session of its own, so a test can stop the script and the build it started together.
        process = subprocess.Popen(
            [str(script), *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def run(self, *args: str, script: Path = SCRIPT, **env: str) -> subprocess.CompletedProcess[str]:
        process = self.start(*args, script=script, **env)
        stdout, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def builds(self) -> list[str]:
        return self.log.read_text().splitlines()

    def files(self) -> list[str]:
        """Everything under the two binary folders, temporary names included."""
        return sorted(str(p.relative_to(self.cache)) for d in (self.k8s_dir, self.etcd_dir) for p in d.rglob("*"))

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


@pytest.fixture
def builds(tmp_path: Path) -> Iterator[Builds]:
    runs = Builds(tmp_path)
    yield runs
    runs.stop_all()


def read_until(stream: IO[str] | None, marker: str) -> str:
    """Block on the stream until a line containing marker (the process's own event), or fail at EOF."""
    assert stream is not None
    seen = ""
    for line in stream:
        seen += line
        if marker in line:
            return seen
    pytest.fail(f"the output ended before {marker!r}:\n{seen}")


def all_binaries(runs: Builds) -> list[str]:
    return sorted([f"k8s/{K8S_VERSION}/{name}" for name in COMPONENTS] + [f"etcd/{ETCD_VERSION}/etcd"])


def test_builds_what_is_missing_once_stamped_and_prints_the_folders(builds: Builds) -> None:
    first = builds.run()
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{builds.k8s_dir}{os.pathsep}{builds.etcd_dir}\n"
    assert builds.files() == all_binaries(builds)
    for name in COMPONENTS:
        found = shutil.which(name, path=first.stdout.strip())
        assert found, name
        assert subprocess.check_output([found, "--version"], text=True) == f"Kubernetes {K8S_VERSION}\n"
    kubernetes, etcd = builds.builds()
    minor = K8S_VERSION.split(".")[1]
    for flag in (f"gitVersion={K8S_VERSION}", "gitMajor=1", f"gitMinor={minor}"):
        assert f"k8s.io/component-base/version.{flag}" in kubernetes
    assert kubernetes.endswith(" ".join(f"k8s.io/kubernetes/cmd/{name}" for name in COMPONENTS))
    assert etcd.endswith(" go.etcd.io/etcd/server/v3")

    again = builds.run()
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")
    assert len(builds.builds()) == 2, "a second run built again"

    (builds.k8s_dir / "kube-scheduler").unlink()
    (builds.etcd_dir / "etcd").unlink()
    third = builds.run()
    assert third.returncode == 0, third.stderr
    assert builds.builds()[2].endswith(" k8s.io/kubernetes/cmd/kube-scheduler")
    assert builds.builds()[3].endswith(" go.etcd.io/etcd/server/v3")
    assert builds.files() == all_binaries(builds)


def test_no_build_prints_the_folders_only_when_everything_is_built(builds: Builds) -> None:
    missing = builds.run("--no-build")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "not built yet" in missing.stderr
    assert f"k8s/{K8S_VERSION}/kube-apiserver" in missing.stderr
    assert "run scripts/ensure-k8s-binaries.sh" in missing.stderr
    assert builds.builds() == []
    assert not builds.cache.exists()

    assert builds.run().returncode == 0
    built = builds.run("--no-build")
    assert (built.returncode, built.stdout) == (0, f"{builds.k8s_dir}{os.pathsep}{builds.etcd_dir}\n")


def test_a_binary_that_does_not_report_the_pinned_version_is_not_installed(builds: Builds) -> None:
    unstamped = builds.run(FAKE_GO_NO_STAMP="1")
    assert unstamped.returncode == 1
    assert f"does not report 'Kubernetes {K8S_VERSION}' but: Kubernetes v0.0.0-master" in unstamped.stderr
    assert "Traceback" not in unstamped.stderr
    assert builds.files() == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("example.org/other/v3 v", "tools/k8s/etcd/go.mod pins no go.etcd.io/etcd/server/v3;"),
        ("example.org/other v", "cannot read tools/k8s/etcd/go.mod (go said why, above);"),  # v3 without /v3
    ],
)
def test_a_damaged_pin_is_named_and_nothing_built(builds: Builds, tmp_path: Path, damage: str, message: str) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts")
    shutil.copytree(TOOLS, repo / "tools" / "k8s")
    etcd_mod = repo / "tools" / "k8s" / "etcd" / "go.mod"
    etcd_mod.write_text(etcd_mod.read_text().replace("go.etcd.io/etcd/server/v3 v", damage))
    broken = builds.run(script=repo / "scripts" / SCRIPT.name)
    assert broken.returncode == 1
    assert f"ensure-k8s-binaries: {message}" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert builds.builds() == []


def test_a_failed_build_says_so_and_installs_nothing(builds: Builds) -> None:
    failed = builds.run(FAKE_GO_FAIL="1")
    assert failed.returncode == 1
    assert "connection refused" in failed.stderr  # go's own reason comes through
    assert "go build failed (see above); nothing was installed" in failed.stderr
    assert len(builds.builds()) == 1, "it went on to build etcd after Kubernetes failed"
    assert builds.files() == []


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_build_leaves_no_binary_and_stops_the_build(
    builds: Builds, sig: signal.Signals, exit_code: int
) -> None:
    build = builds.start(FAKE_GO_HANG="1")
    read_until(build.stderr, LINKING)
    assert any(name.startswith(f"k8s/{K8S_VERSION}/.build.") for name in builds.files()), "no half binary to test"
    os.kill(build.pid, sig)  # the script alone, as `kill` would: it must stop the build it started
    assert build.wait(timeout=30) == exit_code
    assert builds.files() == []
    # The build it started (still linking, never ending by itself) went with it.
    assert not session_alive(build.pid)

    after = builds.run()
    assert after.returncode == 0, after.stderr
    assert builds.files() == all_binaries(builds)


def test_a_killed_build_leaves_only_temporary_names_which_the_next_run_clears(builds: Builds) -> None:
    build = builds.start(FAKE_GO_HANG="1")
    read_until(build.stderr, LINKING)
    os.killpg(build.pid, signal.SIGKILL)  # no trap runs: as if the machine went down mid-build
    build.wait(timeout=30)
    left = builds.files()
    assert left
    assert all("/.build." in name for name in left), left

    after = builds.run()
    assert after.returncode == 0, after.stderr
    assert builds.files() == all_binaries(builds)


def test_a_second_run_waits_for_the_first_build_instead_of_building_twice(builds: Builds) -> None:
    first = builds.start(FAKE_GO_HANG="1")
    read_until(first.stderr, LINKING)
    second = builds.start()
    read_until(second.stderr, "another build of the same cache is running; waiting for it")
    assert len(builds.builds()) == 1, "the second run built while the first held the cache"
    os.kill(first.pid, signal.SIGTERM)
    assert first.wait(timeout=30) == 143
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert stdout == f"{builds.k8s_dir}{os.pathsep}{builds.etcd_dir}\n"
    assert builds.files() == all_binaries(builds)


def built_binaries() -> str:
    """The folders of the real build; the test is skipped, not a build started, where there is none."""
    found = subprocess.run([str(SCRIPT), "--no-build"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.skip(found.stderr.strip())
    return found.stdout.strip()


@pytest.mark.slow
def test_control_plane_binaries_serve(control_plane: ControlPlane) -> None:
    # The binaries report the pinned versions, and the control plane the tests share (started from
    # them by tests/helpers/controlplane.py) serves as that version: charts check kubeVersion.
    path = built_binaries()

    def binary(name: str) -> str:
        found = shutil.which(name, path=path)
        assert found, name
        return found

    for name in COMPONENTS:
        assert subprocess.check_output([binary(name), "--version"], text=True) == f"Kubernetes {K8S_VERSION}\n"
    etcd_version = subprocess.check_output([binary("etcd"), "--version"], text=True)
    assert f"etcd Version: {ETCD_VERSION.removeprefix('v')}\n" in etcd_version

    with control_plane.api_client() as client:
        version = kubernetes.client.VersionApi(client).get_code()
    assert (version.git_version, version.major, version.minor) == (K8S_VERSION, "1", K8S_VERSION.split(".")[1])
    assert {name for name, c in control_plane.components.items() if c.binary.startswith(tuple(path.split(":")))} == {
        *COMPONENTS,
        "etcd",
    }
