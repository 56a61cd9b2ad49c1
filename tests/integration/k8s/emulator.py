"""An in-process Kubernetes API for operator tests, built on kmock's ``KubernetesEmulator``.

kmock 0.8 stores objects and streams watch events, but leaves out most of what an API server
adds on top, and kopf depends on some of it. :class:`ClusterEmulator` adds:

* object metadata: ``uid``, ``creationTimestamp``, ``generation`` (bumped on changes outside
  ``metadata``/``status``), ``resourceVersion`` (bumped on every change, never on a no-op);
  ``generateName``; preconditions on ``metadata.resourceVersion``;
* PATCH as merge-patch, JSON-patch (a failed ``test`` op is HTTP 422, as kopf expects) or
  strategic-merge-patch (applied as a merge-patch: lists are replaced, not merged); PUT;
* the ``status`` subresource wherever discovery declares it: writes to ``.../status`` change only
  ``.status``, writes to the object itself leave ``.status`` alone, create drops ``.status``;
* the ``scale`` subresource (``spec.replicas`` as an ``autoscaling/v1`` Scale);
* finalizers: DELETE sets ``deletionTimestamp`` while finalizers remain; the object goes once the
  last one is removed; no new finalizers on an object being deleted;
* garbage collection: when an object goes, its dependents (by ``ownerReferences[].uid``) go too,
  or lose that reference if they have other living owners or the policy was ``Orphan``;
* list and watch honouring ``resourceVersion``, ``labelSelector``, ``fieldSelector`` and
  ``timeoutSeconds``; DELETE on collections;
* CRDs: the FilterJob CRD is installed at start, and any CRD created through the API is served;
* built-in objects checked against Kubernetes' schemas (``kubernetes-validate``), 422 if invalid;
  Secrets' ``stringData`` folded into ``data``; Deployments' ``spec.replicas`` defaulted;
* a log of every request as :class:`ApiCall` (verb, group, resource, subresource, status) for
  comparing what a client did with RBAC rules.

It does not run controllers (no Pods, no Deployment status, no HPA decisions), does not check
namespaces exist or delete their contents, and does not validate custom resources.

:class:`RunningCluster` serves an emulator from a background thread with its own event loop, so
blocking clients (the ``kubernetes`` package, kopf in a ``KopfRunner`` thread) can use it from
synchronous tests; it writes kubeconfigs, makes ``ApiClient`` objects and kopf login handlers,
runs a kopf operator against itself, and waits for conditions on the stored objects, woken by
every change rather than by polling.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import copy
import dataclasses
import datetime
import functools
import gzip
import importlib.resources
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import apps, enums, parsing, rendering

from .background import Background

if TYPE_CHECKING:
    import kopf
    import kubernetes.client
    from kopf.testing import KopfRunner

T = TypeVar("T")
Body = dict[str, Any]

GROUP = "filterjob.dev"
VERSION = "v1alpha1"
PLURAL = "filterjobs"

FILTERJOBS = kmock.resource(GROUP, VERSION, PLURAL)
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
JOBS = kmock.resource("batch", "v1", "jobs")
EVENTS = kmock.resource("", "v1", "events")
EVENTS_V1 = kmock.resource("events.k8s.io", "v1", "events")
SECRETS = kmock.resource("", "v1", "secrets")
NAMESPACES = kmock.resource("", "v1", "namespaces")
LEASES = kmock.resource("coordination.k8s.io", "v1", "leases")
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")

#: Built-in resources served by default; their discovery data comes from kmock's bundled dump.
DEFAULT_BUILTINS: tuple[kmock.resource, ...] = (
    NAMESPACES,
    SECRETS,
    EVENTS,
    EVENTS_V1,
    DEPLOYMENTS,
    HPAS,
    JOBS,
    LEASES,
    CRDS,
)

#: The bearer token in kubeconfigs written for the emulator (it accepts any token, and logs it).
KUBECONFIG_TOKEN = "emulator-token"
#: The bearer token of :meth:`RunningCluster.kopf_registry`'s login handler.
LOGIN_HANDLER_TOKEN = "emulator-login-handler"

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

FILTERJOB_CRD: Body = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": "FilterJob", "plural": PLURAL, "singular": "filterjob", "shortNames": ["fj"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                # The emulator does not validate against schemas; this only keeps the CRD well-formed.
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}

_SYSTEM_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "name",
    "namespace",
)
_NAME_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_STOP = object()  # put into the watch buses to end every open watch when the server stops


# --------------------------------------------------------------------------------------------------
# Errors, as the API server words them (kopf and the kubernetes client only look at the code).


def _error(status: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message)


def _not_found(what: str) -> kmock.KubernetesError:
    return _error(404, "NotFound", f"{what} not found")


def _conflict(message: str) -> kmock.KubernetesError:
    return _error(409, "Conflict", message)


def _invalid(message: str) -> kmock.KubernetesError:
    return _error(422, "Invalid", message)


def _bad_request(message: str) -> kmock.KubernetesError:
    return _error(400, "BadRequest", message)


# --------------------------------------------------------------------------------------------------
# Pure helpers.


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """What ``generation`` tracks: everything except metadata, status and type information."""
    return {k: v for k, v in body.items() if k not in {"metadata", "status", "apiVersion", "kind"}}


def _dig(body: Mapping[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


_LABEL_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[\w./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)|\s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def label_selector_matches(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Equality- and set-based label selectors as in ``kubectl -l``."""
    labels = labels or {}
    if not selector:
        return True
    for requirement in re.split(r",(?![^(]*\))", selector):
        if not requirement.strip():
            continue
        m = _LABEL_REQUIREMENT.match(requirement)
        if m is None:
            raise _bad_request(f"unable to parse requirement: {requirement!r}")
        key = m["key"]
        if m["neg"]:
            ok = key not in labels
        elif m["op"] in ("=", "=="):
            ok = labels.get(key) == m["value"]
        elif m["op"] == "!=":
            ok = labels.get(key) != m["value"]
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            ok = (labels.get(key) in values) if m["setop"] == "in" else (labels.get(key) not in values)
        else:
            ok = key in labels
        if not ok:
            return False
    return True


def field_selector_matches(selector: str | None, body: Mapping[str, Any]) -> bool:
    """Field selectors with ``=``, ``==``, ``!=`` on any dotted path (e.g. ``metadata.name``)."""
    if not selector:
        return True
    for requirement in selector.split(","):
        if not requirement.strip():
            continue
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", requirement)
        if m is None:
            raise _bad_request(f"invalid field selector: {requirement!r}")
        path, op, expected = m.groups()
        actual = _dig(body, path)
        actual_str = "" if actual is None else str(actual)
        if (actual_str == expected) != (op != "!="):
            return False
    return True


def _fold_string_data(res: kmock.resource, body: Body) -> None:
    """Secrets: ``stringData`` is write-only; the API server stores it base64-encoded in ``data``."""
    if res == SECRETS and isinstance(body.get("stringData"), dict):
        data = body["data"] = dict(body.get("data") or {})
        for key, value in body.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """A sort key putting v2 before v1 before v1beta2 before v1beta1 before v1alpha1 before others."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (3, 0, 0, version)
    stability = {None: 0, "beta": 1, "alpha": 2}[m[2]]
    return (stability, -int(m[1]), -int(m[3] or 0), version)


def _selector_string(body: Mapping[str, Any]) -> str:
    match_labels = _dig(body, "spec.selector.matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def parse_k8s_path(path: str) -> parsing.ParsedPath:
    """Split an API path into group/version/plural/namespace/name/subresource.

    kmock 0.8's parser fails on ``/api/v1/namespaces`` and reads ``/api/v1/namespaces/NAME``
    as a namespace without a resource, so namespaces themselves could not be served.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis":
        return parsing.ParsedPath(group=parts[1])
    else:
        return parsing.ParsedPath()
    namespace = None
    namespace_subresource = group == "" and len(rest) == 3 and rest[2] in {"status", "finalize"}
    if len(rest) >= 3 and rest[0] == "namespaces" and not namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    return parsing.ParsedPath(
        group=group,
        version=version,
        plural=rest[0] if rest else None,
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
    )


# --------------------------------------------------------------------------------------------------
# The request log.


@dataclasses.dataclass
class ApiCall:
    """One request as an RBAC rule would see it.

    ``verb`` is the RBAC verb (get, list, watch, create, update, patch, delete, deletecollection);
    for non-resource URLs (discovery, ``/version``) ``resource`` is None and ``path`` is what a
    ``nonResourceURLs`` rule would match. ``status`` is the HTTP status sent (None while a watch
    stream is still open).
    """

    method: str
    path: str
    query: dict[str, str]
    verb: str
    api_group: str | None
    version: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    user_agent: str
    authorization: str | None
    status: int | None = None

    @property
    def rbac_resource(self) -> str | None:
        """The resource as RBAC rules spell it: ``deployments`` or ``deployments/scale``."""
        if self.resource is None:
            return None
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _rbac_verb(method: str, name: str | None, query: Mapping[str, str]) -> str:
    method = method.upper()
    if method in {"GET", "HEAD"}:
        if query.get("watch") in {"true", "1"}:
            return "watch"
        return "get" if name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method, method.lower())


# --------------------------------------------------------------------------------------------------
# The emulator.


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's ``KubernetesEmulator`` with the API-server semantics kopf operators depend on.

    Objects live in kmock's ``objects`` array (with their full history), so kmock-style
    assertions such as ``emulator.objects[FILTERJOBS, "ns", "name"] >= {"status": {...}}`` work.
    Every state change happens under the emulator's asyncio lock, in the emulator's loop.
    """

    builtins: Sequence[kmock.resource] = DEFAULT_BUILTINS
    crds: Sequence[Mapping[str, Any]] = (FILTERJOB_CRD,)
    #: Check built-in objects against Kubernetes' OpenAPI schemas on every write (422 if invalid),
    #: with ``kubernetes-validate`` for this Kubernetes version (None: the newest it knows).
    #: Unknown fields pass, as with the API server's default field validation. CRs are not checked.
    validate_builtins: bool = True
    schema_version: str | None = None

    api_calls: list[ApiCall] = attrs.field(factory=list, init=False)
    #: Unexpected exceptions inside the emulator (bugs), as opposed to API errors it meant to send.
    internal_errors: list[BaseException] = attrs.field(factory=list, init=False)
    #: Bumped (and ``changed`` notified) on every stored change; lets other threads wait for changes.
    change_count: int = attrs.field(default=0, init=False)
    changed: threading.Condition = attrs.field(factory=threading.Condition, init=False)

    _rv: int = attrs.field(default=0, init=False)
    _history: list[tuple[int, kmock.resource, Body]] = attrs.field(factory=list, init=False)
    _results: dict[rendering.Request, Any] = attrs.field(factory=dict, init=False)
    _policies: dict[str, str] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        bundled = kmock.ResourcesArray()
        # = bundled.load_bundled(), which uses the deprecated importlib.resources.read_binary().
        packed = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
        bundled.load_data(gzip.decompress(packed))
        for res in self.builtins:
            if res not in bundled:
                raise ValueError(f"{res!r} is not among kmock's bundled built-in resources")
            self.resources[res] = attrs.evolve(bundled[res])
        for crd in self.crds:
            body = self._prepare_new(CRDS, None, crd)
            self._register_crd(body)
            self._store(CRDS, None, body, "ADDED", notify=False)

        # Above kmock's own fallbacks (-inf, 0) and below any reaction a test adds itself, so
        # a test can still inject faults: ``emulator['patch', FILTERJOBS] << 500``.
        (self.fallback**1)[self._is_create] << 201 << self._serve
        (self.fallback**1)[self._is_resource_request] << self._serve
        # The kubernetes client asks for /apis/ and /api/ with the slash; kmock knows them without.
        (self.fallback**1)["get /apis/"] << self._serve_apis
        (self.fallback**1)["get /api/"] << self._serve_api

    # ----------------------------------------------------------------------------------------------
    # Request intake.

    @staticmethod
    def _is_resource_request(request: rendering.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    def _is_create(self, request: rendering.Request) -> bool:
        return self._is_resource_request(request) and request.method == enums.method.POST and request.name is None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # The same as kmock's RawHandler.__call__, but with parse_k8s_path() for the request parsing
        # (see there why); kmock's parser is not replaceable on its own.
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            if self.limit is not None and len(self._requests) >= self.limit:
                raise apps.KMockError("Too many requests have been served so far.")
            request = await self._parse_request(raw_request, request_id=len(self._requests))
            self._requests.append(request)
            try:
                return await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
        except Exception as e:
            if not self._errors:
                raise
            self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    @staticmethod
    async def _parse_request(raw_request: aiohttp.web.BaseRequest, *, request_id: int) -> rendering.Request:
        body = await raw_request.read()
        text = await raw_request.text()
        try:
            data = await raw_request.json() if body else None
        except ValueError:
            data = None
        k8s = parse_k8s_path(raw_request.path)
        resource = (
            None if k8s.group is None else kmock.resource(group=k8s.group, version=k8s.version, plural=k8s.plural)
        )
        query = dict(raw_request.query)
        return rendering.Request(
            id=request_id,
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=text,
            action=parsing.guess_k8s(k8s, enums.method(raw_request.method), query),
            resource=resource,
            namespace=k8s.namespace,
            name=k8s.name,
            subresource=k8s.subresource,
        )

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        call = self._record(request)
        try:
            if self._is_resource_request(request):
                async with self._lock:
                    # Like kmock: the state changes even if a test's own reaction answers instead.
                    self._results[request] = await self._mutate(request)
            # Skip KubernetesEmulator._handle (its simpler state changes are replaced by _mutate).
            response = await apps.RawHandler._handle(self, request)
        except kmock.KubernetesError as e:
            call.status = e.status
            raise
        except Exception as e:
            call.status = 500
            self.internal_errors.append(e)
            raise
        else:
            call.status = response.status
            return response
        finally:
            self._results.pop(request, None)

    def _record(self, request: rendering.Request) -> ApiCall:
        headers = {k.lower(): v for k, v in request.headers.items()}
        is_resource = self._is_resource_request(request)
        assert request.resource is not None or not is_resource
        call = ApiCall(
            method=str(request.method.value),
            path=request.url.path,
            query=dict(request.params),
            verb=_rbac_verb(request.method.value, request.name, request.params) if is_resource else "get",
            api_group=request.resource.group if is_resource and request.resource else None,
            version=request.resource.version if is_resource and request.resource else None,
            resource=request.resource.plural if is_resource and request.resource else None,
            subresource=request.subresource,
            namespace=request.namespace,
            name=request.name,
            user_agent=headers.get("user-agent", ""),
            authorization=headers.get("authorization"),
        )
        self.api_calls.append(call)
        return call

    # ----------------------------------------------------------------------------------------------
    # Discovery fixes.

    async def _serve_apis(self, request: rendering.Request) -> rendering.Payload:
        """kmock's group list, with versions in Kubernetes' priority order (kmock picks any)."""
        doc = await super()._serve_apis(request)
        assert isinstance(doc, dict)
        for group in doc.get("groups", []):
            group["versions"].sort(key=lambda v: _version_priority(v["version"]))
            group["preferredVersion"] = group["versions"][0]
        return doc

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """kmock's resource list, with core ``groupVersion: v1`` (not ``/v1``) and subresource kinds/verbs."""
        doc = await super()._serve_version(request)
        assert isinstance(doc, dict)
        if doc.get("groupVersion", "").startswith("/"):
            doc["groupVersion"] = doc["groupVersion"][1:]
        for entry in doc.get("resources", []):
            if "/" in entry["name"]:
                entry["verbs"] = ["get", "patch", "update"]
                if entry["name"].endswith("/scale"):
                    entry.update(kind="Scale", group="autoscaling", version="v1")
        return doc

    # ----------------------------------------------------------------------------------------------
    # Serving (runs after _mutate, from the reaction registered in __attrs_post_init__).

    async def _serve(self, request: rendering.Request) -> Any:
        if request in self._results and self._results[request] is not None:
            return self._results[request]
        res = self._known(request)
        params = request.params
        if request.method == enums.method.GET:
            if params.get("watch") in {"true", "1"}:
                return self._watch(request, res)
            async with self._lock:
                if request.name is None:
                    return self._list(res, request.namespace, params)
                body = self._require(res, request.namespace, request.name)
                if request.subresource is None:
                    return body
                if request.subresource == "status" and "status" in self.resources[res].subresources:
                    return body
                if request.subresource == "scale" and "scale" in self.resources[res].subresources:
                    return self._scale_of(body)
                raise _not_found(f"{res.plural}/{request.subresource}")
        raise _error(405, "MethodNotAllowed", f"{request.method.value} is not supported on {request.url.path}")

    def _list(self, res: kmock.resource, namespace: str | None, params: Mapping[str, str]) -> Body:
        info = self.resources[res]
        return {
            "apiVersion": f"{res.group}/{res.version}" if res.group else res.version,
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": self._select(res, namespace, params),
        }

    async def _watch(self, request: rendering.Request, res: kmock.resource) -> AsyncIterator[Any]:
        params = request.params
        namespace, name = request.namespace, request.name
        since = params.get("resourceVersion") or "0"
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None

        def matches(event: Body) -> bool:
            obj = event["object"]
            meta = _meta(obj)
            return (
                (namespace is None or meta.get("namespace") == namespace)
                and (name is None or meta.get("name") == name)
                and label_selector_matches(params.get("labelSelector"), meta.get("labels"))
                and field_selector_matches(params.get("fieldSelector"), obj)
            )

        bus = self._buses[res]
        async with self._lock:
            marker = await bus.mark()  # under the lock: no event is lost between the replay and the bus
            if since == "0":
                # "Any version": synthetic ADDED events for what exists now, then changes.
                replay = [{"type": "ADDED", "object": obj} for obj in self._select(res, namespace, params)]
            else:
                try:
                    since_rv = int(since)
                except ValueError:
                    raise _bad_request(f"invalid resourceVersion {since!r}") from None
                start = bisect.bisect_right(self._history, since_rv, key=lambda entry: entry[0])
                replay = [ev for _, r, ev in self._history[start:] if r == res and matches(ev)]
        try:
            yield b""  # sends the headers now, even if nothing happens for a while
            for event in replay:
                yield event
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            stream = bus.stream(since=marker)
            try:
                while True:
                    try:
                        async with asyncio.timeout_at(deadline):
                            event = await anext(stream)
                    except TimeoutError:
                        return
                    if event is _STOP:
                        return
                    if matches(event):
                        yield event
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator, typed as an iterator
        finally:
            if marker in bus._offsets:
                await bus.unmark(marker)

    async def stop_watches(self) -> None:
        """End every open watch stream (so the HTTP server can stop without waiting for them)."""
        for bus in list(self._buses.values()):
            await bus.put(_STOP)

    # ----------------------------------------------------------------------------------------------
    # State changes (under the lock).

    async def _mutate(self, request: rendering.Request) -> Any:
        method = request.method
        if method == enums.method.GET:
            return None
        res = self._known(request)
        ns, name, sub = request.namespace, request.name, request.subresource
        if method == enums.method.POST and name is None:
            return await self._create(res, ns, request.data)
        if method == enums.method.DELETE and name is None:
            return await self._delete_collection(res, ns, request)
        if name is None:
            raise _error(405, "MethodNotAllowed", f"{method.value} needs an object name")
        if method == enums.method.DELETE:
            return await self._delete(res, ns, name, request.data, request.params)
        if method not in {enums.method.PATCH, enums.method.PUT}:
            raise _error(405, "MethodNotAllowed", f"{method.value} is not supported")
        old = self._require(res, ns, name)
        info = self.resources[res]
        if sub == "scale" and "scale" in info.subresources:
            return await self._write_scale(res, old, request)
        if sub is not None and not (sub == "status" and "status" in info.subresources):
            raise _not_found(f"{res.plural}/{sub}")
        if method == enums.method.PUT:
            if not isinstance(request.data, dict):
                raise _bad_request("the body of a PUT must be an object")
            new = copy.deepcopy(request.data)
        else:
            new = self._apply_patch(old, request)
        return await self._update(res, old, new, sub, precondition_from=new)

    def _known(self, request: rendering.Request) -> kmock.resource:
        res = request.resource
        assert res is not None
        if res not in self.resources:
            raise _not_found(f"the server could not find the requested resource ({res.plural}.{res.group})")
        namespaced = bool(self.resources[res].namespaced)
        if request.namespace is not None and not namespaced:
            raise _not_found(f"{res.plural} is cluster-scoped; no such path")
        if request.namespace is None and namespaced and request.name is not None:
            raise _not_found(f"{res.plural} is namespaced; no such path")
        return res

    def _key(self, res: kmock.resource, namespace: str | None, name: str) -> tuple[kmock.resource, str | None, str]:
        return (res, namespace, name)

    def _live(self, res: kmock.resource, namespace: str | None, name: str) -> Body | None:
        key = self._key(res, namespace, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj.raw

    def _require(self, res: kmock.resource, namespace: str | None, name: str) -> Body:
        body = self._live(res, namespace, name)
        if body is None:
            raise _not_found(f'{res.plural}.{res.group} "{name}"'.replace(". ", " "))
        return body

    def _select(self, res: kmock.resource, namespace: str | None, params: Mapping[str, str]) -> list[Body]:
        result = []
        for (r, ns, _), obj in self._objects.items():
            if r != res or obj.deleted or (namespace is not None and ns != namespace):
                continue
            body = obj.raw
            labels = _meta(body).get("labels")
            if label_selector_matches(params.get("labelSelector"), labels) and field_selector_matches(
                params.get("fieldSelector"), body
            ):
                result.append(body)
        return result

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _prepare_new(self, res: kmock.resource, namespace: str | None, data: Any) -> Body:
        if not isinstance(data, dict):
            raise _bad_request("the body must be a JSON object")
        body: Body = copy.deepcopy(data)
        info = self.resources[res]
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if info.namespaced:
            if namespace is None:
                raise _not_found(f"{res.plural} is namespaced; POST to .../namespaces/NAMESPACE/{res.plural}")
            if meta.get("namespace") not in (None, namespace):
                raise _bad_request("the namespace of the object does not match the namespace of the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _invalid("metadata.name or metadata.generateName is required")
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_SUFFIX_CHARS, k=5))
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        body.setdefault("apiVersion", f"{res.group}/{res.version}" if res.group else res.version)
        body.setdefault("kind", info.kind)
        if "status" in info.subresources:
            body.pop("status", None)  # as the API server does with a status subresource
        if res == DEPLOYMENTS:
            body.setdefault("spec", {}).setdefault("replicas", 1)  # defaulting
        _fold_string_data(res, body)
        self._validate(res, body)
        return body

    def _validate(self, res: kmock.resource, body: Body) -> None:
        if not self.validate_builtins or res not in self.builtins:
            return
        import kubernetes_validate  # noqa: PLC0415 - only needed when validating
        import kubernetes_validate.utils  # noqa: PLC0415

        version = self.schema_version or kubernetes_validate.utils.latest_version()
        try:
            kubernetes_validate.validate(body, version, strict=False)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(part) for part in e.path)
            raise _invalid(f"{body.get('kind')} {_meta(body).get('name')!r} is invalid: {path}: {e.message}") from None

    async def _create(self, res: kmock.resource, namespace: str | None, data: Any) -> Body:
        name = _meta(data).get("name") if isinstance(data, dict) else None
        if name and self._live(res, namespace if self.resources[res].namespaced else None, name) is not None:
            raise _error(409, "AlreadyExists", f'{res.plural}.{res.group} "{name}" already exists')
        body = self._prepare_new(res, namespace, data)
        if res == CRDS:
            self._register_crd(body)
        await self._emit(res, _meta(body).get("namespace"), body, "ADDED")
        return body

    def _apply_patch(self, old: Body, request: rendering.Request) -> Body:
        content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
        content_type = content_type.split(";")[0].strip().lower()
        patch = request.data
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise _bad_request("a JSON patch must be a list of operations")
            try:
                result = jsonpatch.apply_patch(old, patch, in_place=False)
            except jsonpatch.JsonPatchTestFailed as e:
                raise _invalid(f"the JSON patch test failed: {e}") from None
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, TypeError) as e:
                raise _invalid(f"the JSON patch cannot be applied: {e}") from None
            if not isinstance(result, dict):
                raise _invalid("the JSON patch replaced the whole object with a non-object")
            return result
        if content_type in {"application/merge-patch+json", "application/strategic-merge-patch+json"}:
            if not isinstance(patch, dict):
                raise _bad_request("a merge patch must be a JSON object")
            result = merge_patch(old, patch)
            assert isinstance(result, dict)
            return result
        raise _error(415, "UnsupportedMediaType", f"the patch content type {content_type!r} is not supported")

    async def _update(
        self,
        res: kmock.resource,
        old: Body,
        new: Body,
        sub: str | None,
        *,
        precondition_from: Mapping[str, Any] | None = None,
    ) -> Body:
        info = self.resources[res]
        old_meta = _meta(old)
        wanted_rv = _meta(precondition_from or {}).get("resourceVersion")
        if wanted_rv is not None and str(wanted_rv) != str(old_meta.get("resourceVersion")):
            raise _conflict(
                f'Operation cannot be fulfilled on {res.plural} "{old_meta.get("name")}": '
                "the object has been modified; please apply your changes to the latest version and try again"
            )

        if sub == "status":  # only .status changes through the status subresource
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = copy.deepcopy(status)
        elif "status" in info.subresources:  # ... and never through the object itself
            new = copy.deepcopy(new)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(new)
        _fold_string_data(res, new)

        new_meta = new.get("metadata")
        if not isinstance(new_meta, dict):
            new_meta = new["metadata"] = {}
        for key in _SYSTEM_METADATA:
            if key in old_meta:
                new_meta[key] = old_meta[key]
            else:
                new_meta.pop(key, None)
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        if old_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise _invalid(f"no new finalizers can be added if the object is being deleted: {sorted(added)}")

        if new == old:
            return old  # a no-op: no new resourceVersion, no watch event
        self._validate(res, new)
        if _spec_view(new) != _spec_view(old):
            new_meta["generation"] = int(old_meta.get("generation") or 0) + 1
        new_meta["resourceVersion"] = self._next_rv()
        namespace = new_meta.get("namespace")
        await self._emit(res, namespace, new, "MODIFIED")
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            await self._remove(res, namespace, new_meta["name"])
        return new

    async def _delete(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        options: Any,
        params: Mapping[str, str],
    ) -> Body:
        body = self._require(res, namespace, name)
        meta = _meta(body)
        options = options if isinstance(options, dict) else {}
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) is not None and preconditions[field] != meta.get(field):
                raise _conflict(f"Precondition failed: {field} in precondition: {preconditions[field]}")
        policy = options.get("propagationPolicy") or params.get("propagationPolicy")
        if policy is None and options.get("orphanDependents"):
            policy = "Orphan"
        if meta.get("uid"):
            self._policies[meta["uid"]] = policy or "Background"
        if not meta.get("finalizers"):
            return await self._remove(res, namespace, name)
        if meta.get("deletionTimestamp"):
            return body  # already being deleted: nothing changes
        new = copy.deepcopy(body)
        new_meta = new["metadata"]
        new_meta["deletionTimestamp"] = _now()
        new_meta["deletionGracePeriodSeconds"] = 0
        new_meta["generation"] = int(meta.get("generation") or 0) + 1  # as the API server does
        new_meta["resourceVersion"] = self._next_rv()
        await self._emit(res, namespace, new, "MODIFIED")
        return new

    async def _delete_collection(self, res: kmock.resource, namespace: str | None, request: rendering.Request) -> Body:
        deleted = []
        for body in self._select(res, namespace, request.params):
            meta = _meta(body)
            deleted.append(await self._delete(res, meta.get("namespace"), meta["name"], request.data, request.params))
        result = self._list(res, namespace, {})
        result["items"] = deleted
        return result

    async def _remove(self, res: kmock.resource, namespace: str | None, name: str) -> Body:
        """The object is gone for good: store the deletion, emit DELETED, collect its dependents."""
        key = self._key(res, namespace, name)
        final = copy.deepcopy(self._objects[key].raw)
        final.setdefault("metadata", {})["resourceVersion"] = self._next_rv()
        self._objects[key].delete()
        await self._notify(res, final, "DELETED")
        uid = _meta(final).get("uid")
        if uid:
            await self._collect_dependents(uid, self._policies.pop(uid, "Background"))
        if res == CRDS:
            self._unregister_crd(final)
        return final

    async def _collect_dependents(self, owner_uid: str, policy: str) -> None:
        """The garbage collector, done at once: dependents of a removed owner are deleted or orphaned.

        Background and Foreground are treated alike (no ``foregroundDeletion`` finalizer).
        """
        live_uids = {_meta(o.raw).get("uid") for o in self._objects.values() if not o.deleted}
        dependents = []
        for (res, ns, name), obj in list(self._objects.items()):
            if obj.deleted:
                continue
            refs = _meta(obj.raw).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                dependents.append((res, ns, name, refs))
        for res, ns, name, refs in dependents:
            body = self._live(res, ns, name)
            if body is None:
                continue  # removed meanwhile by a cascade
            others = [ref for ref in refs if ref.get("uid") != owner_uid and ref.get("uid") in live_uids]
            if policy == "Orphan" or others:
                new = copy.deepcopy(body)
                kept = [ref for ref in refs if ref.get("uid") != owner_uid]
                if kept:
                    new["metadata"]["ownerReferences"] = kept
                else:
                    new["metadata"].pop("ownerReferences", None)
                await self._update(res, body, new, None)
            else:
                await self._delete(res, ns, name, {"propagationPolicy": "Background"}, {})

    async def _write_scale(self, res: kmock.resource, old: Body, request: rendering.Request) -> Body:
        scale = self._scale_of(old)
        if request.method == enums.method.PUT:
            new_scale = request.data if isinstance(request.data, dict) else {}
        else:
            new_scale = self._apply_patch(scale, request)
        replicas = _dig(new_scale, "spec.replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise _invalid(f"spec.replicas must be a non-negative integer, got {replicas!r}")
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        updated = await self._update(res, old, new, None, precondition_from=new_scale)
        return self._scale_of(updated)

    @staticmethod
    def _scale_of(body: Body) -> Body:
        meta = _meta(body)
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": _dig(body, "spec.replicas") or 0},
            "status": {"replicas": _dig(body, "status.replicas") or 0, "selector": _selector_string(body)},
        }

    def _store(self, res: kmock.resource, namespace: str | None, body: Body, event_type: str, *, notify: bool) -> None:
        key = self._key(res, namespace, _meta(body)["name"])
        if key in self._objects:
            self._objects[key].history.append(body)
        else:
            self._objects[key] = body
        self._history.append((int(_meta(body)["resourceVersion"]), res, {"type": event_type, "object": body}))
        if notify:
            self._changed()

    async def _emit(self, res: kmock.resource, namespace: str | None, body: Body, event_type: str) -> None:
        self._store(res, namespace, body, event_type, notify=False)
        await self._buses[res].put({"type": event_type, "object": body})
        self._changed()

    async def _notify(self, res: kmock.resource, body: Body, event_type: str) -> None:
        event = {"type": event_type, "object": body}
        self._history.append((int(_meta(body)["resourceVersion"]), res, event))
        await self._buses[res].put(event)
        self._changed()

    def _changed(self) -> None:
        with self.changed:
            self.change_count += 1
            self.changed.notify_all()

    # ----------------------------------------------------------------------------------------------
    # CRDs.

    def _register_crd(self, crd: Body) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not (spec.get("group") and names.get("plural") and names.get("kind") and versions):
            raise _invalid("a CRD needs spec.group, spec.names.plural, spec.names.kind and served versions")
        for version in versions:
            subresources = version.get("subresources") or {}
            self.resources[kmock.resource(spec["group"], version["name"], names["plural"])] = kmock.ResourceInfo(
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                verbs=ALL_VERBS,
                shortnames=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                subresources={s for s in ("status", "scale") if s in subresources},
            )
        now = _now()
        crd["status"] = {
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": [v["name"] for v in versions if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "lastTransitionTime": now},
            ],
        }

    def _unregister_crd(self, crd: Body) -> None:
        spec = crd.get("spec") or {}
        for version in spec.get("versions") or []:
            res = kmock.resource(spec.get("group"), version.get("name"), (spec.get("names") or {}).get("plural"))
            if res in self.resources:
                del self.resources[res]

    # ----------------------------------------------------------------------------------------------
    # Reading from tests (call these in the emulator's loop, e.g. via RunningCluster.call()).

    def get_object(self, res: kmock.resource, namespace: str | None, name: str) -> Body | None:
        """The object as stored now, or None if absent or removed."""
        return self._live(res, namespace, name)

    def list_objects(self, res: kmock.resource, namespace: str | None = None) -> list[Body]:
        return self._select(res, namespace, {})

    def rbac_usage(self, *, user_agent_prefix: str = "", token: str | None = None) -> set[tuple[str, str, str]]:
        """Which (apiGroup, resource[/subresource], verb) triples a client used, as RBAC rules name them.

        Clients are told apart by their User-Agent prefix (kopf's is ``kopf/``) and/or bearer token.
        """
        return {
            (call.api_group or "", call.rbac_resource or "", call.verb)
            for call in self.api_calls
            if call.resource is not None
            and call.user_agent.startswith(user_agent_prefix)
            and (token is None or call.authorization == f"Bearer {token}")
        }


# --------------------------------------------------------------------------------------------------
# Serving from a background thread.


def _differs(emulator: ClusterEmulator, seen: int) -> bool:
    return emulator.change_count != seen


class RunningCluster(Background):
    """Serves a :class:`ClusterEmulator` on 127.0.0.1 (a free port) from its own thread and loop.

    Use as a context manager (or via the ``cluster`` fixture). Everything here is synchronous
    and thread-safe: reads run in the emulator's loop, under its lock, and return deep copies.
    """

    def __init__(self, factory: Callable[[], ClusterEmulator] = ClusterEmulator, *, host: str = "127.0.0.1") -> None:
        self._factory = factory
        self._host = host
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emulator: ClusterEmulator | None = None
        self._url: str | None = None

    # Lifecycle.

    def start(self, timeout: float = 10) -> None:
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the Kubernetes emulator did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._startup_error

    def stop(self, timeout: float = 30) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the Kubernetes emulator did not stop in time")
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            self._startup_error = e
            self._ready.set()
            if not isinstance(e, Exception):
                raise
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = self._factory()
        async with emulator, kmock.Server(emulator, host=self._host) as server:
            self._emulator = emulator
            self._url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            await emulator.stop_watches()

    # Access.

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def emulator(self) -> ClusterEmulator:
        """The emulator itself; touch its state only via :meth:`call` (it lives in another thread)."""
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    @property
    def api_calls(self) -> list[ApiCall]:
        """A copy of the request log so far."""
        return self.call(lambda em: list(em.api_calls), copy_result=False)

    def call(self, fn: Callable[[ClusterEmulator], T], *, timeout: float = 10, copy_result: bool = True) -> T:
        """Run ``fn(emulator)`` in the emulator's loop under its lock; return (a deep copy of) the result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        emulator = self.emulator

        async def locked() -> T:
            async with emulator._lock:
                result = fn(emulator)
                return copy.deepcopy(result) if copy_result else result

        return asyncio.run_coroutine_threadsafe(locked(), self._loop).result(timeout)

    def get(self, res: kmock.resource, namespace: str | None, name: str) -> Body | None:
        return self.call(lambda em: em.get_object(res, namespace, name))

    def list(self, res: kmock.resource, namespace: str | None = None) -> list[Body]:
        return self.call(lambda em: em.list_objects(res, namespace))

    def wait_for(
        self,
        predicate: Callable[[ClusterEmulator], T],
        *,
        timeout: float = 10,
        message: str = "condition",
    ) -> T:
        """Wait until ``predicate(emulator)`` returns something truthy; return (a copy of) it.

        The predicate runs in the emulator's loop under its lock, first at once and then after each
        stored change (no polling). TimeoutError after ``timeout`` seconds.
        """
        emulator = self.emulator
        deadline = time.monotonic() + timeout
        while True:
            with emulator.changed:
                seen = emulator.change_count
            result = self.call(predicate)
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {message}; last result: {result!r}")
            with emulator.changed:
                emulator.changed.wait_for(functools.partial(_differs, emulator, seen), timeout=remaining)

    def wait_for_object(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        condition: Callable[[Body], Any] = bool,
        *,
        timeout: float = 10,
    ) -> Body:
        """Wait until the object exists and ``condition(object)`` is truthy; return the object."""

        def check(em: ClusterEmulator) -> Body | None:
            body = em.get_object(res, namespace, name)
            return body if body is not None and condition(body) else None

        result = self.wait_for(check, timeout=timeout, message=f"{res.plural} {namespace}/{name} to match")
        assert result is not None
        return result

    def wait_for_absence(self, res: kmock.resource, namespace: str | None, name: str, *, timeout: float = 10) -> None:
        self.wait_for(
            lambda em: em.get_object(res, namespace, name) is None,
            timeout=timeout,
            message=f"{res.plural} {namespace}/{name} to be gone",
        )

    # Credentials.

    def kubeconfig(self, *, token: str = KUBECONFIG_TOKEN) -> Body:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": token}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
            "current-context": "emulator",
        }

    def write_kubeconfig(self, path: Path, *, token: str = KUBECONFIG_TOKEN) -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig(token=token)), encoding="utf-8")
        return path

    def api_client(self, *, token: str = KUBECONFIG_TOKEN) -> kubernetes.client.ApiClient:
        """A ``kubernetes`` ApiClient for this emulator (close it, or use it as a context manager)."""
        import kubernetes.client  # noqa: PLC0415 - optional for users of the emulator alone

        configuration = kubernetes.client.Configuration(host=self.url)
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return kubernetes.client.ApiClient(configuration)

    def connection_info(self, *, token: str = KUBECONFIG_TOKEN) -> kopf.ConnectionInfo:
        import kopf  # noqa: PLC0415

        return kopf.ConnectionInfo(server=self.url, token=token, scheme="Bearer")

    def kopf_registry(
        self,
        *,
        login: Literal["handler", "kubeconfig"] = "handler",
        token: str = LOGIN_HANDLER_TOKEN,
    ) -> kopf.OperatorRegistry:
        """A fresh kopf registry with one ``@kopf.on.login`` handler, for ``KopfRunner(registry=...)``.

        ``login="handler"``: kopf logs in to this emulator with ``token``, whatever the kubeconfig.
        ``login="kubeconfig"``: kopf's own ``login_via_client`` (what kopf picks by default when
        the ``kubernetes`` package is installed), so ``KUBECONFIG`` decides, as in production.

        The operator module's ``@kopf.on...`` handlers are added to this registry when kopf
        loads it (kopf makes the given registry the process-wide default for that).
        """
        import kopf  # noqa: PLC0415

        registry = kopf.OperatorRegistry()
        if login == "kubeconfig":
            kopf.on.login(registry=registry)(kopf.login_via_client)
            return registry
        info = self.connection_info(token=token)

        @kopf.on.login(registry=registry)
        def login_to_emulator(**_: Any) -> kopf.ConnectionInfo:
            return info

        return registry

    @contextlib.contextmanager
    def run_operator(
        self,
        *paths: str | Path,
        login: Literal["handler", "kubeconfig"] = "kubeconfig",
        args: Sequence[str] = ("--all-namespaces", "--standalone", "--verbose"),
        timeout: float = 30,
    ) -> Iterator[KopfRunner]:
        """``kopf run ARGS PATHS`` in a ``KopfRunner`` thread against this emulator.

        The operator gets a fresh registry (see :meth:`kopf_registry`), so its handlers never leak
        into kopf's process-wide default registry, which is restored afterwards. The runner's
        output, exit code and exception are available after the ``with`` block.
        """
        import kopf  # noqa: PLC0415
        from kopf.testing import KopfRunner  # noqa: PLC0415

        previous = kopf.get_default_registry()
        registry = self.kopf_registry(login=login)
        try:
            with KopfRunner(["run", *args, *map(str, paths)], registry=registry, timeout=timeout) as runner:
                yield runner
        finally:
            kopf.set_default_registry(previous)
