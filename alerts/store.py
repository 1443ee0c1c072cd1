"""The durable side of alerting, in the service's state database (newsalert.database: the
SQLite file by default, PostgreSQL when ``database_url`` is set), with one body of SQL for both.

- ``subscribers``: from the config file (re-synced at start and on SIGHUP) or the CLI;
- ``outbox``: every notification, from ``pending`` to ``delivered`` or ``dead`` (a dead letter,
  replayable), or ``superseded`` by a newer state of the same spike, or held as ``digest``
  until its digest is sent (then ``digested``); ``delivery_attempts`` logs each try;
- ``endpoints``: health per subscriber channel (failing since, hard failures, disabled);
- ``silences``, ``announced_stories``, ``alert_groups`` (when a group last sent);
- ``meta``: the key that signs unsubscribe and mute links, and ``subscribers_version``, a
  counter bumped in the same transaction as every subscriber write, so a running service sees
  a subscriber the CLI added (another process) without parsing the subscribers per spike.

Notifications are written here before the spike's offset is committed and leave the pending
set only once a channel confirmed them, so nothing accepted is lost across restarts.

Several dispatchers may share one database (two service processes on one PostgreSQL, or on
one SQLite file): ``claim_due`` marks the rows it hands out as claimed by this store until a
lease ends (FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock on SQLite), so no other
dispatcher takes them meanwhile; the attempt's record, or ``close``, ends the claim. A
process that dies mid-delivery leaves its claims to expire with their lease, after which
another dispatcher (or the restarted one) retries them: at least once, as before.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.routing import Notification, channels_of
from newsalert.database import Database, open_database
from newsalert.settings import SubscriptionConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscribers (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,             -- config | cli
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    subscriber TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    topic TEXT NOT NULL,
    state TEXT NOT NULL,
    spike_id TEXT NOT NULL,
    group_key TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'spike',  -- spike | digest | notice
    spike TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL,
    claimed_until REAL,               -- a dispatcher is delivering it until then
    claimed_by TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (group_key, status);
CREATE INDEX IF NOT EXISTS outbox_spike ON outbox (spike_id);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE TABLE IF NOT EXISTS alert_groups (
    group_key TEXT PRIMARY KEY,
    last_sent_at REAL,
    last_started_at REAL
);
CREATE TABLE IF NOT EXISTS endpoints (
    subscriber TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    failing_since REAL,
    hard_failures INTEGER NOT NULL DEFAULT 0,
    last_success_at REAL,
    disabled_at REAL,
    disabled_reason TEXT,
    PRIMARY KEY (subscriber, channel, target)
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber TEXT NOT NULL,
    key TEXT NOT NULL,                -- a topic, or entity:NAME
    until REAL NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL
);
"""

# Outbox columns newer than the first SQLite files; added to those at open.
_ADDED_OUTBOX_COLUMNS = {"claimed_until": "REAL", "claimed_by": "TEXT"}


@dataclass(frozen=True)
class OutboxRow:
    message_id: str
    subscriber: str
    channel: str
    target: str
    topic: str
    state: str
    spike_id: str
    group_key: str
    kind: str
    spike: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None

    def notification(self) -> Notification:
        return Notification(
            message_id=self.message_id,
            subscriber=self.subscriber,
            channel=self.channel,
            target=self.target,
            spike=self.spike,
            kind=self.kind,
        )


@dataclass(frozen=True)
class Endpoint:
    subscriber: str
    channel: str
    target: str
    failing_since: float | None
    hard_failures: int
    last_success_at: float | None
    disabled_at: float | None
    disabled_reason: str | None


@dataclass(frozen=True)
class Silence:
    id: int
    subscriber: str
    key: str
    until: float
    reason: str | None


@dataclass(frozen=True)
class StoredSubscriber:
    config: SubscriptionConfig
    origin: str


class DeliveryStore:
    """One connection per user (service, CLI); all calls are short transactions, so the CLI
    can change subscriptions while the service runs. ``target`` is what
    ``Settings.state_database`` says: a SQLite file path or a PostgreSQL URL."""

    def __init__(self, target: Path | str) -> None:
        self._db: Database = open_database(target)
        self.where = self._db.where
        self._db.prepare(_SCHEMA, {"outbox": _ADDED_OUTBOX_COLUMNS})
        # Who holds a claim on an outbox row: this store, in this process.
        self._claimer = secrets.token_hex(8)
        self._claimed = False
        # Parsed subscribers, valid while meta's subscribers_version stays the same.
        self._subscribers: tuple[int, list[StoredSubscriber]] | None = None
        self._closed = False

    def close(self) -> None:
        """Give back the claims of deliveries that did not finish (stopped mid-way), so the
        next dispatcher retries them at once rather than when their lease ends."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._claimed:
                self._db.execute(
                    "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL "
                    "WHERE claimed_by = ?",
                    (self._claimer,),
                )
        finally:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[Database]:
        return self._db.transaction()

    # -- the key of signed links ---------------------------------------------------------

    def link_key(self) -> bytes:
        # Two processes starting at once: the first key written wins, both read it.
        self._db.execute(
            "INSERT INTO meta VALUES ('link_key', ?) ON CONFLICT (key) DO NOTHING",
            (secrets.token_hex(32),),
        )
        row = self._db.execute("SELECT value FROM meta WHERE key = 'link_key'").fetchone()
        return bytes.fromhex(row[0])

    # -- subscribers ---------------------------------------------------------------------

    def sync_config(self, subscriptions: Iterable[SubscriptionConfig], now: float | None = None):
        """Make the config file's subscribers exactly those given; CLI-added ones stay."""
        self._subscribers = None
        now = time.time() if now is None else now
        configs = {s.name: s for s in subscriptions}
        with self._transaction() as db:
            for name, origin in db.execute("SELECT name, origin FROM subscribers").fetchall():
                if origin == "config" and name not in configs:
                    db.execute("DELETE FROM subscribers WHERE name = ?", (name,))
            for config in configs.values():
                db.execute(
                    "INSERT INTO subscribers VALUES (?, ?, 'config', ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, origin = 'config', "
                    "updated_at = excluded.updated_at",
                    (config.name, _dump(config), now, now),
                )
            _subscribers_changed(db)

    def add_subscriber(self, config: SubscriptionConfig, now: float | None = None) -> None:
        """Add (or replace) a CLI subscriber. A config-file subscriber cannot be replaced."""
        self._subscribers = None
        now = time.time() if now is None else now
        with self._transaction() as db:
            # One statement decides, so a config sync running at the same time cannot slip
            # in between a check and the write.
            written = db.execute(
                "INSERT INTO subscribers VALUES (?, ?, 'cli', ?, ?) ON CONFLICT (name) DO "
                "UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at "
                "WHERE subscribers.origin = 'cli'",
                (config.name, _dump(config), now, now),
            ).rowcount
            if written != 1:
                raise ValueError(
                    f"subscriber {config.name!r} is defined in the config file; change it there"
                )
            _subscribers_changed(db)

    def remove_subscriber(self, name: str) -> bool:
        self._subscribers = None
        with self._transaction() as db:
            row = db.execute("SELECT origin FROM subscribers WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            if row[0] == "config":
                raise ValueError(
                    f"subscriber {name!r} is defined in the config file; remove it there"
                )
            db.execute("DELETE FROM subscribers WHERE name = ? AND origin = 'cli'", (name,))
            _subscribers_changed(db)
        return True

    def subscribers(self) -> list[StoredSubscriber]:
        """Parsed once per change: a cheap read of the version, not of every subscriber. A
        change committed between the two reads below is parsed again next time."""
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = 'subscribers_version'"
        ).fetchone()
        version = int(row[0]) if row else 0
        if self._subscribers is not None and self._subscribers[0] == version:
            return self._subscribers[1]
        rows = self._db.execute("SELECT spec, origin FROM subscribers ORDER BY name").fetchall()
        parsed = [
            StoredSubscriber(SubscriptionConfig.model_validate_json(r["spec"]), r["origin"])
            for r in rows
        ]
        self._subscribers = (version, parsed)
        return parsed

    def subscriber(self, name: str) -> SubscriptionConfig | None:
        row = self._db.execute("SELECT spec FROM subscribers WHERE name = ?", (name,)).fetchone()
        return SubscriptionConfig.model_validate_json(row[0]) if row else None

    # -- routing state -------------------------------------------------------------------

    def already_announced(self, subscriber: str, story_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM announced_stories WHERE subscriber = ? AND story_id = ?",
            (subscriber, story_id),
        ).fetchone()
        return row is not None

    def silenced(self, subscriber: str, key: str, now: float) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM silences WHERE subscriber = ? AND key = ? AND until > ?",
            (subscriber, key, now),
        ).fetchone()
        return row is not None

    def endpoint(self, subscriber: str, channel: str, target: str) -> Endpoint | None:
        row = self._db.execute(
            "SELECT * FROM endpoints WHERE subscriber = ? AND channel = ? AND target = ?",
            (subscriber, channel, target),
        ).fetchone()
        return Endpoint(**dict(row)) if row else None

    def endpoint_disabled(self, subscriber: str, channel: str, target: str) -> str | None:
        endpoint = self.endpoint(subscriber, channel, target)
        return endpoint.disabled_reason if endpoint and endpoint.disabled_at else None

    def group(self, group_key: str) -> tuple[float | None, float | None]:
        row = self._db.execute(
            "SELECT last_sent_at, last_started_at FROM alert_groups WHERE group_key = ?",
            (group_key,),
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def routing_state(
        self, spike: dict[str, Any], subscribers: list[SubscriptionConfig], now: float
    ) -> RoutingSnapshot:
        """What routing ``spike`` to ``subscribers`` asks of the store, read in four queries
        for all of them: on PostgreSQL each question is a round trip, and a spike can fan out
        to thousands of subscribers."""
        topic = spike.get("topic", "")
        story_ids = sorted(
            {s["story_id"] for s in spike.get("top_stories", ()) if s.get("story_id")}
        )
        announced = (
            {
                (row[0], row[1])
                for row in self._db.execute(
                    "SELECT subscriber, story_id FROM announced_stories WHERE story_id IN ("
                    + ", ".join(["?"] * len(story_ids))
                    + ")",
                    story_ids,
                )
            }
            if story_ids
            else set()
        )
        silenced = {
            row[0]
            for row in self._db.execute(
                "SELECT subscriber FROM silences WHERE key = ? AND until > ?", (topic, now)
            )
        }
        disabled = {
            (row[0], row[1], row[2]): row[3]
            for row in self._db.execute(
                "SELECT subscriber, channel, target, disabled_reason FROM endpoints "
                "WHERE disabled_at IS NOT NULL"
            )
        }
        keys = sorted(
            f"{sub.name}|{topic}|{channel}"
            for sub in subscribers
            for channel, _ in channels_of(sub)
        )
        groups: dict[str, tuple[float | None, float | None]] = {}
        for start in range(0, len(keys), _CHUNK_ROWS):
            chunk = keys[start : start + _CHUNK_ROWS]
            for row in self._db.execute(
                "SELECT group_key, last_sent_at, last_started_at FROM alert_groups "
                "WHERE group_key IN (" + ", ".join(["?"] * len(chunk)) + ")",
                chunk,
            ):
                groups[row[0]] = (row[1], row[2])
        return RoutingSnapshot(
            self,
            topic,
            now,
            frozenset(story_ids),
            announced,
            silenced,
            disabled,
            frozenset(keys),
            groups,
        )

    # -- the outbox ----------------------------------------------------------------------

    def enqueue(
        self,
        notifications: Iterable[tuple[Notification, float, str]],
        now: float | None = None,
    ) -> int:
        """Store ``(notification, due_at, status)`` triples (``pending`` or ``digest``) in one
        transaction and mark their stories announced. A pending, never-tried notification of
        the same spike and group is superseded by the newer state. A re-read spike's
        notifications are ignored (deterministic ids). Returns how many were new."""
        now = time.time() if now is None else now
        batch = list(notifications)
        if not batch:
            return 0
        # A few set-wise statements instead of three per notification: on PostgreSQL each is a
        # network round trip, and one spike can fan out to thousands of subscribers.
        encoded: dict[int, str] = {}  # one spike fans out to many subscribers: serialise once
        rows: list[tuple[Any, ...]] = []
        superseded: list[tuple[float, str, str]] = []
        announced: list[tuple[str, str, float]] = []
        with self._transaction() as db:
            existing = _present_ids(db, [n.message_id for n, _, _ in batch])
            untried = _untried_by_group(db, {n.group_key for n, _, _ in batch})
            for n, due_at, status in batch:
                key = (n.group_key, n.spike.get("spike_id", ""), status)
                older = [o for o in untried.get(key, []) if o[0] != n.message_id]
                due_at = min([due_at, *(o[1] for o in older)])
                announced += [(n.subscriber, story_id, now) for story_id in n.new_story_ids]
                if n.message_id in existing:
                    continue  # a re-read spike: already queued
                existing.add(n.message_id)
                if id(n.spike) not in encoded:
                    encoded[id(n.spike)] = json.dumps(n.spike)
                rows.append(_outbox_values(n, status, due_at, now, encoded[id(n.spike)]))
                superseded += [(now, f"superseded by {n.message_id}", o[0]) for o in older]
                untried[key] = [(n.message_id, due_at)]  # what a later one would supersede
            added = _insert_rows(db, rows)
            db.executemany(
                "UPDATE outbox SET status = 'superseded', updated_at = ?, last_error = ? "
                "WHERE message_id = ?",
                superseded,
            )
            db.executemany(
                "INSERT INTO announced_stories VALUES (?, ?, ?) ON CONFLICT DO NOTHING", announced
            )
        return added

    def due(self, now: float, limit: int = 100, exclude: Iterable[str] = ()) -> list[OutboxRow]:
        """Pending notifications due at ``now`` that no dispatcher has claimed (read only)."""
        excluded = list(exclude)
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE " + _DUE + _not_in(excluded) + "ORDER BY next_attempt_at "
            "LIMIT ?",
            (now, now, *excluded, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def claim_due(
        self,
        now: float,
        limit: int = 100,
        lease_seconds: float = 300.0,
        exclude: Iterable[str] = (),
    ) -> list[OutboxRow]:
        """Like ``due``, but each row returned is claimed by this store until ``now +
        lease_seconds`` (or until its attempt is recorded): another dispatcher sharing the
        database does not get it meanwhile, so a message is not sent twice at once."""
        excluded = list(exclude)
        # PostgreSQL: rows another claimer has locked right now are skipped, not waited for.
        # SQLite: the write lock from the start (BEGIN IMMEDIATE), so the rows read are the
        # rows written; a bare statement reads first and may hand out rows claimed meanwhile.
        skip_locked = " FOR UPDATE SKIP LOCKED" if self._db.dialect == "postgresql" else ""
        self._claimed = True
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE message_id IN ("
                "SELECT message_id FROM outbox WHERE " + _DUE + _not_in(excluded) + "ORDER BY "
                "next_attempt_at LIMIT ?" + skip_locked + ") RETURNING *",
                (now + lease_seconds, self._claimer, now, now, *excluded, limit),
            ).fetchall()
        return sorted((_row(r) for r in rows), key=lambda row: row.next_attempt_at)

    def next_due_at(self, status: str = "pending") -> float | None:
        """When the next notification of ``status`` is due; a claimed one, when its claim
        ends (it is being delivered: nothing to wake up for before)."""
        row = self._db.execute(
            "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until "
            "ELSE next_attempt_at END) FROM outbox WHERE status = ?",
            (status,),
        ).fetchone()
        return row[0]

    def due_digests(self, now: float) -> dict[tuple[str, str, str], list[OutboxRow]]:
        """Held digest items whose digest is due, by (subscriber, channel, target)."""
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE status = 'digest' AND next_attempt_at <= ? "
            "ORDER BY created_at",
            (now,),
        ).fetchall()
        groups: dict[tuple[str, str, str], list[OutboxRow]] = {}
        for r in rows:
            row = _row(r)
            groups.setdefault((row.subscriber, row.channel, row.target), []).append(row)
        return groups

    def replace_with_digest(
        self, items: list[OutboxRow], digest: Notification, now: float | None = None
    ) -> bool:
        """Turn held items into one pending digest notification, atomically. When the digest
        already exists (another dispatcher built it from the items it saw), nothing is marked:
        items it did not contain stay held and go into the next digest."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            created = _insert(db, digest, "pending", now, now)
            if not created:
                return False
            db.executemany(
                "UPDATE outbox SET status = 'digested', updated_at = ?, last_error = ? "
                "WHERE message_id = ? AND status = 'digest'",
                [(now, f"sent in {digest.message_id}", item.message_id) for item in items],
            )
        return created

    def record_attempt(
        self,
        row: OutboxRow,
        outcome: str,
        detail: str | None,
        *,
        status: str,
        next_attempt_at: float | None = None,
        now: float | None = None,
    ) -> None:
        """Log one attempt, move the message to ``status`` and update its endpoint's health
        and its group's timing."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            attempts = db.execute(
                "UPDATE outbox SET attempts = attempts + 1, status = ?, last_error = ?, "
                "next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?, "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END, "
                "claimed_until = NULL, claimed_by = NULL WHERE message_id = ? RETURNING attempts",
                (
                    status,
                    None if status == "delivered" else detail,
                    next_attempt_at,
                    now,
                    status,
                    now,
                    row.message_id,
                ),
            ).fetchone()
            db.execute(
                "INSERT INTO delivery_attempts (message_id, attempt, at, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (row.message_id, attempts[0] if attempts else 0, now, outcome, detail),
            )
            key = (row.subscriber, row.channel, row.target)
            db.execute(
                "INSERT INTO endpoints (subscriber, channel, target) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                key,
            )
            if outcome == "delivered":
                db.execute(
                    "UPDATE endpoints SET failing_since = NULL, hard_failures = 0, "
                    "last_success_at = ? WHERE subscriber = ? AND channel = ? AND target = ?",
                    (now, *key),
                )
                started = now if row.state == "started" else None
                db.execute(
                    "INSERT INTO alert_groups VALUES (?, ?, ?) ON CONFLICT (group_key) DO UPDATE "
                    "SET last_sent_at = excluded.last_sent_at, "
                    "last_started_at = COALESCE(excluded.last_started_at, "
                    "alert_groups.last_started_at)",
                    (row.group_key, now, started),
                )
            else:
                db.execute(
                    "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?), "
                    "hard_failures = hard_failures + ? "
                    "WHERE subscriber = ? AND channel = ? AND target = ?",
                    (now, 1 if outcome == "failed" else 0, *key),
                )

    def disable_endpoint(
        self, subscriber: str, channel: str, target: str, reason: str, now: float | None = None
    ) -> bool:
        """Disable one channel of a subscriber; True if it was enabled until now."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "INSERT INTO endpoints (subscriber, channel, target) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (subscriber, channel, target),
            )
            cursor = db.execute(
                "UPDATE endpoints SET disabled_at = ?, disabled_reason = ? WHERE subscriber = ? "
                "AND channel = ? AND target = ? AND disabled_at IS NULL",
                (now, reason, subscriber, channel, target),
            )
        return cursor.rowcount == 1

    def enable_endpoint(self, subscriber: str, channel: str, target: str) -> None:
        self._db.execute(
            "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL,"
            " hard_failures = 0 WHERE subscriber = ? AND channel = ? AND target = ?",
            (subscriber, channel, target),
        )

    def endpoints(self) -> list[Endpoint]:
        rows = self._db.execute("SELECT * FROM endpoints ORDER BY subscriber, channel").fetchall()
        return [Endpoint(**dict(r)) for r in rows]

    def get(self, message_id: str) -> OutboxRow | None:
        row = self._db.execute(
            "SELECT * FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        return _row(row) if row else None

    def messages(self, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._db.execute(
            f"SELECT * FROM outbox {where} ORDER BY created_at DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [_row(r) for r in rows]

    def spike_messages(self, spike_id: str) -> list[OutboxRow]:
        """The notifications of one spike, oldest first (who was told, by which channel)."""
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE spike_id = ? ORDER BY created_at", (spike_id,)
        ).fetchall()
        return [_row(r) for r in rows]

    def requeue(self, message_id: str, now: float | None = None) -> bool:
        """Put a dead letter back in the pending set (``newsalert deliveries replay``)."""
        now = time.time() if now is None else now
        cursor = self._db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
            "updated_at = ?, claimed_until = NULL, claimed_by = NULL "
            "WHERE message_id = ? AND status = 'dead'",
            (now, now, message_id),
        )
        return cursor.rowcount == 1

    def pending_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[
            0
        ]

    def pending_counts(self) -> tuple[int, int]:
        """Pending notifications, and how many of them wait for a retry (tried and failed)."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) "
            "FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- silences ------------------------------------------------------------------------

    def add_silence(
        self,
        subscriber: str,
        key: str,
        until: float,
        reason: str | None = None,
        now: float | None = None,
    ) -> int:
        now = time.time() if now is None else now
        row = self._db.execute(
            "INSERT INTO silences (subscriber, key, until, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (subscriber, key, until, reason, now),
        ).fetchone()
        return int(row[0])

    def silences(self, now: float | None = None) -> list[Silence]:
        """Active silences; expired ones are deleted."""
        now = time.time() if now is None else now
        self._db.execute("DELETE FROM silences WHERE until <= ?", (now,))
        rows = self._db.execute(
            "SELECT id, subscriber, key, until, reason FROM silences ORDER BY until"
        ).fetchall()
        return [Silence(**dict(r)) for r in rows]

    def remove_silence(self, silence_id: int) -> bool:
        return self._db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount == 1


_OUTBOX_COLUMNS = (
    "message_id, subscriber, channel, target, topic, state, spike_id, group_key, kind, spike, "
    "status, next_attempt_at, created_at, updated_at"
)
_OUTBOX_ROW = "(" + ", ".join(["?"] * 14) + ")"
_CHUNK_ROWS = 500  # rows per statement: 14 parameters each stays far below either limit


def _outbox_values(
    n: Notification, status: str, due_at: float, now: float, spike_json: str | None = None
) -> tuple[Any, ...]:
    spike = n.spike
    return (
        n.message_id,
        n.subscriber,
        n.channel,
        n.target,
        spike.get("topic", ""),
        spike.get("state", ""),
        spike.get("spike_id", ""),
        n.group_key,
        n.kind,
        spike_json or json.dumps(spike),
        status,
        due_at,
        now,
        now,
    )


def _insert_rows(db: Database, rows: list[tuple[Any, ...]]) -> int:
    """Add outbox rows whose ids are not there yet; return how many were added."""
    added = 0
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        cursor = db.execute(
            f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES "
            + ", ".join([_OUTBOX_ROW] * len(chunk))
            + " ON CONFLICT DO NOTHING RETURNING message_id",
            [value for row in chunk for value in row],
        )
        added += len(cursor.fetchall())
    return added


def _insert(
    db: Database,
    n: Notification,
    status: str,
    due_at: float,
    now: float,
    spike_json: str | None = None,
) -> bool:
    """Add one notification to the outbox unless its id is already there."""
    return _insert_rows(db, [_outbox_values(n, status, due_at, now, spike_json)]) == 1


def _present_ids(db: Database, message_ids: list[str]) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(message_ids), _CHUNK_ROWS):
        chunk = message_ids[start : start + _CHUNK_ROWS]
        present |= {
            row[0]
            for row in db.execute(
                "SELECT message_id FROM outbox WHERE message_id IN ("
                + ", ".join(["?"] * len(chunk))
                + ")",
                chunk,
            )
        }
    return present


def _untried_by_group(
    db: Database, group_keys: set[str]
) -> dict[tuple[str, str, str], list[tuple[str, float]]]:
    """Queued, never-tried notifications of these groups, by (group, spike, status)."""
    found: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
    keys = sorted(group_keys)
    for start in range(0, len(keys), _CHUNK_ROWS):
        chunk = keys[start : start + _CHUNK_ROWS]
        rows = db.execute(
            "SELECT message_id, next_attempt_at, group_key, spike_id, status FROM outbox "
            "WHERE group_key IN (" + ", ".join(["?"] * len(chunk)) + ") "
            "AND status IN ('pending', 'digest') AND attempts = 0",
            chunk,
        )
        for message_id, due_at, group_key, spike_id, status in rows:
            found.setdefault((group_key, spike_id, status), []).append((message_id, due_at))
    return found


def _dump(config: SubscriptionConfig) -> str:
    """The spec as JSON with secrets in clear: the database is where they live."""
    data = config.model_dump(mode="json")
    if config.webhook is not None:
        data["webhook"]["secret"] = (
            config.webhook.secret.get_secret_value() if config.webhook.secret else None
        )
        data["webhook"]["previous_secrets"] = [
            s.get_secret_value() for s in config.webhook.previous_secrets
        ]
    return json.dumps(data)


def _row(r: Any) -> OutboxRow:
    data = dict(r)
    data["spike"] = json.loads(data["spike"])
    for column in ("updated_at", "claimed_until", "claimed_by"):
        data.pop(column)
    return OutboxRow(**data)


# Due and not being delivered by anyone: (now, now).
_DUE = "status = 'pending' AND next_attempt_at <= ? AND COALESCE(claimed_until, 0) <= ? "


def _not_in(message_ids: list[str]) -> str:
    return f"AND message_id NOT IN ({','.join('?' * len(message_ids))}) " if message_ids else ""


def _subscribers_changed(db: Database) -> None:
    """Part of every subscriber write's transaction: tells the other processes' stores."""
    db.execute(
        "INSERT INTO meta VALUES ('subscribers_version', '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)"
    )


@dataclass(frozen=True)
class RoutingSnapshot:
    """alerts.routing.RoutingState answered from what DeliveryStore.routing_state read; a
    question outside what was read goes to the store itself."""

    store: DeliveryStore
    topic: str
    now: float
    story_ids: frozenset[str]
    announced: set[tuple[str, str]]
    silenced_subscribers: set[str]
    disabled: dict[tuple[str, str, str], str | None]
    group_keys: frozenset[str]
    groups: dict[str, tuple[float | None, float | None]]

    def already_announced(self, subscriber: str, story_id: str) -> bool:
        if story_id not in self.story_ids:
            return self.store.already_announced(subscriber, story_id)
        return (subscriber, story_id) in self.announced

    def silenced(self, subscriber: str, key: str, now: float) -> bool:
        if key != self.topic or now != self.now:
            return self.store.silenced(subscriber, key, now)
        return subscriber in self.silenced_subscribers

    def endpoint_disabled(self, subscriber: str, channel: str, target: str) -> str | None:
        key = (subscriber, channel, target)
        return self.disabled.get(key)  # the store's answer: the reason of a disabled endpoint

    def group(self, group_key: str) -> tuple[float | None, float | None]:
        if group_key not in self.group_keys:
            return self.store.group(group_key)
        return self.groups.get(group_key, (None, None))
