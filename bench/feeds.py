"""Feed connectors: polls per minute on one core against a local server, and parse time per feed.

The server runs in its own process (aiohttp on 127.0.0.1) so the figures are the connector's
CPU only. The mix is the issue's: 80% of polls get 304 Not Modified, 20% get a changed feed
with 20-50 entries. "Polls per CPU-minute" divides polls by the connector process's CPU time
(``time.process_time``: one core, the parse threads included).

Parse time compares our parse path (``connectors.rss.parse_feed``: connectors.xmlfeed on lxml,
feedparser for what it refuses) with feedparser alone and with fastfeedparser, the fastest
pure-Python-API feed parser found on PyPI, over the real captures of the shared corpus (or
tests/data/feeds when it is absent). ``--parse`` runs only that part; ``--parity`` compares
the published fields of our parse path with feedparser's on every corpus file.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

FEEDS = 500
ROUNDS = 6
CHANGED_FRACTION = 0.2
REPEATS = 5  # timings of each parser per document, alternating which goes first
OWN_PASSES = 3  # passes over the corpus per parser, alternating parsers
SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds" / "real"
LOCAL_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "feeds" / "real"


def _feed_document(feed: int, version: int, entries: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {feed} story {version}.{n}</title>"
        f"<link>https://feed{feed}.test/story/{version}/{n}?utm_source=rss</link>"
        f"<guid>https://feed{feed}.test/story/{version}/{n}</guid>"
        f"<pubDate>Tue, 01 Dec 2026 0{n % 10}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Paragraph one of story {n}, long enough to look like a"
        f" summary of a news article with a few dozen words in it.&lt;/p&gt;</description>"
        "</item>"
        for n in range(entries)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://feed{feed}.test/</link>{items}"
        f"</channel></rss>"
    ).encode()


def _serve(port_queue: Any, changed_fraction: float, seed: int) -> None:
    from aiohttp import web

    rng = random.Random(seed)
    versions: dict[int, int] = {}
    bodies: dict[tuple[int, int], bytes] = {}

    async def feed(request: web.Request) -> web.Response:
        number = int(request.match_info["n"])
        version = versions.get(number, 0)
        etag = f'"{number}-{version}"'
        if request.headers.get("If-None-Match") == etag and rng.random() >= changed_fraction:
            return web.Response(status=304, headers={"ETag": etag})
        if request.headers.get("If-None-Match") == etag:
            version = versions[number] = version + 1
            etag = f'"{number}-{version}"'
        body = bodies.get((number, version))
        if body is None:
            body = _feed_document(number, version, rng.randint(20, 50))
            bodies[(number, version)] = body
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{n}", feed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


class _Server:
    def __init__(self, changed_fraction: float) -> None:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        self.process = context.Process(
            target=_serve, args=(queue, changed_fraction, 1), daemon=True
        )
        self.process.start()
        self.port = queue.get(timeout=30)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{n}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


class _NullPublisher:
    def __init__(self) -> None:
        self.count = 0

    async def publish(self, article: Any) -> None:
        self.count += 1


async def _poller_rounds(server: _Server, feeds: int, rounds: int) -> dict[str, float]:
    """The whole connector path: lease, conditional GET, parse, de-duplicate, publish, record."""
    from connectors.fetcher import Fetcher
    from connectors.poller import FeedPoller
    from connectors.state import FeedState
    from newsalert.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), allow_private_networks="127.0.0.0/8")
        state = FeedState(settings.database_path)
        for n in range(feeds):
            state.add_feed(server.url(n), interval_seconds=60)
        fetcher = Fetcher(settings, max_connections_per_host=100)
        publisher = _NullPublisher()
        poller = FeedPoller(settings, state, publisher, fetcher, max_concurrent_feeds=100)
        now = time.time()
        await poller.poll_once(now)  # first poll: every feed is new, not part of the mix
        published_before = publisher.count
        cpu, wall = time.process_time(), time.perf_counter()
        for round_number in range(1, rounds + 1):
            await poller.poll_once(now + round_number * 3600)  # every feed due each round
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        outcomes = {
            f.url: f for f in state.list_feeds()
        }  # all polled, none failing: the mix measured what it should
        failing = sum(1 for f in outcomes.values() if f.consecutive_errors)
        await fetcher.aclose()
        state.close()
    polls = feeds * rounds
    return {
        "polls": polls,
        "failing_feeds": failing,
        "articles_published": publisher.count - published_before,
        "polls_per_cpu_minute": round(polls / cpu * 60),
        "polls_per_wall_minute": round(polls / wall * 60),
    }


def polls_per_minute(changed_fraction: float) -> dict[str, float]:
    server = _Server(changed_fraction)
    try:
        return asyncio.run(_poller_rounds(server, FEEDS, ROUNDS))
    finally:
        server.stop()


def parse_times() -> dict[str, Any]:
    """Parse time per feed of the default path, feedparser and fastfeedparser, two ways.

    Paired: per document, ours and fastfeedparser REPEATS times each, alternating which goes
    first (ABAB... then BABA...), so neither always parses with caches the other warmed; the
    document's time is the minimum of its repeats. Own passes: each parser alone over the
    whole corpus, OWN_PASSES times, passes alternating; a document's time is the median of
    its passes. feedparser is timed once per document (it is 30x slower; a reference only).
    """
    from connectors import compiled
    from connectors.rss import parse_feed

    corpus = SHARED_CORPUS if SHARED_CORPUS.is_dir() else LOCAL_CORPUS
    documents = [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()]
    parsers = {"fastfeedparser": _fastfeedparser_or_none, "default": parse_feed}
    figures: dict[str, Any] = {
        "parse_corpus": f"{corpus.relative_to(corpus.parents[2])} ({len(documents)} files)"
    }
    slow = [_timed(lambda data: parse_feed(data, parser="feedparser"), d) for d in documents]
    figures["parse_ms_per_feed_feedparser_mean"] = _ms(statistics.mean(slow))
    figures["parse_ms_per_feed_feedparser_median"] = _ms(statistics.median(slow))
    for data in documents:  # warm up: imports, caches, lxml's parser
        for parse in parsers.values():
            parse(data)
    paired: dict[str, list[float]] = {name: [] for name in parsers}
    for data in documents:
        repeats: dict[str, list[float]] = {name: [] for name in parsers}
        for repeat in range(REPEATS):
            order = list(parsers.items())
            for name, parse in order if repeat % 2 == 0 else reversed(order):
                repeats[name].append(_timed(parse, data))
        for name, times in repeats.items():
            paired[name].append(min(times))
    own: dict[str, list[list[float]]] = {name: [] for name in parsers}
    for _ in range(OWN_PASSES):
        for name, parse in parsers.items():
            own[name].append([_timed(parse, data) for data in documents])
    own_median = {
        name: [statistics.median(t) for t in zip(*passes, strict=True)]
        for name, passes in own.items()
    }
    for method, times in (("paired", paired), ("own_pass", own_median)):
        for name in parsers:
            figures[f"parse_ms_per_feed_{name}_mean_{method}"] = _ms(statistics.mean(times[name]))
            figures[f"parse_ms_per_feed_{name}_median_{method}"] = _ms(
                statistics.median(times[name])
            )
        ours, fast = times["default"], times["fastfeedparser"]
        figures[f"parse_ratio_default_to_fastfeedparser_mean_{method}"] = round(
            sum(ours) / sum(fast), 2
        )
        figures[f"parse_ratio_default_to_fastfeedparser_median_{method}"] = round(
            statistics.median(ours) / statistics.median(fast), 2
        )
        per_document = sorted(a / b for a, b in zip(ours, fast, strict=True))
        figures[f"parse_ratio_default_to_fastfeedparser_p90_document_{method}"] = round(
            per_document[int(len(per_document) * 0.9)], 2
        )
    figures["parse_ratio_feedparser_to_fastfeedparser"] = round(
        sum(slow) / sum(paired["fastfeedparser"]), 1
    )
    figures["default_compiled"] = all(compiled.is_compiled(name) for name in compiled.MODULES)
    figures["default_fell_back_to_feedparser"] = sum(
        parse_feed(data).fallback_reason is not None for data in documents
    )
    figures["fastfeedparser_failures"] = sum(_fastfeedparser_or_none(d) is None for d in documents)
    figures["parse_note"] = (
        "default = connectors.rss.parse_feed as deployed (connectors.xmlfeed on lxml, compiled "
        "with mypyc when default_compiled, feedparser for what it refuses); feedparser = "
        "parse_feed(parser='feedparser'); fastfeedparser = fastfeedparser.parse on the raw "
        "bytes, unchecked (reference for speed only). paired: per document the minimum of "
        f"{REPEATS} timings each, alternating order; own_pass: each parser alone over the corpus "
        f"{OWN_PASSES} times, per document the median; ratios are of summed (mean) and median "
        "per-document times, p90 of per-document ratios"
    )
    return figures


def _timed(parse: Any, data: bytes) -> float:
    started = time.perf_counter()
    parse(data)
    return time.perf_counter() - started


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _fastfeedparser_or_none(data: bytes) -> Any:
    import fastfeedparser

    try:
        return fastfeedparser.parse(data)
    except Exception:  # any failure of the other parser counts as a miss, not a crash
        return None


PARITY_CORPORA = (SHARED_CORPUS.parent, LOCAL_CORPUS.parent)
ENTRY_FIELDS = ("title", "link", "guid", "published", "published_is_fetch_time", "body")
FEED_FIELDS = ("format", "title", "language", "refresh_hint_seconds")
# Differences on real/ and where they come from, checked one by one: (file, field) -> why.
# Every one but the last comes from feedparser's HTML sanitizer, which rewrites bodies before
# our text cleaner sees them; connectors.xmlfeed leaves the HTML as the feed sent it.
_IFRAME = (
    "feedparser wrong: its sanitizer drops <iframe> but keeps the fallback inside it (a link to"
    " the embedded player), which a browser never shows; we keep the iframe and the text cleaner"
    " skips it"
)
_SANITIZED = "entry.body (feedparser's HTML sanitizer only)"
FEEDPARSER_WRONG: dict[tuple[str, str], str] = {
    ("real/fastfeedparser/4ff3ebfb6b00e813.xml", _SANITIZED): _IFRAME,
    ("real/fastfeedparser/5a96f363a5cd333d.xml", _SANITIZED): _IFRAME,
    ("real/fastfeedparser/6ca684f093bbc0c2.xml", _SANITIZED): _IFRAME,
    ("real/fastfeedparser/f190c076724e2591.xml", _SANITIZED): _IFRAME,
    ("real/fastfeedparser/2c95f93d868f5c01.xml", _SANITIZED): (
        "feedparser wrong: a shell here-document (cat > file <<EOF) in a code sample reads to its"
        " sanitizer as a tag, and the text up to the next '>' is dropped"
    ),
    ("real/fastfeedparser/7bff4ff7441c8c55.xml", _SANITIZED): (
        'feedparser wrong: in <a href="http://www.spi-inc.org/>"Software in ...</a> the words'
        " are attribute names to a browser (and to our text cleaner); the sanitizer re-quotes the"
        " tag and turns them into link text"
    ),
    ("real/feedreader/Rss20RomaToday.xml", _SANITIZED): (
        "feedparser wrong: truncated descriptions end in bare entity names (attivit&agrave...);"
        " the sanitizer escapes the '&' so the text keeps '&agrave', a browser shows 'à' as we do"
    ),
    ("real/fastfeedparser/a21807c179b62c5e.xml", _SANITIZED): (
        "neither is right: a Markdown body with generics (Promise<AnalysisResult>) in an RSS"
        " description; the sanitizer drops the unknown tags, so the text cleaner takes the body"
        " for plain text and keeps its line breaks, we keep them and it joins the lines; both"
        " lose '<AnalysisResult>'"
    ),
    ("real/feedreader/AtomSpecialCharacters.xml", "entry.body"): (
        "feedparser wrong: the body holds C0 control characters (U+000F ...), which XML forbids;"
        " feedparser's loose parser keeps them in the text, we drop them and parse strictly"
    ),
}


def corpus_documents() -> list[tuple[str, Path]]:
    """Every corpus file once (the shared corpus first, tests/data/feeds for the rest)."""
    seen: dict[str, Path] = {}
    for root in PARITY_CORPORA:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and path.suffix != ".csv" and path.name != "README.md":
                seen.setdefault(relative, path)
    return sorted(seen.items())


def published_form(field: str, value: Any) -> Any:
    """What the pipeline downstream keeps of a field: plain text, canonical links."""
    from connectors.identity import canonical_url
    from streams.clean.text import clean_text

    if field in ("title", "body", "feed.title") and isinstance(value, str):
        return clean_text(value)
    if field == "link" and isinstance(value, str):
        return canonical_url(value)
    return value


def compare(reference: Any, other: Any) -> list[tuple[str, Any, Any]]:
    """(field, reference value, other value) for each published difference of two ParsedFeeds."""
    differences: list[tuple[str, Any, Any]] = []
    if (reference.error is None) != (other.error is None):
        return [("error", reference.error, other.error)]
    for field in FEED_FIELDS:
        ours, theirs = getattr(reference, field), getattr(other, field)
        if published_form(f"feed.{field}", ours) != published_form(f"feed.{field}", theirs):
            differences.append((f"feed.{field}", ours, theirs))
    if len(reference.entries) != len(other.entries):
        differences.append(("entries", len(reference.entries), len(other.entries)))
    for ours, theirs in zip(reference.entries, other.entries, strict=False):
        for field in ENTRY_FIELDS:
            a, b = getattr(ours, field), getattr(theirs, field)
            if a == b or published_form(field, a) == published_form(field, b):
                continue
            if field in ("title", "body") and _sanitized_text(field, b) == published_form(field, a):
                field += " (feedparser's HTML sanitizer only)"
            differences.append((f"entry.{field}", a, b))
    return differences


def _hashes(feed: Any) -> list[str]:
    from connectors.identity import canonical_url, content_hash

    return [
        content_hash(e.title, e.body, canonical_url(e.link) if e.link else None)
        for e in feed.entries
    ]


def _sanitized_text(field: str, value: str) -> str:
    """The text of ``value`` had feedparser's HTML sanitizer rewritten it first."""
    from feedparser.sanitizer import _sanitize_html

    return published_form(field, _sanitize_html(value, "utf-8", "text/html"))


def parity(limit_examples: int = 3) -> dict[str, Any]:
    """feedparser (the reference) against the default parse path on every corpus file: which
    published fields differ, on which files (real/ and edge/ apart), and where it fell back."""
    from connectors.rss import parse_feed

    fetched_at = 1_800_000_000.0
    report: dict[str, Any] = {"files": 0, "xml_files": 0, "lxml_answered": 0, "fallbacks": {}}
    # Files where an entry would be republished as an update had the other parser read it.
    report["content_hash_differs"] = {"real": [], "edge": []}
    differences: dict[str, dict[str, dict[str, Any]]] = {"real": {}, "edge": {}}
    documented: dict[str, list[Any]] = {}
    for relative, path in corpus_documents():
        data = path.read_bytes()
        url = path.resolve().as_uri()
        report["files"] += 1
        reference = parse_feed(data, url=url, fetched_at=fetched_at, parser="feedparser")
        if reference.parser == "json":
            continue
        report["xml_files"] += 1
        ours = parse_feed(data, url=url, fetched_at=fetched_at)
        if ours.parser == "lxml":
            report["lxml_answered"] += 1
        elif ours.fallback_reason is not None:
            reason = ours.fallback_reason.split(":")[0]
            report["fallbacks"][reason] = report["fallbacks"].get(reason, 0) + 1
        kind = "real" if relative.startswith("real/") else "edge"
        if _hashes(reference) != _hashes(ours):
            report["content_hash_differs"][kind].append(relative)
        part = differences[kind]
        for field, a, b in compare(reference, ours):
            why = FEEDPARSER_WRONG.get((relative, field))
            if why is not None:
                documented.setdefault(f"{relative} {field}", [why, repr(a)[:160], repr(b)[:160]])
                continue
            slot = part.setdefault(field, {"files": [], "examples": []})
            if relative not in slot["files"]:
                slot["files"].append(relative)
            if len(slot["examples"]) < limit_examples:
                slot["examples"].append([relative, repr(a)[:300], repr(b)[:300]])
    for name, part in differences.items():
        report[f"{name}_differences"] = {
            key: {"file_count": len(v["files"]), **v} for key, v in sorted(part.items())
        }
        report[f"{name}_difference_counts"] = {
            key: len(v["files"]) for key, v in sorted(part.items())
        }
    report["feedparser_wrong_documented"] = documented
    return report


def run() -> dict[str, Any]:
    mixed = polls_per_minute(CHANGED_FRACTION)
    not_modified = polls_per_minute(0.0)
    figures: dict[str, Any] = {
        "feeds": FEEDS,
        "rounds": ROUNDS,
        "mix_polls_per_cpu_minute": mixed["polls_per_cpu_minute"],
        "mix_polls_per_wall_minute": mixed["polls_per_wall_minute"],
        "mix_articles_published": mixed["articles_published"],
        "mix_failing_feeds": mixed["failing_feeds"],
        "not_modified_polls_per_cpu_minute": not_modified["polls_per_cpu_minute"],
        "not_modified_polls_per_wall_minute": not_modified["polls_per_wall_minute"],
        "not_modified_failing_feeds": not_modified["failing_feeds"],
    }
    figures.update(parse_times())
    figures["note"] = (
        "connector process CPU (one core, parse threads included), aiohttp server in another "
        "process; full FeedPoller path with SQLite state and a null publisher; mix = 80% 304, "
        "20% changed with 20-50 entries"
    )
    return figures


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] == ["--parity"]:
        print(json.dumps(parity(), indent=1, ensure_ascii=False))
    elif sys.argv[1:] == ["--parse"]:
        print(json.dumps(parse_times(), indent=1))
    else:
        print(json.dumps(run(), indent=1))
