#!/usr/bin/env python3
"""Enforce the per-module coverage floor on a combined measurement (``scripts/test.sh`` runs it).

No module of ``filterjob_operator`` and ``filterjob_worker`` may be under MODULE_FLOOR percent of
its lines, so a total that is high enough cannot hide a module nobody tests. The total's floor is
``fail_under`` in pyproject.toml, which ``coverage report`` enforces.

Usage: .venv/bin/python scripts/coverage-floor.py COVERAGE.json   (written by ``coverage json``)
Exits 0 when every module holds, 1 naming each one under the floor, 2 when the file cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MODULE_FLOOR = 75.0


def under_floor(report: dict[str, Any], *, floor: float = MODULE_FLOOR) -> list[tuple[str, float]]:
    """The modules of ``report`` (a ``coverage json`` document) under ``floor``, lowest first."""
    modules = [(name, float(entry["summary"]["percent_covered"])) for name, entry in report["files"].items()]
    return sorted(((name, percent) for name, percent in modules if percent < floor), key=lambda m: (m[1], m[0]))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: coverage-floor.py COVERAGE.json (written by `coverage json`)", file=sys.stderr)
        return 2
    try:
        under = under_floor(json.loads(Path(argv[0]).read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"coverage floor: cannot read {argv[0]} as a `coverage json` report: {e!r}", file=sys.stderr)
        return 2
    for name, percent in under:
        print(f"coverage floor: {name} covers {percent:.1f}% of its lines, under {MODULE_FLOOR:g}%", file=sys.stderr)
    if under:
        print(f"coverage floor: {len(under)} module(s) under {MODULE_FLOOR:g}%: add tests for them", file=sys.stderr)
        return 1
    print(f"coverage floor: every module covers at least {MODULE_FLOOR:g}% of its lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
