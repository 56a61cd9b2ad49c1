"""The kubelet harness's container mode (tests/helpers/kubelet_podman.py): a Pod spec as ``podman run``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import kubelet_config as config
from tests.helpers import kubelet_podman as podman
from tests.helpers.kubelet_fakes import FakeLookup, pod

Body = dict[str, Any]
RESTRICTED: Body = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def run(
    manifest: Body, *, env: dict[str, str] | None = None, mounts: list[podman.Mount] | None = None, **kw: Any
) -> podman.PodmanRun:
    container = manifest["spec"]["containers"][0]
    return podman.run_args(
        pod=manifest,
        container=container,
        image="localhost/filterjob:dev",
        name="k8s_c_p-1_ns_u-1_0",
        node="node-a",
        env=env or {},
        mounts=mounts or [],
        env_file=Path("/pods/env.0"),
        **kw,
    )


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, part in enumerate(argv) if part == flag]


def test_the_machine_flags_come_first_and_the_image_with_its_args_last() -> None:
    manifest = pod(containers=[{"name": "c", "command": ["filterjob"], "args": ["operator", "--liveness=$(P)"]}])
    argv = run(manifest, env={"P": "8123"}).argv
    assert argv[:6] == ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run"]
    assert flag_values(argv, "--network") == ["host"]
    assert flag_values(argv, "--ulimit") == ["nofile=4096:4096", "nproc=4096:4096"]
    assert flag_values(argv, "--pull") == ["never"]
    assert json.loads(flag_values(argv, "--entrypoint")[0]) == ["filterjob"]
    assert argv[-3:] == ["localhost/filterjob:dev", "operator", "--liveness=8123"]


def test_without_a_command_the_images_entrypoint_runs_with_the_args() -> None:
    argv = run(pod(containers=[{"name": "c", "args": ["--once"]}])).argv
    assert "--entrypoint" not in argv
    assert argv[-2:] == ["localhost/filterjob:dev", "--once"]


def test_the_restricted_security_context_becomes_podman_flags() -> None:
    manifest = pod(
        securityContext={"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 2000, "supplementalGroups": [3000]},
        containers=[{"name": "c", "securityContext": {**RESTRICTED, "runAsNonRoot": True}}],
    )
    argv = run(manifest).argv
    assert flag_values(argv, "--user") == ["10001:10001"]
    assert flag_values(argv, "--group-add") == ["2000", "3000"]
    assert "--read-only" in argv
    assert "--read-only-tmpfs=false" in argv  # no writable /tmp a pod would not have
    assert flag_values(argv, "--cap-drop") == ["all"]
    assert flag_values(argv, "--security-opt") == ["no-new-privileges"]
    assert "--privileged" not in argv


def test_the_containers_security_context_wins_over_the_pods() -> None:
    manifest = pod(
        securityContext={"runAsUser": 1000, "runAsGroup": 1000},
        containers=[
            {"name": "c", "securityContext": {"runAsUser": 2000, "capabilities": {"add": ["NET_BIND_SERVICE"]}}}
        ],
    )
    argv = run(manifest).argv
    assert flag_values(argv, "--user") == ["2000:1000"]
    assert flag_values(argv, "--cap-add") == ["NET_BIND_SERVICE"]
    assert "--read-only" not in argv
    assert "--security-opt" not in argv


@pytest.mark.parametrize(
    ("security", "image_user", "wrong"),
    [
        ({"runAsNonRoot": True, "runAsUser": 0}, "10001", "will run as root"),
        ({"runAsNonRoot": True}, "", "will run as root"),
        ({"runAsNonRoot": True}, "0:0", "will run as root"),
        ({"runAsNonRoot": True}, "filterjob", "non-numeric user"),
    ],
)
def test_run_as_non_root_is_checked_against_the_user_that_would_run(
    security: Body, image_user: str, wrong: str
) -> None:
    with pytest.raises(config.ConfigError, match=wrong):
        run(pod(containers=[{"name": "c", "securityContext": security}]), image_user=image_user)


def test_run_as_non_root_passes_with_the_images_numeric_user() -> None:
    argv = run(
        pod(containers=[{"name": "c", "securityContext": {"runAsNonRoot": True}}]), image_user="10001:10001"
    ).argv
    assert "--user" not in argv  # the image's own


def test_limits_become_memory_and_cpus_and_requests_do_not() -> None:
    resources = {"limits": {"memory": "256Mi", "cpu": "500m"}, "requests": {"memory": "64Mi", "cpu": "100m"}}
    argv = run(pod(containers=[{"name": "c", "resources": resources}])).argv
    assert flag_values(argv, "--memory") == [str(256 * 1024 * 1024)]
    assert flag_values(argv, "--cpus") == ["0.5"]
    assert "--memory" not in run(pod(containers=[{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}])).argv


def test_env_goes_to_the_env_file_never_to_the_command_line() -> None:
    env = {"FILTERJOB_BROKER_URL": "amqp://u:secret@127.0.0.1/", "CERT": "line 1\nline 2"}
    done = run(pod(), env=env)
    assert not [part for part in done.argv if "secret" in part or "line 1" in part]
    assert flag_values(done.argv, "--env-file") == ["/pods/env.0"]
    assert done.env_file == {"FILTERJOB_BROKER_URL": "amqp://u:secret@127.0.0.1/"}
    assert done.passed_env == {"CERT": "line 1\nline 2"}  # a file line cannot hold it: by name
    assert flag_values(done.argv, "--env") == ["CERT"]


def test_mounts_and_labels() -> None:
    mounts = [
        podman.Mount(target="/data", source="/srv/photos"),
        podman.Mount(target="/etc/conf", source="/pods/volumes/conf", read_only=True),
        podman.Mount(target="/cache", source=None, size=1024),
    ]
    argv = run(pod(containers=[{"name": "c", "workingDir": "/data"}]), mounts=mounts).argv
    assert flag_values(argv, "--mount") == [
        "type=bind,source=/srv/photos,destination=/data",
        "type=bind,source=/pods/volumes/conf,destination=/etc/conf,readonly=true",
        "type=tmpfs,destination=/cache,tmpfs-mode=1777,tmpfs-size=1024",
    ]
    assert flag_values(argv, "--workdir") == ["/data"]
    labels = flag_values(argv, "--label")
    assert f"{podman.NODE_LABEL}=node-a" in labels
    assert "io.kubernetes.pod.uid=u-1" in labels


def test_the_service_env_has_the_api_servers_port_and_no_host_path() -> None:
    env = podman.service_env("p-1", "https://127.0.0.1:36443")
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "36443"
    assert env["HOSTNAME"] == "p-1"
    assert "PATH" not in env
    assert "HOME" not in env


def test_volumes_on_the_host_with_fs_group_ownership(tmp_path: Path) -> None:
    host = tmp_path / "host"
    pv_dir = tmp_path / "pv"
    pv_dir.mkdir()
    (pv_dir / "in").mkdir()
    (pv_dir / "in" / "a.jpg").write_bytes(b"x")
    lookup = FakeLookup(
        claims={"photos": {"spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}},
        volumes={"pv-1": {"spec": {"hostPath": {"path": str(pv_dir)}}}},
        config_maps={"conf": {"a.yaml": "x: 1"}},
    )
    manifest = pod(
        securityContext={"fsGroup": os.getgid() + 4321},
        volumes=[
            {"name": "hp", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "photos"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "conf", "configMap": {"name": "conf"}},
        ],
        containers=[
            {
                "name": "c",
                "volumeMounts": [
                    {"name": "hp", "mountPath": "/hp"},
                    {"name": "claim", "mountPath": "/data"},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "mem", "mountPath": "/mem"},
                    {"name": "conf", "mountPath": "/etc/conf"},
                ],
            }
        ],
    )
    pod_dir = tmp_path / "pod"
    mounts = podman.prepare_mounts(manifest, manifest["spec"]["containers"][0], lookup, pod_dir)
    assert mounts == [
        podman.Mount(target="/hp", source=str(host)),
        podman.Mount(target="/data", source=str(pv_dir)),
        podman.Mount(target="/tmp", source=str(pod_dir / "volumes" / "tmp")),
        podman.Mount(target="/mem", source=None, size=1024 * 1024),
        podman.Mount(target="/etc/conf", source=str(pod_dir / "volumes" / "conf"), read_only=True),
    ]
    gid = os.getgid() + 4321
    # The claim is the pod's group's, group-writable, setgid folders (what a PVC looks like with fsGroup)...
    for path in (pv_dir, pv_dir / "in", pv_dir / "in" / "a.jpg"):
        assert path.stat().st_gid == gid, path
        assert path.stat().st_mode & 0o060 == 0o060, path
    assert (pv_dir / "in").stat().st_mode & 0o2000
    # ... an emptyDir any UID may write, also the group's ...
    assert (pod_dir / "volumes" / "tmp").stat().st_mode & 0o777 == 0o777
    assert (pod_dir / "volumes" / "tmp").stat().st_gid == gid
    assert (pod_dir / "volumes" / "conf" / "a.yaml").read_text() == "x: 1"
    # ... and a hostPath is left as it is, as the kubelet leaves it.
    assert host.stat().st_gid != gid


def test_the_service_account_volume_holds_token_ca_and_namespace(tmp_path: Path) -> None:
    lookup = FakeLookup(config_maps={"kube-root-ca.crt": {"ca.crt": "CA"}})
    volume = {
        "name": "kube-api-access-x",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }
    mount = {"name": "kube-api-access-x", "mountPath": config.SERVICE_ACCOUNT_DIR, "readOnly": True}
    manifest = pod(serviceAccountName="op", volumes=[volume], containers=[{"name": "c", "volumeMounts": [mount]}])
    container = manifest["spec"]["containers"][0]
    mounts = podman.prepare_mounts(manifest, container, lookup, tmp_path)
    folder = tmp_path / "volumes" / "kube-api-access-x"
    assert mounts == [podman.Mount(target=config.SERVICE_ACCOUNT_DIR, source=str(folder), read_only=True)]
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "token": "token-of-op",
        "ca.crt": "CA",
        "namespace": "ns",
    }
    assert podman.service_account_mount(manifest, container, lookup, tmp_path, server="https://x", ca_file=None) == []


def test_a_volume_type_the_harness_cannot_make_is_refused(tmp_path: Path) -> None:
    manifest = pod(
        volumes=[{"name": "nfs", "nfs": {"server": "x", "path": "/"}}],
        containers=[{"name": "c", "volumeMounts": [{"name": "nfs", "mountPath": "/nfs"}]}],
    )
    with pytest.raises(config.MountRefused, match="nfs"):
        podman.prepare_mounts(manifest, manifest["spec"]["containers"][0], FakeLookup(), tmp_path)


def test_an_empty_dir_sub_path_is_made_writable_for_any_uid(tmp_path: Path) -> None:
    manifest = pod(
        volumes=[{"name": "scratch", "emptyDir": {}}],
        containers=[{"name": "c", "volumeMounts": [{"name": "scratch", "mountPath": "/w", "subPath": "a/b"}]}],
    )
    (mount,) = podman.prepare_mounts(manifest, manifest["spec"]["containers"][0], FakeLookup(), tmp_path)
    assert mount == podman.Mount(target="/w", source=str(tmp_path / "volumes" / "scratch" / "a" / "b"))
    assert Path(str(mount.source)).stat().st_mode & 0o777 == 0o777
