"""Spike event -> the notifications it causes, and when each is due (pure: no I/O).

A subscriber hears about a spike when all hold: the subscription is active; it follows the
spike's key (a topic or ``entity:NAME``); it asked for that state (``started`` by default,
``escalated`` / ``resolved`` only if listed in ``notify_on``); the spike reaches its minimum
severity; its keyword query (if any) matches a top story's title; the key is not silenced for
it; and, for a ``started`` spike, at least one top story is new to this subscriber. Each of its
enabled channels then gets one notification, due after the group wait, the group interval and
quiet hours, or held for the next digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from newsalert.settings import SubscriptionConfig
from streams.classify.keywords import keyword_match

SEVERITY_RANKS = {"low": 0, "medium": 1, "high": 2}
MEDIUM_RATIO, HIGH_RATIO = 5.0, 10.0


@dataclass(frozen=True)
class Notification:
    message_id: str  # stable across retries: the webhook-id and idempotency key
    subscriber: str
    channel: str
    target: str
    spike: dict[str, Any]  # a spike event; for a digest {"items": [...], "period": {...}}
    new_story_ids: tuple[str, ...] = field(default=())
    kind: str = "spike"  # spike | digest | notice

    @property
    def group_key(self) -> str:
        return f"{self.subscriber}|{self.spike.get('topic', self.kind)}|{self.channel}"


@dataclass(frozen=True)
class Timing:
    """Alertmanager-like timing per (subscriber, topic, channel) group."""

    group_wait_seconds: float = 5.0
    group_interval_seconds: float = 300.0
    repeat_interval_seconds: float = 4 * 3600.0


class RoutingState(Protocol):
    def already_announced(self, subscriber: str, story_id: str) -> bool: ...
    def silenced(self, subscriber: str, key: str, now: float) -> bool: ...
    def endpoint_disabled(self, subscriber: str, channel: str, target: str) -> str | None: ...
    def group(self, group_key: str) -> tuple[float | None, float | None]: ...


@dataclass(frozen=True)
class Routed:
    notification: Notification
    due_at: float
    status: str  # pending | digest


@dataclass
class Skipped:
    """Why a subscriber following the key got nothing (for logs and a metric)."""

    subscriber: str
    reason: str


def severity(spike: dict[str, Any]) -> str:
    """low: any spike; medium: ratio >= 5; high: ratio >= 10 (README, "Subscriptions")."""
    ratio = float(spike.get("ratio", 0))
    if ratio >= HIGH_RATIO:
        return "high"
    return "medium" if ratio >= MEDIUM_RATIO else "low"


def message_id(*parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return "msg_" + digest[:26]


def channels_of(sub: SubscriptionConfig) -> list[tuple[str, str]]:
    pairs = []
    if sub.webhook is not None:
        pairs.append(("webhook", sub.webhook.url))
    if sub.email:
        pairs.append(("email", sub.email))
    return pairs


def route(
    spike: dict[str, Any],
    subscribers: Iterable[SubscriptionConfig],
    state: RoutingState,
    now: float,
    timing: Timing = Timing(),
) -> tuple[list[Routed], list[Skipped]]:
    key, spike_state = spike["topic"], spike["state"]
    routed: list[Routed] = []
    skipped: list[Skipped] = []
    for sub in subscribers:
        if key not in sub.keys():
            continue
        reason = _refusal(spike, sub, state, now)
        if reason is not None:
            skipped.append(Skipped(sub.name, reason))
            continue
        story_ids = [s.get("story_id") or s.get("article_id") for s in spike["top_stories"]]
        new_ids = tuple(s for s in story_ids if s and not state.already_announced(sub.name, s))
        if spike_state == "started" and story_ids and not new_ids:
            skipped.append(Skipped(sub.name, "every story was already announced"))
            continue
        for channel, target in channels_of(sub):
            disabled = state.endpoint_disabled(sub.name, channel, target)
            if disabled:
                skipped.append(Skipped(sub.name, f"{channel} disabled: {disabled}"))
                continue
            note = Notification(
                message_id=message_id(spike["spike_id"], spike_state, sub.name, channel),
                subscriber=sub.name,
                channel=channel,
                target=target,
                spike=spike,
                new_story_ids=new_ids,
            )
            if sub.mode != "instant":
                routed.append(Routed(note, next_digest_at(sub, now), "digest"))
                continue
            due = _group_due(note, spike_state, state, now, timing)
            routed.append(Routed(note, after_quiet_hours(sub, due), "pending"))
    return routed, skipped


def _refusal(
    spike: dict[str, Any], sub: SubscriptionConfig, state: RoutingState, now: float
) -> str | None:
    if not sub.active:
        return "inactive"
    if spike["state"] not in sub.notify_on:
        return f"not subscribed to {spike['state']} updates"
    if SEVERITY_RANKS[severity(spike)] < SEVERITY_RANKS[sub.min_severity]:
        return f"below minimum severity {sub.min_severity}"
    if state.silenced(sub.name, spike["topic"], now):
        return "silenced"
    if sub.keywords and not any(
        keyword_match(sub.keywords, s.get("title") or "") for s in spike["top_stories"]
    ):
        return "keyword filter matched no story"
    return None


def _group_due(
    note: Notification, spike_state: str, state: RoutingState, now: float, timing: Timing
) -> float:
    last_sent, last_started = state.group(note.group_key)
    if last_sent is None:
        return now + timing.group_wait_seconds
    due = max(now, last_sent + timing.group_interval_seconds)
    if spike_state == "started" and last_started is not None:
        due = max(due, last_started + timing.repeat_interval_seconds)
    return due


def _local(sub: SubscriptionConfig, epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=ZoneInfo(sub.timezone))


def _at(day: datetime, clock: str) -> datetime:
    hours, minutes = (int(x) for x in clock.split(":"))
    return day.replace(hour=hours, minute=minutes, second=0, microsecond=0)


def after_quiet_hours(sub: SubscriptionConfig, due: float) -> float:
    """``due``, or the end of the subscriber's quiet hours if ``due`` falls inside them."""
    quiet = sub.quiet_hours
    if quiet is None or quiet.start == quiet.end:
        return due
    local = _local(sub, due)
    start, end = _at(local, quiet.start), _at(local, quiet.end)
    if start < end:  # e.g. 12:00-14:00
        inside, until = start <= local < end, end
    else:  # crosses midnight, e.g. 22:00-07:00
        inside = local >= start or local < end
        until = end if local < end else end + timedelta(days=1)
    return until.timestamp() if inside else due


def next_digest_at(sub: SubscriptionConfig, now: float) -> float:
    """The next digest time after ``now``: the next full hour, or the next ``digest_time``."""
    local = _local(sub, now)
    if sub.mode == "hourly":
        return (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).timestamp()
    due = _at(local, sub.digest_time)
    if due <= local:
        due = _at(local + timedelta(days=1), sub.digest_time)
    return due.timestamp()
