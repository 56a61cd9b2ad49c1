"""What the operator may call on the Kubernetes API, as recorded in ``operator-api-usage.json``.

Triples ``(apiGroup, resource[/subresource], verb)`` as RBAC rules name them (see
``ClusterEmulator.rbac_usage``). ``test_operator.py`` keeps the file true to what the
operator does; ``tests/integration/test_chart.py`` keeps the chart's rules equal to it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

Triple = tuple[str, str, str]
PATH = Path(__file__).with_name("operator-api-usage.json")
ROOT = Path(__file__).resolve().parents[3]
#: Where the rules that grant these calls are written.
CHART_RULES = "charts/filterjob/templates/_helpers.tpl"


@dataclasses.dataclass(frozen=True)
class ApiUsage:
    #: Every call of the operator watching all namespaces (the operator tests make each one).
    calls: frozenset[Triple]
    #: Calls only made when watching a list of namespaces (kopf follows which of them exist).
    calls_watching_namespaces: frozenset[Triple]
    #: Not calls: what admission plugins check when the operator creates its children.
    admission: frozenset[Triple]

    def all(self) -> frozenset[Triple]:
        return self.calls | self.calls_watching_namespaces | self.admission


def _triples(items: list[list[str]]) -> frozenset[Triple]:
    triples = [(group, resource, verb) for group, resource, verb in items]
    assert len(set(triples)) == len(triples), f"duplicates in {PATH.name}"
    assert triples == sorted(triples), f"keep {PATH.name} sorted"
    return frozenset(triples)


def load() -> ApiUsage:
    data = json.loads(PATH.read_text(encoding="utf-8"))
    return ApiUsage(
        calls=_triples(data["calls"]),
        calls_watching_namespaces=_triples(data["callsWatchingNamespaces"]),
        admission=_triples(data["admission"]),
    )


def update_hint() -> str:
    return (
        f"if the change is meant, update {PATH.relative_to(ROOT)} and the RBAC rules in {CHART_RULES} together "
        "(tests/integration/test_chart.py checks that the two agree)"
    )
