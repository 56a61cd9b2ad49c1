"""The pinned Go tooling that builds the control-plane binaries (tools/k8s, scripts/ensure-k8s-binaries.sh).

pin_replaces.py turns a Kubernetes release's go.mod into the ``go mod edit`` flags of tools/k8s/go.mod;
the committed go.mod files must stay what that pinning makes of them.
"""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.k8s_tooling import COMPONENTS, TOOLS, directives, required


def load_pin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pin_replaces", TOOLS / "pin_replaces.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pin = load_pin()


def staging(old: str) -> dict[str, Any]:
    return {"Old": {"Path": old}, "New": {"Path": f"./staging/src/{old}"}}


#: `go mod edit -json` of a release's go.mod, trimmed to the fields the pinning reads.
RELEASE_MOD: dict[str, Any] = {
    "Module": {"Path": "k8s.io/kubernetes"},
    "Go": "1.26.0",
    "GoDebug": [{"Key": "default", "Value": "go1.26"}, {"Key": "winsymlink", "Value": "0"}],
    "Exclude": [{"Path": "example.org/broken", "Version": "v1.2.3"}],
    "Replace": [
        staging("k8s.io/api"),
        staging("k8s.io/client-go"),
        {"Old": {"Path": "example.org/fork"}, "New": {"Path": "example.org/fixed", "Version": "v0.4.0"}},
    ],
}


@pytest.mark.parametrize(
    ("release", "expected"),
    [("v1.37.2", "v0.37.2"), ("v1.40.11", "v0.40.11"), ("v1.38.0-beta.0", "v0.38.0-beta.0")],
)
def test_staging_modules_are_tagged_v0_with_the_release_minor_and_patch(release: str, expected: str) -> None:
    assert pin.staging_version(release) == expected


@pytest.mark.parametrize("release", ["1.37.2", "v2.0.0", "v1.37", "v1.37.2; rm -rf /", "latest"])
def test_a_version_that_is_not_a_kubernetes_release_is_refused(release: str) -> None:
    with pytest.raises(pin.PinError, match="not a Kubernetes release version"):
        pin.staging_version(release)


def test_every_staging_module_is_replaced_by_its_release_and_the_godebug_copied() -> None:
    assert pin.edit_flags(RELEASE_MOD, "v1.37.2") == [
        "-go=1.26.0",
        "-require=k8s.io/kubernetes@v1.37.2",
        "-replace=k8s.io/api=k8s.io/api@v0.37.2",
        "-replace=k8s.io/client-go=k8s.io/client-go@v0.37.2",
        "-replace=example.org/fork=example.org/fixed@v0.4.0",
        "-exclude=example.org/broken@v1.2.3",
        "-godebug=default=go1.26",
        "-godebug=winsymlink=0",
    ]


def test_a_release_without_replaces_or_godebug_pins_just_the_release() -> None:
    bare = {"Go": "1.25.0", "Replace": None, "GoDebug": None, "Exclude": None}
    assert pin.edit_flags(bare, "v1.34.0") == ["-go=1.25.0", "-require=k8s.io/kubernetes@v1.34.0"]


def test_a_replace_by_a_folder_outside_staging_cannot_be_carried_over() -> None:
    release = {**RELEASE_MOD, "Replace": [{"Old": {"Path": "example.org/x"}, "New": {"Path": "../x"}}]}
    with pytest.raises(pin.PinError, match=r"example.org/x is replaced by the folder \.\./x"):
        pin.edit_flags(release, "v1.37.2")


def test_the_committed_kubernetes_pin_replaces_each_staging_module_at_the_pinned_release() -> None:
    go_mod = TOOLS / "go.mod"
    release = required(go_mod, "k8s.io/kubernetes")
    minor = int(release.split(".")[1])
    assert minor >= 34, "the tests need Kubernetes 1.34 or newer"
    replaces = {old: new for old, _, new in (line.partition(" => ") for line in directives(go_mod, "replace"))}
    # The staging set of 1.37 (33 modules); a release that drops one drops its replace too.
    assert len(replaces) >= 30
    assert "k8s.io/apiserver" in replaces
    assert "k8s.io/client-go" in replaces
    for old, new in replaces.items():
        assert new == f"{old} {pin.staging_version(release)}", f"tools/k8s/go.mod: {old} => {new}"
    assert directives(go_mod, "godebug"), "the release's godebug line was not copied"
    assert sorted(directives(go_mod, "tool")) == [f"k8s.io/kubernetes/cmd/{name}" for name in COMPONENTS]


def test_the_committed_etcd_pin_is_a_server_of_3_6_or_newer() -> None:
    go_mod = TOOLS / "etcd" / "go.mod"
    version = required(go_mod, "go.etcd.io/etcd/server/v3")
    assert re.fullmatch(r"v3\.(\d+)\.\d+", version), version
    assert int(version.split(".")[1]) >= 6, f"etcd {version} is older than Kubernetes supports"
    assert directives(go_mod, "tool") == ["go.etcd.io/etcd/server/v3"]
    assert not directives(go_mod, "replace")


def test_the_readme_names_the_pinned_versions() -> None:
    readme = (TOOLS / "README.md").read_text()
    assert f"Kubernetes {required(TOOLS / 'go.mod', 'k8s.io/kubernetes')}" in readme
    assert f"etcd {required(TOOLS / 'etcd' / 'go.mod', 'go.etcd.io/etcd/server/v3')}" in readme
