"""Polls due feeds, turns new or edited entries into RawArticles and publishes them.

An entry is marked published only after the broker acknowledged it, and a feed whose
articles could not all be published keeps its old ETag, so the next poll fetches and
retries them instead of getting a 304. One broken feed never stops the others.
Feeds are claimed with a lease (see ``connectors.state``), so several pollers may share one
feed list without polling a feed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from connectors import metrics
from connectors.base import FeedEntry, FeedRequest, FetchResult, Source
from connectors.fetcher import Fetcher
from connectors.fulltext import FullTextFetcher
from connectors.identity import article_id, canonical_url, content_hash, is_current_content_hash
from connectors.publisher import Publisher
from connectors.rss import RssSource
from connectors.state import FeedRow, FeedState
from newsalert.database import unavailable_errors, wait_out_outage, when_available
from newsalert.settings import Settings
from streams.records import RawArticle

log = logging.getLogger(__name__)

MAX_CONCURRENT_FEEDS = 100
RUN_GRANULARITY_SECONDS = 1.0
FEED_HEALTH_SECONDS = 5.0  # how often run() counts the feeds by health for the metric
LEASE_MIN_SECONDS = 120.0  # beyond the fetch deadline: publishing to the broker takes time too


def lease_owner_name() -> str:
    """Names this poller in leases: host, process and a random part (two pollers, one process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class _Candidate:
    article: RawArticle
    content_hash: str


class FeedPoller:
    def __init__(
        self,
        settings: Settings,
        state: FeedState,
        publisher: Publisher,
        fetcher: Fetcher | None,
        *,
        source: Source | None = None,
        max_concurrent_feeds: int = MAX_CONCURRENT_FEEDS,
        clock: Callable[[], float] = time.time,
        lease_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._state = state
        self._publisher = publisher
        if source is None:
            if fetcher is None:
                raise ValueError("FeedPoller needs a fetcher or a source")
            source = RssSource(fetcher, max_entries=settings.max_entries_per_feed, clock=clock)
        self._source = source
        # Feeds with full_text set get their article pages fetched through the same client.
        self._full_text = FullTextFetcher(fetcher) if fetcher is not None else None
        self._max_concurrent = max_concurrent_feeds
        self._clock = clock
        self.owner = lease_owner_name()
        self._lease_seconds = lease_seconds or max(
            LEASE_MIN_SECONDS, 2 * settings.fetch_timeout_seconds + LEASE_MIN_SECONDS
        )
        self._wake = asyncio.Event()
        # Article ids being published right now: two feeds carrying the same story in one
        # round must not both publish it.
        self._publishing: set[str] = set()

    async def poll_once(self, now: float | None = None) -> int:
        """Poll every due feed (bounded concurrency); return how many articles were published."""
        now = self._clock() if now is None else now
        slots = asyncio.Semaphore(self._max_concurrent)

        async def bounded(feed: FeedRow) -> int:
            async with slots:
                return await self.poll_feed(feed, now)

        claimed = self._state.claim_due_feeds(now, self.owner, self._lease_seconds)
        try:
            results = await asyncio.gather(
                *(bounded(feed) for feed in claimed), return_exceptions=True
            )
        finally:
            # Normally each outcome ended its lease; a cancelled round gives the rest back.
            self._state.release_leases(self.owner, (feed.url for feed in claimed))
        for outcome in results:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        return sum(outcome for outcome in results if isinstance(outcome, int))

    async def run(self) -> None:
        """Poll forever: start each feed when due, at most ``max_concurrent_feeds`` at a time."""
        in_flight: dict[str, asyncio.Task[int]] = {}
        outages = 0
        health_due = 0.0
        try:
            while True:
                now = self._clock()
                free = self._max_concurrent - len(in_flight)
                try:
                    claimed = self._state.claim_due_feeds(
                        now, self.owner, self._lease_seconds, free
                    )
                    next_due = self._state.next_due_at()
                    if now >= health_due:
                        for state, count in self._state.health_counts(now).items():
                            metrics.FEEDS.labels(state).set(count)
                        health_due = now + FEED_HEALTH_SECONDS
                except unavailable_errors() as problem:
                    await wait_out_outage(problem, "feed polling", outages)
                    outages += 1
                    continue
                outages = 0
                for feed in claimed:
                    if feed.url in in_flight:
                        continue  # its lease ran out while it was still being polled
                    task = asyncio.create_task(
                        self._poll_in_flight(in_flight, feed, now), name=f"poll {feed.url}"
                    )
                    in_flight[feed.url] = task
                    task.add_done_callback(functools.partial(self._finished, feed.url))
                delay = RUN_GRANULARITY_SECONDS
                if next_due is not None and next_due > now:
                    delay = min(delay, next_due - now)
                self._wake.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass  # the next feed is due (or the granularity tick came)
        finally:
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
            with contextlib.suppress(*unavailable_errors()):  # the leases expire anyway
                self._state.release_leases(self.owner)

    async def _poll_in_flight(
        self, in_flight: dict[str, asyncio.Task[int]], feed: FeedRow, now: float
    ) -> int:
        """``poll_feed``, listed in ``in_flight`` until its outcome is recorded and not a step
        longer. Recording ends the lease, and after a poll that outlasted the feed's interval
        (publishes waiting for a broker that restarts) the feed is due at once: run() may claim
        it in its next step. Were the poll still listed then (as it was when a done callback
        took it off, a loop step later), run() would skip the feed and keep the new lease, and
        the feed would go unpolled, its new entries unpublished, until that lease ran out."""
        try:
            return await self.poll_feed(feed, now)
        finally:
            in_flight.pop(feed.url, None)  # no await since record_fetch: the same loop step
            self._wake.set()

    def _finished(self, url: str, task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("feed %s: poll crashed: %r", url, task.exception())

    async def poll_feed(self, feed: FeedRow, now: float) -> int:
        """Poll one feed, publish what is new or edited, record the outcome. Never raises for
        a bad feed; returns the number of articles published."""
        started = time.perf_counter()
        request = FeedRequest(feed.fetch_url, feed.etag, feed.last_modified)
        try:
            result = await self._source.poll(request)
        except Exception as exc:  # a bug in a source must cost one feed, not the poller
            log.exception("feed %s: source %s failed", feed.url, self._source.name)
            result = FetchResult(
                "error",
                feed.url,
                error=f"feed {feed.url}: {type(exc).__name__}: {exc}",
                error_kind="internal",
            )
        metrics.FEED_FETCH_DURATION.observe(time.perf_counter() - started)
        metrics.FEED_FETCHED_BYTES.inc(result.body_bytes)
        new = updated = 0
        warning = None
        if result.outcome == "fetched":
            metrics.ARTICLES_FETCHED.inc(len(result.entries))
            warning = cap_warning(result)
            if warning is not None:
                metrics.FEED_ENTRIES_DROPPED.labels("cap").inc(result.entries_dropped)
                log.warning("feed %s: %s", feed.url, warning)
            new, updated, failure = await self._publish_entries(feed, result, now)
            if failure is not None:
                result = FetchResult(
                    "error", feed.url, error=f"feed {feed.url}: {failure}", error_kind="publish"
                )
        metrics.FEED_FETCHES.labels(result.outcome).inc()
        if result.outcome == "error":
            metrics.FEED_FETCH_ERRORS.labels(result.error_kind or "unknown").inc()
            log.warning("%s", result.error)
        await when_available(
            lambda: self._state.record_fetch(
                feed.url,
                result,
                now=now,
                default_interval_seconds=self._settings.poll_interval_seconds,
                items_seen=new,
                changed=new + updated > 0,
                warning=warning,
                entries_dropped=result.entries_dropped,
            ),
            f"feed {feed.url}",
        )
        return new + updated

    async def _publish_entries(
        self, feed: FeedRow, result: FetchResult, now: float
    ) -> tuple[int, int, str | None]:
        """Publish what is new or edited; return (new, updated, failure or None)."""
        candidates = self._candidates(feed, result, now)
        known = self._state.published_entries(candidates)
        to_publish: list[_Candidate] = []
        for aid, candidate in candidates.items():
            previous = known.get(aid)
            if aid in self._publishing:
                continue  # another feed is publishing it; the next poll sees it as known
            if previous is None:
                to_publish.append(candidate)
            elif previous.feed_url != feed.url or previous.content_hash == candidate.content_hash:
                continue
            elif not is_current_content_hash(previous.content_hash):
                # Stored by an older version of content_hash: we cannot tell whether the entry
                # changed, and republishing every known entry once would flood the stream.
                self._state.mark_published(aid, feed.url, candidate.content_hash, now)
            else:
                candidate.article.is_update = True
                to_publish.append(candidate)
        to_publish.sort(key=lambda c: c.article.published)  # oldest first: event time moves forward
        if feed.full_text and self._full_text is not None and to_publish:
            # The content hash stays the feed entry's, so a page that changes is no "edit".
            await self._full_text.enrich([c.article for c in to_publish])
        claimed = {c.article.article_id for c in to_publish}
        self._publishing |= claimed
        try:
            outcomes = await asyncio.gather(
                *(self._publisher.publish(c.article) for c in to_publish), return_exceptions=True
            )
        finally:
            self._publishing -= claimed
        new = updated = 0
        failure: str | None = None
        for candidate, outcome in zip(to_publish, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                failure = f"publishing failed: {type(outcome).__name__}: {outcome}"
                continue
            article = candidate.article
            # Published: wait for the database rather than publish it again on the next poll.
            await when_available(
                functools.partial(
                    self._state.mark_published,
                    article.article_id,
                    feed.url,
                    candidate.content_hash,
                    now,
                ),
                f"feed {feed.url}",
            )
            metrics.ARTICLES_PUBLISHED.labels("update" if article.is_update else "new").inc()
            if article.is_update:
                updated += 1
            else:
                new += 1
        return new, updated, failure

    def _candidates(self, feed: FeedRow, result: FetchResult, now: float) -> dict[str, _Candidate]:
        feed_source = feed.name or result.feed_title or feed.title or urlsplit(feed.url).hostname
        candidates: dict[str, _Candidate] = {}
        for entry in result.entries:
            url = _article_url(feed.fetch_url, entry)
            aid = article_id(url=url, guid=entry.guid, title=entry.title, feed_url=feed.url)
            if aid in candidates:
                continue  # the same story twice in one document: first wins
            article = RawArticle(
                article_id=aid,
                url=url,
                title=entry.title,
                body=entry.body,
                source=entry.source or feed_source,
                feed_url=feed.url,
                published=entry.published,
                published_is_fetch_time=entry.published_is_fetch_time,
                fetched_at=now,
                is_update=False,
                language=entry.language,
            )
            candidates[aid] = _Candidate(article, content_hash(entry.title, entry.body, url))
        return candidates


def cap_warning(result: FetchResult) -> str | None:
    """The feed's warning when its document carried more entries than the cap."""
    if not result.entries_dropped:
        return None
    total = len(result.entries) + result.entries_dropped
    return (
        f"kept the newest {len(result.entries)} of {total} entries (max_entries_per_feed);"
        f" {result.entries_dropped} older ones dropped"
    )


def _article_url(base: str, entry: FeedEntry) -> str | None:
    """The entry's link, absolute and canonical; None unless it is http(s)."""
    if not entry.link:
        return None
    absolute = urljoin(base, entry.link)
    if urlsplit(absolute).scheme.lower() not in ("http", "https"):
        return None
    return canonical_url(absolute)
