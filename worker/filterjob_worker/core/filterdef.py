"""What a filter of the catalog is: its parameters, its rules across them, and its implementation.

The catalog (``catalog.CATALOG``) is a table of :class:`FilterDef`; the rules it uses across a
filter's parameters (:func:`one_given`, :func:`not_with`) are built here, each a Python check
with its CEL twin for the CRD, so a rule is said once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from filterjob_worker.core.params import JSONSchema, Param, Rule

Params = Mapping[str, Any]
Apply = Callable[[Image.Image, Params], Image.Image]


@dataclass(frozen=True, kw_only=True)
class FilterDef:
    """One filter: its name, documentation, parameters and implementation."""

    name: str
    description: str
    apply: Apply
    params: tuple[Param, ...] = ()
    #: Geometric filters move pixels (and so the alpha band with them).
    geometric: bool = False
    #: Cross-parameter rules (on the parameters given), checked after each parameter's own.
    rules: tuple[Rule, ...] = ()
    param_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_names", frozenset(p.name for p in self.params))

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """The filter's rules, then those of its parameters (what a value's schema cannot say)."""
        return (*self.rules, *(rule for param in self.params for rule in param.rules()))

    def check(self, given: Params) -> str | None:
        """The first cross-parameter rule the given parameters break, or None."""
        return next((rule.message for rule in self.rules if not rule.holds(given)), None)

    def schema(self) -> JSONSchema:
        """JSON Schema of one pipeline step using this filter."""
        props: JSONSchema = {"name": {"const": self.name, "description": self.description}}
        props.update({p.name: p.schema() for p in self.params})
        out: JSONSchema = {
            "type": "object",
            "title": self.name,
            "description": self.description,
            "properties": props,
            "required": ["name", *(p.name for p in self.params if p.required)],
            "additionalProperties": False,
        }
        return out


def _alternatives(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _has_any(names: tuple[str, ...]) -> str:
    return " || ".join(f"has(self.{name})" for name in names)


def one_given(*names: str) -> Rule:
    """At least one of these parameters is given."""
    return Rule(
        message=f"{_alternatives(names)} is required",
        holds=lambda params: any(name in params for name in names),
        cel=_has_any(names),
    )


def not_with(name: str, *others: str) -> Rule:
    """``name`` excludes every one of ``others``."""
    return Rule(
        message=f"give either {name} or {'/'.join(others)}, not both",
        holds=lambda params: name not in params or not any(other in params for other in others),
        cel=f"!has(self.{name}) || !({_has_any(others)})",
    )
