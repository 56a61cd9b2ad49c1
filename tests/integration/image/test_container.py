"""The built image (scripts/build-image.sh) run by podman under the settings a cluster gives it.

The security settings come from the rendered chart (the operator pod) and from the
operator's own builders (the worker pods), translated to podman flags by
tests/helpers/image.py, so a change to either is what runs here. The worker container
consumes a real job from the host's RabbitMQ and writes into a bind-mounted folder owned
by another user and the pod's fsGroup, as a PersistentVolumeClaim is.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aio_pika.abc import AbstractChannel

from filterjob_operator.adapters import sources
from filterjob_operator.adapters.broker.enqueue import publish_tasks
from filterjob_operator.adapters.broker.topology import declare, delete
from filterjob_operator.control.builders import deployment
from filterjob_operator.control.settings import Settings
from filterjob_operator.core import exits
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.samples import make_samples
from filterjob_operator.core.spec import parse_job
from filterjob_worker import __version__
from tests.helpers.brokers import BROKER_URL, EventLog
from tests.helpers.image import PODMAN, plain_env, run_args
from tests.helpers.jobfiles import JOB

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "filterjob"
#: The owner of the claim's files: somebody else than the pods' user, as on a provisioned volume.
VOLUME_OWNER = 20000

Object = dict[str, Any]


def helm() -> str:
    found = ROOT / ".venv" / "bin" / "helm"
    if not found.is_file():
        result = subprocess.run([ROOT / "scripts" / "ensure-helm.sh"], capture_output=True, text=True, check=False)
        assert found.is_file(), f"no helm, and scripts/ensure-helm.sh could not install it:\n{result.stderr}"
    return str(found)


@pytest.fixture(scope="module")
def operator_pod() -> Object:
    """The operator Deployment's pod spec, rendered by helm with the chart's defaults."""
    rendered = subprocess.run(
        [helm(), "template", "filterjob", str(CHART), "--namespace", "filterjob-system"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (deploy,) = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc and doc["kind"] == "Deployment"]
    spec: Object = deploy["spec"]["template"]["spec"]
    return spec


def worker_pod(job_doc: Object) -> Object:
    """The worker Deployment's pod spec as the operator builds it for ``job_doc``."""
    manifest = deployment.build(parse_job(job_doc), settings=Settings(), replicas=1, broker_secret="rabbit")
    spec: Object = manifest["spec"]["template"]["spec"]
    return spec


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def name() -> Iterator[str]:
    """A unique container name; the container is removed afterwards whatever happened."""
    container = f"filterjob-test-{uuid.uuid4().hex[:10]}"
    yield container
    podman("rm", "--force", "--time", "0", container)


def test_the_image_carries_its_version_and_source_and_runs_as_its_user(filterjob_image: str) -> None:
    inspected = podman("image", "inspect", "--format", "{{json .Config}}", filterjob_image)
    assert inspected.returncode == 0, inspected.stderr
    config = yaml.safe_load(inspected.stdout)
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    git = shutil.which("git")
    if git is not None:  # the revision the image was built from: this tree's
        revision = subprocess.run([git, "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        assert labels["org.opencontainers.image.revision"] == revision.stdout.strip()
    assert config["User"] == "10001:10001"
    assert filterjob_image == f"localhost/filterjob:{__version__}"


def test_the_image_holds_no_pip_compiler_or_build_leftovers(
    filterjob_image: str, operator_pod: Object, name: str
) -> None:
    (container,) = operator_pod["containers"]
    script = (
        "for tool in pip pip3 gcc cc make; do command -v $tool && echo FOUND $tool; done;"
        " for python in python3 /opt/filterjob/bin/python; do $python -m pip --version && echo FOUND pip; done;"
        " ls -d /src /wheelhouse /opt/filterjob/wheelhouse /etc/pip.conf 2>/dev/null | sed 's/^/FOUND /'; true"
    )
    result = run(
        run_args(filterjob_image, pod=operator_pod, container=container, name=name, command=["sh", "-c", script])
    )
    assert result.returncode == 0, result.stderr
    assert "FOUND" not in result.stdout


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["filterjob", "--help"], "FilterJob: batch image filtering"),
        (["filterjob", "operator", "--help"], "Run the FilterJob operator"),
        (["filterjob-worker", "--help"], "FILTERJOB_BROKER_URL"),
        (["filterjob-worker", "--version"], __version__),
    ],
)
def test_the_entrypoints_answer_under_the_operator_pods_settings(
    filterjob_image: str, operator_pod: Object, name: str, command: list[str], expected: str
) -> None:
    (container,) = operator_pod["containers"]
    result = run(run_args(filterjob_image, pod=operator_pod, container=container, name=name, command=command))
    assert (result.returncode, result.stderr) == (exits.OK, "")
    assert expected in result.stdout


def test_the_operator_pods_settings_take_effect(filterjob_image: str, operator_pod: Object, name: str) -> None:
    """Not just flags: the process is 10001, has no capabilities and no way to gain any, and only /tmp is writable."""
    (container,) = operator_pod["containers"]
    script = (
        "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status;"
        " touch /opt/filterjob/x 2>/dev/null && echo WROTE /opt; touch /x 2>/dev/null && echo WROTE /;"
        " touch /tmp/x && echo TMP OK"
    )
    result = run(
        run_args(filterjob_image, pod=operator_pod, container=container, name=name, command=["sh", "-c", script])
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    pod_context = operator_pod["securityContext"]
    assert lines[:2] == [str(pod_context["runAsUser"]), str(pod_context["runAsGroup"])]
    status = dict(line.split(":\t") for line in lines[2:5])
    assert status == {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1"}
    assert "WROTE" not in result.stdout
    assert "TMP OK" in result.stdout


def test_the_operator_with_a_bad_setting_exits_invalid(filterjob_image: str, operator_pod: Object, name: str) -> None:
    """The chart's own command line and environment, with one setting broken: a message, no retry loop."""
    (container,) = operator_pod["containers"]
    env = plain_env(container) | {"FILTERJOB_STATUS_INTERVAL": "soon"}
    result = run(run_args(filterjob_image, pod=operator_pod, container=container, name=name, env=env))
    assert result.returncode == exits.INVALID, result.stdout + result.stderr
    assert "invalid operator setting" in result.stderr
    assert "FILTERJOB_STATUS_INTERVAL" in result.stderr or "soon" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_without_its_queue_exits_invalid(filterjob_image: str, job_doc: Object, name: str) -> None:
    job_doc["metadata"]["uid"] = str(uuid.uuid4())
    pod = worker_pod(job_doc)
    (container,) = pod["containers"]
    env = {k: v for k, v in plain_env(container).items() if k != "FILTERJOB_QUEUE"}
    result = run(run_args(filterjob_image, pod=pod, container=container, name=name, env=env))
    assert result.returncode == exits.INVALID
    assert "FILTERJOB_QUEUE is required" in result.stderr
    assert "Traceback" not in result.stderr


def claim_folder(root: Path, fs_group: int) -> Path:
    """A folder as a provisioned volume with the pod's fsGroup applied: another owner, the
    fsGroup's group, setgid (new files keep the group), writable only through the group."""
    claim = root / "claim"
    claim.mkdir()
    os.chown(claim, VOLUME_OWNER, fs_group)
    claim.chmod(0o2770)
    return claim


@pytest.mark.parametrize("fs_group", [None, 30000], ids=["chart-fsgroup", "other-fsgroup"])
async def test_a_worker_container_serves_a_job_into_a_claim_owned_by_another_user(
    filterjob_image: str, channel: AbstractChannel, tmp_path: Path, name: str, fs_group: int | None
) -> None:
    doc = copy.deepcopy(JOB)
    doc["metadata"] = {"name": f"img-{uuid.uuid4().hex[:8]}", "namespace": "image-test", "uid": str(uuid.uuid4())}
    doc["spec"]["destination"] = {"uri": "file:///data/out/", "format": "png"}
    doc["spec"]["source"] = {"uri": "file:///data/in/"}
    workers: Object = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "photos"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    if fs_group is not None:
        workers["podSecurityContext"] = {"fsGroup": fs_group}
    doc["spec"]["workers"] = workers
    pod = worker_pod(doc)
    (container,) = pod["containers"]
    group = pod["securityContext"]["fsGroup"]
    assert group == (fs_group or 10001)

    claim = claim_folder(tmp_path, group)
    samples = make_samples(claim / "in", count=5, broken=1, size=(64, 48))
    keys = sorted(p.relative_to(claim / "in").as_posix() for p in (claim / "in").rglob("*") if p.is_file())
    job = parse_job(doc)
    topology = topology_of(job)
    await declare(channel, topology)
    events = EventLog(topology)
    watch = await channel.declare_queue(f"{topology.base}.test-events", exclusive=True)
    await watch.bind(topology.events, routing_key="#")
    await watch.consume(events.on_message, no_ack=True)
    try:
        await publish_tasks(channel, topology, list(sources.plan(job, keys)))
        env = plain_env(container) | {
            "FILTERJOB_BROKER_URL": BROKER_URL,  # from the broker Secret on a cluster
            "FILTERJOB_WORKER_ID": name,  # the pod's name on a cluster
            "FILTERJOB_HEALTH_PORT": "0",  # the host's network: any free port, not 8080, which may be taken
        }
        args = run_args(
            filterjob_image, pod=pod, container=container, name=name, env=env, extra=["-v", f"{claim}:/data"]
        )
        worker = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            await events.wait_for(lambda log: len(log.finished()) == len(keys), within=120)
        finally:
            stop = await asyncio.create_subprocess_exec(*PODMAN, "stop", "--time", "30", name)
            await stop.wait()
            _, stderr = await worker.communicate()
        logs = stderr.decode(errors="replace")
        assert worker.returncode == 0, logs[-3000:]
    finally:
        await delete(channel, topology)

    succeeded = {e.task for e in events.of("succeeded")}
    failed = {e.task for e in events.of("failed")}
    assert (len(succeeded), len(failed)) == (len(samples.good), len(samples.broken)), logs[-3000:]
    outputs = sorted(p for p in (claim / "out").rglob("*") if p.is_file())
    assert len(outputs) == len(samples.good)
    for path in [*outputs, *(p for p in (claim / "out").rglob("*") if p.is_dir())]:
        info = path.stat()
        # Written by the pod's user, in the fsGroup (setgid), readable by the group afterwards.
        assert (info.st_uid, info.st_gid) == (pod["securityContext"]["runAsUser"], group), path
        assert info.st_mode & stat.S_IRGRP, path
    for path in outputs:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    # The inputs are as they were: nothing written next to them.
    assert sorted(p.relative_to(claim / "in").as_posix() for p in (claim / "in").rglob("*") if p.is_file()) == keys
