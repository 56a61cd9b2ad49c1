"""The pinned Go tooling of the control-plane binaries (tools/k8s): where it is, what it builds, and
what its go.mod files require."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "k8s"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def directives(go_mod: Path, keyword: str) -> list[str]:
    """The lines of a go.mod directive, whether written as one line or as a ( ) block."""
    text = go_mod.read_text()
    lines = re.findall(rf"^{keyword} ([^(\n].*)$", text, re.MULTILINE)
    for block in re.findall(rf"^{keyword} \(\n(.*?)^\)", text, re.MULTILINE | re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return [line.split("//")[0].strip() for line in lines]


def required(go_mod: Path, module: str) -> str:
    versions = [line.split()[1] for line in directives(go_mod, "require") if line.split()[0] == module]
    assert len(versions) == 1, f"{go_mod} requires {module} {len(versions)} times"
    return versions[0]
