"""The test suite's own layout: shared helpers live in tests/helpers, so any test module runs alone.

A test module that imports another test module (or a conftest) runs that module's import-time code,
re-registers its fixtures and ties the two together; helpers are imported from tests.helpers only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
