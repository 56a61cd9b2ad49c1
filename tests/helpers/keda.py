"""KEDA's own CRDs, taken from KEDA's Go module at test time (never copied into this repository).

``go mod download`` fetches ``github.com/kedacore/keda/v2`` at :data:`VERSION` from the Go module
proxy into the project's Go module cache (tools/k8s/env.sh: the cache the Kubernetes binaries are
built from), once; later runs find it there. Without Go, or with the proxy unreachable and nothing
cached, the test that asks fails saying so: nothing is skipped.

:func:`problems` checks an object against a CRD's ``openAPIV3Schema`` as the API server would,
without a cluster: a JSON Schema validator (structural schemas are draft-4 compatible) for types,
enums and required fields, and a walk for fields the schema does not know, which the API server
would drop without a word (a misspelt field must fail here, not vanish there).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULE, VERSION = "github.com/kedacore/keda/v2", "v2.21.0"
#: The CRDs of the two kinds the operator creates, by plural, in KEDA's module.
CRD_FILES = {
    "scaledobjects": "config/crd/bases/keda.sh_scaledobjects.yaml",
    "triggerauthentications": "config/crd/bases/keda.sh_triggerauthentications.yaml",
}


@functools.cache
def module_dir() -> Path:
    """KEDA's module, downloaded (or found in the Go module cache) with the project's Go env."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("no bash on PATH, needed to source tools/k8s/env.sh (the project's Go env)")
    with tempfile.TemporaryDirectory(prefix="keda-module-") as outside:  # no go.mod around: a plain download
        try:
            done = subprocess.run(
                [
                    bash,
                    "-c",
                    f'source "$1" && GOFLAGS=-mod=mod go mod download -json {MODULE}@{VERSION}',
                    "bash",
                    str(ROOT / "tools" / "k8s" / "env.sh"),
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=outside,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"go mod download {MODULE}@{VERSION} took over 300 s: is the Go module proxy reachable?")
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()
        pytest.fail(
            f"cannot get KEDA's CRDs: go mod download {MODULE}@{VERSION} failed (exit {done.returncode}); "
            f"it needs Go on PATH and the Go module proxy (or the module in the Go module cache): {said}"
        )
    return Path(json.loads(done.stdout)["Dir"])


def crd_paths() -> dict[str, Path]:
    """The CRD files, by plural."""
    return {plural: module_dir() / path for plural, path in CRD_FILES.items()}


@functools.cache
def schema(plural: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of KEDA's ``v1alpha1`` of ``plural``."""
    crd = yaml.safe_load(crd_paths()[plural].read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def unknown_fields(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Paths of fields that ``node`` neither declares nor lets pass (what the API server would prune)."""
    if isinstance(value, dict) and node.get("type") == "object":
        # The object's own metadata is the API server's ObjectMeta, not in the CRD's schema.
        if node.get("x-kubernetes-preserve-unknown-fields") or path == ".metadata":
            return []
        props: dict[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties")
        found = []
        for key, child in value.items():
            where = f"{path}.{key}"
            if key in props:
                found += unknown_fields(child, props[key], where)
            elif isinstance(extra, dict):
                found += unknown_fields(child, extra, where)
            else:
                found.append(where)
        return found
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [p for i, item in enumerate(value) for p in unknown_fields(item, node["items"], f"{path}[{i}]")]
    return []


def problems(plural: str, manifest: dict[str, Any]) -> list[str]:
    """What KEDA's CRD schema of ``plural`` has against ``manifest`` (nothing: valid)."""
    checked = schema(plural)
    found = [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in jsonschema.Draft4Validator(checked).iter_errors(manifest)
    ]
    return found + [
        f"{p}: not in KEDA's schema (the API server would drop it)" for p in unknown_fields(manifest, checked)
    ]
