#!/usr/bin/env bash
# Fill DEST with the wheels the image installs: every package of requirements.lock, for
# each PLATFORM (default: this machine's), checked against the lock's hashes, and the
# filterjob wheel built from this tree. The image's builder installs from DEST with
# --no-index, so a build reaches no package index and installs exactly what the lock names.
#
# Usage: scripts/make-wheelhouse.sh DEST [PLATFORM...]   PLATFORM: linux/amd64, linux/arm64
#   PYTHON_VERSION: the base image's Python (default 3.11, Debian bookworm's and the
#   Dockerfile's default base); the downloaded wheels are for CPython of that version.
# Downloads are kept in ${XDG_CACHE_HOME:-~/.cache}/filterjob/wheels/<lock hash>/<platform>,
# so a second run (and a second build) downloads nothing.
set -euo pipefail

dest=${1:?usage: make-wheelhouse.sh DEST [PLATFORM...]}
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
lock="$root/requirements.lock"
python=${PYTHON:-python3}
pyver=${PYTHON_VERSION:-3.11}
if [[ $# == 0 ]]; then
  case "$(uname -m)" in
    x86_64) set -- linux/amd64 ;;
    aarch64 | arm64) set -- linux/arm64 ;;
    *) echo "make-wheelhouse: no wheels for $(uname -m); give a PLATFORM (linux/amd64 or linux/arm64)" >&2; exit 2 ;;
  esac
fi

key=$(sha256sum "$lock" | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/filterjob/wheels/$key"
rm -rf "$dest"
mkdir -p "$dest"
for platform in "$@"; do
  case "$platform" in
    linux/amd64) arch=x86_64 ;;
    linux/arm64) arch=aarch64 ;;
    *) echo "make-wheelhouse: unknown platform '$platform'; use linux/amd64 or linux/arm64" >&2; exit 2 ;;
  esac
  dir="$cache/${platform//\//-}"
  if [[ ! -f "$dir/.complete" ]]; then
    # Downloaded into a folder of this run's own, then renamed: concurrent runs (other
    # worktrees share the cache) never see, or mix, a half download.
    mkdir -p "$cache"
    partial=$(mktemp -d "$dir.partial.XXXXXX")
    # Binary wheels only, for the base image's glibc (bookworm: 2.36) and CPython; pure
    # Python wheels match any platform. --require-hashes: a file whose hash the lock does
    # not list fails the download.
    tags=()
    for glibc in manylinux_2_34 manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
      tags+=(--platform "${glibc}_$arch")
    done
    if ! "$python" -m pip download --quiet --no-input --disable-pip-version-check --no-deps --require-hashes \
      --only-binary=:all: --implementation cp --python-version "$pyver" "${tags[@]}" \
      -r "$lock" -d "$partial" >&2; then
      rm -rf "$partial"
      echo "make-wheelhouse: the locked wheels for $platform could not be downloaded (pip said why, above)" >&2
      exit 1
    fi
    touch "$partial/.complete"
    mv -T "$partial" "$dir" 2>/dev/null || rm -rf "$partial"  # another run was first: keep its folder
  fi
  cp "$dir"/*.whl "$dest"/
done
# The project's own wheel, from a copy of the files it is built from (a build in place would
# leave build/ and *.egg-info behind, and pick up an editable install's egg-info). Its files
# get one fixed date (1980-01-01, the earliest a zip holds), so the same sources give the same
# wheel, byte for byte, whatever the commit, and a rebuild of the image reuses its cached layers.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
tar -C "$root" --exclude=__pycache__ --exclude='*.egg-info' --exclude='*.py[cod]' \
  -c pyproject.toml README.md operator worker | tar -C "$src" -x
SOURCE_DATE_EPOCH=315532800 \
  "$python" -m pip wheel --quiet --no-input --disable-pip-version-check --no-deps --wheel-dir "$dest" "$src" >&2
