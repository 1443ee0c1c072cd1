"""The durable side of alerting, in the service's SQLite file: the outbox of notifications
(pending, delivered, dead), a log of every delivery attempt, and which stories each subscriber
has been told about. A notification is written here before the spike's offset is committed,
and removed from the pending set only once a channel confirmed it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.routing import Notification

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    subscriber TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    topic TEXT NOT NULL,
    state TEXT NOT NULL,
    spike TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS announced_stories (
    subscriber TEXT NOT NULL,
    story_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (subscriber, story_id)
);
"""


@dataclass(frozen=True)
class OutboxRow:
    message_id: str
    subscriber: str
    channel: str
    target: str
    topic: str
    state: str
    spike: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None

    def notification(self) -> Notification:
        return Notification(self.message_id, self.subscriber, self.channel, self.target, self.spike)


class DeliveryStore:
    """One connection per process, used from the event loop thread; every call is short."""

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def enqueue(self, notifications: Iterable[Notification], now: float | None = None) -> int:
        """Store notifications (a replayed spike's are ignored: ids are deterministic) and
        mark their stories as announced; return how many were new."""
        now = time.time() if now is None else now
        added = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for n in notifications:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (message_id, subscriber, channel, target, "
                    "topic, state, spike, next_attempt_at, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n.message_id,
                        n.subscriber,
                        n.channel,
                        n.target,
                        n.spike["topic"],
                        n.spike["state"],
                        json.dumps(n.spike),
                        now,
                        now,
                        now,
                    ),
                )
                added += cursor.rowcount
                self._db.executemany(
                    "INSERT OR IGNORE INTO announced_stories VALUES (?, ?, ?)",
                    [(n.subscriber, story_id, now) for story_id in n.new_story_ids],
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

    def already_announced(self, subscriber: str, story_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM announced_stories WHERE subscriber = ? AND story_id = ?",
            (subscriber, story_id),
        ).fetchone()
        return row is not None

    def due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def next_due_at(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return row[0]

    def record_attempt(
        self,
        message_id: str,
        outcome: str,
        detail: str | None,
        *,
        status: str,
        next_attempt_at: float | None = None,
        now: float | None = None,
    ) -> None:
        """Log one attempt and move the message to ``status`` (pending again, delivered, dead)."""
        now = time.time() if now is None else now
        self._db.execute("BEGIN IMMEDIATE")
        try:
            attempts = self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, status = ?, last_error = ?, "
                "next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?, "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
                "WHERE message_id = ? RETURNING attempts",
                (
                    status,
                    None if outcome == "delivered" else detail,
                    next_attempt_at,
                    now,
                    status,
                    now,
                    message_id,
                ),
            ).fetchone()
            self._db.execute(
                "INSERT INTO delivery_attempts (message_id, attempt, at, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (message_id, attempts[0] if attempts else 0, now, outcome, detail),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, message_id: str) -> OutboxRow | None:
        row = self._db.execute(
            "SELECT * FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        return _row(row) if row else None

    def messages(self, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
        if status is None:
            rows = self._db.execute(
                "SELECT * FROM outbox ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE status = ? ORDER BY created_at DESC LIMIT ?",
                (status, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def requeue(self, message_id: str, now: float | None = None) -> bool:
        """Put a dead message back in the pending set (``newsalert deliveries replay``)."""
        now = time.time() if now is None else now
        cursor = self._db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
            "updated_at = ? WHERE message_id = ? AND status = 'dead'",
            (now, now, message_id),
        )
        return cursor.rowcount == 1

    def pending_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[
            0
        ]


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        message_id=r["message_id"],
        subscriber=r["subscriber"],
        channel=r["channel"],
        target=r["target"],
        topic=r["topic"],
        state=r["state"],
        spike=json.loads(r["spike"]),
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
    )
