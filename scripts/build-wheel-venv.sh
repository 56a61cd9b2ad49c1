#!/usr/bin/env bash
# Install filterjob into a new virtualenv at DEST from a wheelhouse (scripts/make-wheelhouse.sh):
# first the locked dependencies, checked against the lock's hashes, then the filterjob wheel
# with --no-deps, all with --no-index; then pip and setuptools leave the virtualenv, which
# needs neither to run. The image's builder stage runs this script, and so does
# tests/integration/test_wheel.py: what the tests check is what the image runs.
#
# Usage: scripts/build-wheel-venv.sh DEST WHEELHOUSE [LOCK]
#   LOCK: the lock file (default: requirements.lock next to this script's folder).
#   PYTHON: the interpreter that creates the virtualenv (default: python3).
set -euo pipefail

dest=${1:?usage: build-wheel-venv.sh DEST WHEELHOUSE [LOCK]}
wheels=${2:?usage: build-wheel-venv.sh DEST WHEELHOUSE [LOCK]}
lock=${3:-"$(dirname "$0")/../requirements.lock"}
python=${PYTHON:-python3}

pip() { "$dest/bin/python" -m pip --no-input --disable-pip-version-check "$@"; }

"$python" -m venv "$dest"
pip install --quiet --no-index --find-links "$wheels" --only-binary=:all: --require-hashes -r "$lock"
pip install --quiet --no-index --no-deps "$wheels"/filterjob-*.whl
# Every requirement of the wheel is met by the lock (a dependency missing from it fails here).
pip check
pip uninstall --quiet --yes pip setuptools
