"""Typed filter parameters: coercion, range checks and JSON Schema, in one place.

Each parameter knows how to validate a raw value (from YAML or JSON) and how to
describe itself; the filter catalog, the CLI listing and the CRD schema all read
from these objects so they can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from filterjob_worker.core.errors import shown

JSONSchema = dict[str, Any]


class ParamError(ValueError):
    """A value does not fit its parameter; the message starts with the parameter name."""


def _show(value: Any) -> str:
    # Numbers as a user wrote them (1.5, not repr's quirks), anything else cut short (shown).
    return (
        str(value)
        if isinstance(value, float) or (isinstance(value, int) and value.bit_length() <= 128)
        else shown(value)
    )


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A rule on a step's parameters, said once for both places that enforce it.

    ``holds`` is the worker's (and ``filterjob validate``'s) check on the parameters given,
    ``cel`` the same rule as a CEL expression on the step (``self``), which the CRD puts in
    its schema so the API server refuses what the worker would; a test evaluates both on
    the same steps.
    """

    message: str
    holds: Callable[[Mapping[str, Any]], bool]
    cel: str


@dataclass(frozen=True, kw_only=True)
class Param:
    """Base of every parameter kind."""

    name: str
    description: str
    required: bool = False
    default: Any = None

    def coerce(self, value: Any) -> Any:
        """Return the validated value or raise :class:`ParamError`."""
        raise NotImplementedError

    def schema(self) -> JSONSchema:
        """The JSON Schema of this parameter (without the name)."""
        raise NotImplementedError

    def rules(self) -> tuple[Rule, ...]:
        """What :meth:`coerce` checks beyond :meth:`schema`, as rules the CRD can say too."""
        return ()

    def _base_schema(self) -> JSONSchema:
        out: JSONSchema = {"description": self.description}
        if self.default is not None:
            out["default"] = self.default
        return out

    def fail(self, what: str, value: Any) -> ParamError:
        return ParamError(f"{self.name} must be {what}, got {_show(value)}")

    def summary(self) -> str:
        """A one-line human description of type, range and default."""
        raise NotImplementedError

    def _with_default(self, text: str) -> str:
        if self.required:
            return f"{text}, required"
        if self.default is not None:
            return f"{text}, default {_show(self.default)}"
        return f"{text}, optional"


@dataclass(frozen=True, kw_only=True)
class NumberParam(Param):
    """An int or float within an inclusive range."""

    minimum: float
    maximum: float
    integer: bool = False

    def coerce(self, value: Any) -> int | float:
        what = "an integer" if self.integer else "a number"
        # bool is an int subclass in Python, but `radius: true` is a user mistake.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(what, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail("a finite number", value)
        if self.integer:
            if isinstance(value, float) and not value.is_integer():
                raise self.fail(what, value)
            value = int(value)
        if not self.minimum <= value <= self.maximum:
            raise self.fail(f"between {_num(self.minimum)} and {_num(self.maximum)}", value)
        return value if self.integer else float(value)

    def schema(self) -> JSONSchema:
        return {
            "type": "integer" if self.integer else "number",
            "minimum": _num(self.minimum),
            "maximum": _num(self.maximum),
            **self._base_schema(),
        }

    def summary(self) -> str:
        kind = "int" if self.integer else "float"
        return self._with_default(f"{kind} {_num(self.minimum)}..{_num(self.maximum)}")


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True, kw_only=True)
class BoolParam(Param):
    """true or false."""

    def coerce(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail("true or false", value)
        return value

    def schema(self) -> JSONSchema:
        return {"type": "boolean", **self._base_schema()}

    def summary(self) -> str:
        return self._with_default("bool")


@dataclass(frozen=True, kw_only=True)
class ChoiceParam(Param):
    """One string out of a fixed set."""

    choices: tuple[str, ...]

    def coerce(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise self.fail(f"one of {', '.join(self.choices)}", value)
        return value

    def schema(self) -> JSONSchema:
        return {"type": "string", "enum": list(self.choices), **self._base_schema()}

    def summary(self) -> str:
        return self._with_default(" | ".join(self.choices))


def _not_integral(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return True
    return isinstance(v, float) and not v.is_integer()


def _ordered(box: Sequence[float]) -> bool:
    left, top, right, bottom = box
    return left < right and top < bottom


@dataclass(frozen=True, kw_only=True)
class BoxParam(Param):
    """A pixel box ``[left, top, right, bottom]`` with left < right and top < bottom."""

    maximum: int = 1_000_000

    def coerce(self, value: Any) -> tuple[int, int, int, int]:
        what = "a list of 4 integers [left, top, right, bottom]"
        if not isinstance(value, Sequence) or isinstance(value, str | bytes | bytearray) or len(value) != 4:
            raise self.fail(what, value)
        # Like NumberParam(integer=True) and JSON Schema's "integer": 10.0 is an integer.
        if any(_not_integral(v) for v in value):
            raise self.fail(what, value)
        left, top, right, bottom = (int(v) for v in value)
        if min(left, top) < 0 or max(right, bottom) > self.maximum:
            raise self.fail(f"within 0..{self.maximum}", list(value))
        if not _ordered((left, top, right, bottom)):
            raise self.fail("a box with left < right and top < bottom", list(value))
        return left, top, right, bottom

    def rules(self) -> tuple[Rule, ...]:
        box = f"self.{self.name}"
        return (
            Rule(
                message=f"{self.name} must be [left, top, right, bottom] with left < right and top < bottom",
                holds=lambda params: self.name not in params or _ordered(params[self.name]),
                cel=f"!has({box}) || ({box}[0] < {box}[2] && {box}[1] < {box}[3])",
            ),
        )

    def schema(self) -> JSONSchema:
        return {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": self.maximum},
            "minItems": 4,
            "maxItems": 4,
            **self._base_schema(),
        }

    def summary(self) -> str:
        return self._with_default("[left, top, right, bottom]")
