"""The test suite's own rules, so that any test runs alone, in any order, next to other runs.

Shared helpers live in tests/helpers: a test module that imports another test module (or a conftest)
runs that module's import-time code, re-registers its fixtures and ties the two together. And what a
test declares on the shared broker has a name of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import load_job
from tests.helpers.jobfiles import write_job

TESTS = Path(__file__).resolve().parents[1]
MODULES = sorted(p for p in TESTS.rglob("*.py") if ".venv" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    return imported_modules_of(path.read_text(), path)


def is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (last.startswith("test_") or last == "conftest")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(TESTS).as_posix())
def test_no_module_of_the_suite_imports_a_test_module_or_a_conftest(path: Path) -> None:
    wrong = sorted(m for m in imported_modules(path) if is_test_module(m))
    assert not wrong, f"{path.relative_to(TESTS)} imports {wrong}: move what it needs into tests/helpers"


def test_the_check_sees_relative_and_absolute_imports() -> None:
    sample = TESTS / "integration" / "broker" / "test_sample.py"
    source = "from .conftest import X\nfrom tests.unit import test_crd\nimport tests.e2e.test_cluster\n"
    parsed = imported_modules_of(source, sample)
    assert {m for m in parsed if is_test_module(m)} == {
        "tests.integration.broker.conftest",
        "tests.unit.test_crd",
        "tests.e2e.test_cluster",
    }


def imported_modules_of(source: str, path: Path) -> set[str]:
    """Every module ``source`` (the text of ``path``) imports, relative imports resolved against its package."""
    package = ["tests", *path.relative_to(TESTS).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_job_files_of_one_name_get_queues_of_their_own(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    one = topology_of(load_job(write_job(first, "same"), local=True))
    other = topology_of(load_job(write_job(second, "same"), local=True))
    assert one.base != other.base
    assert ".same-" in one.base
