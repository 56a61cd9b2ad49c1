"""The import contracts of pyproject.toml cover the packages whole: a module a layer does not name is
not checked at all (import-linter leaves it unconstrained), so a new module at the top of a package
must be given its layer, and every layer named must exist."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

import filterjob_operator
import filterjob_worker

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]
PACKAGES = {"filterjob_operator": filterjob_operator, "filterjob_worker": filterjob_worker}


def layers_of(container: str) -> list[set[str]]:
    """The modules each layer of the ``layers`` contract on ``container`` names, top first."""
    (contract,) = [c for c in CONTRACTS if c["type"] == "layers" and c["containers"] == [container]]
    return [{name.strip() for name in re.split(r"[|:]", layer)} for layer in contract["layers"]]


def top_modules(container: str) -> set[str]:
    return {module.name for module in pkgutil.iter_modules(PACKAGES[container].__path__)}


def unnamed(modules: set[str], layers: list[set[str]]) -> set[str]:
    return modules - set().union(*layers)


@pytest.mark.parametrize("container", sorted(PACKAGES))
def test_every_module_at_the_top_of_a_package_has_a_layer(container: str) -> None:
    layers = layers_of(container)
    assert unnamed(top_modules(container), layers) == set(), f"give these modules of {container} a layer"
    assert set().union(*layers) <= top_modules(container), f"a layer of {container} names no module"


def test_the_check_sees_a_module_no_layer_names() -> None:
    assert unnamed({"core", "adapters", "newcomer"}, [{"adapters"}, {"core"}]) == {"newcomer"}


def test_the_layers_run_from_the_entry_points_down_to_the_pure_core() -> None:
    assert layers_of("filterjob_operator") == [{"cli"}, {"local", "control", "watch"}, {"adapters"}, {"core"}]
    worker = layers_of("filterjob_worker")
    assert worker[1:] == [{"adapters"}, {"core"}]
    assert {"__main__", "service", "consumer", "processing", "config"} <= worker[0]


def test_local_mode_never_imports_the_control_plane() -> None:
    forbidden = [
        c for c in CONTRACTS if c["type"] == "forbidden" and c["source_modules"] == ["filterjob_operator.local"]
    ]
    assert [c["forbidden_modules"] for c in forbidden] == [["filterjob_operator.control"]]


def forbidden_of(source: str) -> set[str]:
    """What the ``forbidden`` contract on ``source`` forbids it."""
    (contract,) = [c for c in CONTRACTS if c["type"] == "forbidden" and c["source_modules"] == [source]]
    return set(contract["forbidden_modules"])


def worker_modules_but(*allowed: str) -> set[str]:
    """Every module at the top of the worker package but ``allowed``, by full name."""
    return {f"filterjob_worker.{name}" for name in top_modules("filterjob_worker") - set(allowed)}


def test_the_operator_core_imports_only_the_worker_core() -> None:
    # Named one by one (a forbidden contract on the whole package would forbid its core too),
    # so a new worker module must be added here or the operator's core could import it unchecked.
    assert forbidden_of("filterjob_operator.core") == worker_modules_but("core")


def test_the_operator_adapters_never_import_the_worker_service() -> None:
    service = {f"filterjob_worker.{name}" for name in layers_of("filterjob_worker")[0]}
    assert forbidden_of("filterjob_operator.adapters") == worker_modules_but("core", "adapters") == service
