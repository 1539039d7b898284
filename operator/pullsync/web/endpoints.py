"""The operator's HTTP servers, which run for the whole process: health (`/healthz`,
`/readyz`), metrics, and the webhook receiver (`webhook.Receiver`). Each has its own
address (`--health-addr`, `--metrics-addr`, `--webhook-addr`).
"""

import asyncio
import contextlib

import prometheus_client
from aiohttp import web

from pullsync.runtime import config


def health_app(ready: asyncio.Event) -> web.Application:
    """`/healthz` answers while the event loop turns; `/readyz` while `ready` is set: while
    this replica reconciles (once start-up finished) or stands by for the Lease."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="starting\n")

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    return application


def metrics_app() -> web.Application:
    """Prometheus exposition of the default registry."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=prometheus_client.generate_latest(), content_type="text/plain", charset="utf-8")

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    return application


STOP_SECONDS = 5.0  # for requests in flight when the servers stop


class Servers:
    """HTTP servers started together and stopped together."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []

    async def start(self, *apps: tuple[str, web.Application]) -> None:
        """Serve each (host:port, application)."""
        for addr, application in apps:
            host, port = config.split_addr(addr)
            runner = web.AppRunner(application, access_log=None, shutdown_timeout=STOP_SECONDS)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            self.runners.append(runner)

    async def stop(self) -> None:
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self.runners.clear()
