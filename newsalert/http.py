"""The service's own HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz``, and the
subscriber links (unsubscribe, mute) that alerts registers."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class ServiceHttp:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.ready = False
        self._runner: web.AppRunner | None = None
        self._extra: list[Callable[[web.Application], None]] = []

    def add_routes(self, register: Callable[[web.Application], None]) -> None:
        """Routes of other parts (e.g. alert links); call before :meth:`start`."""
        self._extra.append(register)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        for register in self._extra:
            register(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:  # the port is taken: leave nothing half set up behind the error
            await self.stop()
            raise
        # With port 0 the OS picked one: report the real port.
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        status = 200 if self.ready else 503
        return web.json_response({"ready": self.ready}, status=status)
