"""Listing the objects below a ``file://`` prefix: every key, and every path that could not be listed.

A listing never skips silently: a directory that cannot be read, a broken symlink, a FIFO or a
device among the inputs comes back as :class:`Unlisted` with its reason, for the caller to fail
the job or report it (``skipUnreadable``). Our own temporary files (``storage.TEMP_SUFFIX``) are
never keys.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from filterjob_worker.adapters.storage import TEMP_SUFFIX, to_path
from filterjob_worker.core.errors import SpecError


@dataclass(frozen=True)
class Unlisted:
    """A path below a prefix that could not be listed, or that is no readable file."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Scan:
    """What a listing found: the keys, and every path it could not account for."""

    keys: list[str] = field(default_factory=list)
    unlisted: list[Unlisted] = field(default_factory=list)


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _check_file(path: Path) -> tuple[str | None, bool]:
    """Why a listed file cannot be an input (None if it can), and whether that holds for
    any name: a dangling symlink may have stood for a directory full of inputs."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            return f"vanished while listing ({e.strerror})", False
        if not is_link:
            return f"cannot be read: {e.strerror}", False
        if e.errno == errno.ELOOP:
            return "symbolic link loop", True
        return f"broken symbolic link (to {os.readlink(path)!r}: {e.strerror})", True
    if stat.S_ISREG(mode):
        return None, False
    return f"not a regular file ({_file_kind(mode)}): it cannot be read as an image", False


def _walk_into(
    here: Path,
    dirnames: list[str],
    above: dict[str, frozenset[tuple[int, int]]],
    *,
    skip: Path | None,
    found: Scan,
    failed: Callable[[OSError], None],
) -> list[str]:
    """The sub-directories of ``here`` to walk: not hidden, not excluded, no symlink loop."""
    try:
        st = os.stat(here)
        chain = above.pop(str(here), frozenset()) | {(st.st_dev, st.st_ino)}
    except OSError:
        chain = above.pop(str(here), frozenset())
    kept = []
    for d in dirnames:
        sub = here / d
        if d.startswith(".") or (skip is not None and sub.resolve() == skip):
            continue
        if sub.is_symlink():
            try:
                target = os.stat(sub)
            except OSError as e:
                failed(e)
                continue
            if (target.st_dev, target.st_ino) in chain:
                found.unlisted.append(Unlisted(path=str(sub), reason="symbolic link loop (to a directory above)"))
                continue
        above[str(sub)] = chain
        kept.append(d)
    return kept


def scan(prefix_uri: str, *, exclude: str | None = None, select: Callable[[str], bool] | None = None) -> Scan:
    """Every object below a prefix whose key ``select`` accepts, in sorted key order.

    Nothing is left out silently: a directory that cannot be read or vanishes while
    listed, a broken symlink or a symlink loop (whatever its name: it may have stood
    for a directory), and a selected entry that is no regular file each come back in
    :attr:`Scan.unlisted`. Symlinked directories are followed. Hidden files, our own
    temporary files and the ``exclude`` prefix are skipped on purpose.
    """
    root = to_path(prefix_uri)
    try:
        if not stat.S_ISDIR(root.stat().st_mode):
            raise SpecError(f"source {prefix_uri!r} is not an existing directory")
    except FileNotFoundError:
        raise SpecError(f"source {prefix_uri!r} is not an existing directory") from None
    except OSError as e:
        raise SpecError(f"source {prefix_uri!r} cannot be read: {e.strerror}") from e
    skip = to_path(exclude).resolve() if exclude else None
    found = Scan()

    def failed(e: OSError) -> None:
        gone = isinstance(e, FileNotFoundError)
        reason = f"vanished while listing ({e.strerror})" if gone else f"cannot be listed: {e.strerror}"
        found.unlisted.append(Unlisted(path=str(e.filename or root), reason=reason))

    # The directories (device, inode) from the root down to each directory walked: a
    # symlink to one of them is a loop, not more inputs.
    above: dict[str, frozenset[tuple[int, int]]] = {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=failed, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = _walk_into(here, dirnames, above, skip=skip, found=found, failed=failed)
        for name in filenames:
            if name.startswith(".") or name.endswith(TEMP_SUFFIX):
                continue
            key = PurePosixPath(*(here / name).relative_to(root).parts).as_posix()
            selected = select is None or select(key)
            reason, always = _check_file(here / name)
            if reason is not None and (selected or always):
                found.unlisted.append(Unlisted(path=str(here / name), reason=reason))
            elif reason is None and selected:
                found.keys.append(key)
    # os.walk yields a directory's files before its sub-directories: sort the keys themselves.
    found.keys.sort()
    found.unlisted.sort(key=lambda u: u.path)
    return found


def list_keys(prefix_uri: str, *, exclude: str | None = None) -> Iterator[str]:
    """Relative keys (POSIX paths) of every object below a prefix, in sorted order.

    Hidden files and our own temporary files are skipped; so is the ``exclude``
    prefix. Anything :func:`scan` could not account for raises :class:`SpecError`.
    """
    found = scan(prefix_uri, exclude=exclude)
    if found.unlisted:
        raise SpecError([f"source {prefix_uri!r}: {u}" for u in found.unlisted])
    yield from found.keys


def list_objects(prefix_uri: str) -> Scan:
    """Every object below a prefix (keys sorted), for checking what a job wrote.

    One directory read per directory and no stat per file (the entry type comes with
    the listing), so 100k outputs cost about what a bare ``os.scandir`` walk costs.
    A prefix that does not exist holds nothing; a directory that cannot be read comes
    back in :attr:`Scan.unlisted`, so what it holds is never taken as missing or present.
    Symlinked directories are followed (outputs may be written through them), once each.
    """
    root = to_path(prefix_uri)
    found = Scan()
    pending = [(root, "")]
    seen: set[tuple[int, int]] = set()
    while pending:
        here, prefix = pending.pop()
        try:
            st = os.stat(here)
            if (st.st_dev, st.st_ino) in seen:
                continue  # a symlink to a directory walked already (or a loop)
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(here) as entries:
                for entry in entries:
                    if entry.name.endswith(TEMP_SUFFIX):
                        continue
                    key = prefix + entry.name
                    if entry.is_dir():
                        pending.append((Path(entry.path), key + "/"))
                    elif entry.is_file():
                        found.keys.append(key)
        except FileNotFoundError:
            continue  # nothing was written there (or it was removed): its outputs are missing, not unknown
        except OSError as e:
            found.unlisted.append(Unlisted(path=str(here), reason=f"cannot be listed: {e.strerror or e}"))
    found.keys.sort()
    found.unlisted.sort(key=lambda u: u.path)
    return found
