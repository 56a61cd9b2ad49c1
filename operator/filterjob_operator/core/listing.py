"""The listing of a job's inputs as broker messages (pure): encoding, decoding, choosing.

A lister Job (``filterjob list-inputs``) publishes what it found to the job's
``<base>.inputs`` queue, where the operator reads it and where it stays, the
job's frozen listing, for every later operator start. Messages are JSON:

- a chunk: ``{"v": 1, "run": "<id>", "seq": i, "keys": [...], "last": bool}``, keys
  sorted across chunks, ``seq`` from 0, ``last`` on the final one (an empty listing
  is one chunk with no keys); the final chunk also carries ``"skipped": [[path,
  reason], ...]``, the paths left out under ``spec.source.skipUnreadable``;
- or an error: ``{"v": 1, "run": "<id>", "error": "<message>"}`` when the source
  cannot be listed (missing, unreadable paths, outputs that would collide), naming
  the paths at fault.

``run`` tells apart the attempts of a lister: a restarted lister purges the queue
first, but messages delivered to a reader at that moment survive the purge, so a
reader may see a partial earlier run next to a complete later one. It takes a
complete run, and of several the one with the smallest id, so every read of the
same queue chooses the same listing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from filterjob_worker.core.errors import shown

VERSION = 1
#: Keys per message: ~100 bytes a key keeps a message well below a megabyte.
CHUNK_KEYS = 5000


class ListingError(ValueError):
    """A message of the inputs queue is not a listing message."""


@dataclass(frozen=True)
class Listing:
    """A complete listing: its keys, or the error that stopped the lister."""

    run: str
    keys: list[str] = field(default_factory=list)
    error: str | None = None
    #: ``(path, reason)`` of each path skipped under ``spec.source.skipUnreadable``.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def encode(
    run: str, keys: Sequence[str], *, chunk: int = CHUNK_KEYS, skipped: Sequence[tuple[str, str]] = ()
) -> list[bytes]:
    """The messages of a listing, in order."""
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    count = max(1, -(-len(keys) // chunk))
    return [
        _dump(
            {
                "v": VERSION,
                "run": run,
                "seq": n,
                "keys": list(keys[n * chunk : (n + 1) * chunk]),
                "last": n == count - 1,
                **({"skipped": [list(s) for s in skipped]} if n == count - 1 and skipped else {}),
            }
        )
        for n in range(count)
    ]


def encode_error(run: str, message: str) -> bytes:
    return _dump({"v": VERSION, "run": run, "error": message})


def _dump(value: dict[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class _Run:
    chunks: dict[int, list[str]] = field(default_factory=dict)
    last: int | None = None
    error: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def complete(self) -> bool:
        return self.error is not None or (self.last is not None and all(n in self.chunks for n in range(self.last + 1)))


def _load(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body)
    except RecursionError:
        raise ListingError("not JSON a reader takes: nested too deep") from None
    except ValueError as e:  # not JSON, not text, a number past Python's 4300 digits
        raise ListingError(f"not JSON: {str(e).split(';')[0]}") from None
    if not isinstance(value, dict) or not isinstance(value.get("run"), str) or not _is_version(value.get("v")):
        raise ListingError(f"not a version {VERSION} listing message: {shown(body[:100])}")
    return value


def _is_version(value: object) -> bool:
    return not isinstance(value, bool) and value == VERSION


def _texts(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class Reader:
    """Collects listing messages in any order, duplicates allowed; :attr:`listing` once complete."""

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def add(self, body: bytes) -> None:
        value = _load(body)
        run = self._runs.setdefault(str(value["run"]), _Run())
        if "error" in value:
            error = value["error"]
            if not isinstance(error, str) or not error.strip():
                raise ListingError(f"an error message needs its text: {shown(body[:100])}")
            run.error = error
            return
        seq, keys, last = value.get("seq"), value.get("keys"), value.get("last")
        if (
            isinstance(seq, bool)
            or not isinstance(seq, int)
            or seq < 0
            or not _texts(keys)
            or not isinstance(last, bool)
        ):
            raise ListingError(f"a chunk needs seq, keys (strings) and last: {shown(body[:100])}")
        skipped = value.get("skipped", [])
        if not isinstance(skipped, list) or not all(_texts(s) and len(s) == 2 for s in skipped):
            raise ListingError(f"skipped must be a list of [path, reason]: {shown(body[:100])}")
        run.chunks[seq] = list(keys)
        if last:
            run.last = seq
            run.skipped = [(path, reason) for path, reason in skipped]

    @property
    def listing(self) -> Listing | None:
        """The complete run with the smallest id, if any."""
        complete = sorted(name for name, run in self._runs.items() if run.complete())
        if not complete:
            return None
        name = complete[0]
        run = self._runs[name]
        if run.error is not None:
            return Listing(run=name, error=run.error)
        assert run.last is not None
        keys = [key for n in range(run.last + 1) for key in run.chunks[n]]
        return Listing(run=name, keys=keys, skipped=run.skipped)


def decode(bodies: Iterable[bytes]) -> Listing | None:
    """The listing in these messages, or None while no run is complete."""
    reader = Reader()
    for body in bodies:
        reader.add(body)
    return reader.listing
