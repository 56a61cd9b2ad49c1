"""scripts/coverage-floor.py: every module under the floor named, whatever the total."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "coverage-floor.py"


def floor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_floor", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(**percents: float) -> dict[str, Any]:
    """A ``coverage json`` document with one file per keyword (``__`` for ``/``)."""
    files = {f"{name.replace('__', '/')}.py": {"summary": {"percent_covered": p}} for name, p in percents.items()}
    return {"totals": {"percent_covered": 95.0}, "files": files}


def run(tmp_path: Path, document: object) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps(document))
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=False)


def test_modules_under_the_floor_are_listed_lowest_first() -> None:
    under = floor_script().under_floor(report(a=100.0, b=74.99, c=75.0, d=12.5))
    assert under == [("d.py", 12.5), ("b.py", 74.99)]


def test_the_script_names_each_module_under_the_floor_and_fails(tmp_path: Path) -> None:
    done = run(tmp_path, report(operator__x=60.0, operator__y=99.0, worker__z=74.5))

    assert done.returncode == 1
    assert "operator/x.py covers 60.0% of its lines, under 75%" in done.stderr
    assert "worker/z.py covers 74.5% of its lines, under 75%" in done.stderr
    assert "operator/y.py" not in done.stderr


def test_the_script_passes_when_every_module_holds(tmp_path: Path) -> None:
    done = run(tmp_path, report(a=75.0, b=100.0))
    assert done.returncode == 0, done.stderr
    assert "every module covers at least 75%" in done.stdout


@pytest.mark.parametrize("document", [[], {"files": {"a.py": {}}}, "not a report"])
def test_a_file_that_is_no_report_exits_two_without_a_traceback(tmp_path: Path, document: object) -> None:
    done = run(tmp_path, document)
    assert done.returncode == 2
    assert "cannot read" in done.stderr
    assert "Traceback" not in done.stderr
