"""The kubelet harness's pure parts (tests/helpers/kubelet_config.py, kubelet_status.py), without a cluster."""

from __future__ import annotations

import base64
import signal
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from tests.helpers import kubelet_config as config
from tests.helpers import kubelet_status as status
from tests.helpers.kubelet_fakes import FakeLookup, pod

Body = dict[str, Any]


def test_expand_replaces_known_variables_and_keeps_the_rest() -> None:
    assert config.expand("$(A)-$(B)-$$(A)-$$$(A)", {"A": "x"}) == "x-$(B)-$(A)-$x"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "p-1"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['app']", "web"),
        ("metadata.annotations['note']", "n"),
        ("metadata.labels['absent']", ""),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "default"),
        ("status.podIP", "127.0.0.1"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_refs(path: str, value: str) -> None:
    assert config.field_value(pod(), path) == value


def test_an_unknown_field_ref_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError, match=r"fieldRef 'spec\.hostname' is not supported"):
        config.field_value(pod(), "spec.hostname")


def test_env_in_the_kubelets_order_with_optional_sources() -> None:
    lookup = FakeLookup(secrets={"s": {"k": "secret"}}, config_maps={"m": {"k": "map", "x": "1"}})
    container = {
        "envFrom": [
            {"configMapRef": {"name": "m"}, "prefix": "M_"},
            {"secretRef": {"name": "absent", "optional": True}},
        ],
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "nope", "optional": True}}},
            {"name": "C", "value": "$(A)+$(M_x)+$(BASE)"},
            {"name": "M_k", "value": "overridden"},
        ],
    }
    env = config.container_env(pod(), container, lookup, {"BASE": "b"})
    assert env == {"BASE": "b", "M_k": "overridden", "M_x": "1", "A": "secret", "C": "secret+1+b"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
        ({"secretKeyRef": {"name": "s", "key": "other"}}, "couldn't find key other in Secret ns/s"),
        ({"downwardAPI": {}}, r"env V: \['downwardAPI'\] is not supported"),
    ],
)
def test_a_missing_required_source_is_a_config_error(source: Body, message: str) -> None:
    lookup = FakeLookup(secrets={"s": {"k": "v"}})
    with pytest.raises(config.ConfigError, match=message):
        config.container_env(pod(), {"env": [{"name": "V", "valueFrom": source}]}, lookup, {})


def test_ports_are_mapped_and_the_health_port_is_the_readiness_probes() -> None:
    container = {
        "ports": [{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
        "livenessProbe": {"tcpSocket": {"port": 9090}},
    }
    taken: set[int] = set()
    ports = config.Ports.allocate(container, taken)
    assert set(ports.mapping) == {8080, 9090}
    assert len(set(ports.mapping.values())) == 2
    assert ports.health == ports.mapping[8080]
    assert ports.of(container["livenessProbe"], container) == ports.mapping[9090]
    assert ports.env() == {f"KUBELET_PORT_{p}": str(m) for p, m in ports.mapping.items()}
    assert taken == set(ports.mapping.values())


def test_a_probe_naming_an_undeclared_port_is_a_config_error() -> None:
    container = {"name": "c", "readinessProbe": {"httpGet": {"port": "web"}}}
    with pytest.raises(config.ConfigError, match="probe port 'web' is not a port of container c"):
        config.Ports.allocate(container, set())


def test_command_expands_args_and_finds_this_venvs_scripts() -> None:
    argv = config.command_line({"command": ["python"], "args": ["-c", "$(CODE)"]}, {"CODE": "pass", "PATH": ""})
    assert argv == [str(config.BIN_DIR / "python"), "-c", "pass"]
    with pytest.raises(config.ConfigError, match="has no command"):
        config.command_line({"args": ["x"]}, {})
    with pytest.raises(config.StartError, match='exec: "no-such-tool": executable file not found'):
        config.command_line({"command": ["no-such-tool"]}, {"PATH": "/nonexistent"})


def mounts(*entries: tuple[str, str]) -> Body:
    return {"volumeMounts": [{"name": name, "mountPath": path} for name, path in entries]}


def test_volumes_at_identical_paths_and_per_pod_folders(tmp_path: Path) -> None:
    host, claimed = tmp_path / "host", tmp_path / "claimed"
    claimed.mkdir()
    lookup = FakeLookup(
        config_maps={"m": {"a.txt": "A", "b.txt": "B"}},
        claims={"c": {"spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}}},
        volumes={"pv": {"spec": {"hostPath": {"path": str(claimed)}}}},
    )
    spec = pod(
        volumes=[
            {"name": "host", "hostPath": {"path": str(host)}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "conf-files", "configMap": {"name": "m", "items": [{"key": "a.txt", "path": "sub/a"}]}},
            {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        ]
    )
    container = mounts(
        ("host", str(host)),
        ("claim", str(claimed)),
        ("tmp", "/tmp"),
        ("conf-files", "/etc/conf"),
        ("kube-api-access-x", config.SERVICE_ACCOUNT_DIR),
    )
    env = config.prepare_volumes(spec, container, lookup, tmp_path / "pod")
    assert host.is_dir()
    assert env == {
        "KUBELET_VOLUME_HOST": str(host),
        "KUBELET_VOLUME_CLAIM": str(claimed),
        "KUBELET_VOLUME_TMP": str(tmp_path / "pod" / "volumes" / "tmp"),
        "KUBELET_VOLUME_CONF_FILES": str(tmp_path / "pod" / "volumes" / "conf-files"),
    }
    assert Path(env["KUBELET_VOLUME_TMP"]).is_dir()
    assert (Path(env["KUBELET_VOLUME_CONF_FILES"]) / "sub" / "a").read_text() == "A"
    assert not (Path(env["KUBELET_VOLUME_CONF_FILES"]) / "b.txt").exists()
    assert lookup.tokens == []  # the ServiceAccount's own mount is service_account()'s


@pytest.mark.parametrize(
    ("claim", "pv", "error", "message"),
    [
        (None, None, config.MountPending, 'persistentvolumeclaim "c" not found'),
        ({"spec": {}, "status": {"phase": "Pending"}}, None, config.MountPending, "is not bound yet"),
        (
            {"spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}},
            {"spec": {"nfs": {"server": "x", "path": "/"}}},
            config.MountRefused,
            "PV pv is not a hostPath or local volume",
        ),
    ],
)
def test_a_claim_not_usable_yet_or_ever(
    claim: Body | None, pv: Body | None, error: type[Exception], message: str
) -> None:
    lookup = FakeLookup(claims={"c": claim} if claim else {}, volumes={"pv": pv} if pv else {})
    spec = pod(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}])
    with pytest.raises(error, match=message):
        config.prepare_volumes(spec, mounts(("d", "/data")), lookup, Path("/nonexistent"))


def test_a_host_path_mounted_elsewhere_is_refused(tmp_path: Path) -> None:
    spec = pod(volumes=[{"name": "d", "hostPath": {"path": str(tmp_path)}}])
    with pytest.raises(config.MountRefused, match=f"mountPath /data differs from the host path {tmp_path}"):
        config.prepare_volumes(spec, mounts(("d", "/data")), FakeLookup(), tmp_path / "pod")
    spec = pod(volumes=[{"name": "d", "hostPath": {"path": str(tmp_path / "no"), "type": "Directory"}}])
    with pytest.raises(config.MountRefused, match="does not exist"):
        config.prepare_volumes(spec, mounts(("d", str(tmp_path / "no"))), FakeLookup(), tmp_path / "pod")


def test_service_account_files_and_a_kubeconfig_the_client_logs_in_with(tmp_path: Path) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    lookup = FakeLookup(config_maps={"kube-root-ca.crt": {"ca.crt": ca}})
    spec = pod(serviceAccountName="robot")
    env = config.service_account(spec, lookup, tmp_path, server="https://127.0.0.1:6443", ca_file=None)
    folder = tmp_path / "serviceaccount"
    assert env == {"KUBECONFIG": str(folder / "kubeconfig"), "KUBELET_SERVICEACCOUNT_DIR": str(folder)}
    assert (folder / "token").read_text() == "token-of-robot"
    assert (folder / "namespace").read_text() == "ns"
    assert (folder / "ca.crt").read_text() == ca
    assert lookup.tokens == [("ns", "robot", "p-1", "u-1")]
    loaded = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=env["KUBECONFIG"], client_configuration=loaded)
    assert loaded.host == "https://127.0.0.1:6443"
    assert loaded.ssl_ca_cert == str(folder / "ca.crt")
    assert "token-of-robot" in str(loaded.api_key)


def test_no_credentials_when_automount_is_off_and_a_missing_account_waits(tmp_path: Path) -> None:
    assert (
        config.service_account(
            pod(automountServiceAccountToken=False), FakeLookup(), tmp_path, server="s", ca_file=None
        )
        == {}
    )
    with pytest.raises(config.MountPending, match='serviceaccount "missing" not found'):
        config.service_account(pod(serviceAccountName="missing"), FakeLookup(), tmp_path, server="s", ca_file=None)


def test_a_signal_is_exit_code_128_plus_the_signal() -> None:
    killed = status.terminated(-signal.SIGKILL, started_at="a", finished_at="b", container_id="process://1")
    assert killed["terminated"]["exitCode"] == 137
    assert killed["terminated"]["reason"] == "Error"
    done = status.terminated(0, started_at="a", finished_at="b", container_id="process://1")
    assert done["terminated"]["reason"] == "Completed"


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    first = status.conditions(None, {"Ready": (False, "ContainersNotReady")}, "t1")
    same = status.conditions(first, {"Ready": (False, "ContainersNotReady")}, "t2")
    flipped = status.conditions(same, {"Ready": (True, "")}, "t3")
    assert [c["lastTransitionTime"] for c in (*first, *same, *flipped)] == ["t1", "t1", "t3"]
    assert "reason" not in flipped[0]


def test_a_finished_pod_is_not_ready() -> None:
    record = status.ContainerRecord(name="c", image="i", ready=True, started=True)
    record.state = status.running("t")
    running = status.pod_status(phase="Running", start_time="t", container=record, previous_conditions=None)
    assert {c["type"]: c["status"] for c in running["conditions"]}["Ready"] == "True"
    record.state = status.terminated(0, started_at="t", finished_at="u", container_id="process://1")
    done = status.pod_status(phase="Succeeded", start_time="t", container=record, previous_conditions=None)
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert done["containerStatuses"][0]["ready"] is False
    assert done["podIP"] == done["hostIP"] == "127.0.0.1"


def test_secrets_are_decoded() -> None:
    assert config.decode_secret({"data": {"k": base64.b64encode(b"v").decode()}}) == {"k": "v"}


@pytest.mark.parametrize(
    ("ref", "value"),
    [
        ({"resource": "limits.cpu"}, "2"),  # 1500m rounded up to whole cores
        ({"resource": "limits.cpu", "divisor": "1m"}, "1500"),
        ({"resource": "requests.memory", "divisor": "1Mi"}, "64"),
        ({"resource": "limits.memory"}, str(16 * 2**30)),  # unset: the node's allocatable
        ({"resource": "requests.cpu"}, "0"),  # unset: none
    ],
)
def test_resource_field_refs(ref: Body, value: str) -> None:
    container = {"resources": {"limits": {"cpu": "1500m"}, "requests": {"memory": "64Mi"}}}
    assert config.resource_value(container, ref, {"cpu": "8", "memory": "16Gi"}) == value


def test_an_unknown_resource_field_ref_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError, match=r"resourceFieldRef 'limits\.nvidia\.com/gpu' is not supported"):
        config.resource_value({}, {"resource": "limits.nvidia.com/gpu"}, {})


def test_a_working_dir_must_exist_on_the_host(tmp_path: Path) -> None:
    assert config.working_dir({}, tmp_path) == tmp_path
    assert config.working_dir({"workingDir": str(tmp_path)}, Path("/x")) == tmp_path
    with pytest.raises(config.StartError, match=r"workingDir /no/such/dir is not a folder on this host"):
        config.working_dir({"workingDir": "/no/such/dir"}, tmp_path)


def test_a_missing_secret_volume_waits_as_a_mount(tmp_path: Path) -> None:
    spec = pod(volumes=[{"name": "creds", "secret": {"secretName": "later"}}])
    with pytest.raises(
        config.MountPending, match=r'MountVolume\.SetUp failed for volume "creds" : secret "later" not found'
    ):
        config.prepare_volumes(spec, mounts(("creds", "/creds")), FakeLookup(), tmp_path)
    spec = pod(volumes=[{"name": "creds", "secret": {"secretName": "later", "optional": True}}])
    assert config.prepare_volumes(spec, mounts(("creds", "/creds")), FakeLookup(), tmp_path) == {
        "KUBELET_VOLUME_CREDS": str(tmp_path / "volumes" / "creds")
    }


def test_a_pods_environment_keeps_the_sessions_coverage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod's own environment replaces the test's, but a measured session measures its pods too."""
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", '{"run:parallel": true}')
    monkeypatch.setenv("COVERAGE_FILE", "/tmp/measured/.coverage")
    monkeypatch.setenv("SOMETHING_OF_THE_TEST", "1")

    env = config.base_env("pod-a", "https://127.0.0.1:6443")

    assert env["COVERAGE_PROCESS_CONFIG"] == '{"run:parallel": true}'
    assert env["COVERAGE_FILE"] == "/tmp/measured/.coverage"
    assert "SOMETHING_OF_THE_TEST" not in env
