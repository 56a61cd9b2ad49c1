"""The External metrics server's answers on a fake cluster: who is let in, what they are told.

The depth itself is read from a real broker in tests/integration/broker/test_external_metrics_depth.py,
and the server behind the real aggregator in tests/integration/k8s/test_external_metrics.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.cli import pod
from filterjob_operator.control.metricsapi import MetricsApi, Unservable, start
from filterjob_operator.control.settings import ExternalMetrics
from filterjob_operator.core import delegation
from filterjob_operator.core.extmetrics import METRIC

PREFIX = "/apis/external.metrics.k8s.io/v1beta1"
PROXY = delegation.FrontProxy(
    ca="unused",
    allowed_names=frozenset({"front-proxy-client"}),
    user_headers=("X-Remote-User",),
    group_headers=("X-Remote-Group",),
    extra_prefixes=("X-Remote-Extra-",),
)
PEER = {"subject": ((("commonName", "front-proxy-client"),),)}
AS_HPA = {"X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler", "X-Remote-Group": "g"}


JOB: dict[str, Any] = {
    "apiVersion": "filterjob.dev/v1alpha1",
    "kind": "FilterJob",
    "metadata": {"name": "thumbs", "namespace": "photos", "uid": "u-1"},
    "spec": {
        "source": {"uri": "file:///data/in/"},
        "destination": {"uri": "file:///data/out/"},
        "filters": [{"name": "grayscale"}],
    },
}


@dataclass
class FakeCluster:
    allowed: bool = True
    reviews: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_review: bool = False

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        raise KubeError(404, "Not Found")

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        raise AssertionError("read at start only")

    async def access_review(self, review: dict[str, Any]) -> tuple[bool, str]:
        if self.fail_review:
            raise KubeError(500, "etcd is gone")
        self.reviews.append(review)
        return self.allowed, "" if self.allowed else "no RBAC policy matched"

    async def filterjob(self, namespace: str, name: str, *, seconds: float | None = None) -> dict[str, Any] | None:
        return self.jobs.get(f"{namespace}/{name}")


async def ask(
    cluster: FakeCluster, path: str, *, peer: Any = PEER, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, Any]]:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: peer if name == "peercert" else default
    request = make_mocked_request(method, path, headers=AS_HPA if headers is None else headers, transport=transport)
    response = await MetricsApi(cluster, PROXY, default_secret="filterjob-broker").handle(request)
    assert isinstance(response, web.Response)
    assert response.content_type == "application/json"
    assert response.text is not None
    return response.status, json.loads(response.text)


async def test_a_request_without_the_proxys_certificate_is_refused_before_anything_is_asked() -> None:
    cluster = FakeCluster()
    code, body = await ask(cluster, f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%3Dthumbs", peer=None)
    assert (code, body["kind"], body["reason"], body["code"]) == (401, "Status", "Unauthorized", 401)
    assert cluster.reviews == []


async def test_a_certificate_of_another_name_is_refused() -> None:
    other = {"subject": ((("commonName", "kubernetes-admin"),),)}
    code, body = await ask(FakeCluster(), PREFIX, peer=other)
    assert code == 401
    assert "requestheader-allowed-names" in body["message"]


async def test_discovery_is_answered_to_an_authorized_user_and_the_answer_is_remembered() -> None:
    cluster = FakeCluster()
    api = MetricsApi(cluster, PROXY, default_secret="filterjob-broker")
    for _ in range(2):
        transport = mock.Mock()
        transport.get_extra_info.return_value = PEER
        response = await api.handle(make_mocked_request("GET", PREFIX, headers=AS_HPA, transport=transport))
        assert response.status == 200
        assert response.text is not None
        assert json.loads(response.text)["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    (review,) = cluster.reviews  # asked once, then remembered
    assert review["spec"]["nonResourceAttributes"] == {"path": PREFIX, "verb": "get"}
    assert review["spec"]["groups"] == ["g", "system:authenticated"]


async def test_a_user_the_authorizer_refuses_is_forbidden() -> None:
    code, body = await ask(FakeCluster(allowed=False), f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%3Dx")
    assert (code, body["reason"]) == (403, "Forbidden")
    assert "no RBAC policy matched" in body["message"]


async def test_an_authorizer_that_cannot_answer_is_unavailable_not_a_yes() -> None:
    code, body = await ask(FakeCluster(fail_review=True), PREFIX)
    assert (code, body["reason"]) == (503, "ServiceUnavailable")
    assert "SubjectAccessReview" in body["message"]


async def test_a_job_that_does_not_exist_is_not_found_rather_than_an_empty_list() -> None:
    code, body = await ask(FakeCluster(), f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%3Dthumbs")
    assert (code, body["reason"]) == (404, "NotFound")
    assert "no FilterJob photos/thumbs" in body["message"]


async def test_a_job_whose_broker_secret_is_missing_says_so() -> None:
    cluster = FakeCluster(jobs={"photos/thumbs": JOB})
    code, body = await ask(cluster, f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%3Dthumbs")
    assert code == 503
    assert "the broker Secret photos/filterjob-broker does not exist" in body["message"]


async def test_an_invalid_job_is_unavailable_with_its_problems() -> None:
    cluster = FakeCluster(jobs={"photos/thumbs": {**JOB, "spec": {**JOB["spec"], "filters": []}}})
    code, body = await ask(cluster, f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%3Dthumbs")
    assert code == 503
    assert "FilterJob photos/thumbs has an invalid spec" in body["message"]


async def test_a_write_is_refused_with_a_status_before_any_authorization() -> None:
    cluster = FakeCluster()
    code, body = await ask(cluster, f"{PREFIX}/namespaces/photos/{METRIC}", method="DELETE")
    assert (code, body["kind"], body["reason"]) == (405, "Status", "MethodNotAllowed")
    assert cluster.reviews == []


async def test_a_bad_selector_is_a_bad_request() -> None:
    code, body = await ask(FakeCluster(), f"{PREFIX}/namespaces/photos/{METRIC}?labelSelector=job%21%3Dthumbs")
    assert (code, body["reason"]) == (400, "BadRequest")


class ConfigMaps(FakeCluster):
    def __init__(self, data: dict[str, str] | None) -> None:
        super().__init__()
        self.data = data

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        assert (namespace, name) == ("kube-system", "extension-apiserver-authentication")
        if self.data is None:
            raise KubeError(403, "Forbidden")
        return self.data


SERVE = ExternalMetrics(port=6443, address="127.0.0.1", cert="/nonexistent/tls.crt", key="/nonexistent/tls.key")


@pytest.mark.parametrize(
    ("data", "cluster", "words"),
    [
        (None, True, "cannot read ConfigMap kube-system/extension-apiserver-authentication"),
        ({"client-ca-file": "x"}, False, "has no requestheader-client-ca-file"),
        ({"requestheader-client-ca-file": "not a certificate"}, False, "cannot use the serving certificate"),
    ],
)
async def test_a_server_that_cannot_start_says_why(data: dict[str, str] | None, cluster: bool, words: str) -> None:
    with pytest.raises(Unservable, match=words) as raised:
        await start(ConfigMaps(data), SERVE, default_secret="filterjob-broker")
    assert raised.value.cluster is cluster


def test_the_command_line_finds_the_servers_error_behind_kopfs() -> None:
    cause = Unservable("no CA")
    permanent = kopf.PermanentError("cannot serve")
    permanent.__cause__ = cause
    kopfs = RuntimeError("One or more handlers failed.")  # kopf's ActivityError, from the handler's error
    kopfs.__cause__ = permanent
    assert pod._unservable(kopfs) is cause
    assert pod._unservable(RuntimeError("something else")) is None
