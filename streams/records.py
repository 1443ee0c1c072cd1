"""Records that cross a process boundary (Kafka topics). Each carries a ``version``.

Timestamps are UTC epoch seconds (floats) so that event-time arithmetic is plain numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import faust

RAW_ARTICLE_VERSION = 1
ARTICLE_VERSION = 1
SPIKE_VERSION = 1
PREPARED_VERSION = 1


class RawArticle(faust.Record, serializer="json", include_metadata=False):
    """An entry as a connector saw it: keyed by ``article_id`` on the raw topic."""

    article_id: str
    url: str | None
    title: str
    body: str  # HTML or text as the feed carried it
    source: str | None
    feed_url: str | None
    published: float  # event time, UTC epoch seconds
    published_is_fetch_time: bool = False
    fetched_at: float = 0.0
    is_update: bool = False
    language: str | None = None
    version: int = RAW_ARTICLE_VERSION


def encode_prepared(articles: list[dict[str, Any]], max_bytes: int = 512 * 1024) -> Iterator[bytes]:
    """Prepared articles (``ArticleProcessor.prepare``: the article cleaned and classified,
    its duplicate digest and story sketch) as messages of the prepared topic: one JSON object
    ``{"version": 1, "articles": [...]}`` per message, each under ``max_bytes`` unless one
    article alone is larger. A batch crosses in a few messages, not one per article: the
    story stage reads them all from one partition."""
    head, tail = b'{"version":%d,"articles":[' % PREPARED_VERSION, b"]}"
    empty = len(head) + len(tail)
    parts: list[bytes] = []
    size = empty
    for article in articles:
        part = json.dumps(article).encode()
        if parts and size + 1 + len(part) > max_bytes:
            yield head + b",".join(parts) + tail
            parts, size = [], empty
        size += len(part) + (1 if parts else 0)
        parts.append(part)
    if parts:
        yield head + b",".join(parts) + tail


def decode_prepared(data: bytes) -> list[dict[str, Any]]:
    """The articles of one prepared-topic message; ValueError for one this code cannot read."""
    decoded = json.loads(data)
    if not isinstance(decoded, dict) or decoded.get("version") != PREPARED_VERSION:
        raise ValueError(f"not a prepared-articles message of version {PREPARED_VERSION}")
    articles = decoded["articles"]
    if not isinstance(articles, list):
        raise ValueError("prepared-articles message without a list of articles")
    return articles


class Article(faust.Record, serializer="json", include_metadata=False):
    """A cleaned, de-duplicated, classified article.

    ``topics`` maps topic name to ``{"score": float, "terms": [{"term", "field", "start", "end"}]}``
    so that every label can say why it was given.
    """

    article_id: str
    url: str | None
    title: str
    text: str
    source: str | None
    published: float
    story_id: str
    topics: dict[str, Any]
    language: str | None = None
    is_update: bool = False
    version: int = ARTICLE_VERSION


class TopicHit(faust.Record, serializer="json", include_metadata=False):
    """One article counted under one key (a topic, or ``entity:<name>``); keyed by ``key`` so
    that each key's counts and baseline live in one partition."""

    key: str
    article_id: str
    story_id: str
    title: str
    url: str | None
    source: str | None
    published: float
    terms: list[str]
    version: int = 1


class Spike(faust.Record, serializer="json", include_metadata=False):
    """A spike event: everything an alert needs to explain itself."""

    spike_id: str
    topic: str
    state: str  # started | escalated | resolved
    window_start: float
    window_end: float
    count: int
    baseline: float
    ratio: float
    score: float
    detected_at: float
    top_stories: list[dict[str, Any]]  # {article_id, title, url, source, published}
    top_terms: list[str]
    recent_counts: list[dict[str, Any]]  # {"start": epoch, "count": int}, oldest first
    version: int = SPIKE_VERSION
