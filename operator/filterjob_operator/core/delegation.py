"""Who asks, and may they (pure): the aggregation layer's client authentication, as an aggregated
API server checks it (k8s.io/apiserver's delegated authentication and authorization).

The kube-apiserver's aggregator connects with its front-proxy client certificate, signed by the
CA in ConfigMap kube-system/extension-apiserver-authentication (key
``requestheader-client-ca-file``) and with a common name from ``requestheader-allowed-names``
(empty: any name), and names the user it proxies for in the configured headers (X-Remote-User,
X-Remote-Group, X-Remote-Extra-KEY). Only a request with such a certificate may name a user: a
header alone proves nothing. That user is then authorized with a SubjectAccessReview.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from filterjob_operator.core.extmetrics import GROUP, RESOURCE, VERSION, Problem, Route

#: Where the front-proxy settings are (the kube-apiserver keeps the ConfigMap up to date).
CONFIGMAP_NAMESPACE, CONFIGMAP_NAME = "kube-system", "extension-apiserver-authentication"
CA_KEY = "requestheader-client-ca-file"
#: The group every authenticated user is in (k8s.io/apiserver adds it, and RBAC's discovery rules bind to it).
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class FrontProxy:
    """How the aggregator proves itself and names the user (the ConfigMap's ``requestheader-*`` keys)."""

    ca: str
    allowed_names: frozenset[str]
    user_headers: tuple[str, ...]
    group_headers: tuple[str, ...]
    extra_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _names(data: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A ``requestheader-*`` list: the ConfigMap holds each as a JSON array of strings."""
    try:
        value = json.loads(data.get(key) or "[]")
    except ValueError:
        raise ValueError(f"{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {key} is not a JSON list") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {key} is not a JSON list of strings")
    return tuple(value)


def front_proxy(data: Mapping[str, str]) -> FrontProxy:
    """The settings from the ConfigMap's data; a ValueError if the API server has no front proxy."""
    ca = (data.get(CA_KEY) or "").strip()
    if not ca:
        raise ValueError(
            f"{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} has no {CA_KEY}: the kube-apiserver runs without the "
            "aggregation layer (--requestheader-client-ca-file); enable it, or set externalMetrics.enabled=false"
        )
    return FrontProxy(
        ca=ca,
        allowed_names=frozenset(_names(data, "requestheader-allowed-names")),
        user_headers=_names(data, "requestheader-username-headers"),
        group_headers=_names(data, "requestheader-group-headers"),
        extra_prefixes=_names(data, "requestheader-extra-headers-prefix"),
    )


def common_name(peercert: Mapping[str, Any] | None) -> str | None:
    """The subject's CN of a verified client certificate (``ssl``'s ``getpeercert()``), if any."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def authenticate(proxy: FrontProxy, cn: str | None, headers: Iterable[tuple[str, str]]) -> User:
    """The user a request is made for: a :class:`Problem` (401) without the front proxy's certificate
    (``cn`` is that of a certificate the proxy's CA signed, None without one) or without a user."""
    if cn is None:
        raise Problem(401, "Unauthorized: a client certificate of the API server's front proxy is required")
    if proxy.allowed_names and cn not in proxy.allowed_names:
        raise Problem(401, f"Unauthorized: client certificate {cn!r} is not one of requestheader-allowed-names")
    items = [(k.lower(), v) for k, v in headers]
    name = next((v for h in proxy.user_headers for k, v in items if k == h.lower() and v), "")
    if not name:
        raise Problem(401, "Unauthorized: the request names no user")
    groups = tuple(v for h in proxy.group_headers for k, v in items if k == h.lower())
    if AUTHENTICATED not in groups:
        groups = (*groups, AUTHENTICATED)
    extra: dict[str, list[str]] = {}
    for prefix in (p.lower() for p in proxy.extra_prefixes):
        for key, value in items:
            if key.startswith(prefix) and len(key) > len(prefix):
                extra.setdefault(unquote(key[len(prefix) :]), []).append(value)
    return User(name=name, groups=groups, extra=tuple((k, tuple(v)) for k, v in sorted(extra.items())))


def access_review(user: User, request: Route, path: str) -> dict[str, Any]:
    """The SubjectAccessReview that says whether ``user`` may make ``request``: ``get`` on
    externalmetrics in the namespace for a metric, ``get`` of the path for discovery."""
    spec: dict[str, Any] = {
        "user": user.name,
        "groups": list(user.groups),
        "extra": {k: list(v) for k, v in user.extra},
    }
    if request.metric is None:
        spec["nonResourceAttributes"] = {"path": path, "verb": "get"}
    else:
        spec["resourceAttributes"] = {
            "group": GROUP,
            "version": VERSION,
            "resource": RESOURCE,
            "namespace": request.namespace,
            "name": request.metric,
            "verb": "get",
        }
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def forbidden(user: User, request: Route, reason: str) -> Problem:
    """The 403 for a user the authorizer said no to, as API servers word it."""
    what = (
        f'get resource "{RESOURCE}" in API group "{GROUP}" in the namespace "{request.namespace}"'
        if request.metric is not None
        else "get this path"
    )
    return Problem(
        403, f'{RESOURCE} is forbidden: User "{user.name}" cannot {what}' + (f": {reason}" if reason else "")
    )


class Answers:
    """Authorization answers remembered for ``ttl`` seconds (the HPA asks every sync period)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._answers: dict[str, tuple[float, bool, str]] = {}

    @staticmethod
    def key(review: Mapping[str, Any]) -> str:
        return json.dumps(review["spec"], sort_keys=True)

    def get(self, key: str, *, now: float) -> tuple[bool, str] | None:
        found = self._answers.get(key)
        if found is None or now - found[0] >= self._ttl:
            self._answers.pop(key, None)
            return None
        return found[1], found[2]

    def put(self, key: str, allowed: bool, reason: str, *, now: float) -> None:
        # Expired answers go when a new one comes, so many users and namespaces never pile up.
        self._answers = {k: a for k, a in self._answers.items() if now - a[0] < self._ttl}
        self._answers[key] = (now, allowed, reason)

    def __len__(self) -> int:
        return len(self._answers)
