"""Durable connector state: the feed list, each feed's fetch state and health, and which
entries were published (so nothing is published twice across restarts). It lives in the state
database (newsalert.database): a SQLite file by default, PostgreSQL when ``database_url`` is set.

Tables are prefixed ``feed``; the alerts package keeps its own tables in the same database.

Several connector processes may share one database: each claims due feeds with a lease, so two
processes never claim the same feed, and the lease ends when the outcome is recorded, which also
moves the feed's next poll an interval ahead. A process that dies holding leases delays those
feeds by at most the lease length. On SQLite the claim is one atomic ``UPDATE ... RETURNING``
(the write lock serialises claimers); on PostgreSQL it is ``SELECT ... FOR UPDATE SKIP LOCKED``
on the due, unleased feeds followed by the lease ``UPDATE`` in one transaction, so concurrent
claimers skip each other's rows instead of waiting for them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import scheduler
from connectors.base import FetchResult
from newsalert.database import open_database
from newsalert.settings import FeedConfig

SQLITE_BUSY_TIMEOUT_SECONDS = 5.0  # calls run on the event loop: wait briefly for a writer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,               -- as configured or added: the feed's identity
    fetch_url TEXT NOT NULL,            -- where to fetch; moves with permanent redirects
    name TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    interval_seconds REAL,
    origin TEXT NOT NULL DEFAULT 'cli', -- 'config' feeds are removed when the config drops them
    added_at REAL NOT NULL,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    next_poll_at REAL NOT NULL DEFAULT 0,
    last_fetch_at REAL,
    last_success_at REAL,
    last_error TEXT,
    last_error_at REAL,
    failing_since REAL,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    items_seen INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS feeds_next_poll_at ON feeds (next_poll_at);
CREATE TABLE IF NOT EXISTS feed_entries (
    article_id TEXT PRIMARY KEY,
    feed_url TEXT NOT NULL,             -- the feed that first published it; only it can update it
    content_hash TEXT NOT NULL,
    first_published_at REAL NOT NULL,
    last_published_at REAL NOT NULL
);
"""
# Columns added after the first release; existing databases get them on open.
_ADDED_COLUMNS = {
    "lease_owner": "TEXT",  # which process is polling the feed right now
    "lease_until": "REAL",  # ... until when; an expired lease is free to take
    "refresh_hint_seconds": "REAL",  # the feed's own ttl / sy:updatePeriod
    "last_change_at": "REAL",  # the last poll that brought new or edited entries
    "change_gap_seconds": "REAL",  # running estimate of the time between changes
    "interval_in_use_seconds": "REAL",  # the adapted interval the last schedule used
    "full_text": "INTEGER NOT NULL DEFAULT 0",  # fetch article pages for their full text
    "last_warning": "TEXT",  # what the last fetched document lost (entries over the cap)
    "entries_dropped": "INTEGER NOT NULL DEFAULT 0",  # entries over the cap, all polls
}


@dataclass(frozen=True)
class FeedRow:
    url: str
    fetch_url: str
    name: str | None
    tags: tuple[str, ...]
    interval_seconds: float | None
    origin: str
    added_at: float
    title: str | None
    etag: str | None
    last_modified: str | None
    next_poll_at: float
    last_fetch_at: float | None
    last_success_at: float | None
    last_error: str | None
    last_error_at: float | None
    failing_since: float | None
    consecutive_errors: int
    items_seen: int
    lease_owner: str | None = None
    lease_until: float | None = None
    refresh_hint_seconds: float | None = None
    last_change_at: float | None = None
    change_gap_seconds: float | None = None
    interval_in_use_seconds: float | None = None
    full_text: bool = False
    last_warning: str | None = None
    entries_dropped: int = 0

    def healthy(self, now: float | None = None) -> bool:
        """False once the feed has failed without a success for a day; it is still polled."""
        if self.failing_since is None:
            return True
        now = time.time() if now is None else now
        return now - self.failing_since < scheduler.UNHEALTHY_AFTER_SECONDS


@dataclass(frozen=True)
class PublishedEntry:
    feed_url: str
    content_hash: str


class FeedState:
    """One connection per process; all calls run on the event loop thread and are short.

    ``target`` is a SQLite file path or a ``postgresql://`` URL (``Settings.state_database``).
    """

    def __init__(self, target: Path | str) -> None:
        # NORMAL: a power cut may forget the last polls, which only means polling again.
        self._db = open_database(
            target,
            sqlite_synchronous="NORMAL",
            busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS,
        )
        self.where = self._db.where  # for messages: the path, or the URL without its password
        self.path: Path | None = getattr(self._db, "path", None)
        self._db.prepare(_SCHEMA, {"feeds": _ADDED_COLUMNS})

    def close(self) -> None:
        self._db.close()

    # -- the feed list -------------------------------------------------------------------

    def sync_config(self, feeds: Iterable[FeedConfig], now: float | None = None) -> None:
        """Make the configured feeds present (keeping their fetch state) and drop feeds that
        came from an earlier config but are no longer in it. CLI-added feeds are untouched."""
        now = time.time() if now is None else now
        feeds = list(feeds)
        with self._db.transaction() as db:
            db.executemany(
                _UPSERT,
                [
                    _upsert_params(
                        feed.url,
                        feed.name,
                        feed.tags,
                        feed.interval_seconds,
                        "config",
                        now,
                        feed.full_text,
                    )
                    for feed in feeds
                ],
            )
            # Found here rather than with NOT IN (...): no bound-parameter limit, no empty list.
            configured = {feed.url for feed in feeds}
            dropped = [
                (row[0],)
                for row in db.execute("SELECT url FROM feeds WHERE origin = 'config'").fetchall()
                if row[0] not in configured
            ]
            db.executemany("DELETE FROM feeds WHERE url = ?", dropped)

    def add_feed(
        self,
        url: str,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
        interval_seconds: float | None = None,
        now: float | None = None,
        full_text: bool = False,
    ) -> FeedRow:
        now = time.time() if now is None else now
        self._db.execute(
            _UPSERT, _upsert_params(url, name, tags, interval_seconds, "cli", now, full_text)
        )
        row = self.get_feed(url)
        assert row is not None
        return row

    def remove_feed(self, url: str) -> bool:
        """Forget a feed. Its published entries stay remembered, so re-adding it republishes nothing."""
        return self._db.execute("DELETE FROM feeds WHERE url = ?", (url,)).rowcount > 0

    def get_feed(self, url: str) -> FeedRow | None:
        row = self._db.execute("SELECT * FROM feeds WHERE url = ?", (url,)).fetchone()
        return _feed_row(row) if row else None

    def list_feeds(self) -> list[FeedRow]:
        rows = self._db.execute("SELECT * FROM feeds ORDER BY url").fetchall()
        return [_feed_row(row) for row in rows]

    def health_counts(self, now: float) -> dict[str, int]:
        """Feeds by health (``ok``, ``failing``, ``unhealthy``), as ``FeedRow.healthy`` says."""
        unhealthy_before = now - scheduler.UNHEALTHY_AFTER_SECONDS
        row = self._db.execute(
            "SELECT COALESCE(SUM(CASE WHEN failing_since IS NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN failing_since > ? THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN failing_since <= ? THEN 1 ELSE 0 END), 0) FROM feeds",
            (unhealthy_before, unhealthy_before),
        ).fetchone()
        return {"ok": int(row[0]), "failing": int(row[1]), "unhealthy": int(row[2])}

    def due_feeds(self, now: float, limit: int | None = None) -> list[FeedRow]:
        clause, bound = _limit(limit)
        rows = self._db.execute(
            f"SELECT * FROM feeds WHERE next_poll_at <= ? ORDER BY next_poll_at{clause}",
            (now, *bound),
        ).fetchall()
        return [_feed_row(row) for row in rows]

    def next_due_at(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_poll_at) FROM feeds").fetchone()
        return row[0]

    def find_feeds(self, url_or_name: str) -> list[FeedRow]:
        """Feeds whose URL or name is exactly this (a name may be shared)."""
        rows = self._db.execute(
            "SELECT * FROM feeds WHERE url = ? OR name = ? ORDER BY url", (url_or_name, url_or_name)
        ).fetchall()
        return [_feed_row(row) for row in rows]

    # -- leases: who polls which feed now ------------------------------------------------

    def claim_due_feeds(
        self, now: float, owner: str, lease_seconds: float, limit: int | None = None
    ) -> list[FeedRow]:
        """Take the lease on up to ``limit`` due feeds that nobody else holds, atomically: two
        processes calling this at once never get the same feed."""
        clause, bound = _limit(limit)
        due = (
            "SELECT url FROM feeds"
            " WHERE next_poll_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"
            f" ORDER BY next_poll_at{clause}"
        )
        lease = (owner, now + lease_seconds)
        if self._db.dialect == "postgresql":
            # A subquery alone would not do: under READ COMMITTED two UPDATEs can both pick a
            # row from their snapshots. Locking the picked rows, and skipping rows another
            # claimer has locked, makes each feed go to one claimer.
            with self._db.transaction() as db:
                urls = [
                    row[0]
                    for row in db.execute(f"{due} FOR UPDATE SKIP LOCKED", (now, now, *bound))
                ]
                if not urls:
                    return []
                rows = db.execute(
                    "UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE url = ANY(?)"
                    " RETURNING *",
                    (*lease, urls),
                ).fetchall()
        else:  # one statement holds SQLite's write lock from the pick to the lease
            rows = self._db.execute(
                f"UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE url IN ({due})"
                " RETURNING *",
                (*lease, now, now, *bound),
            ).fetchall()
        return sorted((_feed_row(row) for row in rows), key=lambda f: f.next_poll_at)

    def release_leases(self, owner: str, urls: Iterable[str] | None = None) -> None:
        """Give leases back without recording an outcome (a poll cancelled at shutdown)."""
        if urls is None:
            self._db.execute(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                (owner,),
            )
            return
        self._db.executemany(
            "UPDATE feeds SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND url = ?",
            [(owner, url) for url in urls],
        )

    # -- fetch outcomes ------------------------------------------------------------------

    def record_fetch(
        self,
        url: str,
        result: FetchResult,
        *,
        now: float,
        default_interval_seconds: float,
        items_seen: int = 0,
        changed: bool = False,
        warning: str | None = None,
        entries_dropped: int = 0,
    ) -> FeedRow | None:
        """Store one poll's outcome, end the lease and schedule the next poll. ``changed`` says
        the poll brought new or edited entries (what adaptive scheduling learns from);
        ``items_seen`` counts entries seen for the first time; ``warning`` says what a fetched
        document lost (a 304 or an error keeps the last one); ``entries_dropped`` adds to the
        feed's count of entries dropped over the cap. Returns the updated feed."""
        feed = self.get_feed(url)
        if feed is None:
            return None  # removed while it was being polled
        base = feed.interval_seconds or default_interval_seconds
        hint = result.refresh_hint_seconds or feed.refresh_hint_seconds
        last_change_at, change_gap = feed.last_change_at, feed.change_gap_seconds
        if result.outcome != "error" and changed:
            change_gap = scheduler.next_change_gap(change_gap, last_change_at, now)
            last_change_at = now
        adaptive = scheduler.adaptive_interval(
            base_seconds=base,
            change_gap_seconds=change_gap,
            last_change_at=last_change_at,
            now=now,
        )
        interval = scheduler.effective_interval(adaptive, hint)
        if result.outcome == "error" and result.error_kind == "publish":
            # The feed answered; the broker did not take its entries. That is no fault of the
            # feed: its error count and backoff stay as they were (a broker outage of minutes
            # must not push every feed hours out), and it is fetched again soon, so what it
            # could not publish goes out once the broker is back.
            self._db.execute(
                """UPDATE feeds SET last_fetch_at = ?, last_error = ?, last_error_at = ?,
                       next_poll_at = ?, lease_owner = NULL, lease_until = NULL WHERE url = ?""",
                (
                    now,
                    result.error,
                    now,
                    scheduler.next_poll_at(
                        now=now,
                        interval_seconds=min(interval, scheduler.PUBLISH_RETRY_SECONDS),
                        feed_url=url,
                    ),
                    url,
                ),
            )
        elif result.outcome == "error":
            errors = feed.consecutive_errors + 1
            # Back off from the interval in use before the failures, not from a moving one.
            interval = feed.interval_in_use_seconds or interval
            self._db.execute(
                """UPDATE feeds SET last_fetch_at = ?, last_error = ?, last_error_at = ?,
                       failing_since = COALESCE(failing_since, ?), consecutive_errors = ?,
                       next_poll_at = ?, lease_owner = NULL, lease_until = NULL WHERE url = ?""",
                (
                    now,
                    result.error,
                    now,
                    now,
                    errors,
                    scheduler.next_poll_at(
                        now=now,
                        interval_seconds=interval,
                        feed_url=url,
                        consecutive_errors=errors,
                        retry_after_seconds=result.retry_after_seconds,
                    ),
                    url,
                ),
            )
        else:
            self._db.execute(
                """UPDATE feeds SET last_fetch_at = ?, last_success_at = ?, failing_since = NULL,
                       consecutive_errors = 0, etag = ?, last_modified = ?,
                       fetch_url = COALESCE(?, fetch_url), title = COALESCE(?, title),
                       items_seen = items_seen + ?, next_poll_at = ?,
                       refresh_hint_seconds = ?, last_change_at = ?, change_gap_seconds = ?,
                       interval_in_use_seconds = ?, last_warning = ?, lease_owner = NULL,
                       lease_until = NULL, entries_dropped = entries_dropped + ?
                   WHERE url = ?""",
                (
                    now,
                    now,
                    result.etag,
                    result.last_modified,
                    result.permanent_url,
                    result.feed_title,
                    items_seen,
                    scheduler.next_poll_at(now=now, interval_seconds=interval, feed_url=url),
                    hint,
                    last_change_at,
                    change_gap,
                    interval,
                    feed.last_warning if result.outcome == "not_modified" else warning,
                    entries_dropped,
                    url,
                ),
            )
        return self.get_feed(url)

    # -- published entries ---------------------------------------------------------------

    def published_entries(self, article_ids: Iterable[str]) -> dict[str, PublishedEntry]:
        ids = list(dict.fromkeys(article_ids))
        found: dict[str, PublishedEntry] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT article_id, feed_url, content_hash FROM feed_entries"
                f" WHERE article_id IN ({marks})",
                chunk,
            ).fetchall()
            for row in rows:
                found[row["article_id"]] = PublishedEntry(row["feed_url"], row["content_hash"])
        return found

    def mark_published(self, article_id: str, feed_url: str, content_hash: str, now: float) -> None:
        self._db.execute(
            """
            INSERT INTO feed_entries (article_id, feed_url, content_hash, first_published_at,
                                      last_published_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (article_id) DO UPDATE SET
                content_hash = excluded.content_hash, last_published_at = excluded.last_published_at
            WHERE feed_entries.feed_url = excluded.feed_url
            """,
            (article_id, feed_url, content_hash, now, now),
        )


_UPSERT = """
INSERT INTO feeds (url, fetch_url, name, tags, interval_seconds, origin, added_at, full_text)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (url) DO UPDATE SET
    name = excluded.name, tags = excluded.tags,
    interval_seconds = excluded.interval_seconds, origin = excluded.origin,
    full_text = excluded.full_text
"""


def _upsert_params(
    url: str,
    name: str | None,
    tags: Sequence[str],
    interval_seconds: float | None,
    origin: str,
    now: float,
    full_text: bool,
) -> tuple[Any, ...]:
    # full_text is an INTEGER column: PostgreSQL refuses a boolean there, SQLite stores 0/1.
    tags_json = json.dumps(list(tags))
    return (url, url, name, tags_json, interval_seconds, origin, now, int(full_text))


def _limit(limit: int | None) -> tuple[str, tuple[int, ...]]:
    """No LIMIT for None; both dialects agree on a non-negative bound (SQLite reads a negative
    one as "no limit", PostgreSQL refuses it)."""
    if limit is None:
        return "", ()
    return " LIMIT ?", (max(0, limit),)


def _feed_row(row: Any) -> FeedRow:  # a sqlite3.Row or a newsalert.database.Row
    values = dict(row)
    values["tags"] = tuple(json.loads(values["tags"]))
    values["full_text"] = bool(values.get("full_text"))
    return FeedRow(**values)
