"""Hostile inputs for the decoders, as hypothesis strategies, and the property every decoder keeps.

Bodies (arbitrary bytes, JSON of any shape, valid messages with one field mutated, deep nesting, huge
numbers, NaN, lone surrogates, NUL bytes, duplicate keys, other encodings), AMQP header maps (every
value type pamqp reads from the wire and more) and FilterJob documents near a valid job. The unit fuzz
tests and the worker's end-to-end hostile test draw from the same strategies.
"""

from __future__ import annotations

import copy
import datetime
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import hypothesis
import pytest
from hypothesis import strategies as st
from pamqp import encode

T = TypeVar("T")
#: For the modules that fuzz: hypothesis warns when it prints a large input, and hostile inputs are large.
LARGE_REPRS = pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")
#: The longest a reason may be: one line a user reads, never an echo of a whole body.
REASON_LIMIT = 2000

#: Every code point, lone surrogates and NUL included.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=12) | st.sampled_from(["", " ", "\x00", "\ud800", "\udfff", "a\x00b", "é" * 3])
LONG_TEXT = st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "\x00", "é", "\U0001f600", "\ud83d"]), st.integers(256, 70_000)
)
HUGE_INTS = st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**100, 10**4000, -(10**4000)])
NUMBERS = (
    st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 0.5, -0.0, 1e308, 5e-324])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT | LONG_TEXT
#: Any value JSON can carry (and NaN/Infinity, which Python's json reads and writes).
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 0) -> Any:
    """A list nested ``depth`` deep (deeper than any recursion limit if asked)."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def dumps(value: Any, *, ascii_only: bool = True) -> bytes:
    """``value`` as JSON bytes; lone surrogates as ``\\ud800`` escapes or as (invalid) UTF-8 bytes."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


def deep_body(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


#: Bodies no contract accepts in whole, of every kind that reaches a decoder.
RAW_BODIES = (
    st.binary(max_size=64)
    | st.sampled_from(
        [
            b"",
            b"\x00",
            b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
            b"NaN",
            b"-Infinity",
            b'"\\ud800"',
            b"1" * 5000,  # past Python's digit limit for int()
            b"[" + b"1" * 5000 + b"]",
            b'{"v": 1, "v": 2}',  # duplicate keys: the last one wins
            deep_body(100_000),
            deep_body(100_000, opener=b'{"a":', closer=b"}"),
            "{}".encode("utf-16"),
            '{"v": 1}'.encode("utf-32"),
        ]
    )
    | st.builds(dumps, JSON_VALUES, ascii_only=st.booleans())
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every mapping entry and list item in ``value``, outermost first."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found.append((*prefix, key))
        found.extend(_paths(item, (*prefix, key)))
    return found


def _container(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, valid: Mapping[str, Any], values: st.SearchStrategy[Any] = JSON_VALUES) -> Any:
    """``valid`` with one entry replaced by a hostile value, deleted, or one entry added."""
    doc = copy.deepcopy(dict(valid))
    path = draw(st.sampled_from(_paths(doc)))
    parent = _container(doc, path)
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "deepen"]))
    if action == "replace":
        parent[path[-1]] = draw(values)
    elif action == "delete":
        del parent[path[-1]]
    elif action == "deepen":
        parent[path[-1]] = nested(draw(st.sampled_from([50, 400])), parent[path[-1]])
    elif isinstance(parent, dict):
        parent[draw(TEXT)] = draw(values)
    else:
        parent.append(draw(values))
    return doc


def near_valid_bodies(valid: Mapping[str, Any]) -> st.SearchStrategy[bytes]:
    """JSON bodies of ``valid`` with one field mutated, and hostile bodies of every other kind."""
    one_off = st.builds(dumps, mutated(valid), ascii_only=st.booleans())
    return one_off | one_off | RAW_BODIES


def _naive_or_aware(moment: datetime.datetime, utc: bool) -> datetime.datetime:
    return moment.replace(tzinfo=datetime.UTC) if utc else moment


#: What an AMQP header value may be, as pamqp reads it from the wire, and types it cannot write.
HEADER_SCALARS = (
    st.none()
    | st.booleans()
    | NUMBERS
    | TEXT
    | st.binary(max_size=16)
    | st.binary(max_size=16).map(bytearray)
    | st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.decimals(min_value=-(10**12), max_value=10**12, places=3)
    | st.builds(_naive_or_aware, st.datetimes(), st.booleans())
)
#: Field names come off the wire as UTF-8 (pamqp refuses others before any decoder sees them).
HEADER_NAMES = st.text(st.characters(codec="utf-8"), max_size=12)
HEADER_VALUES = st.recursive(
    HEADER_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HEADER_NAMES, inner, max_size=3),
    max_leaves=8,
)
#: Hostile values for the headers the envelope reads, numbers from 1 written as text included.
_ATTEMPTS = HEADER_VALUES | st.integers(-5, 10).map(str) | st.sampled_from(["1" * 5000, " 2 ", "٣", "1_0", "0x10"])
_DEATHS = HEADER_VALUES | st.lists(
    st.dictionaries(st.sampled_from(["reason", "queue", "count", "exchange"]), HEADER_VALUES, max_size=4), max_size=3
)
HEADERS = st.builds(
    lambda known, other: {**other, **known},
    st.fixed_dictionaries(
        {},
        optional={
            "x-attempt": _ATTEMPTS,
            "x-failure-reason": HEADER_VALUES,
            "x-death": _DEATHS,
            "x-first-death-reason": HEADER_VALUES,
        },
    ),
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
)


def reason_problem(reason: object) -> str | None:
    """What is wrong with a reason given to a user, or None: a non-empty line of bounded length, that
    a header can carry (UTF-8), naming the problem in words (no object reprs, no traceback)."""
    if not isinstance(reason, str) or not reason.strip():
        return f"empty reason {reason!r}"
    if len(reason) > REASON_LIMIT:
        return f"a reason of {len(reason)} characters: {reason[:200]!r}…"
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        return f"a reason that is not UTF-8 text: {reason[:200]!r}"
    if "Traceback" in reason or " object at 0x" in reason:
        return f"a reason with a traceback or an object repr: {reason[:200]!r}"
    return None


def total(call: Callable[[], T], errors: tuple[type[Exception], ...]) -> T | Exception:
    """The value ``call`` returns, or the allowed error it raised, whose reason must be one a user can read.

    Any other exception propagates (hypothesis reports it with the input that caused it).
    """
    try:
        return call()
    except errors as e:
        error = e
    assert str(error).strip(), f"{type(error).__name__} without a reason"
    for reason in getattr(error, "problems", None) or [str(error)]:
        problem = reason_problem(reason)
        assert problem is None, problem
    return error


def drawn(strategy: st.SearchStrategy[T], *, count: int, seed: int) -> list[T]:
    """``count`` values of ``strategy``, the same ones every run (a fixed seed): hostile inputs for a
    test that cannot run once per example (one real worker takes them all)."""
    values: list[T] = []

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=count,
        database=None,
        derandomize=False,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(strategy)
    def draw(value: T) -> None:
        values.append(value)

    draw()
    return values[:count]


def wire_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``headers`` that a publisher can put on the wire (pamqp writes them)."""
    wire = {}
    for key, value in headers.items():
        try:
            encode.field_table({key: value})
        except (TypeError, ValueError, OverflowError, struct.error):
            continue
        wire[key] = value
    return wire
