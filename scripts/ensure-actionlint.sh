#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) if it is not built yet, and print its path.
# It comes from the Go module proxy at the pinned version, built with the Go on PATH (about a
# minute the first time), into ${XDG_CACHE_HOME:-$HOME/.cache}/filterjob/actionlint/VERSION/,
# never into the repository. Idempotent; atomic (built under a temporary folder, then renamed).
set -euo pipefail

VERSION=v1.7.12
dir="${XDG_CACHE_HOME:-$HOME/.cache}/filterjob/actionlint/$VERSION"
if [[ -x "$dir/actionlint" ]]; then
  echo "$dir/actionlint"
  exit 0
fi
command -v go >/dev/null || { echo "ensure-actionlint: needs Go on PATH to build actionlint $VERSION" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
work=$(mktemp -d "$dir.partial.XXXXXX")
trap 'rm -rf "$work"' EXIT
GOBIN="$work" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$VERSION" >&2
"$work/actionlint" -version | head -1 | grep -qx "$VERSION" || { echo "ensure-actionlint: the built actionlint is not $VERSION" >&2; exit 1; }
# Another run may have finished first: keep its binary, ours goes with the temporary folder.
mv -T "$work" "$dir" 2>/dev/null || true
echo "$dir/actionlint"
