"""The worker's HTTP endpoints: ``/healthz`` (liveness), ``/readyz``, ``/metrics``."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from filterjob_worker.health import Health, State
from filterjob_worker.metrics import WorkerMetrics


def make_app(health: Health, metrics: WorkerMetrics) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        report = health.report()
        status = 503 if report.state is State.UNHEALTHY else 200
        return web.json_response({"state": report.state.value, "reason": report.reason}, status=status)

    async def readyz(request: web.Request) -> web.Response:
        report = health.report()
        return web.json_response(
            {"ready": report.ready, "reason": report.ready_reason, "state": report.state.value},
            status=200 if report.ready else 503,
        )

    async def prometheus(request: web.Request) -> web.Response:
        state = health.report().state
        for each in State:
            metrics.health.labels(each.value).set(1 if each is state else 0)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    return app


async def start(health: Health, metrics: WorkerMetrics, port: int) -> tuple[web.AppRunner, int]:
    """Serve the endpoints on ``port`` (0: one the system picks); the runner and the port bound."""
    runner = web.AppRunner(make_app(health, metrics), access_log=None)
    await runner.setup()
    # All interfaces: the kubelet probes the pod IP.
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()  # noqa: S104
    bound: int = runner.addresses[0][1]
    return runner, bound
