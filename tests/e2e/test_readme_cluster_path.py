"""The README's cluster path, end to end, exactly as written: its ``cluster-path`` block, run by bash.

The block (README "Developing against a local cluster") starts the dev cluster with pods as podman
containers (``scripts/dev-cluster.sh up --containers``), builds the image, ``helm install``s the
chart with it (the operator runs as a container of the image, with its in-cluster configuration),
applies the example (its namespace, broker Secret and FilterJob), waits for ``Succeeded``, lists
the outputs, deletes the job, ``helm uninstall``s and stops the cluster. The test changes only
where things are, so that it cannot touch a person's own dev cluster or images or a port another
test holds; every change must apply, so a README edit that breaks one fails here:

* the dev cluster's folder ``$PWD/.dev-cluster`` and the images' ``/tmp/filterjob-dev`` (in the
  block and in the applied example) are temporary folders of the test;
* the image is the one ``scripts/build-image.sh`` built for this session (``filterjob_image``);
* the operator's ``/metrics`` (this machine's port 9090 under ``--network host``) is a free port.

Between the block's steps the test only looks (containers, pods and the audit log before
``helm uninstall``). Slow (about 2 minutes); it needs podman and runc and runs as root.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import kubelet_podman
from tests.helpers.controlplane import ROOT, free_port
from tests.helpers.devcluster import DEV_NODE

README = ROOT / "README.md"
EXAMPLE = "examples/dev-cluster-job.yaml"
MARK = "<!-- cluster-path:"


def cluster_path() -> list[str]:
    """The commands of the README's marked block, one per entry (continued lines joined)."""
    text = README.read_text()
    assert MARK in text, f"README.md has no {MARK} ... --> marked block"
    block = text.split(MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    for line in block.replace("\\\n", " ").splitlines():
        if line.strip():
            commands.append(line)
    return commands


def substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"the README's cluster path no longer has {old!r}: update tests/e2e/{Path(__file__).name}"
    return text.replace(old, new)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dev"
    yield folder
    if (folder / "state.json").exists():  # a failed run must not leave a cluster (or containers) behind
        env = {**os.environ, "FILTERJOB_DEV_CLUSTER": str(folder)}
        subprocess.run([str(ROOT / "scripts" / "dev-cluster.sh"), "down"], env=env, cwd=ROOT, check=False)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_readme_cluster_path_runs_a_filterjob_to_succeeded_in_containers(
    filterjob_image: str, state: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("podman runs the pods' containers as root here")
    images, observed = tmp_path / "images", tmp_path / "observed"
    observed.mkdir()
    example = tmp_path / "dev-cluster-job.yaml"
    example.write_text(substitute((ROOT / EXAMPLE).read_text(), "/tmp/filterjob-dev", str(images)))
    harness = kubelet_podman.instance(DEV_NODE, state / "pods")
    look = [
        f"podman ps --filter label={kubelet_podman.NODE_LABEL}={harness} --format '{{{{.Image}}}} {{{{.Names}}}}'"
        f" > {observed}/containers.txt",
        f"kubectl get pods -A -o json > {observed}/pods.json",
        f"cp {state}/audit.log {observed}/audit.log",
        f"cp -r {state}/pods {observed}/pods",
    ]
    script = ["set -euxo pipefail"]
    for command in cluster_path():
        if command.startswith("helm uninstall"):
            script += look
        script.append(command)
    text = "\n".join(script)
    text = substitute(text, "$PWD/.dev-cluster", str(state))
    text = substitute(text, EXAMPLE, str(example))
    text = substitute(text, "/tmp/filterjob-dev", str(images))
    text = substitute(text, "$(scripts/build-image.sh | tail -n1)", shlex.quote(filterjob_image))
    text = substitute(text, "--create-namespace --wait", f"--create-namespace --wait --set metrics.port={free_port()}")
    assert "scripts/dev-cluster.sh up --containers" in text
    env = {**os.environ, "FILTERJOB_DEV_CLUSTER": str(state)}
    done = subprocess.run(["/bin/bash", "-c", text], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-8000:]}"

    # `kubectl -n photos get fj`, as the README shows it.
    assert re.search(r"^dev-thumbnails\s+Succeeded\s+20/20\s+0\s", done.stdout, re.M), done.stdout
    inputs = sorted(p.relative_to(images / "in").with_suffix(".jpg") for p in (images / "in").rglob("*.*"))
    outputs = sorted(p.relative_to(images / "out") for p in (images / "out").rglob("*") if p.is_file())
    assert len(inputs) == 20
    assert outputs == inputs  # one output per input, no partial or temporary file left
    assert all((images / "out" / p).stat().st_uid == 10001 for p in outputs)  # written by the pods' user

    # The operator ran as a container of the image, as its ServiceAccount, in-cluster.
    containers = [line.split() for line in (observed / "containers.txt").read_text().splitlines()]
    operator = [name for image, name in containers if "_operator_" in name]
    assert len(operator) == 1, containers
    assert all(image == filterjob_image for image, _ in containers), containers
    pods = json.loads((observed / "pods.json").read_text())["items"]
    (operator_pod,) = [p for p in pods if p["metadata"]["namespace"] == "filterjob-system"]
    status = operator_pod["status"]["containerStatuses"][0]
    assert status["containerID"] == f"podman://{operator[0]}"
    assert status["restartCount"] == 0
    users = {json.loads(line)["user"]["username"] for line in (observed / "audit.log").read_text().splitlines()}
    assert "system:serviceaccount:filterjob-system:filterjob" in users
    # The workers ran as containers of the image too, under the pod's restricted security context.
    workers = sorted((observed / "pods").glob("photos.dev-thumbnails-workers-*.log"))
    assert workers, sorted(p.name for p in (observed / "pods").iterdir())
    for log in workers:
        started = next(line for line in log.read_text().splitlines() if line.startswith("# kubelet: starting"))
        for part in ("podman", " run ", filterjob_image, "--user 10001", "--read-only", "--cap-drop all"):
            assert part in started, started
    # ... and what ran is gone.
    assert not state.exists()  # `down` removed the cluster
    left = subprocess.run(
        [*kubelet_podman.PODMAN, "ps", "--all", "--quiet", "--filter", f"label={kubelet_podman.NODE_LABEL}={harness}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert not left.stdout.split()
