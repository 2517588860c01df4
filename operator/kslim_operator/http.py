"""The /metrics endpoint, served inside the operator's event loop (aiohttp, as Kopf uses).

Serving in the loop means the scrape-time collectors read Kopf's indexes without locks.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def build_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def start_metrics_server(
    registry: CollectorRegistry, port: int, host: str = "0.0.0.0"
) -> web.AppRunner:
    runner = web.AppRunner(build_app(registry), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
