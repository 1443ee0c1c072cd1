"""Articles from local files, for backfills and replays: JSON Lines (one article per line with
``id, title, text, url, source, published``, as in ``shared/data/articles``) or saved feed
files (RSS, Atom, JSON Feed; parsed by the live connector's code).

``FileSource`` is a :class:`~connectors.base.Source` for ``file://`` feeds (a file whose size
and modification time did not change is "not modified"); ``backfill`` pushes whole files
through the poller's publishing path in batches, so de-duplication and updates work as live.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.base import FeedEntry, FeedRequest, FetchResult
from connectors.feeddates import dated_entry, newest
from connectors.rss import MAX_ENTRIES_PER_FEED, parse_file
from connectors.state import FeedRow, FeedState
from newsalert.settings import Settings

JSONL_SUFFIXES = (".jsonl", ".ndjson")
BATCH_ENTRIES = 1000


def path_from_url(url: str) -> Path:
    """``file:///a/b.jsonl`` or a plain path -> Path."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(url)


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def _published(value: Any) -> float | None:
    """Epoch seconds from ISO 8601 or a bare date (UTC when no offset is given)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def jsonl_entry(record: Any, fetched_at: float) -> FeedEntry | None:
    """One JSON Lines article as a feed entry; None if it has nothing to identify it by."""
    if not isinstance(record, dict):
        return None
    title = _text(record.get("title")) or ""
    link = _text(record.get("url"))
    guid = _text(record.get("id"))
    body = _text(record.get("text")) or ""
    if not (title or link or guid):
        return None
    return dated_entry(
        title,
        link,
        guid,
        body,
        _published(record.get("published")),
        fetched_at,
        _text(record.get("language")),
        _text(record.get("source")),
    )


@dataclass
class JsonlProblems:
    bad_lines: int = 0
    first: str | None = None

    def add(self, line_number: int, reason: str) -> None:
        self.bad_lines += 1
        if self.first is None:
            self.first = f"line {line_number}: {reason}"

    def warning(self) -> str | None:
        if not self.bad_lines:
            return None
        return f"{self.bad_lines} lines skipped (first: {self.first})"


def read_jsonl(
    path: Path, fetched_at: float, problems: JsonlProblems, batch: int = BATCH_ENTRIES
) -> Iterator[list[FeedEntry]]:
    """Entries of a JSON Lines file in batches; bad lines are counted in ``problems``."""
    entries: list[FeedEntry] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                problems.add(number, f"not valid JSON: {str(exc)[:80]}")
                continue
            entry = jsonl_entry(record, fetched_at)
            if entry is None:
                problems.add(number, "no id, title or url")
                continue
            entries.append(entry)
            if len(entries) >= batch:
                yield entries
                entries = []
    if entries:
        yield entries


class FileSource:
    """``file://`` feeds: JSON Lines or a saved feed document."""

    name = "files"

    def __init__(self, *, max_entries: int = MAX_ENTRIES_PER_FEED, clock=time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock

    async def poll(self, feed: FeedRequest) -> FetchResult:
        return await asyncio.to_thread(self._poll, feed)

    def _poll(self, feed: FeedRequest) -> FetchResult:
        path = path_from_url(feed.url)
        try:
            stat = path.stat()
        except OSError as exc:
            return FetchResult(
                "error", feed.url, error=f"feed {feed.url}: {exc.strerror}", error_kind="file"
            )
        version = f'"{stat.st_mtime_ns}-{stat.st_size}"'
        if feed.etag == version:
            return FetchResult("not_modified", feed.url, etag=version)
        fetched_at = self._clock()
        if is_jsonl(path):
            problems = JsonlProblems()
            try:
                entries = [
                    entry for batch in read_jsonl(path, fetched_at, problems) for entry in batch
                ]
            except OSError as exc:
                return FetchResult(
                    "error", feed.url, error=f"feed {feed.url}: {exc.strerror}", error_kind="file"
                )
            warnings = [w for w in (problems.warning(),) if w]
            if not entries:
                reason = problems.warning() or "no articles"
                return FetchResult(
                    "error", feed.url, error=f"feed {feed.url}: {reason}", error_kind="parse"
                )
            kept = newest([entry.published for entry in entries], self._max_entries)
            dropped = len(entries) - len(kept)
            if dropped:
                warnings.append(f"{dropped} entries beyond the cap")
            return FetchResult(
                "fetched",
                feed.url,
                entries=tuple(entries[index] for index in kept),
                format="jsonl",
                etag=version,
                body_bytes=stat.st_size,
                warnings=tuple(warnings),
                entries_dropped=dropped,
            )
        parsed = parse_file(path, max_entries=self._max_entries)
        if parsed.error is not None:
            return FetchResult(
                "error",
                feed.url,
                error=f"feed {feed.url}: {parsed.error}",
                error_kind="parse",
                format=parsed.format,
            )
        return FetchResult(
            "fetched",
            feed.url,
            entries=parsed.entries,
            feed_title=parsed.title,
            format=parsed.format,
            etag=version,
            body_bytes=stat.st_size,
            warnings=parsed.warnings,
            refresh_hint_seconds=parsed.refresh_hint_seconds,
            entries_dropped=parsed.entries_dropped,
        )


# -- backfill ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillReport:
    path: Path
    format: str | None
    entries: int
    published: int
    error: str | None = None
    warning: str | None = None

    def line(self) -> str:
        if self.error is not None:
            return f"{self.path}: error: {self.error}"
        tail = f" ({self.warning})" if self.warning else ""
        return (
            f"{self.path}: {self.format}, {self.entries} entries, {self.published} published{tail}"
        )


class _Prepared:
    """A source that answers with whatever batch the backfill prepared."""

    name = "backfill"

    def __init__(self) -> None:
        self.result: FetchResult | None = None

    async def poll(self, feed: FeedRequest) -> FetchResult:
        assert self.result is not None
        return self.result


class _CountingPublisher:
    """Counts refused articles, which the poller only logs, so a backfill can report them."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher
        self.failures = 0
        self.last_failure: str | None = None

    async def publish(self, article: Any) -> None:
        try:
            await self._publisher.publish(article)
        except Exception as exc:
            self.failures += 1
            self.last_failure = f"{type(exc).__name__}: {exc}"
            raise


def _file_feed(path: Path, name: str | None, now: float) -> FeedRow:
    url = path.resolve().as_uri()
    return FeedRow(
        url=url,
        fetch_url=url,
        name=name,
        tags=(),
        interval_seconds=None,
        origin="backfill",
        added_at=now,
        title=None,
        etag=None,
        last_modified=None,
        next_poll_at=0.0,
        last_fetch_at=None,
        last_success_at=None,
        last_error=None,
        last_error_at=None,
        failing_since=None,
        consecutive_errors=0,
        items_seen=0,
    )


async def backfill(
    paths: list[Path],
    settings: Settings,
    state: FeedState,
    publisher: Any,
    *,
    name: str | None = None,
    batch: int = BATCH_ENTRIES,
    clock=time.time,
) -> AsyncIterator[BackfillReport]:
    """Publish every article in ``paths``; one report per file. Articles published before
    (by a backfill or the live poller) are skipped, edited ones are published as updates."""
    from connectors.poller import FeedPoller

    prepared = _Prepared()
    counting = _CountingPublisher(publisher)
    poller = FeedPoller(settings, state, counting, None, source=prepared, clock=clock)
    for path in paths:
        now = clock()
        feed = _file_feed(path, name, now)
        problems = JsonlProblems()
        batches: Iterator[list[FeedEntry]] | list[list[FeedEntry]]
        fmt: str | None
        if is_jsonl(path):
            batches = read_jsonl(path, now, problems, batch)
            fmt, title = "jsonl", path.stem
        else:
            parsed = await asyncio.to_thread(parse_file, path, max_entries=10**9)
            if parsed.error is not None:
                yield BackfillReport(path, parsed.format, 0, 0, error=parsed.error)
                continue
            batches = [
                list(parsed.entries[i : i + batch]) for i in range(0, len(parsed.entries), batch)
            ]
            fmt, title = parsed.format, parsed.title or path.stem
        entries = published = 0
        error: str | None = None
        counting.failures = 0
        try:
            for chunk in batches:
                entries += len(chunk)
                prepared.result = FetchResult(
                    "fetched", feed.url, entries=tuple(chunk), format=fmt, feed_title=title
                )
                published += await poller.poll_feed(feed, now)
        except OSError as exc:
            error = f"cannot read: {exc.strerror}"
        if error is None and not entries:
            error = problems.warning() or "no articles"
        if error is None and counting.failures:
            error = (
                f"{counting.failures} articles not published ({counting.last_failure});"
                " run again to retry them"
            )
        yield BackfillReport(path, fmt, entries, published, error, problems.warning())
