"""Apply -> Succeeded on a real cluster (kind, k3d, the dev cluster, ...). Opt-in, skipped otherwise.

Prerequisites: the operator installed on the cluster (README "Installing on a cluster"), a
RabbitMQ reachable from the cluster, the broker Secret ``filterjob-broker`` in the test namespace,
and the images, in one of two ways:

* a ReadWriteMany PVC ``FILTERJOB_E2E_PVC`` (default ``photos``) mounted by the workers at
  ``/data``, with images under ``/data/in``::

    FILTERJOB_E2E=1 KUBECONFIG=~/.kube/config FILTERJOB_E2E_NAMESPACE=photos \\
        FILTERJOB_E2E_PVC=photos .venv/bin/pytest tests/e2e -m e2e

* a folder of the node's own, ``FILTERJOB_E2E_HOST_PATH``, mounted as a hostPath volume at
  that same path, with images under ``<folder>/in``: the dev cluster (scripts/dev-cluster.sh,
  whose pods see this machine's files), where the outputs are also checked on disk::

    FILTERJOB_E2E=1 KUBECONFIG=$PWD/.dev-cluster/admin.kubeconfig FILTERJOB_E2E_NAMESPACE=photos \\
        FILTERJOB_E2E_HOST_PATH=/tmp/filterjob-dev .venv/bin/pytest tests/e2e -m e2e
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.realjob import run_a_job_to_succeeded

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("FILTERJOB_E2E") and os.environ.get("KUBECONFIG")),
        reason="needs a real cluster: set FILTERJOB_E2E=1 and KUBECONFIG",
    ),
]


def test_apply_runs_to_succeeded_on_a_real_cluster() -> None:
    run_a_job_to_succeeded()
