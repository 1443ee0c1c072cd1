"""`newsalert feeds ...`: parse saved feed files, and manage the feed list in the database.

The feed list lives in the state database (settings.state_database: the SQLite file, WAL with
a busy timeout, or PostgreSQL when database_url is set), so these commands work whether or not
the service is running; a running poller picks changes up on its next round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from newsalert.settings import LOCAL_KAFKA, ConfigError, FeedConfig, Settings
from newsalert.web.ops import feed_health

TITLES_SHOWN = 3
PARSE_TIMEOUT_SECONDS = 20.0
PARSE_MEMORY_BYTES = 2 * 1024**3  # address space of the parse worker


def add_parser(commands: Any) -> None:
    from newsalert.cli import common_options

    feeds = commands.add_parser(
        "feeds",
        help="parse feed files and manage the feed list",
        description="Parse saved feed files, and add, list, remove, import and export the feeds "
        "the connectors poll. The list is stored in the database under --data-dir.",
    )
    sub = feeds.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND", required=True)

    parse = sub.add_parser(
        "parse",
        help="parse saved feed files or directories with the live connector's parser",
        description="Print per file its format, entry count and first titles, or the error.",
    )
    parse.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="feed files (RSS, Atom, JSON Feed)"
    )
    parse.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per file: path, format, entries, error (and warnings, if any)",
    )
    parse.add_argument(
        "--timeout",
        type=float,
        default=PARSE_TIMEOUT_SECONDS,
        help=f"give up on a file after this many seconds (default {PARSE_TIMEOUT_SECONDS:g})",
    )
    common_options(parse)

    add = sub.add_parser(
        "add",
        help="add a feed (an HTML page's advertised feed is found)",
        description="Fetch URL (through the SSRF guard); if it is an HTML page, use the feed it "
        "advertises with <link rel=alternate>. Then store the feed.",
    )
    add.add_argument(
        "url", help="a feed URL, or a web page that advertises its feed (<link rel=alternate>)"
    )
    add.add_argument("--name", help="display name; also the article source")
    add.add_argument("--tags", default="", help="comma-separated tags")
    add.add_argument("--interval", type=float, help="poll interval in seconds")
    add.add_argument(
        "--no-check", action="store_true", help="store the URL as given without fetching it"
    )
    add.add_argument(
        "--full-text",
        action="store_true",
        help="fetch each new article's page and publish its extracted text (summary-only feeds)",
    )
    common_options(add)

    listing = sub.add_parser(
        "list",
        help="the feeds with their health: last success, last error, warning, next poll, items",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per feed")
    common_options(listing)

    remove = sub.add_parser("remove", help="stop polling a feed (by URL or name)")
    remove.add_argument("feed", metavar="URL_OR_NAME", help="the feed's URL or its --name")
    common_options(remove)

    imports = sub.add_parser(
        "import",
        help="add the feeds of an OPML file",
        description="Add the feeds of an OPML file, each checked by the SSRF guard as `add` "
        "checks its URL (without fetching it): refused ones are listed with the reason and not "
        "added, and the exit status is then 1. A host that does not resolve from here is only "
        "a warning: it may resolve where the service runs, and every poll checks it again.",
    )
    imports.add_argument(
        "opml",
        type=Path,
        metavar="FILE.opml",
        help="an OPML subscription list (e.g. a reader's export)",
    )
    common_options(imports)

    export = sub.add_parser("export", help="write the feed list as OPML")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    common_options(export)

    backfill = sub.add_parser(
        "backfill",
        help="publish articles from JSON Lines or saved feed files to the raw topic",
        description="Read JSON Lines articles (id, title, text, url, source, published) or "
        "saved feed files and publish them like the live connector does: entries already "
        "published are skipped, edited ones go out as updates.",
    )
    backfill.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="feed files or JSON Lines of articles (id, title, text, url, source, published)",
    )
    backfill.add_argument(
        "--broker",
        help="Kafka as kafka://HOST:PORT, or local-kafka: the one under DATA_DIR/kafka, "
        "started for the backfill if it is not running (env NEWSALERT_BROKER)",
    )
    backfill.add_argument("--name", help="source name for entries that carry none")
    common_options(backfill)


def run(args: argparse.Namespace, settings: Settings) -> int:
    command = args.feeds_command
    if command == "parse":
        return _parse(args.paths, args.json, settings, args.timeout)
    if command == "backfill":
        return _backfill(args, settings)
    from connectors.state import FeedState

    state = FeedState(settings.state_database)  # PostgreSQL down: main() says so in one line
    try:
        if command == "add":
            return asyncio.run(_add(args, settings, state))
        if command == "list":
            return _list(state, args.json)
        if command == "remove":
            return _remove(state, args.feed)
        if command == "import":
            return _import(state, args.opml, settings)
        if command == "export":
            return _export(state, args.output)
    finally:
        state.close()
    raise AssertionError(f"unknown feeds subcommand {command}")


# -- parse -------------------------------------------------------------------------------


def feed_files(paths: list[Path]) -> Iterator[Path]:
    """The files named, and the files under the directories named (sorted, no hidden ones)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    yield child
        else:
            yield path


def parse_report(path: Path, max_bytes: int, max_entries: int) -> dict[str, Any]:
    """What `feeds parse` says about one file: path, format, entries, error (and titles, and
    warnings when there are any: entries over the cap, a lenient parse)."""
    from connectors.rss import parse_file

    try:
        size = path.stat().st_size
    except OSError as exc:
        return {"path": str(path), "format": None, "entries": 0, "error": exc.strerror}
    if size > max_bytes:
        error = f"file is {size} bytes, over the {max_bytes}-byte limit for a feed body"
        return {"path": str(path), "format": None, "entries": 0, "error": error}
    parsed = parse_file(path, max_entries=max_entries)
    report: dict[str, Any] = {
        "path": str(path),
        "format": parsed.format,
        "entries": len(parsed.entries),
        "error": parsed.error,
    }
    if parsed.warnings:
        report["warnings"] = list(parsed.warnings)
    report["titles"] = [entry.title for entry in parsed.entries[:TITLES_SHOWN]]
    return report


class ParseWorker:
    """Parses files in a child process with an address-space limit, so a file that would hang
    or exhaust memory costs a clear error for that file and a new worker, not the command."""

    def __init__(self, max_bytes: int, max_entries: int, timeout_seconds: float) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._timeout = timeout_seconds
        self._context = multiprocessing.get_context("fork")
        self._process: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_parse_worker_main,
            args=(child, self._max_bytes, self._max_entries),
            daemon=True,
        )
        self._process.start()
        child.close()
        self._conn = parent

    def report(self, path: Path) -> dict[str, Any]:
        if self._process is None or not self._process.is_alive():
            self._start()
        self._conn.send(str(path))
        problem = None
        if not self._conn.poll(self._timeout):
            problem = f"gave up after {self._timeout:g} s (the parser did not finish)"
        else:
            try:
                return self._conn.recv()
            except EOFError:
                self._process.join(1)
                problem = f"the parser died (exit code {self._process.exitcode})"
        self.close()
        return {"path": str(path), "format": None, "entries": 0, "error": problem}

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
            self._conn.close()
        self._process = None


def _parse_worker_main(conn: Any, max_bytes: int, max_entries: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (PARSE_MEMORY_BYTES, PARSE_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass  # no limit where the platform has none; the time limit still holds
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        try:
            report = parse_report(Path(path), max_bytes, max_entries)
        except MemoryError:
            report = {"path": path, "format": None, "entries": 0, "error": "out of memory"}
        conn.send(report)


def _parse(paths: list[Path], as_json: bool, settings: Settings, timeout_seconds: float) -> int:
    failures = 0
    worker = ParseWorker(settings.max_body_bytes, settings.max_entries_per_feed, timeout_seconds)
    try:
        for path in feed_files(paths):
            report = worker.report(path)
            titles = report.pop("titles", [])
            failures += report["error"] is not None
            if as_json:
                print(json.dumps(report, ensure_ascii=False), flush=True)
                continue
            if report["error"] is not None:
                print(f"{path}: error: {report['error']}", flush=True)
                continue
            print(f"{path}: {report['format']}, {report['entries']} entries", flush=True)
            for warning in report.get("warnings", []):
                print(f"    warning: {_one_line(warning, 200)}")
            for title in titles:
                print(f"    {_one_line(title) or '(untitled)'}")
    finally:
        worker.close()
    return 1 if failures else 0


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the feed list -----------------------------------------------------------------------


def _feed_config(url: str, name: str | None, tags: str, interval: float | None) -> FeedConfig:
    try:
        return FeedConfig(
            url=url,
            name=name,
            tags=tuple(t.strip() for t in tags.split(",") if t.strip()),
            interval_seconds=interval,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"feeds add {url}: {where}: {error['msg']}") from None


async def _add(args: argparse.Namespace, settings: Settings, state: Any) -> int:
    from connectors.discovery import DiscoveryError, discover
    from connectors.fetcher import Fetcher

    feed = _feed_config(args.url, args.name, args.tags, args.interval)
    url = feed.url
    if args.no_check:  # not fetched, but the network guard still has its say
        from newsalert import netguard

        policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
        (verdict,) = await netguard.check_urls([url], policy)
        if verdict.refused is not None:
            print(f"newsalert feeds add: refused {url}: {verdict.refused}", file=sys.stderr)
            return 1
        if verdict.warning is not None:
            print(f"warning: {url}: {verdict.warning}; every poll checks it again", file=sys.stderr)
    else:
        fetcher = Fetcher(settings)
        try:
            found = await discover(fetcher, feed.url, max_entries=settings.max_entries_per_feed)
        except DiscoveryError as exc:
            print(f"newsalert feeds add: {exc}", file=sys.stderr)
            print("(use --no-check to store it anyway)", file=sys.stderr)
            return 1
        finally:
            await fetcher.aclose()
        url = found.url
        if found.page_url is not None:
            print(f"{found.page_url} is a page; it advertises the feed {url}")
        title = found.parsed.title or "untitled"
        print(f"{url}: {found.parsed.format}, {len(found.parsed.entries)} entries, {title!r}")
        for warning in found.parsed.warnings:
            print(f"warning: {warning}")
    existed = state.get_feed(url) is not None
    state.add_feed(
        url,
        name=feed.name,
        tags=feed.tags,
        interval_seconds=feed.interval_seconds,
        full_text=args.full_text,
    )
    print(f"{'updated' if existed else 'added'} {url}")
    return 0


def _list(state: Any, as_json: bool) -> int:
    now = time.time()
    feeds = [feed_health(feed, now) for feed in state.list_feeds()]  # as GET /api/v1/feeds
    if as_json:
        for feed in feeds:
            print(json.dumps(feed, ensure_ascii=False))
        return 0
    if not feeds:
        print("no feeds; add one with `newsalert feeds add URL`")
        return 0
    for feed in feeds:
        label = feed["name"] or feed["title"] or ""
        print(f"{feed['url']}  {label}".rstrip())
        print(
            f"    {feed['health']}; last success {feed['last_success'] or 'never'}; "
            f"next poll {feed['next_poll']}; {feed['items_seen']} items seen"
            + (f"; tags {','.join(feed['tags'])}" if feed["tags"] else "")
        )
        if feed["last_error"]:
            print(f"    last error {feed['last_error_at']}: {_one_line(feed['last_error'], 200)}")
        if feed["warning"]:
            print(f"    warning: {_one_line(feed['warning'], 200)}")
    return 0


def _remove(state: Any, url_or_name: str) -> int:
    matches = state.find_feeds(url_or_name)
    if not matches:
        print(f"newsalert feeds remove: no feed with URL or name {url_or_name!r}", file=sys.stderr)
        return 1
    if len(matches) > 1:
        urls = ", ".join(feed.url for feed in matches)
        print(
            f"newsalert feeds remove: {len(matches)} feeds are named {url_or_name!r} ({urls});"
            " give the URL",
            file=sys.stderr,
        )
        return 1
    feed = matches[0]
    state.remove_feed(feed.url)
    print(f"removed {feed.url}")
    if feed.origin == "config":
        print("note: it is in the config file, which adds it back at the next start")
    return 0


def _import(state: Any, path: Path, settings: Settings) -> int:
    from connectors.opml import OpmlError, read_opml
    from newsalert import netguard

    try:
        feeds, skipped = read_opml(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except OpmlError as exc:
        raise ConfigError(f"{path}: not usable OPML: {exc}") from None
    policy = netguard.NetworkPolicy.from_setting(settings.allow_private_networks)
    verdicts = asyncio.run(netguard.check_urls([feed.url for feed in feeds], policy))
    added = refused = 0
    for feed, verdict in zip(feeds, verdicts, strict=True):
        if verdict.refused is not None:
            print(f"refused {feed.url}: {verdict.refused}", file=sys.stderr)
            refused += 1
            continue
        if verdict.warning is not None:
            print(
                f"warning: {feed.url}: {verdict.warning}; imported, every poll checks it again",
                file=sys.stderr,
            )
        state.add_feed(
            feed.url,
            name=feed.name,
            tags=feed.tags,
            interval_seconds=feed.interval_seconds,
            full_text=feed.full_text,
        )
        added += 1
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    print(
        f"imported {added} feeds from {path}"
        + (f", refused {refused}" if refused else "")
        + (f", skipped {len(skipped)}" if skipped else "")
    )
    return 1 if refused else 0


def _export(state: Any, output: Path | None) -> int:
    from connectors.opml import OpmlFeed, write_opml

    document = write_opml(
        OpmlFeed(
            feed.url, feed.name or feed.title, feed.tags, feed.interval_seconds, feed.full_text
        )
        for feed in state.list_feeds()
    )
    if output is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        output.write_bytes(document)
        print(f"wrote {output}", file=sys.stderr)
    return 0


# -- backfill ----------------------------------------------------------------------------


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    broker = args.broker or settings.broker
    if not broker:
        print(
            f"newsalert feeds backfill: needs --broker kafka://HOST:PORT or {LOCAL_KAFKA}",
            file=sys.stderr,
        )
        return 2
    from connectors.files import backfill
    from connectors.publisher import KafkaPublisher, bootstrap_from_broker_url
    from streams.topics import TopicNames

    async def publish_all() -> int:
        if broker != LOCAL_KAFKA:
            return await publish_to(bootstrap_from_broker_url(broker))
        from newsalert.localkafka import use_local_kafka

        def say(message: str) -> None:
            print(f"newsalert feeds backfill: {message}", file=sys.stderr, flush=True)

        kafka, started = await use_local_kafka(settings.data_dir, say)
        if started:
            say(f"started Apache Kafka ({LOCAL_KAFKA}) on {kafka.url}; stopped after the backfill")
        try:
            return await publish_to(kafka.bootstrap_servers)
        finally:
            if started:
                kafka.stop()

    async def publish_to(bootstrap_servers: str) -> int:
        from connectors.state import FeedState
        from streams.topics import ensure_topics

        # As `run` makes them: a topic the broker made on first use would get its partitions.
        await ensure_topics(bootstrap_servers, settings.app_id, settings.partitions)
        state = FeedState(settings.state_database)
        topic = TopicNames(settings.app_id).raw_articles
        publisher = KafkaPublisher(bootstrap_servers, topic=topic)
        try:
            await publisher.start()
        except BaseException:
            state.close()
            raise
        try:
            failures = 0
            async for report in backfill(
                list(feed_files(args.paths)), settings, state, publisher, name=args.name
            ):
                print(report.line(), flush=True)
                failures += report.error is not None
            return 1 if failures else 0
        finally:
            state.close()
            await publisher.stop()

    return asyncio.run(publish_all())
