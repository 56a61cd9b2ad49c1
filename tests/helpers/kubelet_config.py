"""How the kubelet harness turns a Pod's first container into a local process: argv, env, cwd.

Everything here reads the API (Secrets, ConfigMaps, claims, volumes, tokens) through
:class:`Lookup` and writes only below the pod's own folder; problems are raised as the errors the
kubelet reports, so the pod worker can put them in the container's status:

* :class:`StartError` -- the container is ``Terminated`` with exit code 128 and reason
  ``StartError``, as when a runtime cannot exec the command; ``restartPolicy`` decides what next
  (a Job's ``Never`` pod fails);
* :class:`ConfigError` -- the container stays ``Waiting`` with reason
  ``CreateContainerConfigError`` (a missing Secret/ConfigMap or key that is not ``optional``, an
  unsupported ``fieldRef``, no ``command``); retried with back-off, so creating the Secret later
  starts the pod, as on a kubelet;
* :class:`MountPending` -- ``ContainerCreating`` (a claim not bound yet, a Secret or ConfigMap
  volume's source missing, no ServiceAccount yet) with a ``FailedMount`` event; retried with back-off;
* :class:`MountRefused` -- ``ContainerCreating`` for good, with a ``FailedMount`` event: a mount
  that process mode cannot honour (see :func:`prepare_volumes`). The pod spec cannot change, so
  it waits for its deletion.

Environment, in the kubelet's order: a small base (``PATH`` with the venv's ``bin`` first,
``HOME``, locale, ``HOSTNAME`` = the pod name, ``PYTHONUNBUFFERED=1``, coverage's variables
(:mod:`tests.helpers.childenv`), not the test's own env),
the Service variables of the ``kubernetes`` Service (``KUBERNETES_SERVICE_HOST=127.0.0.1``,
``KUBERNETES_SERVICE_PORT``/``_HTTPS`` and ``KUBERNETES_PORT*`` = the API server's loopback port),
then the harness's own (``KUBECONFIG``, ``KUBELET_VOLUME_<NAME>``, ``KUBELET_PORT_<N>``), then
``envFrom`` (Secret/ConfigMap, with ``prefix``), then ``env`` (``value`` with ``$(VAR)`` expanded
from what came before; ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``, ``resourceFieldRef``
of ``limits``/``requests`` ``cpu``, ``memory``, ``ephemeral-storage``), last the health port
variable, which always wins (see :class:`Ports`).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml
from kubernetes.utils import parse_quantity

from .childenv import child_env
from .kubelet_status import POD_IP

Body = dict[str, Any]

#: Where a container finds its ServiceAccount credentials in a cluster (mounted by the admission plugin).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: The variable the pod's health port is given in (our worker image reads it).
HEALTH_PORT_ENV = "FILTERJOB_HEALTH_PORT"
BIN_DIR = Path(sys.executable).parent
_BASE_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured yet: ``CreateContainerConfigError``."""


class StartError(Exception):
    """The process cannot be started (no such executable): the container ends with ``StartError``."""


class MountPending(Exception):
    """A volume is not ready yet (unbound claim): ``ContainerCreating``, retried."""


class MountRefused(Exception):
    """A volume process mode cannot honour: ``ContainerCreating`` for good, a ``FailedMount`` event."""


class Lookup(Protocol):
    """What the resolution reads from the API; each returns None for an object that does not exist."""

    def secret(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def claim(self, namespace: str, name: str) -> Body | None: ...
    def volume(self, name: str) -> Body | None: ...
    def token(self, namespace: str, account: str, pod_name: str, pod_uid: str) -> str | None: ...


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are replaced, ``$$`` is a literal ``$``."""
    return _VAR_REF.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def decode_secret(secret: Body) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def free_port(taken: set[int]) -> int:
    """A port free on every interface (the worker listens on all of them), not handed out already."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("", 0))
            port: int = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port
    raise ConfigError("no free port for the container")


def probe_port(probe: Body, container: Body) -> int | None:
    """The container port an httpGet/tcpSocket probe targets (a named port resolved), or None."""
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if not action:
        return None
    port = action.get("port")
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ConfigError(f"probe port {port!r} is not a port of container {container.get('name')}")


@dataclasses.dataclass(frozen=True)
class Ports:
    """Container ports mapped to free loopback ports, new ones at each container start.

    Pods share the host's network, so two pods cannot both listen on 8080. Every port the
    container declares (``ports[].containerPort``) or a probe targets (a named port resolved through
    ``ports``) is mapped to a free port P. The process learns its ports from env: ``KUBELET_PORT_<N>``
    = P for each container port N (usable as ``$(KUBELET_PORT_8080)`` in args), and the health
    port -- the readiness probe's, else the liveness probe's, else the first declared one, else a
    fresh port -- in :data:`HEALTH_PORT_ENV`, overriding the container's own value (the worker
    Deployment's ``8080``). Probes are sent to the mapped port of the port they name.
    """

    mapping: Mapping[int, int]
    health: int

    @classmethod
    def allocate(cls, container: Body, taken: set[int]) -> Ports:
        probes = [container.get(kind) or {} for kind in ("readinessProbe", "livenessProbe", "startupProbe")]
        probed = [port for port in (probe_port(p, container) for p in probes) if port is not None]
        declared = [int(p["containerPort"]) for p in container.get("ports") or [] if "containerPort" in p]
        mapping = {port: free_port(taken) for port in dict.fromkeys([*probed, *declared])}
        first = [*probed, *declared][:1]
        return cls(mapping=mapping, health=mapping[first[0]] if first else free_port(taken))

    def env(self) -> dict[str, str]:
        return {f"KUBELET_PORT_{port}": str(mapped) for port, mapped in self.mapping.items()}

    def of(self, probe: Body, container: Body) -> int | None:
        port = probe_port(probe, container)
        return None if port is None else self.mapping.get(port, port)


def field_value(pod: Body, path: str) -> str:
    """A ``fieldRef`` as the kubelet resolves it (the downward API's env fields)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    m = _FIELD_KEY.match(path)
    if m is not None:
        return str((meta.get(m[1]) or {}).get(m[2], ""))
    raise ConfigError(f"fieldRef {path!r} is not supported by the process kubelet")


def _source(lookup: Lookup, kind: str, namespace: str, name: str, *, optional: bool) -> dict[str, str] | None:
    found = lookup.secret(namespace, name) if kind == "Secret" else lookup.config_map(namespace, name)
    if found is None and not optional:
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    return found


def _key_ref(lookup: Lookup, kind: str, namespace: str, ref: Body) -> str | None:
    optional = bool(ref.get("optional"))
    data = _source(lookup, kind, namespace, ref["name"], optional=optional)
    if data is not None and ref["key"] in data:
        return data[ref["key"]]
    if optional:
        return None
    raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")


def resource_value(container: Body, ref: Body, allocatable: Mapping[str, str]) -> str:
    """A ``resourceFieldRef`` as the kubelet resolves it: ``ceil(value / divisor)``, an unset limit
    being the node's allocatable amount and an unset request 0."""
    kind, _, name = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ConfigError(f"resourceFieldRef {ref.get('resource')!r} is not supported by the process kubelet")
    amount = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if amount is None:
        amount = allocatable.get(name, "0") if kind == "limits" else "0"
    value = parse_quantity(str(amount)) / parse_quantity(str(ref.get("divisor") or "1"))  # type: ignore[no-untyped-call]
    return str(math.ceil(value))


def container_env(
    pod: Body,
    container: Body,
    lookup: Lookup,
    before: Mapping[str, str],
    *,
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``before``, then ``envFrom``, then ``env``: the container's environment as the kubelet builds it."""
    namespace = pod["metadata"]["namespace"]
    env = dict(before)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in source:
                ref = source[key]
                data = _source(lookup, kind, namespace, ref["name"], optional=bool(ref.get("optional")))
                env.update({prefix + name: value for name, value in (data or {}).items()})
    for entry in container.get("env") or []:
        name, source = entry["name"], entry.get("valueFrom")
        value: str | None
        if source is None:
            value = expand(str(entry.get("value", "")), env)
        elif "secretKeyRef" in source:
            value = _key_ref(lookup, "Secret", namespace, source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(lookup, "ConfigMap", namespace, source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = resource_value(container, source["resourceFieldRef"], allocatable or {})
        else:
            raise ConfigError(f"env {name}: {sorted(source)} is not supported by the process kubelet")
        if value is not None:
            env[name] = value
    return env


def base_env(pod_name: str, api_server: str) -> dict[str, str]:
    """The environment every pod's process starts from, with the ``kubernetes`` Service's variables."""
    env = child_env({key: os.environ[key] for key in _BASE_ENV_KEYS if key in os.environ})
    env["PATH"] = os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", os.defpath)])
    env["HOSTNAME"] = pod_name
    env["PYTHONUNBUFFERED"] = "1"
    port = str(urlsplit(api_server).port or 443)
    env |= {
        "KUBERNETES_SERVICE_HOST": POD_IP,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{POD_IP}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": POD_IP,
    }
    return env


def executable(command: str, path: str) -> str:
    """A bare name is this venv's script if there is one, else found on ``PATH``."""
    if "/" in command:
        return command
    local = BIN_DIR / command
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(command, path=path)
    if found is None:
        raise StartError(f'exec: "{command}": executable file not found in {BIN_DIR} or $PATH')
    return found


def working_dir(container: Body, default: Path) -> Path:
    """The container's ``workingDir``, which must exist on the host (a runtime would make it in the
    image; here a process would write its relative paths somewhere else); else ``default``."""
    wanted = container.get("workingDir")
    if not wanted:
        return default
    if not Path(wanted).is_dir():
        raise StartError(f"workingDir {wanted} is not a folder on this host (processes run on the host filesystem)")
    return Path(wanted)


def command_line(container: Body, env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args``, ``$(VAR)`` expanded; an image's own entrypoint cannot run here."""
    command = [str(part) for part in container.get("command") or []]
    if not command:
        raise ConfigError("the container has no command (an image's entrypoint cannot run as a process)")
    argv = [expand(part, env) for part in command + [str(a) for a in container.get("args") or []]]
    argv[0] = executable(argv[0], env.get("PATH", ""))
    return argv


def _env_name(volume: str) -> str:
    return "KUBELET_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def _host_path(pod: Body, volume: Body, lookup: Lookup) -> str | None:
    """The host folder of a hostPath volume or of a claim bound to a hostPath PV; None for others."""
    if "hostPath" in volume:
        return str(volume["hostPath"]["path"])
    if "persistentVolumeClaim" not in volume:
        return None
    namespace, claim_name = pod["metadata"]["namespace"], volume["persistentVolumeClaim"]["claimName"]
    claim = lookup.claim(namespace, claim_name)
    if claim is None:
        raise MountPending(f'persistentvolumeclaim "{claim_name}" not found')
    bound = (claim.get("spec") or {}).get("volumeName")
    if (claim.get("status") or {}).get("phase") != "Bound" or not bound:
        raise MountPending(f'persistentvolumeclaim "{claim_name}" is not bound yet')
    pv = lookup.volume(bound)
    spec = (pv or {}).get("spec") or {}
    host = spec.get("hostPath") or spec.get("local")
    if not host:
        raise MountRefused(
            f"volume {volume['name']}: PV {bound} is not a hostPath or local volume (process mode needs one)"
        )
    return str(host["path"])


def _write_files(folder: Path, data: Mapping[str, str], items: list[Body] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {item["key"]: item["path"] for item in items} if items else {key: key for key in data}
    for key, relative in chosen.items():
        if key not in data:
            raise ConfigError(f"couldn't find key {key} for volume {folder.name}")
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[key])


def _write_projected(pod: Body, folder: Path, projected: Body, lookup: Lookup) -> None:
    """A projected volume's Secret, ConfigMap, downward API and token sources as files in ``folder``."""
    namespace, meta = pod["metadata"]["namespace"], pod["metadata"]
    folder.mkdir(parents=True, exist_ok=True)
    for source in projected.get("sources") or []:
        for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
            if key in source:
                ref = source[key]
                data = _source(lookup, kind, namespace, ref["name"], optional=bool(ref.get("optional")))
                _write_files(folder, data or {}, ref.get("items"))
        for item in (source.get("downwardAPI") or {}).get("items") or []:
            if "fieldRef" not in item:
                raise MountRefused(f"downwardAPI item {item.get('path')}: only fieldRef is supported")
            (folder / item["path"]).write_text(field_value(pod, item["fieldRef"]["fieldPath"]))
        if "serviceAccountToken" in source:
            account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
            token = lookup.token(namespace, account, meta["name"], meta["uid"])
            if token is None:
                raise MountPending(f'serviceaccount "{account}" not found')
            (folder / source["serviceAccountToken"]["path"]).write_text(token)


def prepare_volumes(pod: Body, container: Body, lookup: Lookup, pod_dir: Path) -> dict[str, str]:
    """Make the container's volumes and return the env that names them.

    A process sees the host's filesystem, so a mount can only be honoured where the host folder
    *is* the mountPath: ``hostPath`` volumes and claims bound to ``hostPath`` PVs must be mounted
    at their own path (plus ``subPath``); any other mountPath is refused (:class:`MountRefused`,
    a ``FailedMount`` event), since the process would read and write a different folder than the
    pod means. ``emptyDir`` (a fresh folder per pod, removed with it) and ``configMap``/``secret``
    volumes (their keys written as files) live below the pod's folder; their mountPath is not
    honoured, the process finds the folder in ``KUBELET_VOLUME_<NAME>`` (name upper-cased, other
    characters ``_``). A ``projected`` volume is written the same way, except the one the
    ServiceAccount admission plugin mounts at :data:`SERVICE_ACCOUNT_DIR` (see
    :func:`service_account`). Claims may also be bound to ``local`` PVs. Other volume types are refused.
    """
    namespace = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    env: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise MountRefused(f"volumeMount {mount['name']}: the pod has no such volume")
        host = _host_path(pod, volume, lookup)
        if host is not None:
            kind = (volume.get("hostPath") or {}).get("type") or ""
            if not Path(host).exists() and kind in ("DirectoryOrCreate", "") and "hostPath" in volume:
                Path(host).mkdir(parents=True)  # as a container runtime makes a missing bind-mount source
            elif not Path(host).exists() and kind == "FileOrCreate":
                Path(host).touch()
            elif not Path(host).exists():
                raise MountRefused(f"volume {volume['name']}: host path {host} does not exist")
            wanted = os.path.normpath(os.path.join(host, mount.get("subPath") or ""))
            if os.path.normpath(mount["mountPath"]) != wanted:
                raise MountRefused(
                    f"volume {volume['name']}: mountPath {mount['mountPath']} differs from the host path {wanted}; "
                    "a process sees the host filesystem, so mount it at the identical path"
                )
            env[_env_name(volume["name"])] = wanted
            continue
        folder = pod_dir / "volumes" / volume["name"]
        if "emptyDir" in volume:
            folder.mkdir(parents=True, exist_ok=True)
        elif "projected" in volume:
            if os.path.normpath(mount["mountPath"]) == SERVICE_ACCOUNT_DIR:
                continue  # the ServiceAccount's token, CA and namespace: see service_account()
            try:
                _write_projected(pod, folder, volume["projected"], lookup)
            except ConfigError as e:
                raise MountPending(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {e}') from e
        elif "configMap" in volume or "secret" in volume:
            kind, ref = ("ConfigMap", volume["configMap"]) if "configMap" in volume else ("Secret", volume["secret"])
            name = ref.get("name") or ref.get("secretName")
            try:  # a source missing is a mount that waits (ContainerCreating), as on a kubelet
                data = _source(lookup, kind, namespace, name, optional=bool(ref.get("optional")))
                _write_files(folder, data or {}, ref.get("items"))
            except ConfigError as e:
                raise MountPending(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {e}') from e
        else:
            other = sorted(set(volume) - {"name"})
            raise MountRefused(f"volume {volume['name']}: {other} volumes are not supported by the process kubelet")
        env[_env_name(volume["name"])] = str(folder)
    return env


#: How long a pod's token is valid; the pod worker writes a new one after 80 % of it, as the kubelet does.
TOKEN_SECONDS = 3600


def service_account(pod: Body, lookup: Lookup, pod_dir: Path, *, server: str, ca_file: str | None) -> dict[str, str]:
    """The pod's ServiceAccount credentials, as process mode can give them; the env that points at them.

    ``load_incluster_config`` (the ``kubernetes`` client, kopf) reads the fixed paths under
    ``/var/run/secrets/kubernetes.io/serviceaccount``, which cannot differ per process. So the
    harness writes ``token`` (a TokenRequest for ``spec.serviceAccountName``, bound to the pod),
    ``ca.crt`` (the ``kube-root-ca.crt`` ConfigMap of the namespace, else the harness's own CA) and
    ``namespace`` to ``<pod folder>/serviceaccount/``, and a kubeconfig next to them that uses that
    token file, CA and namespace, set as ``KUBECONFIG``; ``KUBELET_SERVICEACCOUNT_DIR`` names the
    folder. A client trying in-cluster config first finds no token at the fixed path and falls back
    to ``KUBECONFIG``, which is how both the operator (``kube.load_config``) and kopf log in.

    Credentials are given when the container mounts :data:`SERVICE_ACCOUNT_DIR` -- the ServiceAccount
    admission plugin adds that mount unless ``automountServiceAccountToken`` is false on the pod or
    on its ServiceAccount -- or, on a server without that plugin, when the pod does not set
    ``automountServiceAccountToken: false``.
    """
    meta, spec = pod["metadata"], pod.get("spec") or {}
    containers = spec.get("containers") or [{}]
    mounts = [os.path.normpath(m.get("mountPath", "")) for m in containers[0].get("volumeMounts") or []]
    admitted = any(
        os.path.normpath(m.get("mountPath", "")) == SERVICE_ACCOUNT_DIR
        for c in containers
        for m in c.get("volumeMounts") or []
    )
    if SERVICE_ACCOUNT_DIR not in mounts and (admitted or spec.get("automountServiceAccountToken") is False):
        return {}
    namespace, account = meta["namespace"], spec.get("serviceAccountName") or "default"
    token = lookup.token(namespace, account, meta["name"], meta["uid"])
    if token is None:
        raise MountPending(f'serviceaccount "{account}" not found')
    folder = pod_dir / "serviceaccount"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    (folder / "namespace").write_text(namespace)
    try:
        root = lookup.config_map(namespace, "kube-root-ca.crt") or {}
    except ConfigError:  # not readable (the Node authorizer allows it only to pods that mount it)
        root = {}
    if "ca.crt" in root:
        (folder / "ca.crt").write_text(root["ca.crt"])
    elif ca_file:
        shutil.copyfile(ca_file, folder / "ca.crt")
    cluster: Body = {"server": server}
    if (folder / "ca.crt").exists():
        cluster["certificate-authority"] = str(folder / "ca.crt")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": account, "user": {"tokenFile": str(folder / "token")}}],
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": account, "namespace": namespace}}],
        "current-context": "pod",
    }
    (folder / "kubeconfig").write_text(yaml.safe_dump(config))
    return {"KUBECONFIG": str(folder / "kubeconfig"), "KUBELET_SERVICEACCOUNT_DIR": str(folder)}
