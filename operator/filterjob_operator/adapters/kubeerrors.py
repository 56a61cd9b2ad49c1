"""The errors of the Kubernetes adapter (:mod:`filterjob_operator.adapters.kube`), which callers catch."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    def __init__(self, status: int, message: str, *, detail: str = "") -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        #: The API server's own message (its Status object's), e.g. which field it refused; or "".
        self.detail = detail


def detail_of(error: ApiException) -> str:
    """The ``message`` of the Status the API server answered with, if its body is one."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        return ""
    return str(status.get("message") or "") if isinstance(status, dict) else ""


class NotOurs(KubeError):
    """An object of the name the operator writes exists, without the labels that make it the operator's."""
