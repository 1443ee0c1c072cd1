"""What the pages and the API show of the stream: each topic's stories of the last 30 days
(volume per bucket, latest stories and their matched terms) and every spike event, kept in the
state database where any process can read them. Fed from the topic-hits and spikes topics by
two thin agents; bounded: stories older than ``KEEP_SECONDS`` are deleted as new ones come.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust

from newsalert.database import Database, open_database
from streams.records import Spike, TopicHit, decode, decode_fields

KEEP_SECONDS = 31 * 86400.0  # the 30-day chart, and a day of slack
PRUNE_EVERY_SECONDS = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topic_stories (
    key TEXT NOT NULL,                -- a topic, or entity:NAME
    story_id TEXT NOT NULL,
    published REAL NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    source TEXT,
    terms TEXT NOT NULL,              -- JSON list of the matched terms
    seen_at REAL NOT NULL,
    PRIMARY KEY (key, story_id)
);
CREATE INDEX IF NOT EXISTS topic_stories_time ON topic_stories (key, published);
CREATE TABLE IF NOT EXISTS spike_events (
    spike_id TEXT NOT NULL,
    state TEXT NOT NULL,              -- started | escalated | resolved
    topic TEXT NOT NULL,
    detected_at REAL NOT NULL,
    spike TEXT NOT NULL,              -- the Spike record as JSON
    PRIMARY KEY (spike_id, state)
);
CREATE INDEX IF NOT EXISTS spike_events_topic ON spike_events (topic, detected_at)
"""


class ActivityStore:
    """One connection; short statements, so the service writes while the pages read."""

    def __init__(self, target: Path | str) -> None:
        self._db: Database = open_database(target)
        self._db.prepare(_SCHEMA, {})
        self._pruned_at = 0.0

    def close(self) -> None:
        self._db.close()

    # -- in ------------------------------------------------------------------------------

    def record_hits(self, hits: Iterable[dict[str, Any]], now: float | None = None) -> None:
        """Hits as TopicHit dicts; a story is kept once per key (its first copy)."""
        now = time.time() if now is None else now
        rows = [
            (
                h["key"],
                h["story_id"],
                float(h["published"]),
                h["title"],
                h.get("url"),
                h.get("source"),
                json.dumps(list(h.get("terms") or [])),
                now,
            )
            for h in hits
        ]
        with self._db.transaction() as db:
            if rows:
                db.executemany(
                    "INSERT INTO topic_stories VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (key, story_id) DO NOTHING",
                    rows,
                )
            if now - self._pruned_at > PRUNE_EVERY_SECONDS:
                self._pruned_at = now
                db.execute("DELETE FROM topic_stories WHERE published < ?", (now - KEEP_SECONDS,))
                db.execute("DELETE FROM spike_events WHERE detected_at < ?", (now - KEEP_SECONDS,))

    def record_spike(self, spike: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO spike_events VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (spike_id, state) DO NOTHING",
            (
                spike["spike_id"],
                spike["state"],
                spike["topic"],
                float(spike["detected_at"]),
                json.dumps(spike),
            ),
        )

    # -- out -----------------------------------------------------------------------------

    def volume(self, key: str, since: float, bucket_seconds: float) -> dict[int, int]:
        """Distinct stories per bucket index (``published // bucket_seconds``) since ``since``."""
        rows = self._db.execute(
            "SELECT published FROM topic_stories WHERE key = ? AND published >= ?",
            (key, since),
        ).fetchall()
        counts: dict[int, int] = {}
        for (published,) in rows:
            index = int(published // bucket_seconds)
            counts[index] = counts.get(index, 0) + 1
        return counts

    def latest_stories(self, key: str, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT story_id, published, title, url, source, terms FROM topic_stories "
            "WHERE key = ? ORDER BY published DESC LIMIT ?",
            (key, limit),
        ).fetchall()
        return [{**dict(r), "terms": json.loads(r["terms"])} for r in rows]

    def titles_since(self, since: float, keys: Iterable[str] = ()) -> dict[str, str]:
        """story_id -> title of the stories seen since ``since`` (under ``keys``, or any)."""
        keys = list(keys)
        where, args = "published >= ?", [since]
        if keys:
            where += f" AND key IN ({', '.join('?' * len(keys))})"
            args += keys
        rows = self._db.execute(
            f"SELECT story_id, title FROM topic_stories WHERE {where}", args
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def keys(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT key FROM topic_stories ORDER BY key").fetchall()
        return [r[0] for r in rows]

    def spikes(self, topic: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest event of each spike, newest first."""
        where, args = ("WHERE topic = ?", (topic,)) if topic else ("", ())
        rows = self._db.execute(
            f"SELECT spike FROM spike_events {where} ORDER BY detected_at DESC LIMIT ?",
            (*args, limit * 3),
        ).fetchall()
        newest: dict[str, dict[str, Any]] = {}
        for (body,) in rows:
            spike = json.loads(body)
            newest.setdefault(spike["spike_id"], spike)
        return list(newest.values())[:limit]

    def spike(self, spike_id: str) -> list[dict[str, Any]]:
        """The events of one spike, oldest first (empty: unknown)."""
        rows = self._db.execute(
            "SELECT spike FROM spike_events WHERE spike_id = ? ORDER BY detected_at",
            (spike_id,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]


def register(
    app: faust.App,
    hits_topic: faust.ChannelT,
    spikes_topic: faust.ChannelT,
    store: ActivityStore,
    batch_size: int,
    batch_seconds: float,
) -> None:
    """Two agents beside the detector's and the alert's, on the same topics (read as bytes).
    A record that does not decode is skipped here: the detector's agent dead-letters it."""

    @app.agent(hits_topic, name="activity-hits")
    async def activity_hits(stream: faust.StreamT[bytes]) -> None:
        async for values in stream.take(batch_size, within=batch_seconds):
            found = []
            for value in values:
                try:
                    found.append(decode_fields(TopicHit, value))
                except Exception:  # noqa: S112 - dead-lettered by detect-spikes
                    continue
            store.record_hits(found)

    @app.agent(spikes_topic, name="activity-spikes")
    async def activity_spikes(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                spike = decode(Spike, value).asdict()
            except Exception:  # noqa: S112 - dead-lettered by the alert agent
                continue
            store.record_spike(spike)
