"""Container mode of the kubelet harness: a Pod's first container as a podman container of its image.

:func:`run_args` is the pure translation of a Pod spec (plus the env and mounts the harness made)
into one ``podman run`` command line; :func:`prepare_mounts` makes the volumes on the host; the rest
are the few podman calls the pod worker needs (signal, remove, exec, image lookup).

What a Pod spec becomes (the kubelet's and CRI's meaning, as far as podman can give it):

* the machine's facts: ``--runtime runc --cgroup-manager cgroupfs`` (crun fails on this cgroup
  layout), explicit ``--ulimit nofile=4096:4096 nproc=4096:4096`` (raising them is denied), and
  ``--network host``: pods share the host's loopback as in process mode, so ports are mapped the
  same way (:class:`~.kubelet_config.Ports`: two workers each get their own health port through
  ``FILTERJOB_HEALTH_PORT``) and HTTP probes go to 127.0.0.1;
* ``command`` -> ``--entrypoint`` (the image's CMD is then dropped, as Kubernetes does),
  ``args`` -> the arguments after the image, both ``$(VAR)``-expanded; ``workingDir`` -> ``--workdir``;
* the security context, the container's over the pod's: ``runAsUser``/``runAsGroup`` ->
  ``--user``, ``fsGroup`` and ``supplementalGroups`` -> ``--group-add``, ``runAsNonRoot`` checked
  against the user (the image's when none is set) -> ``CreateContainerConfigError``,
  ``readOnlyRootFilesystem`` -> ``--read-only --read-only-tmpfs=false`` (podman would otherwise
  give a writable ``/tmp``, which a pod only has through an ``emptyDir``), ``capabilities`` ->
  ``--cap-drop``/``--cap-add``, ``allowPrivilegeEscalation: false`` -> ``no-new-privileges``,
  ``privileged``, ``seccompProfile`` ``Unconfined``;
* ``resources.limits`` ``memory`` -> ``--memory``, ``cpu`` -> ``--cpus`` (requests only schedule);
* env through an ``--env-file`` (never on the command line, which the pod's log shows), values
  with a newline (which that file cannot hold) by name from podman's own environment;
* mounts: ``hostPath`` volumes and claims bound to ``hostPath``/``local`` PVs bind-mounted
  (``subPath``, ``readOnly``), ``emptyDir`` a fresh host folder per pod (mode 0777, as the
  kubelet makes it) or a tmpfs for ``medium: Memory``, Secret/ConfigMap/projected volumes
  written as files and bind-mounted read-only -- among them the ServiceAccount admission
  plugin's ``kube-api-access-*`` volume at ``/var/run/secrets/kubernetes.io/serviceaccount``
  (``token`` from TokenRequest, ``ca.crt`` from ``kube-root-ca.crt``, ``namespace``), so clients
  use their in-cluster configuration with ``KUBERNETES_SERVICE_HOST``/``PORT`` = 127.0.0.1 and the
  API server's secure port. ``fsGroup`` gives the pod's group to emptyDir, Secret/ConfigMap/
  projected volumes and claims (group-owned, group-writable, setgid folders, as the kubelet's
  ``SetVolumeOwnership``; ``fsGroupChangePolicy: OnRootMismatch`` skips a root already right),
  never to ``hostPath`` volumes, which the kubelet does not touch either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

from . import kubelet_config as config

Body = dict[str, Any]

PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
#: The label every container of a harness carries: :func:`instance` (stale ones are removed at start).
NODE_LABEL = "filterjob.dev/kubelet-node"


def instance(node: str, log_dir: Path) -> str:
    """Which harness a container is of: its node and its log folder (two clusters may both have a
    ``dev-node``; a harness restarted on the same folder is the same one)."""
    digest = hashlib.sha256(str(log_dir.resolve()).encode()).hexdigest()[:10]
    return f"{node}.{digest}"


@dataclasses.dataclass(frozen=True)
class Mount:
    """One mount of the container: a host path bind-mounted, or a tmpfs when ``source`` is None."""

    target: str
    source: str | None
    read_only: bool = False
    size: int | None = None

    def args(self) -> list[str]:
        if self.source is None:
            options = ["type=tmpfs", f"destination={self.target}", "tmpfs-mode=1777"]
            if self.size:
                options.append(f"tmpfs-size={self.size}")
            return ["--mount", ",".join(options)]
        options = ["type=bind", f"source={self.source}", f"destination={self.target}"]
        if self.read_only:
            options.append("readonly=true")
        return ["--mount", ",".join(options)]


@dataclasses.dataclass(frozen=True)
class PodmanRun:
    """A ``podman run`` command line and the env it needs beside it."""

    argv: list[str]
    #: Written to the ``--env-file`` named in ``argv``.
    env_file: dict[str, str]
    #: Values a file cannot hold (a newline), given by name from podman's own environment.
    passed_env: dict[str, str]


def container_name(pod: Body, container: Body, attempt: int) -> str:
    """``k8s_<container>_<pod>_<namespace>_<uid>_<attempt>``, as the kubelet names its containers."""
    meta = pod["metadata"]
    return f"k8s_{container.get('name', 'c')}_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}_{attempt}"


def _merged_security(pod_spec: Body, container: Body) -> Body:
    """The container's securityContext over the pod's (for the fields both may set)."""
    pod_level = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    shared = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    return {**{k: pod_level[k] for k in shared if k in pod_level}, **own}


def _user_id(user: str) -> int | None:
    """The numeric UID of an image's ``USER`` (``10001``, ``10001:10001``), None for a name or none."""
    uid = user.split(":", 1)[0]
    return int(uid) if uid.isdigit() else (0 if not uid else None)


#: Pod-level securityContext fields translated below; anything else is refused, never dropped.
POD_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy", "supplementalGroups"}
POD_FIELDS |= {"seccompProfile"}
CONTAINER_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"}
CONTAINER_FIELDS |= {"allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities", "privileged"}


def security_args(pod_spec: Body, container: Body, *, image_user: str = "") -> list[str]:
    """The podman flags of the pod's and the container's security contexts.

    A field podman cannot be given here (SELinux options, sysctls, a Localhost seccomp
    profile, ...) is a ``ConfigError``: a test that asked for it must not pass without it.
    """
    pod_level = pod_spec.get("securityContext") or {}
    unknown = (set(pod_level) - POD_FIELDS) | (set(container.get("securityContext") or {}) - CONTAINER_FIELDS)
    if unknown:
        fields = ", ".join(sorted(unknown))
        raise config.ConfigError(f"securityContext fields with no podman translation here: {fields}")
    security = _merged_security(pod_spec, container)
    seccomp = (security.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp not in ("RuntimeDefault", "Unconfined"):  # podman's default profile is the runtime default
        raise config.ConfigError(f"seccompProfile {seccomp}: only RuntimeDefault and Unconfined are translated")
    args: list[str] = []
    uid, gid = security.get("runAsUser"), security.get("runAsGroup")
    if uid is not None:
        args += ["--user", f"{int(uid)}:{int(gid)}" if gid is not None else str(int(uid))]
    elif gid is not None:
        image_uid = image_user.split(":", 1)[0] or "0"
        args += ["--user", f"{image_uid}:{int(gid)}"]
    if security.get("runAsNonRoot"):
        effective = int(uid) if uid is not None else _user_id(image_user)
        if effective is None:
            raise config.ConfigError(
                f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                "cannot verify user is non-root"
            )
        if effective == 0:
            raise config.ConfigError("container has runAsNonRoot and image will run as root")
    groups = [pod_level["fsGroup"]] if pod_level.get("fsGroup") is not None else []
    groups += pod_level.get("supplementalGroups") or []
    for group in dict.fromkeys(int(g) for g in groups):
        args += ["--group-add", str(group)]
    if security.get("privileged"):
        args.append("--privileged")
    if security.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = security.get("capabilities") or {}
    for flag, key in (("--cap-drop", "drop"), ("--cap-add", "add")):
        for capability in capabilities.get(key) or []:
            args += [flag, str(capability).lower() if str(capability).upper() == "ALL" else str(capability)]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    return args


def resource_args(container: Body) -> list[str]:
    """``resources.limits`` as podman applies them: ``--memory`` (bytes) and ``--cpus``."""
    limits = (container.get("resources") or {}).get("limits") or {}
    args: list[str] = []
    if "memory" in limits:
        memory = parse_quantity(str(limits["memory"]))  # type: ignore[no-untyped-call]
        args += ["--memory", str(math.ceil(memory))]
    if "cpu" in limits:
        cpus = parse_quantity(str(limits["cpu"]))  # type: ignore[no-untyped-call]
        args += ["--cpus", f"{float(cpus):g}"]
    return args


def run_args(
    *,
    pod: Body,
    container: Body,
    image: str,
    name: str,
    node: str,
    env: Mapping[str, str],
    mounts: list[Mount],
    env_file: Path,
    image_user: str = "",
) -> PodmanRun:
    """The ``podman run`` of one container start (pure: nothing is read or written here)."""
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    labels = {
        NODE_LABEL: node,
        "io.kubernetes.pod.name": meta["name"],
        "io.kubernetes.pod.namespace": meta["namespace"],
        "io.kubernetes.pod.uid": meta["uid"],
        "io.kubernetes.container.name": str(container.get("name", "")),
    }
    argv = [*PODMAN, "run", "--rm", "--name", name, "--network", "host", "--hostname", meta["name"], *ULIMITS]
    argv += ["--pull", "never", "--stop-timeout", "0"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    argv += security_args(spec, container, image_user=image_user)
    argv += resource_args(container)
    for mount in mounts:
        argv += mount.args()
    if container.get("workingDir"):
        argv += ["--workdir", str(container["workingDir"])]
    passed = {key: value for key, value in env.items() if "\n" in value or "\r" in value}
    argv += ["--env-file", str(env_file)]
    for key in passed:
        argv += ["--env", key]
    command = [config.expand(str(part), env) for part in container.get("command") or []]
    if command:
        argv += ["--entrypoint", json.dumps(command)]
    argv.append(image)
    argv += [config.expand(str(arg), env) for arg in container.get("args") or []]
    return PodmanRun(argv=argv, env_file={k: v for k, v in env.items() if k not in passed}, passed_env=passed)


def service_env(pod_name: str, api_server: str) -> dict[str, str]:
    """What a container starts from: the ``kubernetes`` Service's variables and ``HOSTNAME``
    (``PATH`` and ``HOME`` are the image's)."""
    base = config.base_env(pod_name, api_server)
    return {key: value for key, value in base.items() if key.startswith("KUBERNETES_")} | {"HOSTNAME": pod_name}


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """``KEY=value`` lines, readable by root only (the values may be Secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{key}={value}\n" for key, value in env.items())


# --------------------------------------------------------------------------------------------------
# Volumes on the host.


def set_volume_ownership(path: Path, gid: int, *, policy: str = "Always") -> None:
    """The kubelet's ``SetVolumeOwnership``: group ``gid`` everywhere, group-writable, folders setgid."""
    if policy == "OnRootMismatch" and path.stat().st_gid == gid and path.stat().st_mode & 0o2070 == 0o2070:
        return
    for root, folders, files in os.walk(path):
        for entry in [root, *(os.path.join(root, f) for f in folders + files)]:
            if os.path.islink(entry):
                continue
            os.chown(entry, -1, gid)
            mode = os.stat(entry).st_mode
            extra = 0o2070 if os.path.isdir(entry) else 0o060
            os.chmod(entry, (mode | extra) & 0o7777)


def _refresh_projected(pod: Body, folder: Path, volume: Body, lookup: config.Lookup) -> None:
    try:
        config._write_projected(pod, folder, volume["projected"], lookup)
    except config.ConfigError as e:
        raise config.MountPending(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {e}') from e


def refresh_tokens(pod: Body, container: Body, pod_dir: Path, lookup: config.Lookup) -> None:
    """Write the projected volumes again (a fresh ServiceAccount token, as the kubelet rotates it)."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        if "projected" in volume:
            _refresh_projected(pod, pod_dir / "volumes" / volume["name"], volume, lookup)


def prepare_mounts(pod: Body, container: Body, lookup: config.Lookup, pod_dir: Path) -> list[Mount]:
    """Make the container's volumes on the host; the mounts that put them at their ``mountPath``."""
    namespace, spec = pod["metadata"]["namespace"], pod.get("spec") or {}
    pod_security = spec.get("securityContext") or {}
    fs_group = pod_security.get("fsGroup")
    policy = str(pod_security.get("fsGroupChangePolicy") or "Always")
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts: list[Mount] = []
    owned: set[Path] = set()
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise config.MountRefused(f"volumeMount {mount['name']}: the pod has no such volume")
        target, read_only = str(mount["mountPath"]), bool(mount.get("readOnly"))
        sub_path = str(mount.get("subPath") or "")
        host = config._host_path(pod, volume, lookup)
        if host is not None:
            kind = (volume.get("hostPath") or {}).get("type") or ""
            if not Path(host).exists() and kind in ("DirectoryOrCreate", "") and "hostPath" in volume:
                Path(host).mkdir(parents=True, mode=0o755)
            elif not Path(host).exists() and kind == "FileOrCreate":
                Path(host).touch(mode=0o644)
            elif not Path(host).exists():
                raise config.MountRefused(f"volume {volume['name']}: host path {host} does not exist")
            if "persistentVolumeClaim" in volume and fs_group is not None:
                owned.add(Path(host))
            source = Path(host, sub_path)
            if sub_path and not source.exists():
                source.mkdir(parents=True)
            mounts.append(Mount(target=target, source=str(source), read_only=read_only))
            continue
        folder = pod_dir / "volumes" / volume["name"]
        if "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            if empty.get("medium") == "Memory":
                limit = empty.get("sizeLimit")
                size = math.ceil(parse_quantity(str(limit))) if limit else None  # type: ignore[no-untyped-call]
                mounts.append(Mount(target=target, source=None, size=size))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # as the kubelet makes an emptyDir: any UID of the pod may write
            owned.add(folder)
        elif "projected" in volume:
            _refresh_projected(pod, folder, volume, lookup)
            owned.add(folder)
            read_only = True
        elif "configMap" in volume or "secret" in volume:
            kind, ref = ("ConfigMap", volume["configMap"]) if "configMap" in volume else ("Secret", volume["secret"])
            name = ref.get("name") or ref.get("secretName")
            try:
                data = config._source(lookup, kind, namespace, name, optional=bool(ref.get("optional")))
                config._write_files(folder, data or {}, ref.get("items"))
            except config.ConfigError as e:
                raise config.MountPending(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {e}') from e
            owned.add(folder)
            read_only = True
        else:
            other = sorted(set(volume) - {"name"})
            raise config.MountRefused(
                f"volume {volume['name']}: {other} volumes are not supported by the kubelet harness"
            )
        source = folder / sub_path if sub_path else folder
        if sub_path and "emptyDir" in volume:
            source.mkdir(parents=True, exist_ok=True)
            source.chmod(0o777)
        mounts.append(Mount(target=target, source=str(source), read_only=read_only))
    if fs_group is not None:
        for path in owned:
            set_volume_ownership(path, int(fs_group), policy=policy)
    return mounts


def service_account_mount(
    pod: Body, container: Body, lookup: config.Lookup, pod_dir: Path, **where: Any
) -> list[Mount]:
    """On a server without the ServiceAccount admission plugin: the credentials, mounted as it would."""
    mounted = any(
        os.path.normpath(str(m.get("mountPath", ""))) == config.SERVICE_ACCOUNT_DIR
        for m in container.get("volumeMounts") or []
    )
    if mounted:
        return []
    if not config.service_account(pod, lookup, pod_dir, **where):
        return []
    return [Mount(target=config.SERVICE_ACCOUNT_DIR, source=str(pod_dir / "serviceaccount"), read_only=True)]


# --------------------------------------------------------------------------------------------------
# podman calls of the pod worker.


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False, timeout=timeout)


def image_user(image: str) -> str | None:
    """The image's ``USER`` if podman's local storage has the image, else None (not "pulled")."""
    done = _podman("image", "inspect", "--format", "{{.Config.User}}", image)
    return done.stdout.strip() if done.returncode == 0 else None


def kill(name: str, sig: int) -> bool:
    """Send ``sig`` to the container's PID 1; False if there is no such running container."""
    return _podman("kill", "--signal", signal.Signals(sig).name, name).returncode == 0


def remove(name: str) -> None:
    _podman("rm", "--force", "--ignore", "--time", "0", name)


def remove_node_containers(harness: str) -> None:
    """Remove every container of the harness ``harness`` (:func:`instance`; left by one that was killed)."""
    done = _podman("ps", "--all", "--quiet", "--filter", f"label={NODE_LABEL}={harness}")
    names = done.stdout.split()
    if names:
        _podman("rm", "--force", "--time", "0", *names)


def exec_argv(name: str, command: list[str]) -> list[str]:
    return [*PODMAN, "exec", name, *command]


def available() -> bool:
    return shutil.which("podman") is not None and shutil.which("runc") is not None
