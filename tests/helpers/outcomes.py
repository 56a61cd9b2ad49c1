"""A test's outcome, for fixtures that act on it: the reports of its phases, stashed on the item by
the ``pytest_runtest_makereport`` hook of tests/integration/k8s/conftest.py."""

from __future__ import annotations

import pytest

#: The reports of a test's phases ("setup", "call", "teardown"), for fixtures that act on the outcome.
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def passed(item: pytest.Item) -> bool:
    """Whether the test's setup and body passed (ask in a fixture's teardown)."""
    reports = item.stash.get(REPORTS, {})
    return all(when in reports and reports[when].passed for when in ("setup", "call"))
