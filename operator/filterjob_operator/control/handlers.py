"""kopf handlers: they only wire. The work is in ``reconcile`` (one job's life),
``kube`` (the API), ``broker`` (RabbitMQ) and the pure ``builders`` and ``status``.

Run with ``filterjob operator`` or ``kopf run -m filterjob_operator.control.handlers``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import aio_pika
import kopf

from filterjob_operator.adapters import brokerref, kube
from filterjob_operator.adapters.broker.topology import delete
from filterjob_operator.adapters.metrics import OperatorMetrics
from filterjob_operator.control import metricsapi
from filterjob_operator.control.reconcile import job as reconcile
from filterjob_operator.control.reconcile.services import Services
from filterjob_operator.control.settings import Settings
from filterjob_operator.core import status
from filterjob_operator.core.crd import PLURAL
from filterjob_operator.core.jobworkers import topology_of
from filterjob_operator.core.spec import GROUP, VERSION, JobSpecError, parse_job
from filterjob_operator.core.workload import MAX_ATTEMPTS
from filterjob_worker.core.topology import RetryPolicy, Topology

FINALIZER = f"{GROUP}/cleanup"
#: Seconds between two attempts of a deleted job's cleanup, at most.
FINALIZER_RETRY = 10.0
log = logging.getLogger("filterjob.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.INFO
    config = Settings.from_env()
    metrics = OperatorMetrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    cluster = kube.Kube(kube.load_config())
    memo.services = Services(settings=config, kube=cluster, metrics=metrics)
    memo.metrics_api = None
    if config.external_metrics.port:
        try:
            memo.metrics_api = await metricsapi.start(
                cluster, config.external_metrics, default_secret=config.broker_secret
            )
        except metricsapi.Unservable as e:
            # Not retried: a missing certificate or aggregation layer does not come back by itself.
            # ``filterjob operator`` finds the error in kopf's and exits with its message.
            raise kopf.PermanentError(f"cannot serve the External metrics API: {e}") from e


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("metrics_api") is not None:
        await memo.metrics_api.cleanup()


# On deletion or operator exit the daemon sees `stopped` and returns by itself within
# a status interval; cancelling it mid-call would only leave work half done.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=30.0)
async def run_job(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    await reconcile.run(memo.services, body, stopped)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def remove_queues(body: kopf.Body, memo: kopf.Memo, runtime: datetime.timedelta, **_: Any) -> None:
    """The finalizer: a deleted job's queues go with it (children go by owner references).

    With its broker or broker Secret gone, it retries for ``FILTERJOB_FINALIZER_TIMEOUT``
    (``runtime`` counts from the first attempt, across operator restarts), then lets the
    job go with a Warning naming the queues left behind: a deletion, or a namespace's,
    never hangs on a broker that will not come back.
    """
    services: Services = memo.services
    observed = body.get("status") or {}
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    key = f"{namespace}/{name}"
    try:
        job = parse_job(dict(body))
    except JobSpecError:
        if not observed.get("queues"):
            return  # never valid, so nothing was declared
        # Valid once (its queues exist), edited since: the queues are named in the status.
        topology, secret_name = _declared(body, observed["queues"], default_secret=services.settings.broker_secret)
    else:
        if status.never_declared(observed, broker_reasons=brokerref.REASONS):
            log.info("%s never reached its broker: no queues to delete", job.key)
            return  # a typo in the Secret's name deletes at once, not after the finalizer timeout
        topology = topology_of(job)
        secret_name = job.spec.broker.secret_ref.name if job.spec.broker else services.settings.broker_secret
    try:
        url, _management = await services.broker_urls.read_or_remembered(services.kube, namespace, secret_name)
        connection = await brokerref.connect_once(url, secret=f"{namespace}/{secret_name}")
        async with connection:
            await delete(await connection.channel(), topology)
    except (brokerref.BrokerUnavailable, aio_pika.exceptions.AMQPError, OSError) as e:
        left = services.settings.finalizer_timeout - runtime.total_seconds()
        if left > 0:
            raise kopf.TemporaryError(
                f"cannot delete the queues of {key}: {e}; giving up in {left:.0f}s",
                delay=min(FINALIZER_RETRY, left),
            ) from e
        retries = topology.retry_queues
        if len(retries) > 3:  # a job edited into an invalid spec: every retry queue it may have had
            retries = [f"{retries[0]} to {retries[-1]}"]
        names = ", ".join([topology.tasks, *retries, topology.parked, topology.inputs, topology.outputs])
        message = (
            f"gave up deleting the queues of {key} after {services.settings.finalizer_timeout:g}s ({e}); "
            f"left behind on the broker: {names} and exchanges {topology.events}, {topology.dead_letters}"
        )
        log.warning("%s", message)
        kopf.warn(body, reason="QueuesLeftBehind", message=message)
    else:
        log.info("deleted the queues of %s", key)
    services.metrics.forget(namespace, name)


def _declared(body: kopf.Body, base: str, *, default_secret: str) -> tuple[Topology, str]:
    """The queues and broker Secret of a job whose spec no longer parses, from what is left of it.

    Its retry queues are numbered by a ``maxAttempts`` that may be gone or changed, so every
    number a spec may have is covered (deleting a queue that does not exist is no error).
    """
    secret: Any = body.get("spec") or {}
    for field in ("broker", "secretRef", "name"):
        secret = secret.get(field) if isinstance(secret, Mapping) else None
    widest = RetryPolicy(max_attempts=MAX_ATTEMPTS)
    return Topology(base=base, retry=widest), secret if isinstance(secret, str) and secret else default_secret
