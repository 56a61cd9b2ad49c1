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

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
