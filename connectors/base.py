"""The Source contract: what every connector module must provide, and the data it hands back.

A source turns one feed (its URL and what we remember from the last fetch) into a
:class:`FetchResult`. Sources never publish and never touch state; the poller does both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

Outcome = Literal["fetched", "not_modified", "error"]


class FeedEntry(NamedTuple):  # a tuple: made for every entry of every fetch, 4x a dataclass
    """One entry as the feed carried it, before identity and publishing."""

    title: str
    link: str | None
    guid: str | None
    body: str  # HTML or text: content if the feed has it, else the summary
    published: float  # UTC epoch seconds
    published_is_fetch_time: bool = False
    language: str | None = None
    source: str | None = None  # the outlet, when the entry names it (JSON Lines); else the feed's


@dataclass(frozen=True)
class FeedRequest:
    """What a source needs to poll a feed politely."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one poll. ``error`` is a full sentence naming the feed; ``error_kind``
    is a short bounded label for metrics (``timeout``, ``too_large``, ``ssrf``, ``parse`` ...)."""

    outcome: Outcome
    feed_url: str
    entries: tuple[FeedEntry, ...] = ()
    feed_title: str | None = None
    format: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set when every redirect hop was 301/308
    retry_after_seconds: float | None = None
    http_status: int | None = None
    body_bytes: int = 0
    error: str | None = None
    error_kind: str | None = None
    warnings: tuple[str, ...] = field(default=())
    # How long the feed says it stays fresh (its ttl or sy:updatePeriod), for the scheduler.
    refresh_hint_seconds: float | None = None
    # Entries left out because the document carried more than the per-feed cap: the oldest.
    entries_dropped: int = 0


class Source(Protocol):
    """A kind of source (RSS/Atom/JSON Feed over HTTP, a directory of files ...)."""

    name: str

    async def poll(self, feed: FeedRequest) -> FetchResult: ...
