"""kopf handlers: they only wire. The work is in ``reconciler`` (one job's life),
``kube`` (the API), ``broker`` (RabbitMQ) and the pure ``builders`` and ``status``.

Run with ``filterjob operator`` or ``kopf run -m filterjob_operator.handlers``.
"""

from __future__ import annotations

import logging
from typing import Any

import aio_pika
import kopf

from filterjob_operator import kube
from filterjob_operator.crd import PLURAL
from filterjob_operator.metrics import OperatorMetrics
from filterjob_operator.reconciler import Reconciler, Services
from filterjob_operator.settings import Settings
from filterjob_operator.spec import GROUP, VERSION, JobSpecError, parse_job
from filterjob_operator.workerenv import topology_of
from filterjob_worker.topology import delete

FINALIZER = f"{GROUP}/cleanup"
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
    memo.services = Services(settings=config, kube=kube.Kube(kube.load_config()), metrics=metrics)


# On deletion or operator exit the daemon sees `stopped` and returns by itself within
# a status interval; cancelling it mid-call would only leave work half done.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=30.0)
async def run_job(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    await Reconciler(memo.services, body, stopped).run()


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def remove_queues(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The finalizer: a deleted job's queues go with it (children go by owner references)."""
    try:
        job = parse_job(dict(body))
    except JobSpecError:
        return  # never valid, so nothing was declared
    services: Services = memo.services
    secret_name = job.spec.broker.secret_ref.name if job.spec.broker else services.settings.broker_secret
    try:
        secret = await services.kube.secret(job.metadata.namespace, secret_name)
    except kube.KubeError as e:
        raise kopf.TemporaryError(f"cannot read broker secret {secret_name}: {e}", delay=10) from e
    connection = await aio_pika.connect(secret["url"])
    async with connection:
        await delete(await connection.channel(), topology_of(job))
    services.metrics.forget(job.metadata.namespace, job.metadata.name)
    log.info("deleted the queues of %s", job.key)
