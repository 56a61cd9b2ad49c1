"""The FilterJob reference (Markdown), rendered from the CRD and the filter catalog.

``docs/reference.md`` is this output (``filterjob crd --reference``); a test keeps
them equal, so the reference cannot drift from what the API server enforces.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from filterjob_operator.core.crd import KUBERNETES_TYPED, Schema, build_crd
from filterjob_worker.core.catalog import CATALOG

_HEADER = """\
# FilterJob reference

`apiVersion: filterjob.dev/v1alpha1`, `kind: FilterJob`, short name `fj`. Generated from
the CustomResourceDefinition and the filter catalog by `filterjob crd --reference`; do
not edit by hand.

Besides the schema below, the API server checks these rules (CEL) on every write:

"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(node: Schema) -> str:
    kind = str(node.get("type", "object"))
    if kind == "array":
        return f"array of {node.get('items', {}).get('type', 'object')}"
    return kind


def _limits(node: Schema) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None:
        parts.append(f"{'>' if node.get('exclusiveMinimum') else '≥'} {low:g}")
    if high is not None:
        parts.append(f"≤ {high:g}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    if "minItems" in node or "maxItems" in node:
        parts.append(f"{node.get('minItems', 0)} to {node.get('maxItems', 'any number of')} items")
    return "; ".join(parts)


def _rows(node: Schema, path: str, required: frozenset[str]) -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        if field.startswith("spec.filters[].") and name != "name":
            continue  # filter parameters: their own table, per filter
        default = f"`{_default(child['default'])}`" if "default" in child else ""
        need = "yes" if name in required else ""
        description = _cell(child.get("description", ""))
        if field == "spec.filters[].name":
            description = "The filter; see the filter catalog below."
        kind = _type(child)
        if field in KUBERNETES_TYPED:
            kind = f"{kind} ({KUBERNETES_TYPED[field]}, Kubernetes core/v1)"
        yield f"| `{field}` | {kind} | {need} | {default} | {_cell(_limits(child))} | {description} |"
        if field in KUBERNETES_TYPED:
            continue  # its fields are Kubernetes' own (kubectl explain pod.spec...)
        if child.get("type") == "array" and "properties" in child.get("items", {}):
            items = child["items"]
            yield from _rows(items, f"{field}[]", frozenset(items.get("required", [])))
        elif "properties" in child:
            yield from _rows(child, field, frozenset(child.get("required", [])))


def _default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table(node: Schema, path: str) -> list[str]:
    return [
        "| field | type | required | default | limits | description |",
        "|---|---|---|---|---|---|",
        *_rows(node, path, frozenset(node.get("required", []))),
    ]


def _catalog() -> list[str]:
    lines = [
        "| filter | parameter | type and range | description |",
        "|---|---|---|---|",
    ]
    for fdef in CATALOG.values():
        lines.append(f"| `{fdef.name}` | | | {_cell(fdef.description)} |")
        lines.extend(
            f"| | `{param.name}` | {_cell(param.summary())} | {_cell(param.description)} |" for param in fdef.params
        )
        if problem := fdef.check({}):
            lines.append(f"| | | | {_cell(problem)} |")
    return lines


def render_reference(crd: Schema | None = None) -> str:
    """The reference page (pure)."""
    crd = build_crd() if crd is None else crd
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec, status = root["properties"]["spec"], root["properties"]["status"]
    out = [_HEADER.rstrip("\n"), ""]
    out += [f"- {_cell(rule['message'])}" for rule in root.get("x-kubernetes-validations", [])]
    out += [
        f"- `{path}`: {_cell(rule['message'])}"
        for path, node in _nodes_with_rules(spec, "spec")
        for rule in node["x-kubernetes-validations"]
    ]
    out += ["- each filter takes only its own parameters, within the ranges of the catalog below", ""]
    out += ["## spec", "", *_table(spec, "spec"), ""]
    out += ["## Filter catalog", "", "Each entry of `spec.filters` is `name` plus that filter's parameters.", ""]
    out += [*_catalog(), ""]
    out += ["## status", "", "Written by the operator; read it with `kubectl get fj NAME -o yaml`.", ""]
    out += [*_table(status, "status"), ""]
    return "\n".join(out)


def _nodes_with_rules(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Fields with CEL rules (filter items aside: the catalog says theirs), with their paths."""
    for name, child in node.get("properties", {}).items():
        if child.get("x-kubernetes-validations"):
            yield f"{path}.{name}", child
        yield from _nodes_with_rules(child, f"{path}.{name}")
