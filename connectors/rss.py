"""RSS 0.9x/1.0/2.0, Atom and JSON Feed from bytes we fetched: ``parse_feed`` and ``RssSource``.

XML feeds are read by connectors.xmlfeed (lxml, ~20x faster than feedparser, same values);
feedparser reads what that refuses: XML that is not well-formed, encodings only its guessing
decodes. feedparser only ever sees bytes (given a string it would fetch URLs itself). JSON Feed
is parsed here with ``json`` because feedparser does not know it.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import json
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

from connectors import htmlpage, metrics, scheduler, xmlfeed
from connectors.base import FeedEntry, FeedRequest, FetchResult
from connectors.feeddates import dated_entry, newest
from connectors.fetcher import Fetcher, FetchError
from newsalert.settings import Settings

log = logging.getLogger(__name__)

# Over it, the newest entries by date are kept (entries without a date rank as fetched now).
MAX_ENTRIES_PER_FEED: int = Settings.model_fields["max_entries_per_feed"].default
_BOM = b"\xef\xbb\xbf"
# The internal subset of a DOCTYPE: where entity-expansion bombs live. News feeds do not need
# it; HTML entities still resolve through feedparser's own table.
_INTERNAL_SUBSET = re.compile(rb"(<!DOCTYPE[^\[>]*)\[.*?\]\s*>", re.IGNORECASE | re.DOTALL)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_GZIP_MAGIC = b"\x1f\x8b"
MAX_DOCUMENT_BYTES = 15 * 1024 * 1024  # a gzip body sent without Content-Encoding inflates to this
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
_ENCODING_DECLARATION = re.compile(rb"^(<\?xml[^>]*?)\s+encoding=[\"'][^\"']*[\"']", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedFeed:
    format: str | None  # feedparser's version name (rss20, atom10, rss10 ...) or json1/json11
    title: str | None
    entries: tuple[FeedEntry, ...]
    error: str | None = None  # set when the document yields nothing usable
    warnings: tuple[str, ...] = ()
    language: str | None = None
    refresh_hint_seconds: float | None = None  # from the feed's ttl or sy:updatePeriod
    parser: str | None = None  # which parser answered: lxml, feedparser or json
    fallback_reason: str | None = None  # why connectors.xmlfeed left the document to feedparser
    entries_dropped: int = 0  # the oldest, beyond max_entries (a warning says so too)


def parse_feed(
    data: bytes,
    *,
    url: str | None = None,
    content_type: str | None = None,
    fetched_at: float | None = None,
    max_entries: int = MAX_ENTRIES_PER_FEED,
    parser: str = "lxml",
) -> ParsedFeed:
    """Parse one feed document. Never raises on bad input: the error field says what is wrong
    (an HTML page is named as one, with the feeds it advertises, not as a parser's complaint).

    ``parser="feedparser"`` skips connectors.xmlfeed, for the parity harness and the benchmark
    (``python -m bench.feeds --parity``).
    """
    parsed = _parse_document(data, url, content_type, fetched_at, max_entries, parser)
    if parsed.error is not None and htmlpage.is_html_page(data, content_type):
        reason = htmlpage.not_a_feed_reason(data, url)
        return dataclasses.replace(
            parsed, format=None, title=None, error=f"not a valid feed: {reason}"
        )
    return parsed


def _parse_document(
    data: bytes,
    url: str | None,
    content_type: str | None,
    fetched_at: float | None,
    max_entries: int,
    parser: str,
) -> ParsedFeed:
    fetched_at = time.time() if fetched_at is None else fetched_at
    if data.startswith(_GZIP_MAGIC):
        # Some servers gzip twice or forget Content-Encoding; saved files may be gzipped too.
        inflated = _gunzip(data, MAX_DOCUMENT_BYTES)
        if isinstance(inflated, str):
            return ParsedFeed(None, None, (), error=inflated)
        data = inflated
    data = _utf16_without_bom_to_utf8(data)
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(_BOM):
        stripped = stripped[len(_BOM) :].lstrip()
    if not stripped:
        return ParsedFeed(None, None, (), error="empty document")
    if stripped[:1] == b"{" or (content_type and "json" in content_type.lower()):
        return _parse_json_feed(stripped, fetched_at, max_entries)
    stripped = _without_internal_subset(stripped)
    if parser != "feedparser":
        try:
            fast = xmlfeed.parse_xml(stripped, url, _charset(content_type), max_entries, fetched_at)
        except Exception as exc:  # a bug there must cost a feed its speed, not its entries
            log.exception("connectors.xmlfeed failed on %s; feedparser reads it", url)
            fast = f"connectors.xmlfeed failed: {exc!r}"
        if not isinstance(fast, str):
            return _from_lxml(fast, max_entries)
        slow = _parse_xml_feed(stripped, url, content_type, fetched_at, max_entries)
        return dataclasses.replace(slow, fallback_reason=fast)
    return _parse_xml_feed(stripped, url, content_type, fetched_at, max_entries)


def _charset(content_type: str | None) -> str | None:
    found = _CHARSET.search(content_type or "")
    return found.group(1).lower() if found else None


def _gunzip(data: bytes, max_bytes: int) -> bytes | str:
    """The inflated document, or the reason it cannot be had (bounded: a bomb stops early)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        return f"gzip-compressed and corrupt: {exc}"
    if len(out) > max_bytes:
        return f"gzip-compressed document exceeds {max_bytes} bytes after decompression"
    if not inflater.eof:
        return "gzip-compressed and truncated"
    return out


def _utf16_without_bom_to_utf8(data: bytes) -> bytes:
    """UTF-16 without a byte order mark, which expat cannot detect, as UTF-8."""
    head = data[:4]
    if len(head) < 4 or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data
    if head[0] == 0 and head[1] != 0 and head[2] == 0 and head[3] != 0:
        encoding = "utf-16-be"
    elif head[0] != 0 and head[1] == 0 and head[2] != 0 and head[3] == 0:
        encoding = "utf-16-le"
    else:
        return data
    try:
        text = data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError:
        return data
    return _ENCODING_DECLARATION.sub(rb"\1", text, count=1)


def parse_file(path: Path, *, max_entries: int = MAX_ENTRIES_PER_FEED) -> ParsedFeed:
    """Parse a saved feed file with the same code as the live connector."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ParsedFeed(None, None, (), error=f"cannot read {path}: {exc.strerror}")
    return parse_feed(data, url=path.resolve().as_uri(), max_entries=max_entries)


def _without_internal_subset(data: bytes) -> bytes:
    element = _FIRST_ELEMENT.search(data)
    head_end = element.start() if element else len(data)
    head = data[:head_end]
    if b"[" not in head:
        return data
    return _INTERNAL_SUBSET.sub(rb"\1>", head, count=1) + data[head_end:]


def _parse_xml_feed(
    data: bytes, url: str | None, content_type: str | None, fetched_at: float, max_entries: int
) -> ParsedFeed:
    # Without a charset the XML declaration and BOM decide (feedparser would otherwise apply
    # RFC 3023's us-ascii default for text/xml, which real servers never mean).
    headers = {"content-type": content_type if _charset(content_type) else "application/xml"}
    if url:
        headers["content-location"] = url
    # Relative URIs inside entry HTML are left alone: bodies become plain text downstream,
    # entry links are still resolved (by feedparser and the poller), and it saves ~40% of
    # the parse time (bench/feeds.py). The HTML sanitizer stays on.
    parsed = feedparser.parse(data, response_headers=headers, resolve_relative_uris=False)
    version = parsed.get("version") or None
    feed = parsed.get("feed", {})
    title = _text(feed.get("title"))
    language = _text(feed.get("language"))
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    raw_entries = parsed.get("entries", [])
    if not raw_entries:
        if problem is not None:
            return ParsedFeed(version, title, (), error=f"not a valid feed: {_describe(problem)}")
        if version is None:
            return ParsedFeed(None, title, (), error="not a feed: no RSS, Atom or JSON Feed root")
    warnings = []
    if problem is not None:
        warnings.append(f"parsed leniently: {_describe(problem)}")
    entries = []
    for raw in raw_entries:
        entry = _xml_entry(raw, fetched_at, language)
        if entry is not None:
            entries.append(entry)
    kept, dropped = _newest(entries, max_entries, warnings)
    hint = scheduler.feed_hint_seconds(
        _text(feed.get("ttl")),
        _text(feed.get("sy_updateperiod")),
        _text(feed.get("sy_updatefrequency")),
    )
    return ParsedFeed(
        version,
        title,
        kept,
        warnings=tuple(warnings),
        language=language,
        refresh_hint_seconds=hint,
        parser="feedparser",
        entries_dropped=dropped,
    )


def _from_lxml(fast: xmlfeed.XmlFeed, max_entries: int) -> ParsedFeed:
    if not fast.entry_count and fast.warnings:
        # As with feedparser: a document that needed mending and yields nothing is no feed.
        return ParsedFeed(
            fast.format, fast.title, (), error=f"not a valid feed: {fast.warnings[0]}"
        )
    warnings = [f"parsed leniently: {warning}" for warning in fast.warnings]
    dropped = max(0, fast.entry_count - max_entries)
    if dropped:
        warnings.append(_cap_warning(dropped, max_entries))
    hint = scheduler.feed_hint_seconds(fast.ttl, fast.update_period, fast.update_frequency)
    return ParsedFeed(
        fast.format,
        fast.title,
        fast.entries,
        warnings=tuple(warnings),
        language=fast.language,
        refresh_hint_seconds=hint,
        parser="lxml",
        entries_dropped=dropped,
    )


def _cap_warning(dropped: int, max_entries: int) -> str:
    return f"{dropped} entries beyond the cap of {max_entries} dropped"


def _newest(
    entries: list[FeedEntry], max_entries: int, warnings: list[str]
) -> tuple[tuple[FeedEntry, ...], int]:
    """The ``max_entries`` newest entries in document order, and how many older ones went
    (a warning is added when any did)."""
    kept = newest([entry.published for entry in entries], max_entries)
    dropped = len(entries) - len(kept)
    if dropped:
        warnings.append(_cap_warning(dropped, max_entries))
    return tuple(entries[index] for index in kept), dropped


def _xml_entry(raw: Any, fetched_at: float, language: str | None) -> FeedEntry | None:
    title = _text(raw.get("title")) or ""
    link = _text(raw.get("link"))
    guid = _text(raw.get("id"))
    contents = [_text(c.get("value")) or "" for c in raw.get("content", []) if hasattr(c, "get")]
    body = max(contents, key=len, default="") or _text(raw.get("summary")) or ""
    if not (title or link or guid or body):
        return None
    # dict.get skips feedparser's deprecated published->updated key aliasing.
    struct = dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")
    published = None
    if struct is not None:
        try:
            published = float(calendar.timegm(struct))
        except (OverflowError, ValueError, TypeError):
            published = None
    return dated_entry(title, link, guid, body, published, fetched_at, language)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json_feed(data: bytes, fetched_at: float, max_entries: int) -> ParsedFeed:
    try:
        # Integers stay strings: ids may be huge and we never compute with them.
        doc = json.loads(data, parse_int=str, parse_constant=_refuse_constant)
    except RecursionError:
        return ParsedFeed(None, None, (), error="not a valid JSON Feed: nested too deeply")
    except (ValueError, UnicodeDecodeError) as exc:
        return ParsedFeed(None, None, (), error=f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return ParsedFeed(None, None, (), error="not a JSON Feed: top level is not an object")
    version = _text(doc.get("version")) or ""
    if not version.startswith(("https://jsonfeed.org/version/1", "http://jsonfeed.org/version/1")):
        return ParsedFeed(None, None, (), error=f"not a JSON Feed: version is {version!r}")
    name = "json11" if version.endswith("/1.1") else "json1"
    items = doc.get("items")
    if not isinstance(items, list):
        return ParsedFeed(name, _text(doc.get("title")), (), error="JSON Feed has no items list")
    language = _text(doc.get("language"))
    warnings: list[str] = []
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        title = _text(item.get("title")) or ""
        link = _text(item.get("url")) or _text(item.get("external_url"))
        guid = _text(item.get("id"))
        body = (
            _text(item.get("content_html"))
            or _text(item.get("content_text"))
            or _text(item.get("summary"))
            or ""
        )
        if not (title or link or guid or body):
            continue
        published = _rfc3339(item.get("date_published")) or _rfc3339(item.get("date_modified"))
        entries.append(
            dated_entry(
                title,
                link,
                guid,
                body,
                published,
                fetched_at,
                _text(item.get("language")) or language,
            )
        )
    kept, dropped = _newest(entries, max_entries, warnings)
    return ParsedFeed(
        name,
        _text(doc.get("title")),
        kept,
        warnings=tuple(warnings),
        language=language,
        parser="json",
        entries_dropped=dropped,
    )


def _rfc3339(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _describe(problem: BaseException) -> str:
    return str(problem).strip() or type(problem).__name__


class RssSource:
    """Feeds over HTTP(S) in any of the XML formats or JSON Feed."""

    name = "rss"

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        max_entries: int = MAX_ENTRIES_PER_FEED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self._max_entries = max_entries
        self._clock = clock

    async def poll(self, feed: FeedRequest) -> FetchResult:
        fetched_at = self._clock()
        try:
            response = await self._fetcher.fetch(
                feed.url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FetchError as exc:
            return FetchResult(
                "error",
                feed.url,
                error=f"feed {feed.url}: {exc}",
                error_kind=exc.kind,
                retry_after_seconds=exc.retry_after_seconds,
            )
        # What every non-failed-fetch result shares; replace() fills in the outcome.
        base = FetchResult(
            "not_modified",
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            permanent_url=response.permanent_url,
            http_status=response.status,
            body_bytes=response.raw_bytes,
        )
        if response.status == 304:
            return base
        # Parsing is CPU-bound; a thread keeps other fetches' deadlines honest meanwhile.
        started = time.perf_counter()
        parsed = await asyncio.to_thread(
            parse_feed,
            response.body,
            url=response.url,
            content_type=response.content_type,
            fetched_at=fetched_at,
            max_entries=self._max_entries,
        )
        metrics.FEED_PARSE_DURATION.observe(time.perf_counter() - started)
        metrics.FEED_PARSES.labels(parsed.parser or "none").inc()
        if parsed.error is not None:
            return dataclasses.replace(
                base,
                outcome="error",
                error=f"feed {feed.url}: {parsed.error}",
                error_kind="parse",
                format=parsed.format,
            )
        return dataclasses.replace(
            base,
            outcome="fetched",
            entries=parsed.entries,
            feed_title=parsed.title,
            format=parsed.format,
            etag=response.etag,
            last_modified=response.last_modified,
            warnings=parsed.warnings,
            refresh_hint_seconds=parsed.refresh_hint_seconds,
            entries_dropped=parsed.entries_dropped,
        )
