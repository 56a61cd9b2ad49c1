"""docs/reference.md is the reference rendered from the CRD and the catalog, and says everything."""

from __future__ import annotations

from pathlib import Path

from filterjob_operator.core.crd import KUBERNETES_TYPED, build_crd
from filterjob_operator.core.reference import render_reference
from filterjob_worker.core.catalog import CATALOG

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def _fields(node: dict, path: str) -> list[str]:
    out = []
    for name, child in node.get("properties", {}).items():
        field = f"{path}.{name}"
        out.append(field)
        if field in KUBERNETES_TYPED:
            continue  # a Kubernetes type: one row naming it (kubectl explain has the rest)
        items = child.get("items", {})
        if child.get("type") == "array" and "properties" in items:
            out += [f for f in _fields(items, f"{field}[]") if f == f"{field}[].name"]
        else:
            out += _fields(child, field)
    return out


def test_the_committed_reference_is_the_rendered_one() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/reference.md is stale: run `filterjob crd --reference > docs/reference.md`"
    )


def test_every_field_of_spec_and_status_has_a_row_with_its_description() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    page = render_reference()
    for part in ("spec", "status"):
        for field in _fields(root["properties"][part], part):
            assert f"| `{field}` |" in page, field


def test_kubernetes_typed_fields_name_their_type() -> None:
    page = render_reference()
    for field, kind in KUBERNETES_TYPED.items():
        assert f"| `{field}` | " in page
        row = next(line for line in page.splitlines() if line.startswith(f"| `{field}` |"))
        assert f"({kind}, Kubernetes core/v1)" in row, row
    assert "spec.workers.affinity.nodeAffinity" not in page


def test_every_filter_and_parameter_is_listed_with_its_range() -> None:
    page = render_reference()
    for fdef in CATALOG.values():
        assert f"| `{fdef.name}` |" in page
        for param in fdef.params:
            summary = param.summary().replace("|", "\\|")
            assert f"| `{param.name}` | {summary} |" in page, (fdef.name, param.name)


def test_cel_rule_messages_are_listed() -> None:
    page = render_reference()
    assert "minReplicas must not exceed maxReplicas" in page
    assert "immutable once the job has started" in page
    assert "- `spec.workers.env`: must not set the variables the operator sets" in page


def test_defaults_and_limits_come_from_the_schema() -> None:
    crd = build_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["retry"]["properties"]["maxAttempts"]["default"] = 7
    assert "| `spec.retry.maxAttempts` | integer |  | `7` | ≥ 1; ≤ 100 |" in render_reference(crd)
