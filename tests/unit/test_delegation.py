"""The aggregation layer's client authentication and the authorization request (pure)."""

from __future__ import annotations

import json

import pytest

from filterjob_operator.core import delegation
from filterjob_operator.core.delegation import FrontProxy, User
from filterjob_operator.core.extmetrics import METRIC, Problem, Route

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CONFIGMAP = {
    "client-ca-file": "not the front proxy's",
    "requestheader-client-ca-file": CA,
    "requestheader-allowed-names": '["front-proxy-client"]',
    "requestheader-username-headers": '["X-Remote-User"]',
    "requestheader-group-headers": '["X-Remote-Group"]',
    "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
}
PROXY = delegation.front_proxy(CONFIGMAP)
HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


def test_the_front_proxy_settings_come_from_the_configmap() -> None:
    assert delegation.front_proxy(CONFIGMAP) == FrontProxy(
        ca=CA.strip(),
        allowed_names=frozenset({"front-proxy-client"}),
        user_headers=("X-Remote-User",),
        group_headers=("X-Remote-Group",),
        extra_prefixes=("X-Remote-Extra-",),
    )


def test_without_the_front_proxy_ca_the_server_cannot_authenticate_and_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"no requestheader-client-ca-file.*externalMetrics\.enabled=false"):
        delegation.front_proxy({"client-ca-file": CA})


@pytest.mark.parametrize("bad", ["front-proxy-client", '{"a": 1}', "[1]"])
def test_a_header_list_that_is_no_json_list_of_strings_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="requestheader-allowed-names is not a JSON list"):
        delegation.front_proxy({**CONFIGMAP, "requestheader-allowed-names": bad})


def test_missing_lists_are_empty() -> None:
    proxy = delegation.front_proxy({"requestheader-client-ca-file": CA})
    assert (proxy.allowed_names, proxy.user_headers, proxy.group_headers, proxy.extra_prefixes) == (
        frozenset(),
        (),
        (),
        (),
    )


def test_the_common_name_is_read_from_the_certificate_subject() -> None:
    peer = {"subject": ((("organizationName", "k8s"),), (("commonName", "front-proxy-client"),))}
    assert delegation.common_name(peer) == "front-proxy-client"
    assert delegation.common_name({"subject": ((("organizationName", "k8s"),),)}) is None
    assert delegation.common_name({}) is None
    assert delegation.common_name(None) is None


HEADERS = [
    ("X-Remote-User", HPA),
    ("X-Remote-Group", "system:serviceaccounts"),
    ("x-remote-group", "system:authenticated"),
    ("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-id", "JTI=1"),
    ("X-Remote-Extra-Scopes", "a"),
    ("X-Remote-Extra-Scopes", "b"),
    ("Accept", "application/json"),
]


def test_the_user_groups_and_extra_come_from_the_headers_of_the_proxy() -> None:
    assert delegation.authenticate(PROXY, "front-proxy-client", HEADERS) == User(
        name=HPA,
        groups=("system:serviceaccounts", "system:authenticated"),
        extra=(("authentication.kubernetes.io/credential-id", ("JTI=1",)), ("scopes", ("a", "b"))),
    )


def test_every_user_is_in_the_authenticated_group_once() -> None:
    alone = delegation.authenticate(PROXY, "front-proxy-client", [("X-Remote-User", "system:kube-aggregator")])
    assert alone.groups == ("system:authenticated",)  # what RBAC's discovery rules are bound to


def test_any_common_name_passes_when_no_names_are_listed() -> None:
    proxy = delegation.front_proxy({**CONFIGMAP, "requestheader-allowed-names": "[]"})
    assert delegation.authenticate(proxy, "aggregator", HEADERS).name == HPA


@pytest.mark.parametrize(
    ("cn", "headers", "words"),
    [
        (None, HEADERS, "client certificate of the API server's front proxy is required"),
        ("kubernetes-admin", HEADERS, "'kubernetes-admin' is not one of requestheader-allowed-names"),
        ("front-proxy-client", [("X-Remote-Group", "system:masters")], "names no user"),
        ("front-proxy-client", [("X-Remote-User", "")], "names no user"),
        ("front-proxy-client", [("Impersonate-User", "admin")], "names no user"),
    ],
)
def test_a_request_not_made_through_the_proxy_for_a_user_is_unauthorized(
    cn: str | None, headers: list[tuple[str, str]], words: str
) -> None:
    with pytest.raises(Problem) as raised:
        delegation.authenticate(PROXY, cn, headers)
    assert raised.value.code == 401
    assert words in raised.value.message


USER = User(name=HPA, groups=("system:serviceaccounts",), extra=(("scopes", ("a", "b")),))


def test_a_metric_is_authorized_as_get_on_externalmetrics_in_its_namespace() -> None:
    review = delegation.access_review(USER, Route(namespace="photos", metric=METRIC), "/ignored")
    assert review == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": HPA,
            "groups": ["system:serviceaccounts"],
            "extra": {"scopes": ["a", "b"]},
            "resourceAttributes": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "resource": "externalmetrics",
                "namespace": "photos",
                "name": METRIC,
                "verb": "get",
            },
        },
    }


def test_discovery_is_authorized_as_a_get_of_its_path() -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1"
    review = delegation.access_review(User(name="system:kube-aggregator"), Route(), path)
    assert review["spec"] == {
        "user": "system:kube-aggregator",
        "groups": [],
        "extra": {},
        "nonResourceAttributes": {"path": path, "verb": "get"},
    }


def test_forbidden_names_the_user_the_resource_and_the_reason() -> None:
    problem = delegation.forbidden(USER, Route(namespace="photos", metric=METRIC), "no RBAC policy matched")
    assert problem.code == 403
    assert problem.message == (
        f'externalmetrics is forbidden: User "{HPA}" cannot get resource "externalmetrics" in API group '
        '"external.metrics.k8s.io" in the namespace "photos": no RBAC policy matched'
    )
    assert (
        delegation.forbidden(USER, Route(), "").message
        == f'externalmetrics is forbidden: User "{HPA}" cannot get this path'
    )


def test_answers_are_remembered_for_their_time_only() -> None:
    answers = delegation.Answers(10.0)
    review = delegation.access_review(USER, Route(namespace="photos", metric=METRIC), "")
    key = delegation.Answers.key(review)
    assert key == json.dumps(review["spec"], sort_keys=True)
    assert answers.get(key, now=0.0) is None
    answers.put(key, False, "denied", now=0.0)
    assert answers.get(key, now=9.9) == (False, "denied")
    assert answers.get(key, now=10.0) is None  # expired: asked again
    assert answers.get(key, now=1.0) is None  # and forgotten
    other = delegation.Answers.key(delegation.access_review(USER, Route(namespace="other", metric=METRIC), ""))
    answers.put(key, True, "", now=20.0)
    assert answers.get(other, now=20.0) is None  # another namespace is another question
    answers.put(other, True, "", now=25.0)
    assert len(answers) == 2
    answers.put(other, True, "", now=31.0)
    assert len(answers) == 1  # the first one expired, and went
