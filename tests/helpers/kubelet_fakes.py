"""Stand-ins for the kubelet harness's pure parts: the API objects its pod config looks up, and a pod."""

from __future__ import annotations

from typing import Any

Body = dict[str, Any]


class FakeLookup:
    def __init__(self, **objects: Any) -> None:
        self.secrets: dict[str, dict[str, str]] = objects.get("secrets", {})
        self.config_maps: dict[str, dict[str, str]] = objects.get("config_maps", {})
        self.claims: dict[str, Body] = objects.get("claims", {})
        self.volumes: dict[str, Body] = objects.get("volumes", {})
        self.tokens: list[tuple[str, str, str, str]] = []

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get(name)

    def claim(self, namespace: str, name: str) -> Body | None:
        return self.claims.get(name)

    def volume(self, name: str) -> Body | None:
        return self.volumes.get(name)

    def token(self, namespace: str, account: str, pod_name: str, pod_uid: str) -> str | None:
        self.tokens.append((namespace, account, pod_name, pod_uid))
        return None if account == "missing" else f"token-of-{account}"


def pod(**spec: Any) -> Body:
    return {
        "metadata": {
            "name": "p-1",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app": "web"},
            "annotations": {"note": "n"},
        },
        "spec": {"nodeName": "node-a", "containers": [{"name": "c"}], **spec},
    }
