"""The CRD's schema of the pod overrides in ``spec.workers``: Kubernetes' own shapes, guarded by ``podpolicy``.

These fields are typed as plain mappings in the model (``workload.Workers``); their structural
schema is the vendored Kubernetes types' (``kubetypes``), and each guard of ``podpolicy`` adds its
CEL rule, so ``kubectl apply`` refuses what the operator would.
"""

from __future__ import annotations

from filterjob_operator.core import kubetypes, podpolicy
from filterjob_operator.core.schemagen import Schema


def _guarded(field: str, schema: Schema) -> Schema:
    if found := podpolicy.rules(field):
        schema["x-kubernetes-validations"] = found
    return schema


def _string_map(description: str, *, values: Schema | None = None) -> Schema:
    return {
        "type": "object",
        "additionalProperties": {"type": "string", **(values or {})},
        "description": description,
    }


def _list_of(kind: str, description: str) -> Schema:
    """A list of a Kubernetes type; its bound is the model's (``workload.Workers``)."""
    return {"type": "array", "items": kubetypes.schema(kind), "description": description}


def _container_security_context() -> Schema:
    context = kubetypes.schema(
        "SecurityContext",
        "Merged over the container's default (no privilege escalation, read-only root filesystem, "
        "non-root, all capabilities dropped). May not weaken it: no privileged, no "
        "allowPrivilegeEscalation, no writable root, no capability added but NET_BIND_SERVICE.",
    )
    for key in ("add", "drop"):  # bounded, so the guard's CEL cost is (a guard of podpolicy checks it too)
        context["properties"]["capabilities"]["properties"][key]["maxItems"] = podpolicy.MAX_CAPABILITIES
    return context


def pod_overrides_schema(*, at: str) -> Schema:
    """``spec.workers`` fields for real clusters (by path, below the model ``at``): Kubernetes' own shapes."""
    fields: Schema = {
        "podSecurityContext": _guarded(
            "podSecurityContext",
            kubetypes.schema(
                "PodSecurityContext",
                "Merged over the default (runAsUser/runAsGroup/fsGroup 10001, runAsNonRoot, RuntimeDefault "
                "seccomp, fsGroupChangePolicy OnRootMismatch) of worker and lister pods, e.g. the user and "
                "group owning a volume. May not make the pods root or unconfined.",
            ),
        ),
        "securityContext": _guarded("securityContext", _container_security_context()),
        "nodeSelector": _string_map("Node labels the pods must be scheduled on."),
        "tolerations": _list_of("Toleration", "Taints the pods tolerate."),
        "affinity": kubetypes.schema("Affinity", "Node and pod (anti-)affinity of the pods."),
        "env": _guarded(
            "env",
            _list_of(
                "EnvVar", "More environment variables of the containers; not the FILTERJOB_* ones the operator sets."
            ),
        ),
        "envFrom": _list_of(
            "EnvFromSource",
            "ConfigMaps and Secrets as environment variables; the operator's own variables take precedence.",
        ),
        "podLabels": _guarded(
            "podLabels",
            _string_map(
                "More labels of the pods (not the operator's own).",
                values={"maxLength": podpolicy.MAX_LABEL_VALUE, "pattern": podpolicy.LABEL_VALUE},
            ),
        ),
        "podAnnotations": _guarded(
            "podAnnotations", _string_map("More annotations of the pods (not the operator's own).")
        ),
    }
    return {f"{at}.{name}": schema for name, schema in fields.items()}
