"""The aggregation layer on the test control plane: the chart's External metrics API served by an
operator the test runs on loopback.

The kube-apiserver reaches an aggregated API through its APIService's Service. Endpoints may not
hold loopback addresses, and ``--enable-aggregator-routing`` routes to endpoint IPs only, so (as
kwok does) the Service is an ExternalName one to ``localhost`` (the chart value
``externalMetrics.service.externalName``), with aggregator routing off: the API server then dials
``localhost:<service port>``, where the operator listens. The aggregator still checks the serving
certificate against ``<service>.<namespace>.svc`` with the APIService's caBundle, which is why the
chart's own certificate, made for that name, is what the operator serves with.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes.client

from tests.helpers.controlplane import ControlPlane, free_port
from tests.helpers.realcluster import ClusterApi, Release, install_release, tool
from tests.helpers.watching import named, wait_for_list

APISERVICE = "v1beta1.external.metrics.k8s.io"
PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
#: Who the HPA controller is (the controller-manager runs each controller as its own account).
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


@dataclasses.dataclass(frozen=True)
class Served:
    """A release with the External metrics API, and where its operator must serve it."""

    release: Release
    port: int
    cert: Path
    key: Path
    ca: Path

    def env(self) -> dict[str, str]:
        """The operator's settings that serve it on loopback with the chart's certificate."""
        return {
            "FILTERJOB_EXTERNAL_METRICS_PORT": str(self.port),
            "FILTERJOB_EXTERNAL_METRICS_ADDRESS": "127.0.0.1",
            "FILTERJOB_EXTERNAL_METRICS_CERT": str(self.cert),
            "FILTERJOB_EXTERNAL_METRICS_KEY": str(self.key),
        }


def install_served_release(control_plane: ControlPlane, api: ClusterApi, name: str, directory: Path) -> Served:
    """``helm install`` a release (CRD left to the session's) whose APIService reaches ``localhost:PORT``."""
    port = free_port()
    values = {
        "crds": {"install": False},
        "externalMetrics": {"enabled": True, "port": port, "service": {"port": port, "externalName": "localhost"}},
    }
    release = install_release(control_plane, name, name, values, directory)
    secret = api.core.read_namespaced_secret(f"{release.service_account}-external-metrics-tls", release.namespace)
    files = {}
    for key in ("tls.crt", "tls.key", "ca.crt"):
        path = directory / f"{name}-{key}"
        path.write_bytes(base64.b64decode(secret.data[key]))
        path.chmod(0o600)
        files[key] = path
    return Served(release, port, files["tls.crt"], files["tls.key"], files["ca.crt"])


def uninstall(control_plane: ControlPlane, api: ClusterApi, served: Served) -> None:
    """Remove the release, its APIService with it (so discovery works again for everyone)."""
    removed = tool(control_plane, "helm", "uninstall", served.release.name, "--namespace", served.release.namespace)
    assert removed.returncode == 0, removed.stderr
    api.core.delete_namespace(served.release.namespace)


def wait_available(api: ClusterApi, *, timeout: float = 60.0) -> dict[str, Any]:
    """The APIService once the aggregator's availability check passes (its ``Available`` condition)."""
    registration = kubernetes.client.ApiregistrationV1Api(api.client)

    def available(found: list[Any]) -> bool:
        conditions = (found[0].status.conditions or []) if found and found[0].status else []
        return any(c.type == "Available" and c.status == "True" for c in conditions)

    (service,) = wait_for_list(
        registration.list_api_service, available, timeout=timeout, what=f"APIService {APISERVICE}", **named(APISERVICE)
    )
    found: dict[str, Any] = api.client.sanitize_for_serialization(service)
    return found


def get_raw(control_plane: ControlPlane, path: str) -> tuple[int, dict[str, Any] | str]:
    """``kubectl get --raw PATH`` as the admin, through the aggregator: (exit code, JSON or stderr)."""
    done = tool(control_plane, "kubectl", "get", "--raw", path)
    if done.returncode != 0:
        return done.returncode, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return 0, found


def metric_path(namespace: str, metric: str, job: str) -> str:
    return f"{PREFIX}/namespaces/{namespace}/{metric}?labelSelector=job%3D{job}"


def direct_get(served: Served, path: str) -> tuple[int, dict[str, Any]]:
    """GET the operator's server directly on loopback, with no client certificate (as anyone could)."""
    context = ssl.create_default_context(cafile=str(served.ca))
    context.check_hostname = False  # the certificate names the Service, not 127.0.0.1
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{served.port}{path}", context=context, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
