"""The External metrics API the operator serves (pure): paths, selectors and the bodies it answers.

``external.metrics.k8s.io/v1beta1`` as an aggregated API server serves it to the HPA controller:
discovery at ``/apis/external.metrics.k8s.io/v1beta1``, and one metric,
``/apis/external.metrics.k8s.io/v1beta1/namespaces/NS/filterjob_queue_messages?labelSelector=job=NAME``,
whose value is the job's queue depth as the operator's own scaler counts it. The metric's name
and labels are those of the operator's ``/metrics`` series, so one HPA works with this server
and with prometheus-adapter alike.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
RESOURCE = "externalmetrics"
#: The one metric served: outstanding tasks of a job (ready + unacked + retrying).
METRIC = "filterjob_queue_messages"
#: The label that names the job; ``namespace`` may be given too, and must be the request's.
JOB_LABEL = "job"
NAMESPACE_LABEL = "namespace"
_PREFIX = f"/apis/{GROUP_VERSION}"
#: Kubernetes' Status reasons for the codes this server answers with.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    503: "ServiceUnavailable",
}


class Problem(Exception):
    """A request answered with an error: its HTTP code and a message that says what to do."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Route:
    """What a path asks for: discovery (``metric`` None) or one metric in one namespace."""

    namespace: str | None = None
    metric: str | None = None


def route(method: str, path: str) -> Route:
    """The request a path makes; anything else is a :class:`Problem` (404, or 405 for a method but GET)."""
    if method != "GET":
        raise Problem(405, f"method {method} is not allowed: this API is read-only (GET)")
    if path.rstrip("/") == _PREFIX:
        return Route()
    parts = path.removeprefix(_PREFIX + "/").split("/") if path.startswith(_PREFIX + "/") else []
    if len(parts) == 3 and parts[0] == "namespaces" and parts[1] and parts[2]:
        return Route(namespace=parts[1], metric=parts[2])
    raise Problem(404, f"no such path {path!r}: this server serves {_PREFIX}/namespaces/NAMESPACE/{METRIC}")


def discovery() -> dict[str, Any]:
    """The APIResourceList of the group version (the aggregator's availability check reads it)."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": RESOURCE,
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
        ],
    }


def parse_selector(text: str) -> dict[str, str]:
    """A label selector of equalities (``k=v``, ``k==v``, comma-separated), as the HPA sends its
    ``matchLabels``; set-based terms, inequalities and repeated keys are a :class:`Problem` (400)."""
    labels: dict[str, str] = {}
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        key, equals, value = term.replace("==", "=", 1).partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key or key.endswith("!") or " " in key or key in labels:
            raise Problem(
                400,
                f"label selector term {term!r} is not supported: select the job with matchLabels only "
                f"({JOB_LABEL}: NAME, optionally {NAMESPACE_LABEL}: NAMESPACE)",
            )
        labels[key] = value
    return labels


def job_of(request: Route, selector: dict[str, str]) -> str:
    """The job whose depth a metric request asks for (a :class:`Problem` if it asks for another thing)."""
    if request.metric != METRIC:
        raise Problem(404, f"no external metric {request.metric!r}: this server serves {METRIC} only")
    unknown = sorted(set(selector) - {JOB_LABEL, NAMESPACE_LABEL})
    if unknown:
        raise Problem(400, f"{METRIC} has labels {JOB_LABEL} and {NAMESPACE_LABEL} only, not {', '.join(unknown)}")
    if selector.get(NAMESPACE_LABEL, request.namespace) != request.namespace:
        raise Problem(
            400,
            f"label {NAMESPACE_LABEL}={selector[NAMESPACE_LABEL]} selects another namespace than {request.namespace}",
        )
    name = selector.get(JOB_LABEL, "")
    if not name:
        raise Problem(400, f"{METRIC} needs the label selector {JOB_LABEL}=NAME (the FilterJob's name)")
    return name


def value_list(*, namespace: str, job: str, value: int, at: datetime.datetime) -> dict[str, Any]:
    """The ExternalMetricValueList with the job's one value."""
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": [
            {
                "metricName": METRIC,
                "metricLabels": {NAMESPACE_LABEL: namespace, JOB_LABEL: job},
                "timestamp": at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "value": str(value),
            }
        ],
    }


def status(problem: Problem) -> dict[str, Any]:
    """A Kubernetes ``Status`` body for a failed request, as API servers answer one."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": problem.message,
        "reason": _REASONS.get(problem.code, "InternalError"),
        "code": problem.code,
    }
