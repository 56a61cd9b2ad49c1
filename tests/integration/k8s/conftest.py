"""Fixtures for the Kubernetes tests, all on the real control plane (``control_plane``,
tests/helpers/controlplane.py): the ones of realcluster.py (see its docstring: the admin's client,
a fresh namespace per test, the broker Secret, the kubelet harness, the chart installed with
``helm install`` and the operator run as its ServiceAccount), and :func:`passed` for fixtures
that act on a test's outcome.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from .realcluster import (  # noqa: F401 -- fixtures, found by pytest by name
    broker_secret,
    cluster_api,
    cluster_kubelet,
    cluster_namespace,
    created,
    filterjob_operator,
    kube,
    operator_release,
)

#: The reports of a test's phases ("setup", "call", "teardown"), for fixtures that act on the outcome.
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def passed(item: pytest.Item) -> bool:
    """Whether the test's setup and body passed (ask in a fixture's teardown)."""
    reports = item.stash.get(REPORTS, {})
    return all(when in reports and reports[when].passed for when in ("setup", "call"))
