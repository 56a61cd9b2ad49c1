"""Fixtures for the Kubernetes tests, all on the real control plane (``control_plane``,
tests/helpers/controlplane.py): the ones of tests/helpers/realcluster.py (see its docstring: the
admin's client, a fresh namespace per test, the broker Secret, the kubelet harness, the chart
installed with ``helm install`` and the operator run as its ServiceAccount), and the hook that
keeps a test's reports for :func:`tests.helpers.outcomes.passed`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.helpers.brokerthread import BrokerThread
from tests.helpers.outcomes import REPORTS
from tests.helpers.realcluster import (  # noqa: F401 -- fixtures, found by pytest by name
    broker_secret,
    cluster_api,
    cluster_kubelet,
    cluster_namespace,
    created,
    filterjob_operator,
    kube,
    operator_release,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def broker_thread() -> Iterator[BrokerThread]:
    """Broker connections that outlive one call (deliveries held unacked), closed after the test."""
    running = BrokerThread()
    yield running
    running.close()
