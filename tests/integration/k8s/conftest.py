"""Fixtures for the Kubernetes tests: the real control plane's (realcluster.py) and the emulator's (emulator.py).

The emulator's, until every test on it is ported:

Usage::

    def test_something(cluster, kubeconfig, k8s_api):  # add ``kubelet`` to run Deployments as processes
        k8s_api.custom.create_namespaced_custom_object("filterjob.dev", "v1alpha1", "ns", "filterjobs", body)
        with cluster.run_operator("path/to/operator.py") as runner:   # kopf run -A --standalone
            cluster.wait_for_object(DEPLOYMENTS, "ns", "name", lambda d: d["spec"]["replicas"] == 2)
        assert runner.exit_code == 0
        operator_usage = cluster.call(lambda em: em.rbac_usage(token=KUBECONFIG_TOKEN))
        assert operator_usage <= triples_from_the_clusterrole
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator
from pathlib import Path

import kubernetes.client
import kubernetes.config
import pytest

from .emulator import RunningCluster
from .kubelet import Kubelet

# The real control plane's fixtures (see realcluster.py); the ones below are the emulator's.
from .realcluster import (  # noqa: F401 -- fixtures, found by pytest by name
    broker_secret,
    cluster_api,
    cluster_kubelet,
    cluster_namespace,
    filterjob_operator,
    kube,
    operator_release,
)


@dataclasses.dataclass(frozen=True)
class K8sApi:
    """The ``kubernetes`` client bound to the emulator, with the API groups the tests use."""

    client: kubernetes.client.ApiClient
    custom: kubernetes.client.CustomObjectsApi
    apps: kubernetes.client.AppsV1Api
    core: kubernetes.client.CoreV1Api
    autoscaling: kubernetes.client.AutoscalingV2Api

    @classmethod
    def bind(cls, client: kubernetes.client.ApiClient) -> K8sApi:
        return cls(
            client=client,
            custom=kubernetes.client.CustomObjectsApi(client),
            apps=kubernetes.client.AppsV1Api(client),
            core=kubernetes.client.CoreV1Api(client),
            autoscaling=kubernetes.client.AutoscalingV2Api(client),
        )


#: The reports of a test's phases ("setup", "call", "teardown"), for fixtures that act on the outcome.
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def passed(item: pytest.Item) -> bool:
    """Whether the test's setup and body passed (ask in a fixture's teardown)."""
    reports = item.stash.get(REPORTS, {})
    return all(when in reports and reports[when].passed for when in ("setup", "call"))


@pytest.fixture
def cluster() -> Iterator[RunningCluster]:
    """A fresh emulated cluster serving on 127.0.0.1 (``cluster.url``) for this test."""
    with RunningCluster() as running:
        yield running
        errors = running.emulator.internal_errors
    assert not errors, f"the emulator failed internally: {errors!r}"


@pytest.fixture
def kubeconfig(cluster: RunningCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig for the emulator, made the default one for kopf and the ``kubernetes`` client.

    Besides ``KUBECONFIG``, this patches the client's default path, which the client reads from
    ``KUBECONFIG`` once at import; and it restores the client's process-wide default
    configuration afterwards, which ``load_kube_config()`` (e.g. in kopf's login) overwrites.
    """
    path = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", kubernetes.client.Configuration._default)
    return path


#: The bearer token of the test's own client; the kubeconfig (for the operator) has another one,
#: so the request log tells the operator's requests from the test's.
TEST_CLIENT_TOKEN = "test-client"


@pytest.fixture
def k8s_api(cluster: RunningCluster) -> Iterator[K8sApi]:
    """The ``kubernetes`` client for the test itself (token ``test-client``), closed after the test."""
    with cluster.api_client(token=TEST_CLIENT_TOKEN) as client:
        yield K8sApi.bind(client)


@pytest.fixture
def kubelet(cluster: RunningCluster, tmp_path: Path) -> Iterator[Kubelet]:
    """Runs every Deployment in the emulator as real local processes (see kubelet.py).

    Pod logs go to ``tmp_path / "pods"``. At teardown every process is terminated and its process
    group killed; the test fails if the harness itself failed.
    """
    with Kubelet(cluster, tmp_path / "pods") as running:
        yield running
    assert not running.errors, f"the kubelet harness failed: {running.errors!r}"
