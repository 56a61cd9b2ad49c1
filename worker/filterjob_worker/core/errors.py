"""One hierarchy of errors, rooted at :class:`FilterJobError`.

Errors are control flow: a task's outcome (done, retry later, park for good) is
decided by the class of the error it raised, never by parsing messages.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any, ClassVar


class FilterJobError(Exception):
    """Root of every error raised on purpose by FilterJob."""


class SpecError(FilterJobError, ValueError):
    """A user-supplied specification (filters, output format, job) is invalid.

    ``problems`` holds one actionable message per problem found, so a user can fix
    them all in one go instead of one per attempt.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``" (did you mean 'blur'?)"`` for a near miss among ``choices``, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Shown(reprlib.Repr):
    """``repr`` cut short: a message quotes what is wrong, never a whole body."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 80
        self.maxlevel = 3

    def repr_int(self, x: int, level: int) -> str:
        # repr() refuses integers past 4300 digits (ValueError); their size is what matters here.
        if x.bit_length() > 128:
            return f"{'a negative' if x < 0 else 'an'} integer of about {x.bit_length() * 3 // 10} digits"
        return repr(x)


_SHOWN = _Shown()


def shown(value: Any) -> str:
    """``value`` as a message quotes it: its repr, cut short at any size, depth or number of digits."""
    try:
        return _SHOWN.repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"


class TaskError(FilterJobError):
    """Processing one task failed; the task, not the worker, is affected."""

    #: Whether retrying the same task can ever succeed.
    permanent: bool = True
    #: What kind of problem this is, in the words of a user (reasons start with it).
    label: ClassVar[str] = ""


def reason_of(error: TaskError) -> str:
    """The reason a user reads (events, parked headers, status, summary): no class names."""
    text = str(error) or type(error).__doc__ or "failed"
    return f"{error.label}: {text}" if error.label else text


class PermanentTaskError(TaskError):
    """Retrying cannot help: the input or the task itself is bad."""

    permanent = True


class TransientTaskError(TaskError):
    """The task may succeed later: storage hiccups, full disks, timeouts."""

    permanent = False


class InvalidImage(PermanentTaskError):
    """The input is not a decodable image: corrupt, truncated, empty or not an image."""

    label = "not a usable image"


class ImageTooLarge(PermanentTaskError):
    """The input exceeds the configured size limits (decompression bombs included)."""

    label = "image too large"


class InputNotFound(PermanentTaskError):
    """The input object does not exist (any more)."""

    label = "input missing"


class WorkerDied(TransientTaskError):
    """The process working on the task died (out of memory?); the image may be the cause."""


class MalformedMessage(PermanentTaskError):
    """A message body does not follow its contract: a task, a task event or a job.finished message."""

    label = "not a valid task message"
