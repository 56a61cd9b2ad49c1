#!/usr/bin/env bash
# Build the filterjob wheel from a source tree and install it, with its dependencies,
# into a new virtualenv at DEST. The image's builder stage runs this script, and so
# does tests/integration/test_wheel.py: what the tests check is what the image runs.
#
# Usage: scripts/build-wheel-venv.sh DEST [SOURCE]
#   SOURCE: the source tree (default: this repository); it must not contain DEST.
#   PYTHON: the interpreter that creates the virtualenv (default: python3).
set -euo pipefail

dest=${1:?usage: build-wheel-venv.sh DEST [SOURCE]}
src=${2:-"$(dirname "$0")/.."}
python=${PYTHON:-python3}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$dest"
"$dest/bin/python" -m pip wheel --no-input --no-deps --wheel-dir "$wheels" "$src"
"$dest/bin/python" -m pip install --no-input "$wheels"/filterjob-*.whl
