"""The External metrics API's paths, selectors and bodies (pure)."""

from __future__ import annotations

import datetime

import pytest

from filterjob_operator.core import extmetrics
from filterjob_operator.core.extmetrics import METRIC, Problem, Route

PREFIX = "/apis/external.metrics.k8s.io/v1beta1"


@pytest.mark.parametrize("path", [PREFIX, PREFIX + "/"])
def test_the_group_version_path_is_discovery(path: str) -> None:
    assert extmetrics.route("GET", path) == Route()


def test_a_metric_path_names_its_namespace_and_metric() -> None:
    assert extmetrics.route("GET", f"{PREFIX}/namespaces/photos/{METRIC}") == Route(namespace="photos", metric=METRIC)


@pytest.mark.parametrize(
    "path",
    [
        "/apis",
        "/apis/custom.metrics.k8s.io/v1beta1",
        PREFIX + "x",
        f"{PREFIX}/namespaces/photos",
        f"{PREFIX}/namespaces//{METRIC}",
        f"{PREFIX}/namespaces/photos/{METRIC}/extra",
        f"{PREFIX}/pods/photos/{METRIC}",
    ],
)
def test_any_other_path_is_not_found(path: str) -> None:
    with pytest.raises(Problem) as raised:
        extmetrics.route("GET", path)
    assert raised.value.code == 404
    assert METRIC in raised.value.message


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_method_but_get_is_not_allowed(method: str) -> None:
    with pytest.raises(Problem) as raised:
        extmetrics.route(method, PREFIX)
    assert raised.value.code == 405
    assert "read-only (GET)" in raised.value.message


def test_discovery_lists_the_one_resource_the_aggregator_checks() -> None:
    assert extmetrics.discovery() == {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "external.metrics.k8s.io/v1beta1",
        "resources": [
            {
                "name": "externalmetrics",
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
        ],
    }


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", {}),
        ("job=thumbs", {"job": "thumbs"}),
        ("namespace=photos,job=thumbs", {"namespace": "photos", "job": "thumbs"}),
        ("job==thumbs, namespace = photos", {"job": "thumbs", "namespace": "photos"}),
        ("job=", {"job": ""}),
    ],
)
def test_equality_selectors_are_read(text: str, labels: dict[str, str]) -> None:
    assert extmetrics.parse_selector(text) == labels


@pytest.mark.parametrize("text", ["job!=thumbs", "job in (thumbs)", "job", "!job", "job=a,job=b", "=thumbs"])
def test_other_selectors_are_refused_saying_what_works(text: str) -> None:
    with pytest.raises(Problem) as raised:
        extmetrics.parse_selector(text)
    assert raised.value.code == 400
    assert "matchLabels" in raised.value.message


WANTED = Route(namespace="photos", metric=METRIC)


@pytest.mark.parametrize("selector", [{"job": "thumbs"}, {"job": "thumbs", "namespace": "photos"}])
def test_the_job_comes_from_the_job_label(selector: dict[str, str]) -> None:
    assert extmetrics.job_of(WANTED, selector) == "thumbs"


@pytest.mark.parametrize(
    ("wanted", "selector", "code", "words"),
    [
        (Route(namespace="photos", metric="queue_depth"), {"job": "thumbs"}, 404, "no external metric 'queue_depth'"),
        (WANTED, {}, 400, "needs the label selector job=NAME"),
        (WANTED, {"job": ""}, 400, "needs the label selector job=NAME"),
        (WANTED, {"job": "thumbs", "queue": "x"}, 400, "not queue"),
        (WANTED, {"job": "thumbs", "namespace": "other"}, 400, "another namespace than photos"),
    ],
)
def test_a_request_for_anything_else_is_refused(wanted: Route, selector: dict[str, str], code: int, words: str) -> None:
    with pytest.raises(Problem) as raised:
        extmetrics.job_of(wanted, selector)
    assert raised.value.code == code
    assert words in raised.value.message


def test_the_value_list_holds_one_value_as_a_quantity_at_a_utc_time() -> None:
    at = datetime.datetime(2026, 12, 1, 23, 40, 5, 123, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert extmetrics.value_list(namespace="photos", job="thumbs", value=7, at=at) == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": METRIC,
                "metricLabels": {"namespace": "photos", "job": "thumbs"},
                "timestamp": "2026-12-01T21:40:05Z",
                "value": "7",
            }
        ],
    }


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (400, "BadRequest"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "NotFound"),
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
    ],
)
def test_a_problem_is_a_kubernetes_status(code: int, reason: str) -> None:
    assert extmetrics.status(Problem(code, "what went wrong")) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "what went wrong",
        "reason": reason,
        "code": code,
    }
