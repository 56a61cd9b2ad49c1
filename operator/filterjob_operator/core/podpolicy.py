"""What a job's pod overrides (``spec.workers``) may not do, said once for the CRD and the operator.

Worker and lister pods run locked down (the restricted Pod Security Standard, a
read-only root filesystem, no capabilities). A job may change who they run as, how
volumes are owned, where they are scheduled and what they see in their environment,
but never weaken that lockdown nor take over what the operator relies on:

- ``podSecurityContext`` / ``securityContext``: no root (``runAsUser: 0``,
  ``runAsNonRoot: false``), no ``privileged``, no ``allowPrivilegeEscalation``, no
  capability but ``NET_BIND_SERVICE`` added, no writable root filesystem, no
  ``Unconfined`` seccomp or AppArmor profile, no unmasked ``/proc``, no Windows host
  process, no SELinux user, role or type beyond the container ones. Such a request is
  refused, not silently dropped: the pods would not be what the job asked for.
- ``env``: not the ``FILTERJOB_*`` variables the operator sets (others, e.g.
  ``FILTERJOB_LOG_LEVEL``, may be set). ``envFrom`` cannot override them either: in
  Kubernetes an ``env`` entry always wins over ``envFrom``.
- ``podLabels``: not the labels the operator sets (the Deployment selects its pods by
  them) nor any under ``filterjob.dev/``; ``podAnnotations``: not the operator's.

Each :class:`Guard` is a CEL rule for the CRD and the same check in Python, with one
message, so ``kubectl apply`` and the operator refuse alike. Label and annotation keys
are checked by the operator only (a job with a bad one ends Failed, naming it): a CEL
regular expression over every key would exceed the API server's rule cost budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from filterjob_worker.core.environment import Var

#: Every FILTERJOB_* variable the operator sets in worker or lister pods (FILTERJOB_JOB: the
#: lister's and verifier's FilterJob, see ``builders.lister``).
RESERVED_ENV = tuple(
    sorted(
        (
            Var.BACKOFF_SECONDS,
            Var.BROKER_URL,
            Var.CONCURRENCY,
            Var.GRACE_SECONDS,
            Var.HEALTH_PORT,
            "FILTERJOB_JOB",
            Var.MAX_ATTEMPTS,
            Var.MAX_BACKOFF_SECONDS,
            Var.PREFETCH,
            Var.QUEUE,
            Var.WORKER_ID,
        )
    )
)
#: The labels the operator puts on every pod (see ``builders.common.labels``).
RESERVED_LABELS = (
    "app.kubernetes.io/component",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
)
#: The annotations the operator puts on worker pods.
RESERVED_ANNOTATIONS = ("prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape")
RESERVED_PREFIX = "filterjob.dev/"
#: SELinux types the baseline Pod Security Standard allows (``spc_t`` would be unconfined).
SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t")
#: Capabilities the restricted Pod Security Standard lets a container add.
ALLOWED_CAPABILITIES = ("NET_BIND_SERVICE",)
#: A label key: an optional DNS-subdomain prefix and a name (Kubernetes' own rule).
_DNS_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
LABEL_KEY = rf"^{_DNS_PREFIX}[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
#: A label value (empty allowed), of at most ``MAX_LABEL_VALUE`` characters.
MAX_LABEL_VALUE = 63
LABEL_VALUE = rf"^(([A-Za-z0-9][-A-Za-z0-9_.]{{0,{MAX_LABEL_VALUE - 2}}})?[A-Za-z0-9])?$"
#: Bounds that keep the CEL rules' estimated cost within the API server's budget.
MAX_ENV = 256
MAX_ENV_FROM = 64
MAX_TOLERATIONS = 64
MAX_LABELS = 64
MAX_CAPABILITIES = 64
MAX_KEY_LENGTH = 317  # 253 for the prefix, 1 for the slash, 63 for the name
#: The longest name of a Kubernetes object (a DNS subdomain), e.g. a PriorityClass or ServiceAccount.
MAX_OBJECT_NAME = 253


@dataclass(frozen=True)
class Guard:
    """One thing an override may not do: ``cel`` (``self`` is the field's value) and ``ok`` agree."""

    field: str  # under spec.workers
    cel: str | None  # None: checked by the operator only
    message: str  # the API server and the operator put the field's path before it
    ok: Callable[[Any], bool]


def _cel_str(value: str) -> str:
    """A CEL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_cel_str(v) for v in values) + "]"


def _not(context: Mapping[str, Any], key: str, value: Any) -> bool:
    if not isinstance(context, Mapping):
        raise TypeError(f"expected an object, got {type(context).__name__}")
    return key not in context or context[key] != value


def _pod_context_ok(context: Mapping[str, Any]) -> bool:
    windows = context.get("windowsOptions") or {}
    return (
        _not(context, "runAsUser", 0)
        and _not(context, "runAsNonRoot", False)
        and _not(context.get("seccompProfile") or {}, "type", "Unconfined")
        and _not(context.get("appArmorProfile") or {}, "type", "Unconfined")
        and _not(windows, "hostProcess", True)
        and _selinux_ok(context.get("seLinuxOptions") or {})
    )


def _selinux_ok(options: Mapping[str, Any]) -> bool:
    if not isinstance(options, Mapping):
        raise TypeError(f"expected an object, got {type(options).__name__}")
    return options.get("type") in (None, "", *SELINUX_TYPES) and not options.get("user") and not options.get("role")


def _container_context_ok(context: Mapping[str, Any]) -> bool:
    added = (context.get("capabilities") or {}).get("add") or []
    return (
        _pod_context_ok(context)
        and _not(context, "privileged", True)
        and _not(context, "allowPrivilegeEscalation", True)
        and _not(context, "readOnlyRootFilesystem", False)
        and _not(context, "procMount", "Unmasked")
        and set(added) <= set(ALLOWED_CAPABILITIES)
    )


def _no(field: str, value: str) -> str:
    """CEL: ``self.<field>`` is absent or not ``value``."""
    return f"(!has(self.{field}) || self.{field} != {value})"


_POD_CEL = " && ".join(
    [
        _no("runAsUser", "0"),
        _no("runAsNonRoot", "false"),
        "(!has(self.seccompProfile) || !has(self.seccompProfile.type) || self.seccompProfile.type != 'Unconfined')",
        "(!has(self.appArmorProfile) || !has(self.appArmorProfile.type) || self.appArmorProfile.type != 'Unconfined')",
        "(!has(self.windowsOptions) || !has(self.windowsOptions.hostProcess) || !self.windowsOptions.hostProcess)",
        "(!has(self.seLinuxOptions) || ("
        f"(!has(self.seLinuxOptions.type) || self.seLinuxOptions.type in {_cel_list(('', *SELINUX_TYPES))}) && "
        "(!has(self.seLinuxOptions.user) || self.seLinuxOptions.user == '') && "
        "(!has(self.seLinuxOptions.role) || self.seLinuxOptions.role == '')))",
    ]
)
_CONTAINER_CEL = " && ".join(
    [
        _POD_CEL,
        _no("privileged", "true"),
        _no("allowPrivilegeEscalation", "true"),
        _no("readOnlyRootFilesystem", "false"),
        _no("procMount", "'Unmasked'"),
        "(!has(self.capabilities) || !has(self.capabilities.add) || "
        f"self.capabilities.add.all(c, c in {_cel_list(ALLOWED_CAPABILITIES)}))",
    ]
)
_RESTRICTED = (
    "must keep the pods restricted: no root (runAsUser 0, runAsNonRoot false), no Unconfined seccomp or "
    f"AppArmor profile, no Windows host process, no SELinux user or role or type but {', '.join(SELINUX_TYPES)}"
)


def _key_ok(key: str) -> bool:
    return len(key) <= MAX_KEY_LENGTH and re.match(LABEL_KEY, key) is not None


def _labels_ok(labels: Mapping[str, str]) -> bool:
    return all(_key_ok(k) and re.match(LABEL_VALUE, v) is not None for k, v in labels.items())


def _capabilities_bounded(context: Mapping[str, Any]) -> bool:
    capabilities = context.get("capabilities") or {}
    return all(len(capabilities.get(key) or []) <= MAX_CAPABILITIES for key in ("add", "drop"))


def _own(values: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda mapping: all(k not in values and not k.startswith(RESERVED_PREFIX) for k in mapping)


GUARDS: tuple[Guard, ...] = (
    Guard(
        "podSecurityContext",
        _POD_CEL,
        _RESTRICTED,
        _pod_context_ok,
    ),
    Guard(
        "securityContext",
        _CONTAINER_CEL,
        f"{_RESTRICTED}, no privileged, no allowPrivilegeEscalation, "
        f"no readOnlyRootFilesystem false, no Unmasked procMount, no capabilities added but "
        f"{', '.join(ALLOWED_CAPABILITIES)}",
        _container_context_ok,
    ),
    Guard(
        "securityContext",
        None,  # the schema bounds them (maxItems); said here too, for what does not go through the API server
        f"capabilities.add and capabilities.drop may list at most {MAX_CAPABILITIES} capabilities each",
        _capabilities_bounded,
    ),
    Guard(
        "env",
        f"self.all(e, !(e.name in {_cel_list(RESERVED_ENV)}))",
        f"must not set the variables the operator sets: {', '.join(RESERVED_ENV)}",
        lambda env: all(e.get("name") not in RESERVED_ENV for e in env),
    ),
    Guard(
        "podLabels",
        f"self.all(k, !(k in {_cel_list(RESERVED_LABELS)}) && !k.startsWith('{RESERVED_PREFIX}'))",
        f"must not set the operator's labels ({', '.join(RESERVED_LABELS)}, "
        f"{RESERVED_PREFIX}*): its Deployment selects its pods by them",
        _own(RESERVED_LABELS),
    ),
    Guard(
        "podLabels",
        None,  # the schema checks values; a CEL regex over every key would exceed the API server's cost budget
        "keys must be label keys ([prefix/]name) and values label values "
        "(up to 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)",
        _labels_ok,
    ),
    Guard(
        "podAnnotations",
        f"self.all(k, !(k in {_cel_list(RESERVED_ANNOTATIONS)}) && !k.startsWith('{RESERVED_PREFIX}'))",
        f"must not set the operator's annotations ({', '.join(RESERVED_ANNOTATIONS)}, {RESERVED_PREFIX}*)",
        _own(RESERVED_ANNOTATIONS),
    ),
    Guard(
        "podAnnotations",
        None,
        "keys must be [prefix/]name like label keys",
        lambda annotations: all(_key_ok(k) for k in annotations),
    ),
)


def rules(field: str) -> list[dict[str, str]]:
    """The CEL rules of one ``spec.workers`` field."""
    return [{"rule": g.cel, "message": g.message} for g in GUARDS if g.field == field and g.cel is not None]


def _passes(guard: Guard, value: Any) -> bool:
    try:
        return guard.ok(value)
    except (AttributeError, TypeError):  # not the Kubernetes type's shape (the CRD's schema refuses it first)
        return False


def problems(field: str, value: Any) -> list[str]:
    """What is wrong with one ``spec.workers`` field's value, by the same guards."""
    return [guard.message for guard in GUARDS if guard.field == field and not _passes(guard, value)]
