"""tests/helpers/image.py: a pod's security settings as podman flags (pure; the container tests use them)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.image import ImageError, empty_dir_args, plain_env, run_args, security_args

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def test_the_restricted_settings_become_user_group_read_only_no_caps_no_new_privileges() -> None:
    assert security_args(RESTRICTED_POD, RESTRICTED_CONTAINER) == [
        "--user",
        "10001:10001",
        "--group-add",
        "10001",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
    ]


def test_the_container_overrides_the_pod_and_groups_add_up() -> None:
    pod = {**RESTRICTED_POD, "fsGroup": 30000, "supplementalGroups": [40000]}
    args = security_args(
        pod, {**RESTRICTED_CONTAINER, "runAsUser": 10002, "capabilities": {"add": ["NET_BIND_SERVICE"]}}
    )
    assert args[:6] == ["--user", "10002:10001", "--group-add", "30000", "--group-add", "40000"]
    assert args[args.index("--cap-add") + 1] == "NET_BIND_SERVICE"
    assert "--cap-drop" not in args


def test_a_group_without_a_user_runs_as_the_images_user() -> None:
    assert security_args({"runAsGroup": 5}, {}) == ["--user", "10001:5"]


def test_nothing_set_means_no_flags_and_writable_root() -> None:
    assert security_args({}, {}) == []
    assert security_args({}, {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": False}) == []
    assert security_args({"seccompProfile": {"type": "Unconfined"}}, {}) == ["--security-opt", "seccomp=unconfined"]


@pytest.mark.parametrize(
    ("pod", "container", "message"),
    [
        ({"runAsUser": 0, "runAsNonRoot": True}, {}, "runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, {"runAsUser": 0}, "runAsNonRoot and image will run as root"),
        ({}, {"seLinuxOptions": {"level": "s0"}}, "seLinuxOptions"),
        ({"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}, {}, "sysctls"),
        ({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}, {}, "only RuntimeDefault"),
    ],
)
def test_what_cannot_be_translated_is_refused(pod: dict, container: dict, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        security_args(pod, container)


def test_empty_dirs_become_tmpfs_other_volumes_do_not() -> None:
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}]
    assert empty_dir_args(volumes, mounts) == ["--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777"]


def test_the_pods_command_replaces_the_entrypoint_and_its_args_are_expanded() -> None:
    container = {
        "command": ["filterjob"],
        "args": ["operator", "--liveness=http://0.0.0.0:$(PORT)/healthz", "$$(PORT)"],
        "env": [{"name": "PORT", "value": "8080"}, {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
    }
    env = plain_env(container)
    assert env == {"PORT": "8080"}
    args = run_args("img", pod={}, container=container, name="c", env=env)
    assert args[args.index("--entrypoint") + 1] == json.dumps(["filterjob"])
    assert args[args.index("img") :] == ["img", "operator", "--liveness=http://0.0.0.0:8080/healthz", "$(PORT)"]
    assert args[args.index("--env") : args.index("--env") + 2] == ["--env", "PORT=8080"]
    # Given a command, that runs instead, with the image's entrypoint (none: CMD replaced).
    assert run_args("img", pod={}, container=container, name="c", command=["sh"])[-2:] == ["img", "sh"]
    for flag in ("--network", "--ulimit", "--rm"):
        assert flag in args
