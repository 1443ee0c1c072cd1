"""The service's own HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` (the service
started and runs), ``/readyz`` (it can do its work now: newsalert/readiness.py), and the
subscriber links (unsubscribe, mute) that alerts registers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from newsalert.readiness import Readiness

log = logging.getLogger(__name__)


class BadRequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log for ServiceHttp. aiohttp logs a traceback for every request it
    refuses before a handler sees it (a 100 KB URL, oversized headers, not HTTP at all), and
    anyone who can reach the port can send those: here they are one WARNING line per client
    address per ``interval_seconds``. Anything else (a handler's exception) passes untouched."""

    MAX_CLIENTS = 4096  # clients remembered; beyond, the one logged longest ago goes first

    def __init__(
        self, interval_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.interval_seconds = interval_seconds
        self.clock = clock
        # client -> (when its last line was logged, refusals not logged since), in the order
        # the lines were logged, so the front is what to forget first
        self._clients: dict[str, tuple[float, int]] = {}

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        refused = kwargs.get("exc_info")
        # aiohttp's "Error handling request from %s": the client's address and the parser's
        # exception. At DEBUG it stays aiohttp's own (it logs non-HTTP first bytes there).
        if level >= logging.WARNING and isinstance(refused, HttpProcessingError):
            self.refused(str(args[0]) if args else "an unknown client", refused)
            return
        super().log(level, msg, *args, **kwargs)

    def refused(self, client: str, exc: HttpProcessingError) -> None:
        now = self.clock()
        logged_at, unlogged = self._clients.get(client, (None, 0))
        if logged_at is not None and now - logged_at < self.interval_seconds:
            self._clients[client] = (logged_at, unlogged + 1)  # keeps its place in the order
            return
        self._clients.pop(client, None)
        self._clients[client] = (now, 0)
        self._forget_quiet_clients(now)
        log.warning(
            "refused a malformed request from %s: HTTP %s, %s (%s)",
            client,
            exc.code,
            " ".join(str(exc.message).split())[:200],
            f"{unlogged} more from it since the last such line"
            if unlogged
            else f"more from it in the next {self.interval_seconds:.0f} s are not logged",
        )

    def _forget_quiet_clients(self, now: float) -> None:
        for client, (logged_at, _) in list(self._clients.items()):
            recent = now - logged_at < self.interval_seconds
            if recent and len(self._clients) <= self.MAX_CLIENTS:
                break
            del self._clients[client]


class ServiceHttp:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.ready = False  # started: what /healthz says
        self.readiness = Readiness()  # what /readyz says, once started
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
        app.router.add_get("/readyz", self._readiness)
        for register in self._extra:
            register(app)
        self._runner = web.AppRunner(app, access_log=None, logger=BadRequestLog())
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

    async def _readiness(self, request: web.Request) -> web.Response:
        """200 ``ready``, or 503 with one line per failing check: ``broker: ...``."""
        problems = self.readiness.problems if self.ready else {"service": "starting"}
        if not problems:
            return web.Response(text="ready\n")
        lines = "".join(f"{name}: {reason}\n" for name, reason in problems.items())
        return web.Response(status=503, text=lines)
