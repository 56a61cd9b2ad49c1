"""The metrics tables of docs/operations.md name what the worker and the operator export: no more
(a metric documented and never exported reads as zero for ever), no less."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from filterjob_operator.adapters.metrics import OperatorMetrics
from filterjob_worker.metrics import WorkerMetrics

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `(?P<name>filterjob_\w+)` \| (?P<type>\w+) \|", re.M)


def documented(section: str) -> dict[str, str]:
    """Metric name → type, from the table under the paragraph that starts with ``section``."""
    text = OPERATIONS.read_text().split("## Metrics", 1)[1]
    table = text.split(f"\n{section} (", 1)[1].split("\n\n", 2)[1]
    return {row["name"]: row["type"] for row in ROW.finditer(table)}


def exported(registry: CollectorRegistry) -> dict[str, str]:
    """Metric name → type, as a scrape shows it (a counter ``c`` as ``c_total``)."""
    return {f"{m.name}_total" if m.type == "counter" else m.name: m.type for m in registry.collect()}


@pytest.mark.parametrize(
    ("section", "registry"),
    [("Worker", lambda: WorkerMetrics().registry), ("Operator", lambda: OperatorMetrics().registry)],
)
def test_the_metrics_tables_name_what_is_exported(section: str, registry: Callable[[], CollectorRegistry]) -> None:
    assert documented(section) == exported(registry())


def test_the_table_reader_sees_every_row() -> None:
    assert "filterjob_queue_messages" in documented("Operator")
    assert "filterjob_tasks_total" not in documented("Operator")
    assert documented("Worker")["filterjob_task_duration_seconds"] == "histogram"
