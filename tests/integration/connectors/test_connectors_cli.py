"""`newsalert feeds ...` end to end: the CLI against a local HTTP server, with the feed list in
a SQLite file under --data-dir or, through NEWSALERT_DATABASE_URL, in a local PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.base import FetchResult
from connectors.state import FeedState
from newsalert import netguard
from newsalert.cli import main

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Local News</title>
<item><title>First story</title><link>https://news.test/1</link></item>
<item><title>Second story</title><link>https://news.test/2</link></item></channel></rss>"""
PAGE = b"""<!doctype html><html><head><title>Home</title>
<link rel="alternate" type="application/rss+xml" href="/feeds/all.xml"></head>
<body><p>Welcome</p></body></html>"""
BARE_PAGE = b"<!doctype html><html><head><title>No feed</title></head><body></body></html>"
METADATA_PAGE = b"""<!doctype html><html><head><link rel="alternate" type="application/rss+xml"
href="http://169.254.169.254/latest/meta-data/"></head></html>"""


class Routes(BaseHTTPRequestHandler):
    routes: dict[str, tuple[str, bytes]] = {
        "/feeds/all.xml": ("application/rss+xml", RSS),
        "/": ("text/html; charset=utf-8", PAGE),
        "/bare": ("text/html", BARE_PAGE),
        "/metadata-page": ("text/html", METADATA_PAGE),
    }
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        content_type, body = self.routes.get(self.path, ("text/plain", b""))
        self.send_response(200 if self.path in self.routes else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Routes)
    Routes.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def offline_resolver(host: str, port: int) -> list[str]:
    """No name is looked up from these tests: every one is unknown, as .invalid names are."""
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def feeds_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEWSALERT_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8")
    monkeypatch.setattr(netguard, "system_resolver", offline_resolver)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["feeds", *argv, "--data-dir", str(tmp_path)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def feeds_db(state_target, monkeypatch) -> Path | str:
    """The database `feeds` commands use: the SQLite file under --data-dir, or PostgreSQL."""
    if isinstance(state_target, str):
        monkeypatch.setenv("NEWSALERT_DATABASE_URL", state_target)
    else:
        monkeypatch.delenv("NEWSALERT_DATABASE_URL", raising=False)
    return state_target


def stored(target: Path | str) -> dict[str, object]:
    state = FeedState(target)
    try:
        return {feed.url: feed for feed in state.list_feeds()}
    finally:
        state.close()


def test_add_a_feed_url(site, feeds_cli, feeds_db):
    code, out, _ = feeds_cli("add", f"{site}/feeds/all.xml", "--name", "Local", "--tags", "a, b")
    assert code == 0
    assert "rss20, 2 entries, 'Local News'" in out
    feed = stored(feeds_db)[f"{site}/feeds/all.xml"]
    assert (feed.name, feed.tags) == ("Local", ("a", "b"))


def test_add_an_html_page_stores_the_feed_it_advertises(site, feeds_cli, feeds_db):
    code, out, _ = feeds_cli("add", f"{site}/", "--interval", "600")
    assert code == 0
    assert f"{site}/ is a page; it advertises the feed {site}/feeds/all.xml" in out
    assert list(stored(feeds_db)) == [f"{site}/feeds/all.xml"]
    assert stored(feeds_db)[f"{site}/feeds/all.xml"].interval_seconds == 600


def test_a_page_without_a_feed_is_not_added(site, feeds_cli, feeds_db):
    code, _, err = feeds_cli("add", f"{site}/bare")
    assert code == 1
    assert "advertises no feed" in err
    assert stored(feeds_db) == {}


NO_FEED = (
    "not a valid feed: this is an HTML page that advertises no feed"
    ' (no <link rel="alternate"> to an RSS, Atom or JSON feed)'
)


def test_add_says_an_html_page_without_a_feed_is_one(site, feeds_cli, feeds_db):
    code, _, err = feeds_cli("add", f"{site}/bare")
    assert code == 1
    assert err.splitlines()[0] == f"newsalert feeds add: {site}/bare: {NO_FEED}"


def test_add_goes_through_the_ssrf_guard(site, feeds_cli, feeds_db, monkeypatch):
    monkeypatch.setenv("NEWSALERT_ALLOW_PRIVATE_NETWORKS", "false")
    code, _, err = feeds_cli("add", f"{site}/feeds/all.xml")
    assert code == 1 and "loopback" in err
    assert Routes.requests == [], "refused before any request reached the server"
    assert stored(feeds_db) == {}


def test_a_feed_advertised_at_the_metadata_address_is_refused_even_with_true(
    site, feeds_cli, feeds_db, monkeypatch
):
    monkeypatch.setenv("NEWSALERT_ALLOW_PRIVATE_NETWORKS", "true")
    code, _, err = feeds_cli("add", f"{site}/metadata-page")
    assert code == 1
    assert (
        "http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a link-local address"
        " (cloud metadata services); refused whatever allow_private_networks says" in err
    )
    assert stored(feeds_db) == {}


def test_list_shows_health_and_remove_takes_a_name(site, feeds_cli, feeds_db):
    feeds_cli("add", f"{site}/feeds/all.xml", "--name", "Local", "--no-check")
    feeds_cli("add", "https://broken.test/rss", "--no-check")
    state = FeedState(feeds_db)
    ok = FetchResult("fetched", f"{site}/feeds/all.xml")
    state.record_fetch(
        ok.feed_url, ok, now=1_700_000_000, default_interval_seconds=300, items_seen=2
    )
    bad = FetchResult(
        "error", "https://broken.test/rss", error="feed https://broken.test/rss: HTTP 500"
    )
    state.record_fetch(bad.feed_url, bad, now=1_700_000_000, default_interval_seconds=300)
    state.close()

    code, out, _ = feeds_cli("list", "--json")
    rows = {row["url"]: row for row in map(json.loads, out.splitlines())}
    assert code == 0
    good = rows[f"{site}/feeds/all.xml"]
    assert (good["health"], good["items_seen"]) == ("ok", 2)
    assert good["last_success"] == "2023-11-14T22:13:20Z"
    assert good["next_poll"] > "2023-11-14T22:17"
    broken = rows["https://broken.test/rss"]
    assert broken["health"] == "unhealthy", "failing since 2023, more than a day ago"
    assert broken["last_error"] == "feed https://broken.test/rss: HTTP 500"

    code, out, _ = feeds_cli("list")
    assert "unhealthy; last success never" in out and "last error" in out

    assert feeds_cli("remove", "Local")[0] == 0
    assert list(stored(feeds_db)) == ["https://broken.test/rss"]
    code, _, err = feeds_cli("remove", "Local")
    assert code == 1 and "no feed with URL or name 'Local'" in err


def test_opml_export_and_import_round_trip(feeds_cli, tmp_path):
    feeds_cli("add", "https://a.test/feed", "--name", "A", "--tags", "x,y", "--no-check")
    feeds_cli("add", "https://b.test/rss", "--interval", "900", "--full-text", "--no-check")
    exported = tmp_path / "subs.opml"
    assert feeds_cli("export", "-o", str(exported))[0] == 0
    code, out, _ = feeds_cli("export")
    assert out.encode() == exported.read_bytes()

    other = tmp_path / "other"
    other.mkdir()
    code = main(["feeds", "import", str(exported), "--data-dir", str(other)])
    assert code == 0
    feeds = stored(other / "newsalert.sqlite3")
    assert feeds["https://a.test/feed"].tags == ("x", "y")
    assert feeds["https://a.test/feed"].name == "A"
    assert feeds["https://b.test/rss"].interval_seconds == 900
    assert (feeds["https://b.test/rss"].full_text, feeds["https://a.test/feed"].full_text) == (
        True,
        False,
    )


def test_import_runs_each_url_through_the_ssrf_guard_and_imports_the_rest(
    feeds_cli, feeds_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("NEWSALERT_ALLOW_PRIVATE_NETWORKS", "false")
    opml = tmp_path / "mixed.opml"
    opml.write_text(
        """<opml version="2.0"><body>
        <outline type="rss" text="Elsewhere" xmlUrl="http://feeds.example.invalid/rss"/>
        <outline type="rss" text="Loopback" xmlUrl="http://127.0.0.1:9/rss"/>
        <outline type="rss" text="Metadata" xmlUrl="http://169.254.169.254/latest/meta-data/"/>
        </body></opml>"""
    )
    code, out, err = feeds_cli("import", str(opml))
    assert code == 1, "a refused feed makes the exit status 1"
    assert err.splitlines() == [
        "warning: http://feeds.example.invalid/rss: cannot resolve host 'feeds.example.invalid':"
        " [Errno -2] Name or service not known; imported, every poll checks it again",
        "refused http://127.0.0.1:9/rss: 127.0.0.1 is a loopback address; refused"
        " (see allow_private_networks)",
        "refused http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a link-local"
        " address (cloud metadata services); refused whatever allow_private_networks says,"
        ' unless its CIDR list names 169.254.0.0/16 (allow_private_networks: "169.254.0.0/16")',
    ]
    assert out == f"imported 1 feeds from {opml}, refused 2\n"
    assert list(stored(feeds_db)) == ["http://feeds.example.invalid/rss"]


def test_add_without_a_fetch_still_runs_the_ssrf_guard(feeds_cli, feeds_db, monkeypatch):
    monkeypatch.setenv("NEWSALERT_ALLOW_PRIVATE_NETWORKS", "false")
    code, _, err = feeds_cli("add", "http://127.0.0.1:9/rss", "--no-check")
    assert code == 1 and "refused http://127.0.0.1:9/rss: 127.0.0.1 is a loopback address" in err
    code, out, err = feeds_cli("add", "http://feeds.example.invalid/rss", "--no-check")
    assert code == 0 and "cannot resolve host 'feeds.example.invalid'" in err
    assert list(stored(feeds_db)) == ["http://feeds.example.invalid/rss"]


def test_import_refuses_a_hostile_opml(feeds_cli, tmp_path):
    bomb = tmp_path / "bomb.opml"
    bomb.write_bytes(b'<!DOCTYPE opml [<!ENTITY a "aaaaaaaa">]><opml><body/></opml>')
    code, _, err = feeds_cli("import", str(bomb))
    assert code == 2 and "DOCTYPE" in err


def test_parse_prints_format_count_titles_or_the_error(feeds_cli, tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "news.xml").write_bytes(RSS)
    (saved / "empty.xml").write_bytes(b"")
    (saved / ".hidden.xml").write_bytes(b"")
    code, out, _ = feeds_cli("parse", str(saved))
    assert code == 1, "a file that failed makes the exit status 1"
    assert out.splitlines() == [
        f"{saved / 'empty.xml'}: error: empty document",
        f"{saved / 'news.xml'}: rss20, 2 entries",
        "    First story",
        "    Second story",
    ]
    code, out, _ = feeds_cli("parse", "--json", str(saved / "news.xml"))
    assert code == 0
    assert json.loads(out) == {
        "path": str(saved / "news.xml"),
        "format": "rss20",
        "entries": 2,
        "error": None,
    }


def test_parse_says_a_saved_html_page_is_one_and_names_the_feeds_it_advertises(feeds_cli, tmp_path):
    (tmp_path / "bare.html").write_bytes(BARE_PAGE)
    (tmp_path / "home.html").write_bytes(PAGE)
    code, out, _ = feeds_cli("parse", str(tmp_path / "bare.html"), str(tmp_path / "home.html"))
    assert code == 1
    assert out.splitlines() == [
        f"{tmp_path / 'bare.html'}: error: {NO_FEED}",
        f"{tmp_path / 'home.html'}: error: not a valid feed: this is an HTML page that"
        " advertises the feed /feeds/all.xml; use a feed URL",
    ]


def test_parse_applies_max_entries_per_feed_and_says_what_it_dropped(
    feeds_cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("NEWSALERT_MAX_ENTRIES_PER_FEED", "1")
    (tmp_path / "news.xml").write_bytes(RSS)
    code, out, _ = feeds_cli("parse", str(tmp_path / "news.xml"))
    assert code == 0
    assert out.splitlines() == [
        f"{tmp_path / 'news.xml'}: rss20, 1 entries",
        "    warning: 1 entries beyond the cap of 1 dropped",
        "    First story",  # undated: both rank as fetched now, the first in the document wins
    ]
    code, out, _ = feeds_cli("parse", "--json", str(tmp_path / "news.xml"))
    assert json.loads(out)["warnings"] == ["1 entries beyond the cap of 1 dropped"]


def test_parse_gives_up_on_a_file_that_hangs_or_kills_the_parser_and_goes_on(
    feeds_cli, tmp_path, monkeypatch
):
    import connectors.rss

    real_parse_file = connectors.rss.parse_file

    def sabotaged(path, **kwargs):
        if path.name == "hangs.xml":
            time.sleep(60)
        if path.name == "dies.xml":
            os._exit(9)
        return real_parse_file(path, **kwargs)

    monkeypatch.setattr(connectors.rss, "parse_file", sabotaged)  # the forked worker sees it
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("a-dies.xml", "b-hangs.xml", "c-news.xml"):
        (saved / name.split("-", 1)[1]).write_bytes(RSS)
    started = time.monotonic()
    code, out, _ = feeds_cli("parse", "--timeout", "1", str(saved))
    assert time.monotonic() - started < 20
    assert code == 1
    assert out.splitlines()[:3] == [
        f"{saved / 'dies.xml'}: error: the parser died (exit code 9)",
        f"{saved / 'hangs.xml'}: error: gave up after 1 s (the parser did not finish)",
        f"{saved / 'news.xml'}: rss20, 2 entries",
    ]


def test_full_text_is_a_per_feed_setting(feeds_cli, feeds_db):
    feeds_cli("add", "https://summaries.test/rss", "--no-check", "--full-text")
    feeds_cli("add", "https://full.test/rss", "--no-check")
    code, out, _ = feeds_cli("list", "--json")
    rows = {row["url"]: row["full_text"] for row in map(json.loads, out.splitlines())}
    assert rows == {"https://summaries.test/rss": True, "https://full.test/rss": False}


def test_feeds_added_through_the_cli_land_in_postgres(
    feeds_cli, postgres_url, monkeypatch, tmp_path
):
    monkeypatch.setenv("NEWSALERT_DATABASE_URL", postgres_url)
    assert feeds_cli("add", "https://a.test/feed", "--name", "A", "--no-check")[0] == 0
    code, out, _ = feeds_cli("list", "--json")
    assert code == 0
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["A"]
    assert list(stored(postgres_url)) == ["https://a.test/feed"]
    assert not (tmp_path / "newsalert.sqlite3").exists(), "nothing went to the SQLite file"


def test_an_unreachable_postgres_is_one_clear_line(feeds_cli, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NEWSALERT_DATABASE_URL", f"postgresql://user:s3cret@127.0.0.1:{port}/na")
    code, out, err = feeds_cli("list")
    assert code == 3
    assert out == ""
    assert err.startswith(
        f"newsalert feeds list: cannot reach PostgreSQL at postgresql://user:***@127.0.0.1:{port}/na: "
    )
    assert err.count("\n") == 1, "one line"
    assert "s3cret" not in err and "Traceback" not in err
