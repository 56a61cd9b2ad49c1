"""The FilterJob API (``filterjob.dev/v1alpha1``) as typed models.

The same YAML that ``kubectl apply`` takes is parsed here. Every problem comes
back at once as a :class:`JobSpecError` whose lines name the field, e.g.
``spec.filters[2] (blur): radius must be between 0 and 100, got -1``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from filterjob_operator.core import podpolicy
from filterjob_worker.core.codec import FORMAT_ALIASES, FORMATS, FormatName, OutputFormat, format_name
from filterjob_worker.core.errors import SpecError, did_you_mean
from filterjob_worker.core.limits import ATTEMPTS, BACKOFF_SECONDS, CONCURRENCY, MAX_BACKOFF_SECONDS, QUALITY, Range
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
_URI_SCHEMES = ("file://", "s3://")
#: A FilterJob is a few KiB; the Kubernetes API refuses objects above about 1.5 MiB.
MAX_JOB_BYTES = 1024 * 1024
_LOCAL_HINT = " (a plain path is a local job's: use `filterjob run`, or `filterjob validate --local`)"
#: Longest source or destination URI (it also bounds the cost of the CRD's CEL rules).
MAX_URI_LENGTH = 2048
#: The schemes a URI may have, for the CRD (the model says why it refuses one, in ``_check_uri``).
URI_PATTERN = r"^(file:///|s3://)[^\s]*$"


class JobSpecError(SpecError):
    """A FilterJob document is invalid; ``problems`` name each field at fault."""


class _Model(BaseModel):
    """Models of the API; each one's docstring is its description in the CRD, as each field's is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _ranged(limits: Range[Any], description: str) -> Any:
    """A number field with the default and range said once in ``filterjob_worker.core.limits``."""
    if limits.exclusive_minimum:
        return Field(default=limits.default, gt=limits.minimum, le=limits.maximum, description=description)
    return Field(default=limits.default, ge=limits.minimum, le=limits.maximum, description=description)


def _check_uri(value: str) -> str:
    if not value.startswith(_URI_SCHEMES):
        raise ValueError(f"must be a file:///absolute/path/ or s3://bucket/prefix/ URI, got {value!r}")
    if value.startswith("s3://"):
        raise ValueError(f"s3:// URIs are not supported yet, got {value!r}")
    if not value.startswith("file:///"):
        raise ValueError(f"file URIs need an absolute path (file:///...), got {value!r}")
    return value


class Source(_Model):
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


class Destination(_Model):
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
    quality: int = _ranged(QUALITY, "JPEG/WebP quality.")

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


class Workers(_Model):
    """The worker pods."""

    image: str | None = Field(default=None, description="Worker image; default: the operator's own.")
    concurrency: int = _ranged(CONCURRENCY, "Images processed at once per pod.")
    resources: dict[str, Any] = Field(default_factory=dict, description="ResourceRequirements of the worker container.")
    volumes: list[dict[str, Any]] = Field(
        default_factory=list, description="Pod volumes, e.g. the PVC holding file:// inputs and outputs."
    )
    volume_mounts: list[dict[str, Any]] = Field(
        default_factory=list, description="Where the volumes are mounted in the worker container."
    )
    # Overrides for real clusters, on worker and lister pods alike; their shapes are the
    # Kubernetes types' (checked by the CRD), what they may not do is in ``podpolicy``.
    pod_security_context: dict[str, Any] = Field(default_factory=dict)
    security_context: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    priority_class_name: str | None = None
    service_account_name: str | None = None
    env: list[dict[str, Any]] = Field(default_factory=list)
    env_from: list[dict[str, Any]] = Field(default_factory=list)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("pod_security_context", "security_context", "env", "pod_labels", "pod_annotations")
    @classmethod
    def _policy(cls, value: Any, info: ValidationInfo) -> Any:
        if problems := podpolicy.problems(to_camel(str(info.field_name)), value):
            raise ValueError("; ".join(problems))
        return value


class Autoscaling(_Model):
    """How the number of worker pods follows the queue."""

    mode: Literal["queue", "hpa", "none"] = Field(
        default="queue",
        description="queue: the operator scales by queue depth; hpa: a HorizontalPodAutoscaler "
        "on the exported queue-depth metric; none: minReplicas pods.",
    )
    min_replicas: int = Field(default=0, ge=0, description="Fewest worker pods while work remains.")
    max_replicas: int = Field(default=10, ge=1, description="Most worker pods.")
    messages_per_replica: int = Field(default=20, ge=1, description="Target backlog (ready + unacked) per pod.")
    scale_down_delay_seconds: int = Field(default=30, ge=0, description="Wait before scaling down.")

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self


#: The most attempts a task may have (``spec.retry.maxAttempts``); it bounds a job's retry queues.
MAX_ATTEMPTS = ATTEMPTS.maximum


class Retry(_Model):
    """Retries of transient failures, with exponential backoff."""

    max_attempts: int = _ranged(ATTEMPTS, "Attempts before a task is parked.")
    backoff_seconds: float = _ranged(BACKOFF_SECONDS, "First retry delay; doubled for each further retry.")
    max_backoff_seconds: float = _ranged(MAX_BACKOFF_SECONDS, "Longest retry delay.")


class SecretRef(_Model):
    """Secret with key url (amqp URL) and optionally managementUrl."""

    name: str = Field(description="Secret name, in the job's namespace.")


class BrokerRef(_Model):
    """The RabbitMQ to use; default: the operator's."""

    secret_ref: SecretRef


class FilterJobSpec(_Model):
    """What to filter, how, and where the results go."""

    source: Source
    destination: Destination
    filters: list[dict[str, Any]] = Field(
        min_length=1,
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
            raise ValueError(f"must be a lowercase DNS name (a-z, 0-9, '-', '.'), got {value!r}")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(NAME_TOO_LONG.format(length=len(value)))
        return value


class FilterJob(_Model):
    model_config = ConfigDict(extra="ignore")

    api_version: Literal["filterjob.dev/v1alpha1"]
    kind: Literal["FilterJob"]
    metadata: Metadata
    spec: FilterJobSpec

    @property
    def key(self) -> str:
        """``<namespace>/<name>``, the job's identity in tasks and logs."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
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
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{where}: {message}"
    return f"{where}: {message}, got {error['input']!r}"


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
    try:
        documents = [d for d in yaml.safe_load_all(_read_text(path)) if d is not None]
    except yaml.YAMLError as e:
        raise JobSpecError(f"{path}: not valid YAML: {_yaml_problem(e)}") from e
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
