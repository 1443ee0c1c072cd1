"""The fetcher reuses keep-alive connections for 304s, redirects and 200s (a new TCP
connection per poll would cost more than the poll itself)."""

from __future__ import annotations

import pytest
from aiohttp import web

from connectors.fetcher import Fetcher
from newsalert.settings import Settings

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


@pytest.fixture
async def keepalive_server():
    client_ports: list[int] = []

    async def feed(request: web.Request) -> web.Response:
        client_ports.append(request.transport.get_extra_info("peername")[1])
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=RSS, headers={"ETag": '"v1"'})

    async def moved(request: web.Request) -> web.Response:
        client_ports.append(request.transport.get_extra_info("peername")[1])
        raise web.HTTPFound("/feed", text="moved " * 100)

    app = web.Application()
    app.router.add_get("/feed", feed)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", client_ports
    finally:
        await runner.cleanup()


async def test_sequential_polls_share_one_connection(keepalive_server, tmp_path):
    base, client_ports = keepalive_server
    fetcher = Fetcher(Settings(data_dir=tmp_path, allow_private_networks="127.0.0.0/8"))
    try:
        first = await fetcher.fetch(f"{base}/feed")
        statuses = [first.status]
        for _ in range(5):
            statuses.append((await fetcher.fetch(f"{base}/feed", etag=first.etag)).status)
        statuses.append((await fetcher.fetch(f"{base}/moved")).status)
    finally:
        await fetcher.aclose()
    assert statuses == [200, 304, 304, 304, 304, 304, 200]
    assert len(client_ports) == 8
    assert len(set(client_ports)) == 1, "every request went over the same connection"
