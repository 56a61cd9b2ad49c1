"""Reading and writing objects by URI (their listing is ``filelisting``'s).

Only ``file://`` URIs are served today; the URI scheme picks the backend so
``s3://`` can be added without touching callers. Writes are atomic: a temporary
file in the same directory, then a rename, so a crash never leaves a partial
output and a redelivered task simply replaces the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from filterjob_worker.core.errors import InputNotFound, PermanentTaskError, SpecError, TransientTaskError, shown

TEMP_SUFFIX = ".filterjob-tmp"
SCHEMES = ("file",)
# Errors that no retry can fix; everything else from the OS is worth another try.
# EEXIST: a non-directory sits where a parent directory of the output must be.
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.EROFS,
}


def to_path(uri: str) -> Path:
    """The local path of a ``file://`` URI; raises :class:`SpecError` for anything else."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise SpecError(f"unsupported URI {shown(uri)}: only file:// URIs are supported")
    if parts.netloc not in ("", "localhost"):
        raise SpecError(f"unsupported URI {shown(uri)}: file URIs must not name a host")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise SpecError(f"unsupported URI {shown(uri)}: file URIs need an absolute path (file:///...)")
    if "\x00" in path:
        raise SpecError(f"unsupported URI {shown(uri)}: a path cannot hold a NUL byte")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise SpecError(f"unsupported URI {shown(uri)}: not a path the file system can hold") from None
    return Path(path)


def to_uri(path: Path) -> str:
    """``file://`` URI of a local path."""
    return path.absolute().as_uri()


def _task_error(e: OSError, doing: str, uri: str) -> Exception:
    reason = f"{doing} {uri}: {e.strerror or e}"
    if isinstance(e, FileNotFoundError):
        return InputNotFound(reason)
    if e.errno in _PERMANENT_ERRNOS:
        return PermanentTaskError(reason)
    return TransientTaskError(reason)


def read_bytes(uri: str, *, max_bytes: int | None = None) -> bytes:
    """Read a whole object; refuses objects above ``max_bytes`` before reading them."""
    path = to_path(uri)
    try:
        with path.open("rb") as f:
            if max_bytes is not None:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise PermanentTaskError(f"{uri} is {size} bytes, above the limit of {max_bytes}")
            return f.read()
    except OSError as e:
        raise _task_error(e, "cannot read", uri) from e


def write_atomic(uri: str, data: bytes) -> None:
    """Write an object so that readers see either nothing or all of it."""
    path = to_path(uri)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(data)
            # Flush to disk before the rename: an acknowledged task must survive a node crash.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        # Cleanup can fail too (e.g. ENOTDIR when the parent is a file); report the original error.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _task_error(e, "cannot write", uri) from e


def refuse_overwriting_inputs(output_uri: str, *, input_uri: str, source_uri: str | None) -> None:
    """Raise :class:`PermanentTaskError` if writing ``output_uri`` would land on the task's
    input or anywhere below the source prefix, symlinks followed: whatever planned the task,
    a worker never writes among the inputs."""
    try:
        output = to_path(output_uri).resolve()
        protected = [to_path(input_uri).resolve()]
        if source_uri is not None:
            protected.append(to_path(source_uri).resolve())
    except (OSError, RuntimeError, SpecError) as e:
        raise PermanentTaskError(f"cannot check where {output_uri} would be written: {e}") from e
    if output == protected[0]:
        raise PermanentTaskError(f"refusing to write {output_uri}: it is the input itself")
    if len(protected) > 1 and output.is_relative_to(protected[1]):
        raise PermanentTaskError(
            f"refusing to write {output_uri}: it resolves to {output}, inside the source {source_uri}"
        )


def remove_temp_files(prefix_uri: str) -> int:
    """Delete temporary files that killed writers left below a prefix; returns how many."""
    root = to_path(prefix_uri)
    removed = 0
    for path in root.rglob(f".*{TEMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def exists(uri: str) -> bool:
    return to_path(uri).is_file()


def written_since(uri: str, since_ns: int) -> bool:
    """Whether the object exists and was last written at or after ``since_ns`` (epoch ns)."""
    try:
        st = to_path(uri).stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_mtime_ns >= since_ns


def join(prefix_uri: str, key: str, *, resolve: bool = False) -> str:
    """The URI of ``key`` below a prefix; a key can never escape the prefix.

    ``resolve`` also follows symlinks already on disk, for paths that will be written.
    """
    pure = PurePosixPath(key)
    if not key or pure.is_absolute() or "\\" in key or any(part in ("..", ".", "") for part in key.split("/")):
        raise SpecError(f"object key {key!r} would escape {prefix_uri!r}")
    root = to_path(prefix_uri)
    target = root.joinpath(*pure.parts)
    # A symlink inside the prefix could still point elsewhere; resolve and compare.
    if resolve and not target.resolve().is_relative_to(root.resolve()):
        raise SpecError(f"object key {key!r} resolves outside {prefix_uri!r}")
    return to_uri(target)
