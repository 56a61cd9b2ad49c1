"""The status schema, written in small pieces, is the one the repository's CRD holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from filterjob_operator.core import status
from filterjob_operator.core.statusschema import PHASES, status_schema

ROOT = Path(__file__).resolve().parents[2]


def committed_status() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "charts" / "filterjob" / "files" / "crd.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return found


def test_the_status_schema_is_the_committed_crds_key_for_key_and_in_order() -> None:
    committed = committed_status()
    built = status_schema()
    assert built == committed
    # The CRD is printed in insertion order: the same fields, in the same order, at every level.
    assert yaml.safe_dump(built, sort_keys=False) == yaml.safe_dump(committed, sort_keys=False)


def test_the_status_bounds_are_the_operators_own() -> None:
    properties = status_schema()["properties"]
    assert properties["skippedPaths"]["maxItems"] == status.SHOWN_SKIPPED
    assert properties["recentFailures"]["maxItems"] == status.RECENT_FAILURES
    assert properties["phase"]["enum"] == PHASES == [phase.value for phase in status.Phase]
