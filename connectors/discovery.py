"""From a URL someone typed to a feed: the URL itself if it is a feed, else the feed that the
HTML page advertises with ``<link rel="alternate" type="application/rss+xml" href=...>``.

Every fetch goes through the shared :class:`~connectors.fetcher.Fetcher`, so the SSRF guard
and the size and time limits apply to discovery as to polling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from connectors.fetcher import Fetcher, FetchError
from connectors.rss import ParsedFeed, parse_feed

FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
)
MAX_HTML_SCAN_BYTES = 1024 * 1024  # the <head> is near the top; do not walk a huge page
MAX_CANDIDATES = 5


class DiscoveryError(Exception):
    """The URL is not a feed and advertises none that works; the message says why."""


@dataclass(frozen=True)
class DiscoveredFeed:
    url: str  # the feed's own URL
    page_url: str | None  # the HTML page that advertised it, if the given URL was a page
    parsed: ParsedFeed


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (type, href) in document order
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"].strip()
        if tag not in ("link", "a"):
            return
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        href = values.get("href", "").strip()
        if "alternate" in rels and kind in FEED_TYPES and href:
            self.links.append((kind, href))


def feed_links(html: bytes, page_url: str) -> list[str]:
    """The feeds a page advertises, absolute, http(s) only, RSS/Atom before JSON, no repeats."""
    parser = _AlternateLinks()
    text = html[:MAX_HTML_SCAN_BYTES].decode("utf-8", errors="replace")
    parser.feed(text)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    rank = {kind: n for n, kind in enumerate(FEED_TYPES)}
    ordered = sorted(enumerate(parser.links), key=lambda item: (rank[item[1][0]], item[0]))
    found: list[str] = []
    for _, (_, href) in ordered:
        url = urljoin(base, href)
        if urlsplit(url).scheme.lower() in ("http", "https") and url not in found:
            found.append(url)
    return found


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    if content_type and "html" in content_type.lower():
        return True
    head = body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


async def _fetch_and_parse(fetcher: Fetcher, url: str) -> tuple[bytes, str | None, ParsedFeed]:
    response = await fetcher.fetch(url)
    parsed = await asyncio.to_thread(
        parse_feed, response.body, url=response.url, content_type=response.content_type
    )
    return response.body, response.content_type, parsed


async def discover(fetcher: Fetcher, url: str) -> DiscoveredFeed:
    """The feed at ``url``, or the first working feed the page at ``url`` advertises."""
    try:
        body, content_type, parsed = await _fetch_and_parse(fetcher, url)
    except FetchError as exc:
        raise DiscoveryError(f"{url}: {exc}") from None
    if parsed.error is None:
        return DiscoveredFeed(url, None, parsed)
    if not looks_like_html(body, content_type):
        raise DiscoveryError(f"{url}: {parsed.error}")
    candidates = feed_links(body, url)
    if not candidates:
        raise DiscoveryError(
            f"{url}: an HTML page that advertises no feed (no <link rel=alternate>)"
        )
    problems = []
    for candidate in candidates[:MAX_CANDIDATES]:
        try:
            _, _, found = await _fetch_and_parse(fetcher, candidate)
        except FetchError as exc:
            problems.append(f"{candidate}: {exc}")
            continue
        if found.error is None:
            return DiscoveredFeed(candidate, url, found)
        problems.append(f"{candidate}: {found.error}")
    raise DiscoveryError(f"{url}: no advertised feed works: " + "; ".join(problems))
