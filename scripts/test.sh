#!/usr/bin/env bash
# Install the test dependencies into .venv, then run every check and the whole test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

scripts/ensure-rabbitmq.sh
scripts/ensure-helm.sh >/dev/null  # helm (and kubectl) into .venv/bin for the chart tests
# kube-apiserver, -controller-manager, -scheduler and etcd for the control-plane tests: built from
# the Go module proxy the first time (10-15 minutes on 2 cores), then well under a second.
scripts/ensure-k8s-binaries.sh >/dev/null
# The locked wheels into their cache, so that tests/integration/test_wheel.py downloads nothing.
wheels="$(mktemp -d)" && scripts/make-wheelhouse.sh "$wheels/wheelhouse" >/dev/null && rm -rf "$wheels"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
