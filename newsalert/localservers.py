"""Real local servers for the demo, the tests and the benchmarks: a feed server, a webhook
receiver, an SMTP sink and a throwaway PostgreSQL cluster. All bind to 127.0.0.1 on a free port
and are stopped by their owner.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

DEMO_ARTICLES = Path(__file__).with_name("demo_data") / "articles.jsonl"


def load_demo_articles(group: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DEMO_ARTICLES.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if group is None or r["group"] == group]


def rss_document(title: str, items: list[dict[str, Any]]) -> bytes:
    """An RSS 2.0 document; each item needs title, url, text and published (epoch seconds)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>",
        f"<description>{escape(title)}</description>",
    ]
    for item in items:
        published = datetime.fromtimestamp(item["published"], tz=UTC)
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title>"
            f"<link>{escape(item['url'])}</link>"
            f'<guid isPermaLink="false">{escape(item["id"])}</guid>'
            f"<pubDate>{format_datetime(published)}</pubDate>"
            f"<description>{escape(item['text'])}</description>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


class _AiohttpServer:
    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class FeedServer(_AiohttpServer):
    """Serves RSS feeds by path, with ETag and 304 support; feeds can change between polls."""

    def __init__(self) -> None:
        super().__init__()
        self.feeds: dict[str, bytes] = {}
        self.requests: list[str] = []

    def set_feed(self, path: str, title: str, items: list[dict[str, Any]]) -> str:
        self.feeds[path] = rss_document(title, items)
        return self.url(path)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{name:.*}", self._serve)

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        body = self.feeds.get(request.path)
        if body is None:
            return web.Response(status=404, text="no such feed")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"}
        )


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes
    verified: bool
    received_at: float = field(default_factory=time.time)

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(_AiohttpServer):
    """Accepts webhook POSTs, checks their Standard Webhooks signature, answers ``status``."""

    def __init__(self, secret: str, status: int = 200) -> None:
        super().__init__()
        self.secret = secret
        self.status = status  # what to answer: 200, 500, 410, 429, ...
        self.retry_after: str | None = None  # a Retry-After header to send with it
        self.delay_seconds = 0.0  # answer slowly
        self.received: list[ReceivedWebhook] = []
        self.arrived = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{name:.*}", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        from alerts.signing import verify_signature

        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = verify_signature(
            self.secret,
            headers.get("webhook-id", ""),
            headers.get("webhook-timestamp", ""),
            body,
            headers.get("webhook-signature", ""),
        )
        self.received.append(ReceivedWebhook(headers=headers, body=body, verified=verified))
        self.arrived.set()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        extra = {"Retry-After": self.retry_after} if self.retry_after else {}
        return web.Response(status=self.status if verified else 401, headers=extra)


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(
        self,
        *,
        tls: Any = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """``tls``: an ``ssl.SSLContext`` to require STARTTLS with (or, with ``implicit_tls``,
        to speak TLS from the first byte); ``credentials``: require AUTH with these."""
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.messages: list[EmailMessage] = []
        self.reply = "250 Message accepted for delivery"  # or e.g. "451 ..." / "550 ..."
        self.refused = 0
        self.arrived = asyncio.Event()
        self.port = 0
        self.connections_opened = 0  # every connection accepted since start
        # The next ``hang_ups`` MAIL commands are answered with ``hang_up_reply`` (nothing if
        # empty) and the connection closed: a server that timed the session out or restarted.
        self.hang_ups = 0
        self.hang_up_reply = "421 4.4.2 idle too long, closing connection"
        self._live: set[Any] = set()  # the server's protocol object of each open connection
        self._controller: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        from newsalert.broker import free_port

        self._loop = asyncio.get_running_loop()
        self.port = free_port()
        options: dict[str, Any] = {}
        if self.tls is not None and self.implicit_tls:
            options["ssl_context"] = self.tls
        elif self.tls is not None:
            options.update(tls_context=self.tls, require_starttls=True)
        if self.credentials is not None:
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_exclude_mechanism=["LOGIN"],
                auth_require_tls=not self.implicit_tls,  # implicit TLS is TLS from the start
            )
        self._controller = _counting_controller(
            self, hostname="127.0.0.1", port=self.port, **options
        )
        await asyncio.to_thread(self._controller.start)

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def drop_connections(self) -> None:
        """Close every open connection from the server side, as on an idle timeout."""
        assert self._controller is not None
        for protocol in list(self._live):
            self._controller.loop.call_soon_threadsafe(_close_transport, protocol)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address, options):  # noqa: N802
        if self.hang_ups > 0:
            self.hang_ups -= 1
            if not self.hang_up_reply:
                server.transport.abort()
                return "421 closing"  # never reaches the client: the connection is gone
            server.loop.call_soon(_close_transport, server)  # after the reply is written
            return self.hang_up_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and self.credentials == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)  # aiosmtpd then answers 535 itself

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if not self.reply.startswith("250"):
            self.refused += 1
            return self.reply
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.arrived.set)
        return "250 Message accepted for delivery"


def _close_transport(protocol: Any) -> None:
    if protocol.transport is not None:
        protocol.transport.close()


def _counting_controller(sink: SmtpSink, **options: Any) -> Any:
    """An aiosmtpd ``Controller`` for ``sink`` whose server keeps ``sink``'s connection count."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class CountingSMTP(SMTP):
        """aiosmtpd's server protocol, telling the sink when connections open and close."""

        def connection_made(self, transport: Any) -> None:
            if self not in sink._live:  # STARTTLS calls this again on the same connection
                sink.connections_opened += 1
                sink._live.add(self)
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            sink._live.discard(self)
            super().connection_lost(error)

    class CountingController(Controller):
        def factory(self) -> Any:
            return CountingSMTP(self.handler, **self.SMTP_kwargs)

    return CountingController(sink, **options)


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory from Debian's ``postgresql`` binaries,
    tuned for tests (no fsync), trusting local connections as user ``newsalert``."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="newsalert-pg-")
        self.base_url = ""
        self.port = 0
        self._as_user: list[str] = []
        self._server: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary(name: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
        if not found[-1]:
            raise RuntimeError(
                f"PostgreSQL's {name} not found: `make test` installs Debian's postgresql "
                "package; by hand: apt-get install postgresql"
            )
        return str(found[-1])

    def start(self, timeout_seconds: float = 30.0) -> str:
        """Start the cluster; return its base URL (append ``/DBNAME``)."""
        data, sockets = os.path.join(self.root, "data"), os.path.join(self.root, "sockets")
        os.mkdir(sockets)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.root, "postgres")
            shutil.chown(sockets, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        subprocess.run(
            [*self._as_user, self.binary("initdb"), "-D", data, "-A", "trust", "-U", "newsalert"]
            + ["--no-sync", "-E", "UTF8", "--locale", "C"],
            check=True,
            capture_output=True,
        )
        self.base_url = f"postgresql://newsalert@127.0.0.1:{self.port}"
        self._serve(timeout_seconds)
        return self.base_url

    def _serve(self, timeout_seconds: float) -> None:
        data, sockets = os.path.join(self.root, "data"), os.path.join(self.root, "sockets")
        log_path = os.path.join(self.root, "postgres.log")
        with open(log_path, "ab") as log_file:
            self._server = subprocess.Popen(
                [*self._as_user, self.binary("postgres"), "-D", data, "-p", str(self.port)]
                + ["-k", sockets, "-h", "127.0.0.1", "-c", "fsync=off"]
                + ["-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
                + ["-c", "max_connections=200"],
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        import psycopg

        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                psycopg.connect(f"{self.base_url}/postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self._server.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, encoding="utf-8", errors="replace") as log:
                        tail = log.read()[-2000:]
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start: {tail}") from None
                time.sleep(0.1)

    def stop_server(self) -> None:
        """Stop the server and keep its data: ``start_server`` brings it back, same port.
        Fast shutdown (pg_ctl -m fast): open connections are cut, as in a real outage; a
        plain SIGTERM would wait for every client to leave."""
        if self._server is not None:
            if self._server.poll() is None:
                data = os.path.join(self.root, "data")
                subprocess.run(
                    [*self._as_user, self.binary("pg_ctl"), "stop", "-D", data, "-m", "fast"]
                    + ["-w", "-t", "20"],
                    capture_output=True,
                )
            self._server.terminate()
            try:
                self._server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None

    def start_server(self, timeout_seconds: float = 30.0) -> None:
        self._serve(timeout_seconds)

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"{self.base_url}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return f"{self.base_url}/{name}"

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.root, ignore_errors=True)
