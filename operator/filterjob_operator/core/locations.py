"""Where a FilterJob's images come from and where its outputs go (``spec.source``, ``spec.destination``).

Also the textual rule that keeps the two apart (:func:`overlap` of :func:`uri_path`), which the
operator and the workers check again with symlinks resolved, where they see the paths.
"""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from filterjob_operator.core.apimodel import ApiModel, ranged
from filterjob_worker.core.codec import FORMAT_ALIASES, FORMATS, FormatName, OutputFormat, format_name
from filterjob_worker.core.errors import SpecError
from filterjob_worker.core.limits import QUALITY

_URI_SCHEMES = ("file://", "s3://")
#: Longest source or destination URI (it also bounds the cost of the CRD's CEL rules).
MAX_URI_LENGTH = 2048
#: The schemes a URI may have, for the CRD (the model says why it refuses one, in ``_check_uri``).
URI_PATTERN = r"^(file:///|s3://)[^\s]*$"


def _check_uri(value: str) -> str:
    if not value.startswith(_URI_SCHEMES):
        raise ValueError(f"must be a file:///absolute/path/ or s3://bucket/prefix/ URI, got {value!r}")
    if value.startswith("s3://"):
        raise ValueError(f"s3:// URIs are not supported yet, got {value!r}")
    if not value.startswith("file:///"):
        raise ValueError(f"file URIs need an absolute path (file:///...), got {value!r}")
    return value


class Source(ApiModel):
    """Where the input images are."""

    uri: str = Field(
        max_length=MAX_URI_LENGTH,
        description="Prefix of the inputs: file:///path/ (a volume mounted in the workers).",
        json_schema_extra={"pattern": URI_PATTERN},
    )
    include: list[str] = Field(
        default_factory=list,
        description="Globs selecting inputs (key or file name, any case). Default: common image extensions.",
    )
    #: Run without the paths that cannot be listed (each one reported) instead of failing.
    skip_unreadable: bool = Field(
        default=False,
        description="false: a source that cannot be listed completely (a directory that "
        "cannot be read or vanishes, a broken symlink, a symlink loop, a FIFO, socket or device "
        "among the inputs) fails the job (reason InvalidSource, naming the paths). true: run "
        "without those paths; each is reported (status.skippedPaths, an InputsSkipped condition "
        "and an Event).",
    )

    _uri = field_validator("uri")(_check_uri)


class Destination(ApiModel):
    """Where outputs go: the same relative key below this prefix."""

    uri: str = Field(
        max_length=MAX_URI_LENGTH,
        description="Prefix of the outputs; neither the source, nor inside it, nor containing it.",
        json_schema_extra={"pattern": URI_PATTERN},
    )
    format: FormatName = Field(
        default="jpeg",
        description=f"Output encoding; same keeps the input's format. Also accepted: {', '.join(FORMAT_ALIASES)}.",
        # The aliases too: ``_format_alias`` maps them to a format name.
        json_schema_extra={"enum": [*FORMATS, *FORMAT_ALIASES]},
    )
    quality: int = ranged(QUALITY, "JPEG/WebP quality.")

    _uri = field_validator("uri")(_check_uri)

    @field_validator("format", mode="before")
    @classmethod
    def _format_alias(cls, value: Any) -> FormatName:
        try:
            return format_name(value)
        except SpecError as e:
            raise ValueError(str(e)) from None

    @property
    def output_format(self) -> OutputFormat:
        return OutputFormat(format=self.format, quality=self.quality)


def uri_path(uri: str) -> str:
    """The normalized path of a URI, as text: escapes decoded, ``.``/``..``/``//`` and
    trailing slashes folded (symlinks are for whoever can see the paths)."""
    path = unquote(urlsplit(uri).path)
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def overlap(source: str, destination: str) -> str | None:
    """How a destination path overlaps a source path, or None if they are apart."""
    src, dst = PurePosixPath(source), PurePosixPath(destination)
    if src == dst:
        return "the same directory as"
    if dst.is_relative_to(src):
        return "inside"
    if src.is_relative_to(dst):
        return "a parent of"
    return None
