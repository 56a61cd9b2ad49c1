"""Processes as /proc shows them, for tests that check nothing of a session outlives it."""

from __future__ import annotations

from pathlib import Path


def session_alive(sid: int) -> bool:
    """Whether any process of the session is still there (found through /proc, without waiting)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            return True
    return False
