"""From a URL someone typed to a feed: the URL itself if it is a feed, else the feed that the
HTML page advertises with ``<link rel="alternate" type="application/rss+xml" href=...>``.

Every fetch goes through the shared :class:`~connectors.fetcher.Fetcher`, so the SSRF guard
and the size and time limits apply to discovery as to polling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from connectors.fetcher import Fetcher, FetchError
from connectors.htmlpage import feed_links, is_html_page
from connectors.rss import MAX_ENTRIES_PER_FEED, ParsedFeed, parse_feed

MAX_CANDIDATES = 5


class DiscoveryError(Exception):
    """The URL is not a feed and advertises none that works; the message says why."""


@dataclass(frozen=True)
class DiscoveredFeed:
    url: str  # the feed's own URL
    page_url: str | None  # the HTML page that advertised it, if the given URL was a page
    parsed: ParsedFeed


async def _fetch_and_parse(
    fetcher: Fetcher, url: str, max_entries: int
) -> tuple[bytes, str | None, ParsedFeed]:
    response = await fetcher.fetch(url)
    parsed = await asyncio.to_thread(
        parse_feed,
        response.body,
        url=response.url,
        content_type=response.content_type,
        max_entries=max_entries,
    )
    return response.body, response.content_type, parsed


async def discover(
    fetcher: Fetcher, url: str, *, max_entries: int = MAX_ENTRIES_PER_FEED
) -> DiscoveredFeed:
    """The feed at ``url``, or the first working feed the page at ``url`` advertises."""
    try:
        body, content_type, parsed = await _fetch_and_parse(fetcher, url, max_entries)
    except FetchError as exc:
        raise DiscoveryError(f"{url}: {exc}") from None
    if parsed.error is None:
        return DiscoveredFeed(url, None, parsed)
    candidates = feed_links(body, url) if is_html_page(body, content_type) else []
    if not candidates:  # the parse error says why: "... an HTML page that advertises no feed"
        raise DiscoveryError(f"{url}: {parsed.error}")
    problems = []
    for candidate in candidates[:MAX_CANDIDATES]:
        try:
            _, _, found = await _fetch_and_parse(fetcher, candidate, max_entries)
        except FetchError as exc:
            problems.append(f"{candidate}: {exc}")
            continue
        if found.error is None:
            return DiscoveredFeed(candidate, url, found)
        problems.append(f"{candidate}: {found.error}")
    raise DiscoveryError(f"{url}: no advertised feed works: " + "; ".join(problems))
