"""How the Kubernetes adapter reports an API error: status, reason, and the API server's own message."""

from __future__ import annotations

import json
from typing import NoReturn

import pytest
from kubernetes.client.exceptions import ApiException

from filterjob_operator.adapters.kube import Kube
from filterjob_operator.adapters.kubeerrors import KubeError


def refusing(body: str | None) -> NoReturn:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = body
    raise error


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            json.dumps({"kind": "Status", "message": "spec.maxReplicaCount: Invalid value"}),
            "spec.maxReplicaCount: Invalid value",
        ),
        (json.dumps({"kind": "Status"}), ""),
        ("<html>a proxy's page</html>", ""),
        (json.dumps(["not", "a", "status"]), ""),
        (None, ""),
    ],
)
async def test_an_api_error_keeps_the_servers_message_when_it_sent_one(body: str | None, detail: str) -> None:
    with pytest.raises(KubeError) as raised:
        await Kube._call(refusing, body)
    assert (raised.value.status, str(raised.value), raised.value.detail) == (422, "422: Unprocessable Entity", detail)
