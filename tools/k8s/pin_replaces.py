"""Turn a Kubernetes release's go.mod (as `go mod edit -json` prints it) into `go mod edit` flags.

k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and
replaces each with a folder of its own tree. Replace directives of a dependency are ignored, so a
module that builds k8s.io/kubernetes must replace each staging module with its published release
(v1.X.Y is published as v0.X.Y), and use the same godebug settings the release was built with.
The set of staging modules changes between releases, so it is read from the release, not listed here.

Usage: go mod edit -json RELEASE/go.mod | python3 pin_replaces.py v1.X.Y  (prints one flag a line)
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

RELEASE = re.compile(r"v1\.(\d+\.\d+(?:-[0-9A-Za-z.-]+)?)")
STAGING = "./staging/src/"


class PinError(Exception):
    """The release's go.mod has something this pinning does not know how to carry over."""


def staging_version(release: str) -> str:
    """v1.37.2 -> v0.37.2: the staging modules are tagged with the same minor and patch."""
    match = RELEASE.fullmatch(release)
    if match is None:
        raise PinError(f"{release!r} is not a Kubernetes release version like v1.37.2")
    return f"v0.{match.group(1)}"


def edit_flags(release_mod: dict[str, Any], release: str) -> list[str]:
    """The `go mod edit` flags that make a module build k8s.io/kubernetes at `release`."""
    staging = staging_version(release)
    flags = [f"-go={release_mod['Go']}", f"-require=k8s.io/kubernetes@{release}"]
    for replace in release_mod.get("Replace") or []:
        old, new = replace["Old"], replace["New"]
        if new["Path"].startswith(STAGING):
            flags.append(f"-replace={old['Path']}={old['Path']}@{staging}")
        elif new.get("Version"):
            # A module-to-module replace holds for the release's build, so it must hold for ours.
            flags.append(f"-replace={old['Path']}={new['Path']}@{new['Version']}")
        else:
            raise PinError(f"{old['Path']} is replaced by the folder {new['Path']}, which is not a published module")
    # Excludes of a dependency are ignored too; carry them over for the same reason.
    flags.extend(f"-exclude={entry['Path']}@{entry['Version']}" for entry in release_mod.get("Exclude") or [])
    flags.extend(f"-godebug={entry['Key']}={entry['Value']}" for entry in release_mod.get("GoDebug") or [])
    return flags


def main() -> int:
    try:
        flags = edit_flags(json.load(sys.stdin), sys.argv[1])
    except PinError as error:
        print(f"pin: {error}", file=sys.stderr)
        return 2
    print("\n".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
