"""The chart's life on a real API server of its own: ``helm install``, ``helm upgrade``, ``helm uninstall``
(the CRD and the FilterJobs kept, as ``crds.keep`` says), then ``kubectl apply -f manifests/``,
which must install the same objects as the chart did.

A control plane of its own (started in a few seconds once the binaries are built), so uninstalling
the operator does not pull it from under the other tests' session release.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.controlplane import Binaries, ControlPlane, ControlPlaneError
from tests.helpers.jobfiles import JOB
from tests.helpers.realcluster import (
    CHART,
    GROUP,
    PLURAL,
    RELEASE,
    RELEASE_NAMESPACE,
    ROOT,
    VERSION,
    ClusterApi,
    install_release,
    tool,
)

#: What the chart installs, by kind: how to list it (cluster-wide or in the release namespace).
SELECTOR = "app.kubernetes.io/name=filterjob"


@pytest.fixture
def own_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane.start(tmp_path / "plane", binaries=Binaries.ensure(build=False))
    except ControlPlaneError as error:
        pytest.fail(str(error), pytrace=False)
    with plane:
        yield plane


def installed(api: ClusterApi) -> dict[tuple[str, str], Any]:
    """The chart's objects now in the cluster, (kind, name) -> what the chart decides of it."""
    found: dict[tuple[str, str], Any] = {}
    for account in api.core.list_namespaced_service_account(RELEASE_NAMESPACE, label_selector=SELECTOR).items:
        found["ServiceAccount", account.metadata.name] = account.automount_service_account_token
    for role in api.rbac.list_cluster_role(label_selector=SELECTOR).items:
        found["ClusterRole", role.metadata.name] = api.client.sanitize_for_serialization(role.rules)
    for binding in api.rbac.list_cluster_role_binding(label_selector=SELECTOR).items:
        found["ClusterRoleBinding", binding.metadata.name] = api.client.sanitize_for_serialization(
            [binding.role_ref, binding.subjects]
        )
    for service in api.core.list_namespaced_service(RELEASE_NAMESPACE, label_selector=SELECTOR).items:
        found["Service", service.metadata.name] = api.client.sanitize_for_serialization(service.spec.ports)
    for deployment in api.apps.list_namespaced_deployment(RELEASE_NAMESPACE, label_selector=SELECTOR).items:
        pod = api.client.sanitize_for_serialization(deployment.spec.template.spec)
        pod.pop("nodeSelector", None)  # the tests' release keeps its operator Pending
        found["Deployment", deployment.metadata.name] = pod
    return found


def deployment_env(api: ClusterApi) -> dict[str, str]:
    deployment = api.apps.read_namespaced_deployment(RELEASE, RELEASE_NAMESPACE)
    return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}


@pytest.mark.slow
def test_helm_upgrade_and_uninstall_keep_the_crd_and_kubectl_apply_installs_the_same(
    own_plane: ControlPlane, tmp_path: Path
) -> None:
    with own_plane.api_client() as client:
        api = ClusterApi.bind(client)
        install_release(own_plane, RELEASE, RELEASE_NAMESPACE, {}, tmp_path)
        by_helm = installed(api)
        assert {kind for kind, _ in by_helm} == {
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
        }
        api.core.create_namespace({"metadata": {"name": "photos"}})
        job = copy.deepcopy(JOB)
        stored = api.custom.create_namespaced_custom_object(GROUP, VERSION, "photos", PLURAL, job)

        upgraded = tool(
            own_plane,
            "helm",
            "upgrade",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NAMESPACE,
            "--reuse-values",
            "--set",
            "operator.statusInterval=7",
        )
        assert upgraded.returncode == 0, upgraded.stderr
        assert deployment_env(api)["FILTERJOB_STATUS_INTERVAL"] == "7"
        status = json.loads(tool(own_plane, "helm", "status", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json").stdout)
        assert (status["version"], status["info"]["status"]) == (2, "deployed")

        uninstalled = tool(own_plane, "helm", "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait")
        assert uninstalled.returncode == 0, uninstalled.stderr
        assert installed(api) == {}
        # crds.keep (the default): the CRD stays, and with it every FilterJob.
        crd = api.extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        kept = api.custom.get_namespaced_custom_object(GROUP, VERSION, "photos", PLURAL, "thumbs")
        assert (kept["metadata"]["uid"], kept["spec"]) == (stored["metadata"]["uid"], stored["spec"])

        applied = tool(own_plane, "kubectl", "apply", "-f", ROOT / "manifests")
        assert applied.returncode == 0, applied.stderr
        assert installed(api) == by_helm
        assert deployment_env(api)["FILTERJOB_STATUS_INTERVAL"] == "5"  # the chart's default, as rendered
