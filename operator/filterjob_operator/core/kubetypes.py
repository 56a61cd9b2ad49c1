"""Kubernetes types as CRD structural schemas, vendored in ``kubernetes-types.json``.

``scripts/vendor-kubernetes-types.py`` writes the file from Kubernetes' own OpenAPI
schemas; a test keeps it in sync. Read here so the CRD embeds exactly those shapes.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any

Schema = dict[str, Any]
FILE = "kubernetes-types.json"


@functools.cache
def _vendored() -> Schema:
    data: Schema = json.loads(
        importlib.resources.files("filterjob_operator.core").joinpath(FILE).read_text(encoding="utf-8")
    )
    return data


def schema(name: str, description: str | None = None) -> Schema:
    """A copy of the structural schema of ``core/v1`` type ``name``, e.g. ``Toleration``."""
    out: Schema = copy.deepcopy(_vendored()["types"][name])
    if description is not None:
        out["description"] = description
    return out
