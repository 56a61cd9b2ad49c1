#!/usr/bin/env bash
# Install the test dependencies into .venv, then run every check and the whole test suite, and
# print its coverage; the whole suite must keep the coverage floor.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the quick subset (its
# coverage is printed, the floor not enforced).
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

# pytest under coverage, with every Python process the tests start ([tool.coverage.run] in
# pyproject.toml); the data files go to a folder of this run's own, outside the repository.
data=$(mktemp -d -t filterjob-coverage.XXXXXX)
trap 'rm -rf "$data"' EXIT
export COVERAGE_FILE="$data/.coverage"
tests=0
.venv/bin/coverage run -m pytest "$@" || tests=$?

# The table, lowest cover first. The floor (fail_under in pyproject.toml for the total, and
# scripts/coverage-floor.py for every module) holds the whole suite only: a subset run
# (any pytest arguments) measures less by design. A failing pytest's exit code wins.
floor=0
if ! .venv/bin/coverage combine --quiet; then
  echo "coverage: no data was recorded" >&2
  exit $((tests ? tests : 1))
fi
if [ $# -eq 0 ]; then
  .venv/bin/coverage report || floor=$?
  .venv/bin/coverage json --quiet --fail-under=0 -o "$data/coverage.json"
  .venv/bin/python scripts/coverage-floor.py "$data/coverage.json" || floor=$?
else
  .venv/bin/coverage report --fail-under=0
fi
exit $((tests ? tests : floor))
