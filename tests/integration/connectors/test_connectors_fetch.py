"""The fetcher and poller against a real local HTTP server.

The server is a tiny scriptable HTTP/1.1 server on 127.0.0.1 that counts connections, so
tests can prove that a refused URL never opened a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import brotli
import pytest
from prometheus_client import REGISTRY

import connectors.rss
from connectors.base import FeedRequest
from connectors.fetcher import Fetcher, FetchError
from connectors.poller import FeedPoller
from connectors.rss import RssSource
from connectors.state import FeedState
from newsalert.cli import main
from newsalert.localservers import rss_document
from newsalert.settings import Settings
from tests.conftest import eventually


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def head(status: int, headers: dict[str, str] | None = None, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reply(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, headers, len(body)) + body)

    return handle


@dataclass
class FeedServer:
    port: int = 0
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = raw.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            request = Request(method, path, headers)
            self.requests.append(request)
            handler = self.routes.get(path, reply(404, b"not found"))
            await handler(request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what several tests provoke
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def feed_server():
    server = FeedServer()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Local News</title>
<item><title>Huawei and German 5G</title><link>http://news.test/1?utm_source=rss</link>
<guid>1</guid><description>Body one</description><pubDate>Mon, 15 Jan 2024 12:00:00 GMT</pubDate></item>
<item><title>Second story</title><link>http://news.test/2</link><guid>2</guid>
<description>Body two</description></item>
</channel></rss>"""
MIB = 1024 * 1024


def settings(tmp_path, **overrides) -> Settings:
    values = {
        "data_dir": tmp_path,
        "allow_private_networks": "127.0.0.0/8",
        "fetch_timeout_seconds": 2.0,
        "max_body_bytes": MIB,
    }
    return Settings(**(values | overrides))


@pytest.fixture
async def make_fetcher():
    fetchers = []

    def make(config: Settings, **kwargs) -> Fetcher:
        fetchers.append(Fetcher(config, **kwargs))
        return fetchers[-1]

    yield make
    for fetcher in fetchers:
        await fetcher.aclose()


class ListPublisher:
    def __init__(self):
        self.articles = []

    async def publish(self, article):
        self.articles.append(article)


def etag_feed(body: bytes, etag: str):
    async def handle(request: Request, writer: asyncio.StreamWriter) -> None:
        if request.headers.get("if-none-match") == etag:
            writer.write(head(304, {"ETag": etag}, 0))
        else:
            writer.write(
                head(200, {"ETag": etag, "Content-Type": "application/rss+xml"}, len(body))
            )
            writer.write(body)

    return handle


async def test_200_then_304_publishes_once_and_parses_nothing_the_second_time(
    tmp_path, feed_server: FeedServer, make_fetcher, monkeypatch
):
    feed_server.routes["/feed"] = etag_feed(RSS, '"v1"')
    parses = []
    real_parse = connectors.rss.parse_feed
    monkeypatch.setattr(
        connectors.rss, "parse_feed", lambda *a, **k: parses.append(1) or real_parse(*a, **k)
    )
    config = settings(tmp_path)
    state = FeedState(config.database_path)
    state.add_feed(feed_server.url("/feed"))
    publisher = ListPublisher()
    poller = FeedPoller(config, state, publisher, make_fetcher(config))
    lxml_parses = REGISTRY.get_sample_value("newsalert_feed_parses_total", {"parser": "lxml"})

    assert await poller.poll_once(now=1_800_000_000) == 2
    assert publisher.articles[0].url == "http://news.test/1"
    assert await poller.poll_once(now=1_800_100_000) == 0

    assert feed_server.requests[1].headers["if-none-match"] == '"v1"'
    assert len(parses) == 1, "a 304 must not be parsed"
    after = REGISTRY.get_sample_value("newsalert_feed_parses_total", {"parser": "lxml"})
    assert after - (lxml_parses or 0.0) == 1, "the parse is counted under the parser that read it"
    assert len(publisher.articles) == 2
    feed = state.get_feed(feed_server.url("/feed"))
    assert feed.etag == '"v1"' and feed.last_success_at == 1_800_100_000 and feed.last_error is None


async def test_a_feed_over_the_cap_keeps_its_newest_entries_and_says_so(
    tmp_path, feed_server, make_fetcher, caplog, capsys, monkeypatch
):
    now = 1_800_000_000
    cap, over = 5, 3
    hours = [7, 2, 8, 4, 1, 6, 3, 5]  # hours before now, in document order: not chronological
    items = [
        {
            "id": f"h{h}",
            "title": f"{h} hours ago",
            "url": f"http://news.test/{h}",
            "text": "body",
            "published": now - h * 3600,
        }
        for h in hours
    ]
    assert len(items) == cap + over
    feed_server.routes["/feed"] = etag_feed(rss_document("Busy", items), '"v1"')
    config = settings(tmp_path, max_entries_per_feed=cap)
    state = FeedState(config.database_path)
    url = feed_server.url("/feed")
    state.add_feed(url)
    publisher = ListPublisher()
    # The clock is the fetch time, which the entries' dates are believed against.
    poller = FeedPoller(config, state, publisher, make_fetcher(config), clock=lambda: now)
    dropped = {"reason": "cap"}
    before = REGISTRY.get_sample_value("newsalert_feed_entries_dropped_total", dropped) or 0.0

    with caplog.at_level("WARNING", logger="connectors.poller"):
        assert await poller.poll_once(now=now) == cap
    assert sorted(a.title for a in publisher.articles) == [f"{h} hours ago" for h in range(1, 6)]
    after = REGISTRY.get_sample_value("newsalert_feed_entries_dropped_total", dropped)
    assert after - before == over
    warning = "kept the newest 5 of 8 entries (max_entries_per_feed); 3 older ones dropped"
    assert f"feed {url}: {warning}" in caplog.messages
    assert state.get_feed(url).last_warning == warning
    assert await poller.poll_once(now=now + 3600) == 0  # a 304 keeps the warning
    assert state.get_feed(url).last_warning == warning

    monkeypatch.delenv("NEWSALERT_DATABASE_URL", raising=False)
    assert main(["feeds", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["warning"] == warning
    assert main(["feeds", "list", "--data-dir", str(tmp_path)]) == 0
    assert f"    warning: {warning}" in capsys.readouterr().out.splitlines()

    feed_server.routes["/feed"] = etag_feed(rss_document("Busy", items[:cap]), '"v2"')
    await poller.poll_once(now=now + 7200)
    assert state.get_feed(url).last_warning is None, "a document within the cap clears it"
    state.close()


async def test_request_names_newsalert_and_accepts_compression(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/feed"] = reply(200, RSS)
    config = settings(tmp_path, user_agent="newsalert-test/1")
    await make_fetcher(config).fetch(
        feed_server.url("/feed"), last_modified="Mon, 15 Jan 2024 12:00:00 GMT"
    )
    headers = feed_server.requests[0].headers
    assert headers["user-agent"] == "newsalert-test/1"
    assert set(headers["accept-encoding"].replace(" ", "").split(",")) == {"gzip", "deflate", "br"}
    assert headers["if-modified-since"] == "Mon, 15 Jan 2024 12:00:00 GMT"


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("br", brotli.compress)]
)
async def test_compressed_bodies_are_decoded(
    tmp_path, feed_server, make_fetcher, encoding, compress
):
    feed_server.routes["/feed"] = reply(200, compress(RSS), {"Content-Encoding": encoding})
    response = await make_fetcher(settings(tmp_path)).fetch(feed_server.url("/feed"))
    assert response.body == RSS


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", lambda data: gzip.compress(data, 9)),
        ("br", lambda data: brotli.compress(data, quality=5)),
    ],
)
async def test_compression_bomb_is_aborted_at_the_decompressed_limit(
    tmp_path, feed_server, make_fetcher, encoding, compress
):
    bomb = compress(b"\0" * (200 * MIB))
    assert len(bomb) < MIB
    feed_server.routes["/bomb"] = reply(200, bomb, {"Content-Encoding": encoding})
    source = RssSource(make_fetcher(settings(tmp_path, max_body_bytes=MIB)))
    started = time.perf_counter()
    result = await source.poll(FeedRequest(feed_server.url("/bomb")))
    assert time.perf_counter() - started < 1.0, "the bomb was inflated, not aborted"
    assert result.outcome == "error" and result.error_kind == "too_large"
    assert result.error == (
        f"feed {feed_server.url('/bomb')}: body exceeds {MIB} bytes after decompression"
    )


async def test_oversize_plain_body_is_refused(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/big"] = reply(200, b"x" * (MIB + 1))
    with pytest.raises(FetchError, match=f"^body exceeds {MIB} bytes$"):
        await make_fetcher(settings(tmp_path)).fetch(feed_server.url("/big"))


async def test_slow_drip_hits_the_total_deadline(tmp_path, feed_server, make_fetcher):
    async def drip(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, length=10 * MIB))
        for _ in range(600):  # one byte per 50 ms: every read succeeds, the whole never ends
            writer.write(b"<")
            await writer.drain()
            await asyncio.sleep(0.05)

    feed_server.routes["/drip"] = drip
    source = RssSource(make_fetcher(settings(tmp_path, fetch_timeout_seconds=0.5)))
    started = time.perf_counter()
    result = await source.poll(FeedRequest(feed_server.url("/drip")))
    assert time.perf_counter() - started < 1.5
    assert result.error_kind == "timeout"
    assert result.error == (
        f"feed {feed_server.url('/drip')}: no complete response within the 0.5 s deadline"
    )


async def test_redirect_loop_is_a_clear_error(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/a"] = reply(302, headers={"Location": "/b"})
    feed_server.routes["/b"] = reply(301, headers={"Location": feed_server.url("/a")})
    result = await RssSource(make_fetcher(settings(tmp_path))).poll(
        FeedRequest(feed_server.url("/a"))
    )
    assert result.error_kind == "redirect_loop"
    assert result.error == (
        f"feed {feed_server.url('/a')}: redirect loop: "
        f"{feed_server.url('/b')} redirects back to {feed_server.url('/a')}"
    )
    assert [r.path for r in feed_server.requests] == ["/a", "/b"]


async def test_redirects_are_followed_only_to_the_limit(tmp_path, feed_server, make_fetcher):
    for n in range(10):
        feed_server.routes[f"/{n}"] = reply(302, headers={"Location": f"/{n + 1}"})
    with pytest.raises(FetchError, match="more than 3 redirects"):
        await make_fetcher(settings(tmp_path), max_redirects=3).fetch(feed_server.url("/0"))
    assert len(feed_server.requests) == 4


async def test_permanent_redirect_reports_the_new_url_and_temporary_does_not(
    tmp_path, feed_server, make_fetcher
):
    feed_server.routes["/old"] = reply(301, headers={"Location": "/new"})
    feed_server.routes["/tmp"] = reply(302, headers={"Location": "/new"})
    feed_server.routes["/new"] = reply(200, RSS)
    fetcher = make_fetcher(settings(tmp_path))
    moved = await fetcher.fetch(feed_server.url("/old"))
    assert (moved.body, moved.permanent_url) == (RSS, feed_server.url("/new"))
    assert (await fetcher.fetch(feed_server.url("/tmp"))).permanent_url is None


async def test_retry_after_is_reported_on_429(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/busy"] = reply(429, b"slow down", {"Retry-After": "120"})
    with pytest.raises(FetchError, match="HTTP 429") as raised:
        await make_fetcher(settings(tmp_path)).fetch(feed_server.url("/busy"))
    assert raised.value.retry_after_seconds == 120


async def test_loopback_is_refused_before_any_connection_when_not_allow_listed(
    tmp_path, feed_server, make_fetcher
):
    feed_server.routes["/feed"] = reply(200, RSS)
    source = RssSource(make_fetcher(settings(tmp_path, allow_private_networks="false")))
    for url in (
        feed_server.url("/feed"),
        feed_server.url("/feed", host="2130706433"),
        feed_server.url("/feed", host="0x7f.1"),
        feed_server.url("/feed", host="[::ffff:127.0.0.1]"),
        f"http://news.example\\@127.0.0.1:{feed_server.port}/feed",
    ):
        result = await source.poll(FeedRequest(url))
        assert (result.outcome, result.error_kind) == ("error", "ssrf"), url
        assert "loopback address; refused" in result.error
    assert feed_server.connections == 0


async def test_every_redirect_hop_is_checked(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/feed"] = reply(302, headers={"Location": "http://10.255.255.1/admin"})
    expected = "after redirect to http://10.255.255.1/admin: 10.255.255.1 is a private address"
    with pytest.raises(FetchError, match=expected) as raised:
        await make_fetcher(settings(tmp_path)).fetch(feed_server.url("/feed"))
    assert raised.value.kind == "ssrf"
    assert [r.path for r in feed_server.requests] == ["/feed"]


async def test_redirect_to_the_metadata_address_is_refused_before_dialling_even_with_true(
    tmp_path, feed_server, make_fetcher, monkeypatch
):
    dialled = []
    connect = socket.socket.connect

    def recording_connect(sock, address):
        dialled.append(address[0])
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    feed_server.routes["/feed"] = reply(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    fetcher = make_fetcher(settings(tmp_path, allow_private_networks="true"))
    with pytest.raises(FetchError) as raised:
        await fetcher.fetch(feed_server.url("/feed"))
    assert raised.value.kind == "ssrf"
    assert str(raised.value).startswith(
        "after redirect to http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a"
        " link-local address (cloud metadata services); refused whatever"
        " allow_private_networks says"
    )
    assert [r.path for r in feed_server.requests] == ["/feed"]
    assert dialled == ["127.0.0.1"], "the guard refused before any socket went to 169.254.x"


async def test_connection_goes_to_the_checked_address_with_the_real_host_header(
    tmp_path, feed_server, make_fetcher
):
    lookups = []

    async def resolver(host, port):
        lookups.append(host)
        return ["127.0.0.1"]  # feed.test does not exist in DNS: only the pin can reach us

    feed_server.routes["/feed"] = reply(200, RSS)
    fetcher = make_fetcher(settings(tmp_path), resolver=resolver)
    response = await fetcher.fetch(f"http://feed.test:{feed_server.port}/feed")
    assert response.body == RSS
    assert feed_server.requests[0].headers["host"] == f"feed.test:{feed_server.port}"
    assert lookups == ["feed.test"], "resolve once, and never again behind our back"


async def test_dns_answer_that_is_private_is_refused_before_connecting(
    tmp_path, feed_server, make_fetcher
):
    async def rebinding_resolver(host, port):
        return ["127.0.0.1"]

    fetcher = make_fetcher(
        settings(tmp_path, allow_private_networks="false"), resolver=rebinding_resolver
    )
    with pytest.raises(FetchError, match="'feed.test' resolves to 127.0.0.1, which is a loopback"):
        await fetcher.fetch(f"http://feed.test:{feed_server.port}/feed")
    assert feed_server.connections == 0


async def test_broken_feed_is_flagged_and_others_keep_flowing(tmp_path, feed_server, make_fetcher):
    feed_server.routes["/good"] = reply(200, RSS)
    feed_server.routes["/empty"] = reply(200, b"")
    feed_server.routes["/html"] = reply(200, b"<html><body><p>Down for maintenance</body></html>")
    config = settings(tmp_path)
    state = FeedState(config.database_path)
    for path in ("/good", "/empty", "/html"):
        state.add_feed(feed_server.url(path))
    poller = FeedPoller(config, state, ListPublisher(), make_fetcher(config))
    assert await poller.poll_once(now=1_800_000_000) == 2
    assert state.get_feed(feed_server.url("/empty")).last_error == (
        f"feed {feed_server.url('/empty')}: empty document"
    )
    assert state.get_feed(feed_server.url("/html")).last_error.startswith(
        f"feed {feed_server.url('/html')}: not a"
    )


NO_FEED = (
    "not a valid feed: this is an HTML page that advertises no feed"
    ' (no <link rel="alternate"> to an RSS, Atom or JSON feed)'
)


async def test_an_html_page_polled_as_a_feed_is_named_so_in_health_list_and_log(
    tmp_path, feed_server, make_fetcher, caplog, capsys, monkeypatch
):
    page = b"<!doctype html><html><head><title>Home</title></head><body><p>News</p></body></html>"
    feed_server.routes["/page"] = reply(200, page, {"Content-Type": "text/html"})
    advertising = b'<html><head><link rel="alternate" type="application/rss+xml" href="/rss">'
    feed_server.routes["/home"] = reply(200, advertising, {"Content-Type": "text/html"})
    config = settings(tmp_path)
    state = FeedState(config.database_path)
    for path in ("/page", "/home"):
        state.add_feed(feed_server.url(path))
    poller = FeedPoller(config, state, ListPublisher(), make_fetcher(config))
    with caplog.at_level("WARNING", logger="connectors.poller"):
        assert await poller.poll_once(now=1_800_000_000) == 0
    no_feed = f"feed {feed_server.url('/page')}: {NO_FEED}"
    advertises = (
        f"feed {feed_server.url('/home')}: not a valid feed: this is an HTML page that"
        f" advertises the feed {feed_server.url('/rss')}; use a feed URL"
    )
    assert state.get_feed(feed_server.url("/page")).last_error == no_feed
    assert state.get_feed(feed_server.url("/home")).last_error == advertises
    state.close()
    assert no_feed in caplog.messages and advertises in caplog.messages

    monkeypatch.delenv("NEWSALERT_DATABASE_URL", raising=False)
    assert main(["feeds", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    rows = {row["url"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows[feed_server.url("/page")]["last_error"] == no_feed
    assert main(["feeds", "list", "--data-dir", str(tmp_path)]) == 0
    assert "this is an HTML page that advertises no feed" in capsys.readouterr().out


async def test_run_polls_due_feeds_and_picks_up_added_ones_until_cancelled(
    tmp_path, feed_server, make_fetcher
):
    feed_server.routes["/one"] = reply(200, RSS)
    feed_server.routes["/two"] = reply(200, RSS.replace(b"news.test", b"other.test"))
    config = settings(tmp_path)
    state = FeedState(config.database_path)
    state.add_feed(feed_server.url("/one"))
    publisher = ListPublisher()
    poller = FeedPoller(config, state, publisher, make_fetcher(config))
    loop = asyncio.get_running_loop()

    async def wait_for_articles(count: int) -> None:
        deadline = loop.time() + 5.0
        while len(publisher.articles) < count:
            assert loop.time() < deadline, f"only {len(publisher.articles)} articles published"
            await asyncio.sleep(0.01)

    running = asyncio.create_task(poller.run())
    try:
        await wait_for_articles(2)
        state.add_feed(feed_server.url("/two"))
        await wait_for_articles(4)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert len(feed_server.requests) == 2, "a feed is not polled again before its interval"


async def test_a_running_poller_waits_out_a_database_outage(
    tmp_path, feed_server, make_fetcher, postgres_url, postgres_outage, caplog
):
    feed_server.routes["/one"] = reply(200, RSS)
    config = settings(tmp_path, database_url=postgres_url)
    publisher = ListPublisher()
    poller = FeedPoller(config, FeedState(postgres_url), publisher, make_fetcher(config))
    running = asyncio.create_task(poller.run())
    try:
        with postgres_outage(postgres_url):
            await eventually(
                lambda: "feed polling: state database unavailable" in caplog.text,
                what="the outage logged",
            )
            assert not running.done(), "the poller waits instead of dying"
        added = FeedState(postgres_url)
        added.add_feed(feed_server.url("/one"))
        added.close()
        await eventually(lambda: len(publisher.articles) == 2, what="the feed polled after it")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def run_poller_in_thread(
    config: Settings, publisher: ListPublisher, clock: Callable[[], float], stop: threading.Event
) -> threading.Thread:
    """A connector process in miniature: its own thread, event loop, database connection and
    HTTP client, so its claims really race with the other poller's."""

    async def main() -> None:
        state = FeedState(config.state_database)
        fetcher = Fetcher(config)
        # A few feeds at a time, so both pollers keep claiming while the other one does.
        poller = FeedPoller(config, state, publisher, fetcher, clock=clock, max_concurrent_feeds=4)
        running = asyncio.create_task(poller.run())
        stopped = asyncio.create_task(asyncio.to_thread(stop.wait))
        try:
            await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await fetcher.aclose()
            state.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="poller")
    thread.start()
    return thread


async def test_two_running_pollers_on_one_database_fetch_each_feed_once_per_interval(
    tmp_path, state_target, feed_server
):
    """Two connector processes share one feed list, on SQLite and on PostgreSQL: every feed is
    fetched once per interval and no article goes out twice."""
    paths = [f"/f{n}" for n in range(30)]
    for n, path in enumerate(paths):
        feed_server.routes[path] = reply(200, RSS.replace(b"news.test", f"n{n}.test".encode()))
    database = {"database_url": state_target} if isinstance(state_target, str) else {}
    config = settings(tmp_path, **database)
    assert config.state_database == state_target
    setup = FeedState(config.state_database)
    for path in paths:
        setup.add_feed(feed_server.url(path), interval_seconds=3600)
    now = [1_800_000_000.0]  # one clock for both pollers, moved by the test
    publishers = [ListPublisher(), ListPublisher()]
    stop = threading.Event()

    async def fetched(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(feed_server.requests) < count:
            assert time.monotonic() < deadline, f"{len(feed_server.requests)} fetches, not {count}"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # a few more rounds of both loops: nothing is due any more

    threads = [run_poller_in_thread(config, p, lambda: now[0], stop) for p in publishers]
    try:
        await fetched(len(paths))
        first_interval = sorted(request.path for request in feed_server.requests)
        assert first_interval == sorted(paths), "each feed fetched once by the two pollers"
        now[0] += 3600 * 1.1 + 1  # past the interval and its jitter: every feed is due again
        await fetched(2 * len(paths))
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)  # the feed server runs on this loop
    assert not any(thread.is_alive() for thread in threads), "a poller did not stop"
    requested = sorted(request.path for request in feed_server.requests)
    assert requested == sorted(paths * 2), "each feed fetched once more in the next interval"
    published = [article.article_id for p in publishers for article in p.articles]
    assert len(published) == 2 * len(paths), "two stories per feed"
    assert len(set(published)) == len(published), "an article was published twice"
    assert all(p.articles for p in publishers), "both pollers did part of the work"
    assert all(feed.lease_owner is None for feed in setup.list_feeds()), "leases were ended"
    setup.close()
