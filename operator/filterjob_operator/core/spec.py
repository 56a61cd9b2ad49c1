"""The FilterJob API (``filterjob.dev/v1alpha1``) as typed models.

The same YAML that ``kubectl apply`` takes is parsed here. Every problem comes
back at once as a :class:`JobSpecError` whose lines name the field, e.g.
``spec.filters[2] (blur): radius must be between 0 and 100, got -1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from filterjob_operator.core.apimodel import ApiModel
from filterjob_operator.core.locations import Destination, Source, overlap, uri_path
from filterjob_operator.core.workload import Autoscaling, BrokerRef, Retry, Workers
from filterjob_worker.core.errors import SpecError, did_you_mean, shown
from filterjob_worker.core.limits import MAX_FILTERS
from filterjob_worker.core.pipeline import Pipeline

GROUP = "filterjob.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FilterJob"
#: A job's name ends up in its children's names and labels: its Jobs are ``NAME-verify`` and
#: ``NAME-list``, and Kubernetes labels each Job's pods with the Job's name, a label value of at
#: most 63 characters. Longer names would be accepted and then fail halfway through a run.
MAX_NAME_LENGTH = 63 - len("-verify")
NAME_TOO_LONG = (
    f"must be at most {MAX_NAME_LENGTH} characters (its Jobs are named NAME-verify, and Kubernetes"
    " label values are at most 63), got {length}: choose a shorter name"
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: A FilterJob is a few KiB; the Kubernetes API refuses objects above about 1.5 MiB.
MAX_JOB_BYTES = 1024 * 1024
_LOCAL_HINT = " (a plain path is a local job's: use `filterjob run`, or `filterjob validate --local`)"


class JobSpecError(SpecError):
    """A FilterJob document is invalid; ``problems`` name each field at fault."""


class FilterJobSpec(ApiModel):
    """What to filter, how, and where the results go."""

    source: Source
    destination: Destination
    filters: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_FILTERS,
        description="The filter pipeline, applied in order. `filterjob filters` lists every filter and parameter.",
    )
    workers: Workers = Field(default_factory=Workers)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    retry: Retry = Field(default_factory=Retry)
    broker: BrokerRef | None = None
    suspend: bool = Field(
        default=False, description="true scales workers to zero and pauses enqueueing; false resumes."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the job this long after it finished."
    )
    #: The job ends Failed when more than this share of its inputs failed.
    max_failed_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="The job ends Failed when more than this share of its inputs failed "
        "(corrupt images, bad parameters); otherwise Succeeded.",
    )

    def pipeline(self) -> Pipeline:
        return Pipeline.parse(self.filters)

    @model_validator(mode="after")
    def _destination_apart_from_source(self) -> FilterJobSpec:
        problem = overlap(uri_path(self.source.uri), uri_path(self.destination.uri))
        if problem is not None:
            raise ValueError(
                f"destination.uri {self.destination.uri!r} is {problem} source.uri {self.source.uri!r}: outputs "
                "would be written among the inputs and could overwrite them; choose a destination outside the source"
            )
        return self


class Metadata(BaseModel):
    # Kubernetes adds many fields (labels, managedFields, …); only these matter here.
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    namespace: str = "default"
    uid: str | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"must be a lowercase DNS name (a-z, 0-9, '-', '.'), got {shown(value)}")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(NAME_TOO_LONG.format(length=len(value)))
        return value


class FilterJob(ApiModel):
    model_config = ConfigDict(extra="ignore")

    api_version: Literal["filterjob.dev/v1alpha1"]
    kind: Literal["FilterJob"]
    metadata: Metadata
    spec: FilterJobSpec

    @property
    def key(self) -> str:
        """``<namespace>/<name>``, the job's identity in tasks and logs."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) or not _NAME.fullmatch(part):  # an index, or a key that is no field's name
            out += f"[{part if isinstance(part, int) else shown(part)}]"
        else:
            out += f".{part}" if out else part
    return out or "document"


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names (as YAML spells them) of the model at ``loc`` in a FilterJob."""
    model: type[BaseModel] = FilterJob
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        inner = [field.annotation, *get_args(field.annotation)]
        models = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return []
        model = models[0]
    return [f.alias or n for n, f in model.model_fields.items()]


def _problem(error: Mapping[str, Any]) -> str:
    where = _where(tuple(error["loc"]))
    kind = error["type"]
    if kind == "missing":
        return f"{where}: is required"
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        return f"{where}: unknown field{did_you_mean(loc[-1], _fields_at(loc[:-1]))}"
    if kind == "too_long":  # a list or mapping: pydantic's message would quote every item
        # pydantic stops counting a mapping at its limit (no actual_length); its input has them all.
        limit, given = error["ctx"]["max_length"], error["ctx"].get("actual_length") or len(error["input"])
        unit = "entries" if error["ctx"].get("field_type") == "Dictionary" else "items"
        return f"{where}: at most {limit} {unit} are allowed, got {given}; remove {given - limit}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{where}: {message}"
    return f"{where}: {message}, got {shown(error['input'])}"


def _is_filter_item(loc: tuple[int | str, ...]) -> bool:
    return len(loc) > 2 and loc[:2] == ("spec", "filters")


def parse_job(document: Any) -> FilterJob:
    """Validate a FilterJob document (a mapping from YAML or the API)."""
    if not isinstance(document, Mapping):
        shape = type(document).__name__
        raise JobSpecError(f"a FilterJob must be a mapping (apiVersion, kind, metadata, spec), got {shape}")
    problems: list[str] = []
    job: FilterJob | None = None
    try:
        job = FilterJob.model_validate(document)
    except ValidationError as e:
        # Items of spec.filters are checked by the pipeline below, with better messages.
        problems.extend(_problem(err) for err in e.errors() if not _is_filter_item(tuple(err["loc"])))
    spec = document.get("spec")
    filters = spec.get("filters") if isinstance(spec, Mapping) else None
    if isinstance(filters, list) and filters:
        try:
            Pipeline.parse(filters)
        except SpecError as e:
            problems.extend(f"spec.{p}" for p in e.problems)
    if problems or job is None:
        raise JobSpecError(problems)
    return job


def _localize(spec: Any, base: Path) -> None:
    """Let a local job name plain paths, relative to the job file, instead of file URIs."""
    if not isinstance(spec, dict):
        return
    for section in ("source", "destination"):
        part = spec.get(section)
        if not isinstance(part, dict):
            continue
        uri = part.get("uri")
        if isinstance(uri, str) and uri and "://" not in uri:
            part["uri"] = (base / uri).resolve().as_uri() + "/"


def _read_text(path: Path) -> str:
    """The job file's text, refusing what cannot be a job file (a directory, binary data, a huge file)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_JOB_BYTES + 1)
    except OSError as e:
        raise JobSpecError(f"{path}: cannot read: {e.strerror or e}") from e
    if len(data) > MAX_JOB_BYTES:
        raise JobSpecError(
            f"{path}: larger than {MAX_JOB_BYTES // 1024} KiB; a FilterJob file is a short YAML document"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JobSpecError(f"{path}: not a text file (not UTF-8 at byte {e.start}); give a FilterJob YAML file") from e


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: PyYAML's own message spans several, with a copy of the offending line."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _plain_paths(document: Any) -> list[str]:
    """The URI fields of a document that hold plain paths (what only local mode accepts)."""
    spec = document.get("spec") if isinstance(document, Mapping) else None
    if not isinstance(spec, Mapping):
        return []
    plain = []
    for section in ("source", "destination"):
        part = spec.get(section)
        uri = part.get("uri") if isinstance(part, Mapping) else None
        if isinstance(uri, str) and uri and "://" not in uri:
            plain.append(f"spec.{section}.uri:")
    return plain


def load_job(path: Path, *, local: bool = False) -> FilterJob:
    """Read and validate a FilterJob YAML file; problems are prefixed by the file name."""
    text = _read_text(path)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise JobSpecError(f"{path}: not valid YAML: {_yaml_problem(e)}") from e
    except RecursionError:
        raise JobSpecError(f"{path}: not valid YAML: nested too deep; a FilterJob is a few levels deep") from None
    except (ValueError, TypeError, OverflowError) as e:
        # PyYAML's constructors raise these for values it parsed but cannot build (a date with month
        # 13, an integer past Python's 4300 digits, `!!int abc`), without a line to point at.
        reason = str(e).split(";")[0]
        raise JobSpecError(f"{path}: not valid YAML: a value cannot be read ({reason})") from None
    if not documents:
        raise JobSpecError(f"{path}: is empty; a FilterJob file holds one YAML document (see examples/)")
    if len(documents) != 1:
        raise JobSpecError(f"{path}: expected exactly one FilterJob document, found {len(documents)}")
    document = documents[0]
    if local and isinstance(document, dict):
        _localize(document.get("spec"), path.parent.resolve())
    plain = [] if local else _plain_paths(document)
    try:
        return parse_job(document)
    except JobSpecError as e:
        raise JobSpecError(
            [f"{path}: {p}{_LOCAL_HINT if p.startswith(tuple(plain)) else ''}" for p in e.problems]
        ) from e
