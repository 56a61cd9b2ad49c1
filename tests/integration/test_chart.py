"""The Helm chart and the plain manifests, rendered by the real ``helm`` binary.

helm is ``.venv/bin/helm`` from ``scripts/ensure-helm.sh``, which the install step runs
(scripts/test.sh); without it these tests fail saying so, rather than skip or download it. Value sets: the defaults and
``charts/filterjob/ci/*-values.yaml`` (helm's convention for values under test). Every
rendered object is checked against the Kubernetes OpenAPI schemas, the RBAC rules of both
modes against each other (the operator tests prove them exact on a real API server), and
``manifests/`` against a fresh render.
"""

from __future__ import annotations

import base64
import functools
import itertools
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from filterjob_operator import cli
from filterjob_operator.adapters.metrics import OperatorMetrics
from filterjob_operator.control.builders import deployment, hpa
from filterjob_operator.control.settings import DEFAULT_IMAGE, ExternalMetrics, Settings
from filterjob_operator.core.crd import build_crd
from filterjob_operator.core.spec import parse_job
from filterjob_worker import __version__
from tests import quickstart
from tests.helpers.jobfiles import JOB
from tests.helpers.kubelet_config import expand

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "filterjob"
MANIFESTS = ROOT / "manifests"
RELEASE, NAMESPACE = "filterjob", "filterjob-system"
VALUE_FILES = {path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))}
VALUE_SETS = ["default", *VALUE_FILES]
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.27", "1.33")
#: Kinds kubernetes-validate has no schema for (prometheus-operator's CRDs); checked field by field below.
NO_SCHEMA = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}
#: Resources that are not namespaced: RBAC grants them only through a ClusterRole.
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces"}
REGENERATE = "run scripts/render-manifests.sh and commit the result"

Object = dict[str, Any]


def find_helm() -> Path | None:
    for candidate in (ROOT / ".venv" / "bin" / "helm", shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def helm() -> Path:
    found = find_helm()
    if found is None:
        pytest.fail("no helm in .venv/bin or on PATH: run scripts/ensure-helm.sh (scripts/test.sh does)")
    return found


def test_ensure_helm_is_idempotent(helm: Path) -> None:
    """Run again where helm is installed, it only prints the path: it neither downloads nor writes."""
    installed = ROOT / ".venv" / "bin" / "helm"
    if not installed.exists():
        pytest.fail("no .venv/bin/helm: run scripts/ensure-helm.sh (scripts/test.sh does)")
    pinned = subprocess.run([installed, "version", "--short"], capture_output=True, text=True, check=True)
    if not pinned.stdout.startswith("v4.1.4"):  # the script would download the pinned one
        pytest.fail(f".venv/bin/helm is {pinned.stdout.strip()}: run scripts/ensure-helm.sh (scripts/test.sh does)")
    before = installed.stat().st_mtime_ns
    result = subprocess.run([ROOT / "scripts" / "ensure-helm.sh"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(installed)
    assert installed.stat().st_mtime_ns == before  # already there: left alone
    version = subprocess.run([installed, "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v4.")


class Chart:
    """``helm template`` of the chart as release RELEASE in NAMESPACE; renders are cached."""

    def __init__(self, helm: Path) -> None:
        self.helm = helm

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.helm, *map(str, args)], capture_output=True, text=True, check=False, cwd=ROOT)

    @functools.cache  # noqa: B019 -- one Chart per module; the cache is the point
    def render(self, *args: str) -> list[Object]:
        result = self.run("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def values(self, name: str) -> list[Object]:
        return self.render(*(() if name == "default" else ("-f", str(VALUE_FILES[name]))))

    def error(self, *args: str) -> str:
        result = self.run("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
        assert result.returncode != 0, f"helm template {' '.join(args)} should have failed"
        return result.stderr


@pytest.fixture(scope="module")
def chart(helm: Path) -> Chart:
    return Chart(helm)


def of_kind(objects: Iterable[Object], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[Object], kind: str, name: str | None = None) -> Object:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


#: Where the chart has the operator serve its External metrics API.
TLS_DIR = "/etc/filterjob/external-metrics"
CHART_EXTERNAL_METRICS = ExternalMetrics(port=6443, cert=f"{TLS_DIR}/tls.crt", key=f"{TLS_DIR}/tls.key")
#: The component label of the External metrics API's objects (charts/filterjob/templates/external-metrics.yaml).
EXTERNAL_METRICS = "external-metrics"


def component(obj: Object) -> str:
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def without_external_metrics(objects: Iterable[Object]) -> list[Object]:
    """The operator's objects, without those of the External metrics API (tested on their own below)."""
    return [o for o in objects if component(o) != EXTERNAL_METRICS]


def operator_container(objects: list[Object]) -> Object:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: Object = containers[0]
    return container


def env_of(container: Object) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def cli_params(container: Object) -> dict[str, Any]:
    """The container's command line as the real ``filterjob`` CLI parses it, after the kubelet's
    ``$(VAR)`` expansion from the container's env."""
    assert container["command"] == ["filterjob"]
    name, *args = [expand(arg, env_of(container)) for arg in container["args"]]
    command = cli.main.commands[name]
    params: dict[str, Any] = command.make_context(name, list(args)).params
    return params


# ----------------------------------------------------------------------------------------------
# The chart as a whole.


def test_chart_metadata_and_defaults_match_the_code() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (meta["apiVersion"], meta["type"], meta["version"]) == ("v2", "application", "0.1.0")
    assert meta["appVersion"] == __version__
    assert meta["kubeVersion"] == ">=1.27.0-0"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{meta['appVersion']}" == DEFAULT_IMAGE
    assert values["workers"]["resources"] == {}  # the operator's DEFAULT_WORKER_RESOURCES
    assert values["broker"]["secretName"] == Settings().broker_secret


def test_lint_is_clean_with_every_value_set(chart: Chart) -> None:
    for extra in [[], *(["-f", str(path)] for path in VALUE_FILES.values())]:
        result = chart.run("lint", "--strict", CHART, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[WARNING]" not in result.stdout
        assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_is_a_valid_kubernetes_object(chart: Chart, value_set: str) -> None:
    objects = chart.values(value_set)
    assert objects
    for obj, version in itertools.product(objects, KUBE_VERSIONS):
        if (obj["apiVersion"], obj["kind"]) not in NO_SCHEMA:
            kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "APIService"):
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']} has no namespace"


def test_only_prometheus_operator_kinds_go_unvalidated(chart: Chart) -> None:
    """Each kind left out of the schema check is rendered by some value set and really has no schema."""
    rendered = {(o["apiVersion"], o["kind"]) for name in VALUE_SETS for o in chart.values(name)}
    assert rendered >= NO_SCHEMA
    for api_version, kind in NO_SCHEMA:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(
                {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}, KUBE_VERSIONS[-1], strict=True
            )


# ----------------------------------------------------------------------------------------------
# The operator.


def test_default_install_runs_one_locked_down_operator_for_every_namespace(chart: Chart) -> None:
    objects = without_external_metrics(chart.values("default"))
    assert sorted(o["kind"] for o in objects) == sorted(
        ["ServiceAccount", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"]
    )
    operator = one(objects, "Deployment")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(objects)
    assert container["image"] == DEFAULT_IMAGE
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["limits"]["memory"]
    params = cli_params(container)
    assert params == {"namespaces": (), "all_namespaces": True, "liveness": "http://0.0.0.0:8080/healthz"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert params["liveness"] == f"http://0.0.0.0:{ports['health']}/healthz"
    # A runtime that maps ports (the dev cluster's process kubelet sets FILTERJOB_HEALTH_PORT) moves
    # the listener with the probe; a fixed port there failed the liveness probe every minute.
    mapped = {**container, "env": [*container["env"], {"name": "FILTERJOB_HEALTH_PORT", "value": "31234"}]}
    assert cli_params(mapped)["liveness"] == "http://0.0.0.0:31234/healthz"
    # The chart's environment is what the operator reads, and its defaults are the operator's
    # (but the External metrics API, which the chart turns on: tested below).
    assert Settings.from_env(env_of(container)) == Settings(external_metrics=CHART_EXTERNAL_METRICS)
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert ports["metrics"] == Settings().metrics_port


def test_every_setting_reaches_the_operator(chart: Chart) -> None:
    objects = chart.values("podmonitor")
    container = operator_container(objects)
    image = "registry.example.com/filterjob@sha256:" + "0123456789abcdef" * 4
    assert container["image"] == image
    assert Settings.from_env(env_of(container)) == Settings(
        worker_image="registry.example.com/filterjob-worker:0.1.0",
        broker_secret="rabbitmq",
        status_interval=2.5,
        metrics_port=9100,
        worker_grace_seconds=120,
        enqueue_batch=1_000_000,
        worker_resources={"requests": {"cpu": "250m", "memory": "256Mi"}},
        image_pull_secrets=("regcred", "mirror"),
        external_metrics=ExternalMetrics(port=8443, cert=f"{TLS_DIR}/tls.crt", key=f"{TLS_DIR}/tls.key"),
    )
    assert cli_params(container)["liveness"] == "http://0.0.0.0:8081/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8081, "metrics": 9100, "ext-metrics": 8443}
    assert {"name": "TZ", "value": "UTC"} in container["env"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
    pod = one(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/team": "imaging"}
    assert pod["metadata"]["labels"]["example.com/cost-centre"] == "imaging"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "filterjob-operator"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "photos"}} in spec["volumes"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in spec["affinity"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    kinds = {o["kind"] for o in without_external_metrics(objects)}
    assert not kinds & {"ServiceAccount", "CustomResourceDefinition", "Service", "Secret"}


def test_a_namespace_list_gets_roles_and_broker_secrets_there_only(chart: Chart) -> None:
    objects = without_external_metrics(chart.values("namespaced"))
    watched = ["photos", "studio"]
    container = operator_container(objects)
    params = cli_params(container)
    assert (params["namespaces"], params["all_namespaces"]) == (tuple(watched), False)
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    for kind, ref in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        for binding in of_kind(objects, kind):
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
            assert binding["roleRef"]["kind"] == ref
            target = [
                r
                for r in of_kind(objects, ref)
                if r["metadata"]["name"] == binding["roleRef"]["name"]
                and r["metadata"].get("namespace") == binding["metadata"].get("namespace")
            ]
            assert len(target) == 1, binding
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "Role")) == watched
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "RoleBinding")) == watched
    secrets = of_kind(objects, "Secret")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == watched
    assert env_of(container)["FILTERJOB_BROKER_SECRET"] == "filterjob-broker"
    for secret in secrets:
        assert secret["metadata"]["name"] == "filterjob-broker"
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data == {
            "url": "amqp://filterjob:change-me@rabbitmq.messaging.svc:5672/",
            "managementUrl": "http://filterjob:change-me@rabbitmq.messaging.svc:15672/",
        }
    for role in of_kind(objects, "Role"):
        (secret_rule,) = [r for r in role["rules"] if r["resources"] == ["secrets"]]
        assert secret_rule["resourceNames"] == ["filterjob-broker"]


def test_the_broker_secret_goes_where_asked(chart: Chart) -> None:
    objects = chart.render("--set", "broker.url=amqp://u:p@rabbit/", "--set-json", 'broker.namespaces=["a","b"]')
    objects = without_external_metrics(objects)
    assert sorted(s["metadata"]["namespace"] for s in of_kind(objects, "Secret")) == ["a", "b"]
    objects = without_external_metrics(chart.render("--set", "broker.url=amqp://u:p@rabbit/"))
    (secret,) = of_kind(objects, "Secret")
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert set(secret["data"]) == {"url"}


# ----------------------------------------------------------------------------------------------
# RBAC: the same rules in both modes. That they are exactly what the operator uses is proven on a
# real API server from its audit log (tests/integration/k8s/test_operator.py, from a helm install).

Triple = tuple[str, str, str]


def triples(role: Object) -> set[Triple]:
    found: set[Triple] = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        fields = (rule["apiGroups"], rule["resources"], rule["verbs"])
        assert not any("*" in field for field in fields), f"a wildcard in {rule}"
        found |= set(itertools.product(*fields))
    return found


def test_watching_every_namespace_grants_everything_in_one_cluster_role(chart: Chart) -> None:
    objects = without_external_metrics(chart.values("default"))
    assert not of_kind(objects, "Role")
    granted = triples(one(objects, "ClusterRole"))
    assert ("", "namespaces", "list") not in granted  # only a namespace list needs to follow namespaces
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


def test_watching_a_namespace_list_grants_the_same_per_namespace_and_the_cluster_scoped_minimum(chart: Chart) -> None:
    everywhere = triples(one(chart.values("default"), "ClusterRole"))
    objects = chart.values("namespaced")
    roles = of_kind(objects, "Role")
    assert len(roles) == 2
    per_namespace = triples(roles[0])
    assert all(triples(role) == per_namespace for role in roles)
    cluster_wide = triples(one(objects, "ClusterRole"))
    assert per_namespace == {t for t in everywhere if t[1].split("/")[0] not in CLUSTER_SCOPED}
    namespaces = {("", "namespaces", "list"), ("", "namespaces", "watch")}
    assert cluster_wide == {t for t in everywhere if t[1] in CLUSTER_SCOPED} | namespaces


def test_keda_is_granted_and_switched_on_only_when_enabled(chart: Chart) -> None:
    keda = {
        ("keda.sh", r, v) for r in ("scaledobjects", "triggerauthentications") for v in ("create", "patch", "delete")
    }
    owned_secrets = {("", "secrets", "create"), ("", "secrets", "patch")}
    default = chart.values("default")
    assert not (keda | owned_secrets) & triples(one(default, "ClusterRole"))
    assert not Settings.from_env(env_of(operator_container(default))).keda
    enabled = chart.values("keda")
    role = one(enabled, "ClusterRole")
    assert keda | owned_secrets <= triples(role)
    assert Settings.from_env(env_of(operator_container(enabled))).keda
    # Reading Secrets stays limited to rbac.secretNames: only the operator's own are written.
    (read,) = [r for r in role["rules"] if r["resources"] == ["secrets"] and "get" in r["verbs"]]
    assert (read["verbs"], read["resourceNames"]) == (["get"], ["rabbitmq"])


# ----------------------------------------------------------------------------------------------
# The External metrics API (external.metrics.k8s.io): on by default, for autoscaling.mode: hpa.


def test_the_apiservice_reaches_the_operator_through_its_service_with_a_certificate_for_that_name(
    chart: Chart,
) -> None:
    objects = chart.values("default")
    api = one(objects, "APIService")
    assert api["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    spec = api["spec"]
    assert (spec["group"], spec["version"], spec["insecureSkipTLSVerify"]) == (
        "external.metrics.k8s.io",
        "v1beta1",
        False,
    )
    service = one(objects, "Service", spec["service"]["name"])
    assert service["metadata"]["namespace"] == spec["service"]["namespace"] == NAMESPACE
    (port,) = service["spec"]["ports"]
    assert port["port"] == spec["service"]["port"] == 443
    operator = one(objects, "Deployment")
    assert service["spec"]["selector"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    container = operator_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[port["targetPort"]] == Settings.from_env(env_of(container)).external_metrics.port == 6443
    # The aggregator checks the serving certificate against <service>.<namespace>.svc with caBundle.
    secret = one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["data"]["ca.crt"] == spec["caBundle"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(spec["caBundle"]))
    served = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    served.verify_directly_issued_by(ca)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    name = service["metadata"]["name"]
    assert set(names) >= {name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc"}
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), password=None)
    assert key.public_key().public_numbers() == served.public_key().public_numbers()  # type: ignore[union-attr]
    # ... mounted where the operator reads it.
    pod = operator["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert (mount["mountPath"], mount["readOnly"]) == (TLS_DIR, True)
    assert Settings.from_env(env_of(container)).external_metrics == CHART_EXTERNAL_METRICS


def test_the_operator_may_authenticate_and_authorize_for_the_aggregator_and_read_the_jobs(chart: Chart) -> None:
    for value_set in ("default", "namespaced"):
        objects = chart.values(value_set)
        account = {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
        delegator = one(objects, "ClusterRoleBinding", f"{RELEASE}-auth-delegator")
        assert delegator["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:auth-delegator",
        }
        assert delegator["subjects"] == [account]
        reader = one(objects, "RoleBinding", f"{RELEASE}-auth-reader")
        assert reader["metadata"]["namespace"] == "kube-system"
        assert reader["roleRef"]["name"] == "extension-apiserver-authentication-reader"
        assert reader["subjects"] == [account]
        roles = [r for r in [*of_kind(objects, "ClusterRole"), *of_kind(objects, "Role")] if "rules" in r]
        assert any(("filterjob.dev", "filterjobs", "get") in triples(r) for r in roles), value_set


def test_with_external_metrics_off_nothing_of_it_is_installed_or_granted(chart: Chart) -> None:
    objects = chart.render("--set", "externalMetrics.enabled=false")
    assert [o for o in objects if component(o) == EXTERNAL_METRICS] == []
    container = operator_container(objects)
    assert Settings.from_env(env_of(container)).external_metrics == ExternalMetrics()
    assert "ext-metrics" not in {p["name"] for p in container["ports"]}
    assert ("filterjob.dev", "filterjobs", "get") not in triples(one(objects, "ClusterRole"))


def test_an_external_name_service_reaches_an_operator_outside_the_cluster(chart: Chart) -> None:
    objects = chart.render(
        "--set", "externalMetrics.service.externalName=localhost", "--set", "externalMetrics.service.port=18443"
    )
    service = one(objects, "Service", f"{RELEASE}-external-metrics")
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "localhost"
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [{"name": "https", "port": 18443, "targetPort": 18443, "protocol": "TCP"}]
    assert one(objects, "APIService")["spec"]["service"]["port"] == 18443
    kubernetes_validate.validate(service, KUBE_VERSIONS[-1], strict=True)


# ----------------------------------------------------------------------------------------------
# The CRD.


def test_the_charts_crd_file_is_the_generated_crd() -> None:
    result = CliRunner().invoke(cli.main, ["crd"])
    assert result.exit_code == 0, result.output
    assert (CHART / "files" / "crd.yaml").read_text() == result.output, f"the chart's CRD is stale: {REGENERATE}"


def test_the_crd_is_installed_and_kept_unless_told_otherwise(chart: Chart) -> None:
    crd = one(chart.values("default"), "CustomResourceDefinition")
    meta = crd["metadata"]
    assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert meta["labels"].items() >= build_crd()["metadata"]["labels"].items()
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    generated = build_crd()
    assert {**crd, "metadata": generated["metadata"]} == generated
    thrown = one(chart.render("--set", "crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in thrown["metadata"]
    assert not of_kind(chart.render("--set", "crds.install=false"), "CustomResourceDefinition")


# ----------------------------------------------------------------------------------------------
# Values: the schema and the template's own checks.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "operator.replicas=2"], "at '/operator': additional properties 'replicas' not allowed"),
        (["--set", "metrics.port=http"], "at '/metrics/port': got string, want integer"),
        (["--set", "metrics.port=70000"], "at '/metrics/port'"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set", "crds.install=maybe"], "at '/crds/install': got string, want boolean"),
        (["--set-json", 'watchNamespaces=["Photos"]'], "at '/watchNamespaces/0'"),
        (["--set", "broker.url=http://rabbit/"], "at '/broker/url'"),
        (["--set", "operator.statusInterval=0"], "at '/operator/statusInterval'"),
        (["--set", "metrics.serviceMonitor.interval=soon"], "at '/metrics/serviceMonitor/interval'"),
        (["--set", "workers.resources.cpu=1"], "at '/workers/resources': additional properties 'cpu' not allowed"),
    ],
)
def test_the_values_schema_names_the_bad_key(chart: Chart, args: list[str], message: str) -> None:
    assert message in chart.error(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "broker.existingSecret=a", "--set", "broker.url=amqp://r/"], "give existingSecret or url, not both"),
        (["--set", "broker.managementUrl=http://r:15672/"], "broker.managementUrl needs broker.url"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name is required"),
        (
            ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true"],
            "enable serviceMonitor or podMonitor, not both",
        ),
        (
            ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false"],
            "metrics.serviceMonitor needs metrics.service.enabled",
        ),
    ],
)
def test_contradictory_values_fail_with_a_message(chart: Chart, args: list[str], message: str) -> None:
    assert message in chart.error(*args)


# ----------------------------------------------------------------------------------------------
# Metrics and HPA mode.


def test_the_service_monitor_scrapes_the_operator_keeping_the_jobs_labels(chart: Chart) -> None:
    objects = without_external_metrics(chart.values("hpa"))
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", "10s", "5s")
    assert endpoint["honorLabels"] is True  # the metrics' own namespace and job labels win


def test_the_pod_monitors_scrape_the_operator_and_the_workers(chart: Chart, job_doc: dict[str, Any]) -> None:
    objects = chart.values("podmonitor")
    monitor = one(objects, "PodMonitor")
    pod = one(objects, "Deployment")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in operator_container(objects)["ports"]}
    assert endpoint["honorLabels"] is True
    # The workers' monitor selects the pods the operator builds, on their metrics port.
    workers = one(chart.values("hpa"), "PodMonitor", "filterjob-workers")
    job_doc["metadata"]["uid"] = "u-1"
    template = deployment.build(parse_job(job_doc), settings=Settings(), replicas=1, broker_secret="b")["spec"][
        "template"
    ]
    assert workers["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert workers["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = workers["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    watched = one(
        chart.render("--set", "metrics.workerPodMonitor.enabled=true", "--set-json", 'watchNamespaces=["a"]'),
        "PodMonitor",
    )
    assert watched["spec"]["namespaceSelector"] == {"matchNames": ["a"]}


def test_the_prometheus_adapter_rule_serves_the_metric_the_hpa_asks_for(chart: Chart) -> None:
    config = yaml.safe_load(one(chart.values("hpa"), "ConfigMap")["data"]["config.yaml"])
    (rule,) = config["externalRules"]
    job = parse_job({**JOB, "metadata": {**JOB["metadata"], "uid": "u-1"}})
    wanted = hpa.build(job)["spec"]["metrics"][0]["external"]["metric"]
    metrics = OperatorMetrics()
    metrics.queue_messages.labels(job.metadata.namespace, job.metadata.name).set(3)
    (series,) = [s for family in metrics.registry.collect() for s in family.samples if s.name == hpa.METRIC]
    # The HPA selects exactly the series the operator exports for its job ...
    assert wanted["name"] == hpa.METRIC
    assert wanted["selector"]["matchLabels"] == series.labels
    # ... and the adapter serves that series under that name, every label selectable.
    assert rule["name"] == {"matches": f"^{hpa.METRIC}$", "as": hpa.METRIC}
    assert rule["seriesQuery"] == hpa.METRIC + "{" + ",".join(f'{label}!=""' for label in series.labels) + "}"
    assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"}}}
    assert rule["metricsQuery"] == "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"


def test_notes_tell_the_next_steps(chart: Chart) -> None:
    result = chart.run("install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n NAMESPACE create secret generic filterjob-broker" in notes
    assert "--from-literal=url=" in notes
    assert "kubectl apply -f manifests/examples/thumbnails.yaml" in notes
    assert "kubectl get fj" in notes
    assert (MANIFESTS / "examples" / "thumbnails.yaml").is_file()


def test_notes_with_a_broker_url_say_where_the_secret_is_and_that_other_namespaces_need_one(chart: Chart) -> None:
    result = chart.run(
        "install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client", "--set", "broker.url=amqp://h/"
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"The chart created it in: {NAMESPACE}." in notes
    assert "a job in any other namespace needs its own" in notes
    assert "kubectl -n NAMESPACE create secret generic filterjob-broker" in notes


# ----------------------------------------------------------------------------------------------
# manifests/: the chart rendered with default values.


def test_the_manifests_are_the_chart_rendered_with_default_values(helm: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [ROOT / "scripts" / "render-manifests.sh", "--to", tmp_path], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = sorted(p.name for p in tmp_path.iterdir())
    assert rendered == ["crd.yaml", "filterjob.yaml"]
    assert sorted(p.name for p in MANIFESTS.glob("*.y*ml")) == rendered, f"stray files in manifests/: {REGENERATE}"
    for name in rendered:
        assert (MANIFESTS / name).read_text() == (tmp_path / name).read_text(), (
            f"manifests/{name} is stale: {REGENERATE}"
        )


def test_kubectl_apply_of_the_manifests_installs_the_crd_namespace_and_operator(chart: Chart) -> None:
    crd_docs = [d for d in yaml.safe_load_all((MANIFESTS / "crd.yaml").read_text()) if d]
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "filterjob.yaml").read_text()) if d]
    assert [d["kind"] for d in crd_docs] == ["CustomResourceDefinition"]
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "filterjob", "pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    kubernetes_validate.validate(docs[0], KUBE_VERSIONS[-1], strict=True)
    # Together: the default render (validated above) without the External metrics API (its serving
    # key would be everyone's), CRD first, then the namespace of everything else.
    default = chart.render("--set", "externalMetrics.enabled=false")
    assert crd_docs + docs[1:] == sorted(default, key=lambda o: o["kind"] != "CustomResourceDefinition")
    assert not [d for d in docs if d["kind"] == "APIService"]


# ----------------------------------------------------------------------------------------------
# The quickstart on kind: the chart installed as docs/quickstart.md installs it.

#: helm install flags the quickstart may use: those helm template takes too, and install-only ones.
TEMPLATE_FLAGS = {"-n", "--namespace", "-f", "--values", "--set", "--set-json", "--set-string"}
INSTALL_ONLY_FLAGS = {"--wait", "--create-namespace"}


@pytest.fixture(scope="module")
def quickstart_install(chart: Chart) -> list[Object]:
    """``helm template`` with the arguments of the docs' ``helm install`` line."""
    command = quickstart.helm_install()
    release, chart_path, *flags = command[2:]
    assert (release, ROOT / chart_path) == (RELEASE, CHART)
    assert {f for f in flags if f.startswith("-")} <= TEMPLATE_FLAGS | INSTALL_ONLY_FLAGS, command
    result = chart.run("template", release, chart_path, *(f for f in flags if f not in INSTALL_ONLY_FLAGS))
    assert result.returncode == 0, result.stderr
    return without_external_metrics(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_the_quickstart_values_lint_clean(chart: Chart) -> None:
    result = chart.run("lint", "--strict", CHART, "-f", quickstart.VALUES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout


def test_the_quickstart_install_renders_valid_objects_in_the_jobs_namespace(quickstart_install: list[Object]) -> None:
    namespace = quickstart.the("Namespace")["metadata"]["name"]
    assert quickstart.option(quickstart.helm_install(), "-n", "--namespace") == namespace
    for obj, version in itertools.product(quickstart_install, KUBE_VERSIONS):
        kubernetes_validate.validate(obj, version, strict=True)
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]
    assert [r["metadata"]["namespace"] for r in of_kind(quickstart_install, "Role")] == [namespace]
    assert cli_params(operator_container(quickstart_install))["namespaces"] == (namespace,)


def test_the_quickstart_operator_mounts_the_claim_where_the_job_reads(quickstart_install: list[Object]) -> None:
    job = parse_job(quickstart.the("FilterJob"))
    (worker_mount,) = job.spec.workers.volume_mounts
    root = worker_mount["mountPath"]
    assert job.spec.source.uri.startswith(f"file://{root.rstrip('/')}/")
    container = operator_container(quickstart_install)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == root]
    assert mount.get("readOnly") is True
    pod = one(quickstart_install, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = quickstart.the("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in job.spec.workers.volumes} == {claim["metadata"]["name"]}


def test_the_quickstart_operator_and_workers_run_the_loaded_image(quickstart_install: list[Object]) -> None:
    container = operator_container(quickstart_install)
    (build,) = {" ".join(c) for c in quickstart.find(["scripts/build-image.sh"])}
    built = quickstart.option(build.split(), "--tag")
    assert container["image"] == built
    assert container["imagePullPolicy"] == "Never"
    env = env_of(container)
    assert env["FILTERJOB_WORKER_IMAGE"] == built
    (samples,) = quickstart.the("Job")["spec"]["template"]["spec"]["containers"]
    assert samples["image"] == built
    # The worker Deployment the operator builds with this environment: the same image, the
    # chart's worker resources and the Secret the chart created in the job's namespace.
    doc = quickstart.the("FilterJob")
    job = parse_job({**doc, "metadata": {**doc["metadata"], "uid": "u-1"}})
    settings = Settings.from_env(env)
    workers = deployment.build(job, settings=settings, replicas=3, broker_secret=settings.broker_secret)
    kubernetes_validate.validate(workers, KUBE_VERSIONS[-1], strict=True)
    (worker,) = workers["spec"]["template"]["spec"]["containers"]
    assert worker["image"] == built
    assert worker.get("imagePullPolicy", "IfNotPresent") != "Always"  # a kind-loaded image is never pulled
    assert worker["resources"] == quickstart.values()["workers"]["resources"]
    (secret,) = of_kind(quickstart_install, "Secret")
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        settings.broker_secret,
        job.metadata.namespace,
    )
    url = {e["name"]: e for e in worker["env"]}["FILTERJOB_BROKER_URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": secret["metadata"]["name"], "key": "url"}
    assert base64.b64decode(secret["data"]["url"]).decode() == quickstart.values()["broker"]["url"]


def test_the_chart_objects_the_quickstart_docs_name_exist(quickstart_install: list[Object]) -> None:
    operator = one(quickstart_install, "Deployment")
    metrics = one(quickstart_install, "Service")
    commands = quickstart.commands()
    assert any(f"deploy/{operator['metadata']['name']}" in c for c in commands)
    (forward,) = [c for c in commands if f"svc/{metrics['metadata']['name']}" in c]
    assert forward[forward.index(f"svc/{metrics['metadata']['name']}") + 1] == str(metrics["spec"]["ports"][0]["port"])
