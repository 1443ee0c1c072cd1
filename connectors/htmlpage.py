"""HTML pages where a feed was expected: whether a document is one, which feeds it advertises
with ``<link rel="alternate" type="application/rss+xml" href=...>``, and how to say so.

connectors.rss gives :func:`not_a_feed_reason` as the parse error for every caller (the
poller, ``feeds parse``, ``feeds add``); connectors.discovery follows the advertised links.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

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
NO_FEED = (
    "this is an HTML page that advertises no feed"
    ' (no <link rel="alternate"> to an RSS, Atom or JSON feed)'
)
LINKS_NAMED = 3  # advertised feeds named in a message
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf"})  # rdf:RDF is RSS 0.90 and 1.0
_COMMENT = re.compile(rb"<!--.*?(?:-->|$)", re.DOTALL)
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z][\w:.-]*)")


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


def _alternate_links(html: bytes) -> _AlternateLinks:
    parser = _AlternateLinks()
    parser.feed(html[:MAX_HTML_SCAN_BYTES].decode("utf-8", errors="replace"))
    parser.close()
    return parser


def feed_links(html: bytes, page_url: str) -> list[str]:
    """The feeds a page advertises, absolute, http(s) only, RSS/Atom before JSON, no repeats."""
    parser = _alternate_links(html)
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
    """Served as HTML or starting like HTML (a feed served as text/html counts too)."""
    if content_type and "html" in content_type.lower():
        return True
    head = body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def is_html_page(body: bytes, content_type: str | None) -> bool:
    """An HTML page, not a feed: it looks like HTML and its first element is no feed root (an
    RSS document served as text/html is a feed that may be broken, not a page)."""
    if not looks_like_html(body, content_type):
        return False
    head = _COMMENT.sub(b"", body[:4096]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return False  # JSON served as text/html
    first = _FIRST_ELEMENT.search(head)
    if first is None:
        return True
    return first.group(1).lower().rpartition(b":")[2] not in _FEED_ROOTS


def not_a_feed_reason(html: bytes, page_url: str | None) -> str:
    """What to tell someone who expected a feed at ``page_url`` and got this HTML page."""
    links = feed_links(html, page_url or "")
    if not links and urlsplit(page_url or "").scheme.lower() not in ("http", "https"):
        # A saved page (file://): its relative links lead nowhere from here; name them as written.
        links = list(dict.fromkeys(href for _, href in _alternate_links(html).links))
    if not links:
        return NO_FEED
    named = ", ".join(links[:LINKS_NAMED])
    more = f" and {len(links) - LINKS_NAMED} more" if len(links) > LINKS_NAMED else ""
    kind = "feed" if len(links) == 1 else "feeds"
    return f"this is an HTML page that advertises the {kind} {named}{more}; use a feed URL"
