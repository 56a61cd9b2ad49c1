"""The operator's External metrics API server: ``external.metrics.k8s.io/v1beta1`` over HTTPS,
registered by the chart's APIService, so that an HPA (``autoscaling.mode: hpa``) reads each job's
queue depth from the operator with no metrics adapter of its own.

It runs in the operator's event loop beside kopf. Requests come through the kube-apiserver's
aggregator: its front-proxy client certificate and headers say who asks
(:mod:`~filterjob_operator.core.delegation`), a SubjectAccessReview whether they may, and the
answer is read from the job's broker when asked (:mod:`~filterjob_operator.core.extmetrics`).
"""

from __future__ import annotations

import datetime
import logging
import ssl
import time
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from filterjob_operator.adapters import brokerref
from filterjob_operator.adapters.broker.depths import DepthUnknown, outstanding
from filterjob_operator.adapters.broker.management import Management, vhost_of
from filterjob_operator.adapters.kube import Manifest
from filterjob_operator.adapters.kubeerrors import KubeError
from filterjob_operator.control.settings import ExternalMetrics
from filterjob_operator.core import delegation, extmetrics
from filterjob_operator.core.extmetrics import Problem
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import JobSpecError, parse_job

log = logging.getLogger("filterjob.operator")
#: Seconds an authorization answer is remembered (k8s.io/apiserver's webhook cache keeps 10 s too).
AUTHORIZATION_TTL = 10.0


class Unservable(Exception):
    """The server cannot start; ``cluster``: because the Kubernetes API refused or is away."""

    def __init__(self, message: str, *, cluster: bool = False) -> None:
        super().__init__(message)
        self.cluster = cluster


class Cluster(brokerref.Secrets, Protocol):
    """The calls of :class:`kube.Kube` the server makes."""

    async def config_map(self, namespace: str, name: str) -> dict[str, str]: ...
    async def access_review(self, review: Manifest) -> tuple[bool, str]: ...
    async def filterjob(self, namespace: str, name: str, *, seconds: float | None = None) -> Manifest | None: ...


class MetricsApi:
    """Answers one request: who asks, may they, and the job's depth."""

    def __init__(self, kube: Cluster, proxy: delegation.FrontProxy, *, default_secret: str) -> None:
        self._kube = kube
        self._proxy = proxy
        self._default_secret = default_secret
        self._answers = delegation.Answers(AUTHORIZATION_TTL)
        self._urls = brokerref.RememberedUrls()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await self.answer(request)
        except Problem as problem:
            if problem.code >= 500:
                log.warning("external metrics: %s: %s", request.path, problem.message)
            return web.json_response(extmetrics.status(problem), status=problem.code)
        return web.json_response(body)

    async def answer(self, request: web.Request) -> dict[str, Any]:
        # Who asks comes first: without the front proxy's certificate no path is answered.
        peer = request.transport.get_extra_info("peercert") if request.transport is not None else None
        user = delegation.authenticate(self._proxy, delegation.common_name(peer), request.headers.items())
        wanted = extmetrics.route(request.method, request.path)
        await self.authorize(user, wanted, request.path)
        if wanted.metric is None or wanted.namespace is None:
            return extmetrics.discovery()
        job = extmetrics.job_of(wanted, extmetrics.parse_selector(request.query.get("labelSelector", "")))
        value = await self.depth(wanted.namespace, job)
        return extmetrics.value_list(
            namespace=wanted.namespace, job=job, value=value, at=datetime.datetime.now(datetime.UTC)
        )

    async def authorize(self, user: delegation.User, wanted: extmetrics.Route, path: str) -> None:
        review = delegation.access_review(user, wanted, path)
        key, now = delegation.Answers.key(review), time.monotonic()
        known = self._answers.get(key, now=now)
        if known is None:
            try:
                known = await self._kube.access_review(review)
            except KubeError as e:
                raise Problem(503, f"cannot authorize the request (SubjectAccessReview: {e})") from None
            self._answers.put(key, *known, now=now)
        allowed, reason = known
        if not allowed:
            raise delegation.forbidden(user, wanted, reason)

    async def depth(self, namespace: str, name: str) -> int:
        """The job's queue depth, read from its broker now."""
        key = f"{namespace}/{name}"
        try:
            body = await self._kube.filterjob(namespace, name)
        except KubeError as e:
            raise Problem(503, f"cannot read FilterJob {key}: {e}") from None
        if body is None:
            raise Problem(
                404, f"no FilterJob {key}: the label selector job=NAME must name a FilterJob of the namespace"
            )
        try:
            job = parse_job(body)
        except JobSpecError as e:
            raise Problem(503, f"FilterJob {key} has an invalid spec: {'; '.join(e.problems)}") from None
        secret = job.spec.broker.secret_ref.name if job.spec.broker else self._default_secret
        try:
            url, management_url = await self._urls.read(self._kube, namespace, secret)
        except brokerref.BrokerUnavailable as e:
            raise Problem(503, f"the queue depth of FilterJob {key} cannot be read: {e.message}") from None
        try:
            async with Management(management_url, vhost=vhost_of(url)) as management:
                return await outstanding(management, topology_of(job))
        except (aiohttp.ClientError, TimeoutError, DepthUnknown) as e:
            raise Problem(503, f"the queue depth of FilterJob {key} cannot be read from its broker: {e}") from None


def tls(config: ExternalMetrics, proxy: delegation.FrontProxy) -> ssl.SSLContext:
    """The serving certificate; client certificates are checked against the front proxy's CA when given
    (optional in TLS, so that a request without one gets its 401 Status rather than a broken handshake)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=proxy.ca)
    context.load_cert_chain(config.cert, config.key)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def start(kube: Cluster, config: ExternalMetrics, *, default_secret: str) -> web.AppRunner:
    """Serve on ``config``'s address and port until the returned runner is cleaned up.

    Raises :class:`Unservable`, saying what to do, if the aggregator's client CA cannot be read,
    the API server has no aggregation layer, or the certificate or the port cannot be used.
    """
    where = f"{delegation.CONFIGMAP_NAMESPACE}/{delegation.CONFIGMAP_NAME}"
    try:
        data = await kube.config_map(delegation.CONFIGMAP_NAMESPACE, delegation.CONFIGMAP_NAME)
    except KubeError as e:
        raise Unservable(
            f"cannot read ConfigMap {where} (the aggregation layer's client CA): {e}; the chart's "
            "RoleBinding to extension-apiserver-authentication-reader in kube-system grants it",
            cluster=True,
        ) from None
    try:
        proxy = delegation.front_proxy(data)
    except ValueError as e:
        raise Unservable(str(e)) from None
    try:
        context = tls(config, proxy)
    except (OSError, ssl.SSLError) as e:
        raise Unservable(f"cannot use the serving certificate {config.cert} and key {config.key}: {e}") from None
    api = MetricsApi(kube, proxy, default_secret=default_secret)
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", api.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.address, config.port, ssl_context=context).start()
    except OSError as e:
        await runner.cleanup()
        raise Unservable(f"cannot listen on {config.address}:{config.port}: {e}") from None
    log.info("serving %s on %s:%d", extmetrics.GROUP_VERSION, config.address, config.port)
    return runner
