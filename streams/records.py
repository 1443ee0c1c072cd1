"""Records that cross a process boundary (Kafka topics). Each carries a ``version``.

Timestamps are UTC epoch seconds (floats) so that event-time arithmetic is plain numbers.
"""

from __future__ import annotations

from typing import Any

import faust

RAW_ARTICLE_VERSION = 1
ARTICLE_VERSION = 1
SPIKE_VERSION = 1


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
