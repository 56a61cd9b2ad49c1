"""The FilterJob CustomResourceDefinition, built from the model and the filter catalog.

Written once, here: the chart and the plain manifests render this output
(``filterjob crd``), and a test fails if it drifts from the catalog. The ``spec``
schema is generated from the API's models (``schemagen``); the filter section
enumerates every filter; what a structural schema cannot say (which parameters a
filter takes, per-filter ranges, required parameters, the catalog's rules, min <=
max replicas, immutability once running) is said by CEL rules with messages a
user can act on.
"""

from __future__ import annotations

from typing import Any

from filterjob_operator.core import podschema
from filterjob_operator.core.schemagen import model_schema, object_schema
from filterjob_operator.core.spec import (
    API_VERSION,
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    NAME_TOO_LONG,
    VERSION,
    FilterJobSpec,
)
from filterjob_operator.core.status import PENDING
from filterjob_operator.core.statusschema import status_schema
from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.filterdef import FilterDef
from filterjob_worker.core.params import NumberParam, Param

Schema = dict[str, Any]
PLURAL = "filterjobs"
SINGULAR = "filterjob"
SHORT_NAMES = ["fj"]
NAME = f"{PLURAL}.{GROUP}"
#: Fields whose schema is a Kubernetes type's (vendored, see ``kubetypes``): field -> type.
KUBERNETES_TYPED = {
    "spec.workers.podSecurityContext": "PodSecurityContext",
    "spec.workers.securityContext": "SecurityContext",
    "spec.workers.tolerations": "Toleration",
    "spec.workers.affinity": "Affinity",
    "spec.workers.env": "EnvVar",
    "spec.workers.envFrom": "EnvFromSource",
}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _param_union() -> dict[str, Param]:
    """Every parameter name once, with the widest range any filter allows it."""
    union: dict[str, Param] = {}
    for fdef in CATALOG.values():
        for param in fdef.params:
            seen = union.get(param.name)
            if seen is None:
                union[param.name] = param
            elif isinstance(seen, NumberParam) and isinstance(param, NumberParam):
                union[param.name] = NumberParam(
                    name=param.name,
                    description=f"{seen.description} (see the filter for its range)",
                    minimum=min(seen.minimum, param.minimum),
                    maximum=max(seen.maximum, param.maximum),
                    integer=seen.integer and param.integer,
                )
            elif type(seen) is not type(param):
                raise TypeError(f"parameter {param.name!r} has different kinds across filters")
    return union


def _param_schema(param: Param) -> Schema:
    schema = param.schema()
    schema.pop("default", None)  # defaults are per filter; the worker fills them in
    return schema


def _filter_rules(fdef: FilterDef, union: dict[str, Param]) -> list[Schema]:
    """CEL rules for one filter: parameters it does not take, required ones, its ranges."""
    when = f"self.name != '{fdef.name}'"
    rules: list[Schema] = []
    foreign = sorted(set(union) - fdef.param_names)
    if foreign:
        taken = ", ".join(sorted(fdef.param_names)) or "no parameters"
        rules.append(
            {
                "rule": f"{when} || !({' || '.join(f'has(self.{p})' for p in foreign)})",
                "message": f"filter {fdef.name} takes {taken}",
            }
        )
    for param in fdef.params:
        widest = union[param.name]
        if param.required:
            rules.append(
                {"rule": f"{when} || has(self.{param.name})", "message": f"{fdef.name}: {param.name} is required"}
            )
        if isinstance(param, NumberParam) and isinstance(widest, NumberParam):
            if (param.minimum, param.maximum) != (widest.minimum, widest.maximum):
                low, high = _literal(param.minimum), _literal(param.maximum)
                rules.append(
                    {
                        "rule": f"{when} || !has(self.{param.name}) || "
                        f"(self.{param.name} >= {low} && self.{param.name} <= {high})",
                        "message": f"{fdef.name}: {param.name} must be between {param.minimum:g} and {param.maximum:g}",
                    }
                )
            if param.integer and not widest.integer:
                rules.append(
                    {
                        "rule": f"{when} || !has(self.{param.name}) || "
                        f"double(int(self.{param.name})) == double(self.{param.name})",
                        "message": f"{fdef.name}: {param.name} must be an integer",
                    }
                )
    # Said once in the catalog, which checks them in Python too.
    rules += [{"rule": f"{when} || {rule.cel}", "message": f"{fdef.name}: {rule.message}"} for rule in fdef.all_rules]
    return rules


def filters_schema() -> Schema:
    union = _param_union()
    names = list(CATALOG)
    properties: Schema = {
        "name": {
            "type": "string",
            "enum": names,
            "description": "The filter. "
            + " ".join(f"{f.name}: {f.description.rstrip('.')}." for f in CATALOG.values()),
        }
    }
    properties.update({name: _param_schema(param) for name, param in sorted(union.items())})
    rules = [rule for fdef in CATALOG.values() for rule in _filter_rules(fdef, union)]
    # Its length's bounds and its description are the model's (FilterJobSpec.filters).
    return {
        "type": "array",
        "items": object_schema(
            "One step: a filter name and its parameters.",
            properties,
            required=["name"],
            extra={"x-kubernetes-validations": rules},
        ),
    }


#: What the structural schema cannot say about autoscaling (the model checks it in ``_min_le_max``).
MIN_NOT_OVER_MAX_REPLICAS = {
    "rule": "self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not exceed maxReplicas",
}


def spec_schema() -> Schema:
    """``spec``, generated from the model; only the filter steps and the Kubernetes-typed fields are given here."""
    return model_schema(
        FilterJobSpec,
        shaped={"filters": filters_schema(), **podschema.pod_overrides_schema(at="workers")},
        validations={"": [DESTINATION_APART_FROM_SOURCE], "autoscaling": [MIN_NOT_OVER_MAX_REPLICAS]},
    )


def _with_slash(field: str) -> str:
    return f"({field}.endsWith('/') ? {field} : {field} + '/')"


#: The textual half of "outputs never go among the inputs" (the operator and the workers
#: check again with symlinks resolved, where they see the paths).
DESTINATION_APART_FROM_SOURCE = {
    "rule": f"!{_with_slash('self.destination.uri')}.startsWith({_with_slash('self.source.uri')}) && "
    f"!{_with_slash('self.source.uri')}.startsWith({_with_slash('self.destination.uri')})",
    "message": "destination.uri must not be source.uri, inside it, or contain it: outputs would be written among "
    "the inputs and could overwrite them; choose a destination outside the source",
}


NAME_FITS_CHILDREN = {
    "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
    "message": "metadata.name " + NAME_TOO_LONG.split(", got")[0],
}

IMMUTABLE_WHILE_RUNNING = {
    "rule": f"!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase == '{PENDING.value}' || "
    "(self.spec.source == oldSelf.spec.source && self.spec.destination == oldSelf.spec.destination && "
    "self.spec.filters == oldSelf.spec.filters)",
    "message": "spec.source, spec.destination and spec.filters are immutable once the job has started; "
    "create a new FilterJob instead",
}


def build_crd() -> Schema:
    """The CustomResourceDefinition manifest (pure)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/part-of": "filterjob"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                        {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"},
                        {"name": "Workers", "type": "string", "jsonPath": ".status.workers.summary"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        # kubectl get fj -o wide
                        {"name": "Queues", "type": "string", "jsonPath": ".status.queues", "priority": 1},
                    ],
                    "schema": {
                        "openAPIV3Schema": object_schema(
                            f"A batch of images to filter ({API_VERSION}).",
                            {
                                "apiVersion": {"type": "string", "description": "APIVersion of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            required=["spec"],
                            extra={"x-kubernetes-validations": [NAME_FITS_CHILDREN, IMMUTABLE_WHILE_RUNNING]},
                        )
                    },
                }
            ],
        },
    }
